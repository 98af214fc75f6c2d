"""Log-in floods: the password is checked outside any transaction, and failures lock the user
name and the client address out for a while, refused before any password is hashed."""

import asyncio
import threading
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select

from server.app import create_api
from server.context import ServerContext
from server.db import Database
from server.domain import auth
from server.domain.errors import TooManyAttempts, Unauthorized
from server.domain.login_throttle import (
    IN_FLIGHT_TIMEOUT,
    LoginThrottle,
    ThrottleRules,
    address_key,
)
from server.models import LoginAttempt, LoginSubject
from server.settings import Settings
from tests.server.conftest import Lab
from tests.server.payloads import event_body, field_errors

RULES = ThrottleRules(
    max_failures_per_account=3, max_failures_per_address=5, window_seconds=60, lockout_seconds=30
)
MANAGER = {"username": "manager", "password": "demo-manager-pass"}


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def throttle(clock: FakeClock) -> LoginThrottle:
    return LoginThrottle(RULES, clock)


@pytest.fixture
def lab_throttle(lab: Lab, throttle: LoginThrottle) -> LoginThrottle:
    """The lab server's throttle, with small limits and a clock the test moves."""
    lab.context.login_throttle = throttle
    return throttle


@pytest.fixture
def password_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The passwords checked (hashed) against a stored hash, in order."""
    checked: list[str] = []
    real_verify = auth.verify_password

    def counting_verify(password_hash: str | None, password: str) -> bool:
        checked.append(password)
        return real_verify(password_hash, password)

    monkeypatch.setattr(auth, "verify_password", counting_verify)
    return checked


def _fail(db: Database, throttle: LoginThrottle, username: str, host: str = "10.0.0.1") -> None:
    with pytest.raises(Unauthorized), throttle.attempt(db, username, host):
        raise Unauthorized("password", "wrong")


def _refusal(
    db: Database, throttle: LoginThrottle, username: str, host: str = "10.0.0.1"
) -> TooManyAttempts:
    ran: list[bool] = []
    with pytest.raises(TooManyAttempts) as refused, throttle.attempt(db, username, host):
        ran.append(True)
    assert not ran, "a refused attempt must not run its check"
    return refused.value


def test_a_user_name_is_locked_after_its_failures_until_the_lockout_ends(
    db: Database, throttle: LoginThrottle, clock: FakeClock
) -> None:
    for _ in range(RULES.max_failures_per_account):
        _fail(db, throttle, "manager")
    refusal = _refusal(db, throttle, "manager", host="10.0.0.2")  # from anywhere
    assert (refusal.field, refusal.retry_after_seconds) == ("username", 30)
    assert refusal.status_code == 429
    clock.advance(29.5)
    assert _refusal(db, throttle, "manager").retry_after_seconds == 1
    clock.advance(0.5)
    with throttle.attempt(db, "manager", "10.0.0.1"):
        pass


def test_failures_older_than_the_window_no_longer_count(
    db: Database, throttle: LoginThrottle, clock: FakeClock
) -> None:
    for _ in range(RULES.max_failures_per_account - 1):
        _fail(db, throttle, "manager")
    clock.advance(RULES.window_seconds)
    _fail(db, throttle, "manager")
    with throttle.attempt(db, "manager", "10.0.0.1"):
        pass


def test_a_success_clears_the_user_names_failures(db: Database, throttle: LoginThrottle) -> None:
    for _ in range(RULES.max_failures_per_account - 1):
        _fail(db, throttle, "manager")
    with throttle.attempt(db, "manager", "10.0.0.1"):
        pass
    for _ in range(RULES.max_failures_per_account - 1):
        _fail(db, throttle, "manager")
    with throttle.attempt(db, "manager", "10.0.0.1"):
        pass


def test_an_address_is_locked_after_failures_for_any_user_names(
    db: Database, throttle: LoginThrottle
) -> None:
    for number in range(RULES.max_failures_per_address):
        _fail(db, throttle, f"guess{number}")
    refusal = _refusal(db, throttle, "manager")
    assert (refusal.field, refusal.retry_after_seconds) == ("address", 30)
    with throttle.attempt(db, "manager", "10.0.0.2"):  # another address is not concerned
        pass


def test_attempts_in_flight_count_so_a_burst_cannot_hash_more_than_the_limit(
    db: Database, throttle: LoginThrottle
) -> None:
    with throttle.attempt(db, "manager", "10.0.0.1"), throttle.attempt(db, "manager", "10.0.0.2"):
        _fail(db, throttle, "manager", "10.0.0.3")
        assert _refusal(db, throttle, "manager", "10.0.0.4").field == "username"


def test_an_attempt_whose_process_died_stops_counting(
    db: Database, throttle: LoginThrottle, clock: FakeClock
) -> None:
    """A reservation never settled (its process killed mid-hash) holds its place only for a
    while, or it would count towards the limit for ever."""
    with ExitStack() as stalled:
        for _ in range(RULES.max_failures_per_account):
            stalled.enter_context(throttle.attempt(db, "manager", "10.0.0.1"))
        assert _refusal(db, throttle, "manager").retry_after_seconds == 1
        clock.advance(IN_FLIGHT_TIMEOUT.total_seconds())
        with throttle.attempt(db, "manager", "10.0.0.1"):
            pass


def test_an_error_other_than_a_wrong_password_is_no_failure(
    db: Database, throttle: LoginThrottle
) -> None:
    for _ in range(RULES.max_failures_per_account):
        with pytest.raises(OSError), throttle.attempt(db, "manager", "10.0.0.1"):
            raise OSError("database gone")
    with throttle.attempt(db, "manager", "10.0.0.1"):
        pass


def test_server_processes_on_one_database_share_the_lockout(
    settings: Settings, db: Database, clock: FakeClock
) -> None:
    """Each process has its own Database and throttle; the counts are the database's."""
    other_db = Database.from_settings(settings)
    try:
        first, second = LoginThrottle(RULES, clock), LoginThrottle(RULES, clock)
        _fail(db, first, "manager")
        _fail(other_db, second, "manager", "10.0.0.2")
        _fail(db, first, "manager", "10.0.0.3")
        assert _refusal(other_db, second, "manager", "10.0.0.4").field == "username"
    finally:
        other_db.dispose()


def _rows(db: Database) -> tuple[int, int]:
    with db.read_session() as session:
        subjects = session.scalar(select(func.count()).select_from(LoginSubject))
        attempts = session.scalar(select(func.count()).select_from(LoginAttempt))
    return subjects or 0, attempts or 0


def test_old_failures_and_lockouts_are_pruned(
    db: Database, throttle: LoginThrottle, clock: FakeClock
) -> None:
    """What no longer counts leaves the database: a flood of distinct user names cannot grow
    the tables past what the window and the lockouts hold."""
    for number in range(RULES.max_failures_per_address):
        _fail(db, throttle, f"guess{number}", f"10.0.1.{number}")
    for _ in range(RULES.max_failures_per_account):
        _fail(db, throttle, "manager", "10.0.0.9")
    # The locked user name, and each failure for a subject not locked (its lock cleared them).
    failures = 2 * RULES.max_failures_per_address + RULES.max_failures_per_account
    assert _rows(db) == (1, failures)
    clock.advance(max(RULES.window_seconds, RULES.lockout_seconds))
    with throttle.attempt(db, "someone", "10.0.0.8"):
        pass
    assert _rows(db) == (0, 0)


def test_an_ipv6_host_counts_as_its_64_network() -> None:
    assert address_key("2001:db8::1") == address_key("2001:db8::ffff:1") == "2001:db8::/64"
    assert address_key("2001:db8:0:1::1") != address_key("2001:db8::1")
    assert address_key("192.0.2.7") == "192.0.2.7"
    assert address_key(None) == ""


async def _log_in(client: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    return await client.post("/api/auth/login", json={"username": username, "password": password})


@pytest.mark.parametrize("username", ["manager", "nobody"])
async def test_the_api_locks_a_user_name_out_without_checking_its_password(
    client: httpx.AsyncClient,
    lab: Lab,
    lab_throttle: LoginThrottle,
    clock: FakeClock,
    password_checks: list[str],
    username: str,
) -> None:
    for _ in range(RULES.max_failures_per_account):
        assert (await _log_in(client, username, "wrong-password")).status_code == 401
    password_checks.clear()
    refused = await _log_in(client, username, "demo-manager-pass")
    assert refused.status_code == 429, refused.text
    assert refused.headers["retry-after"] == "30"
    # The same answer whether the user exists or not: a lockout tells no one who does.
    assert field_errors(refused) == {
        "username": "too many failed log-ins for this user name; try again in 30 s"
    }
    assert password_checks == []
    clock.advance(RULES.lockout_seconds)
    if username == "manager":
        assert (await _log_in(client, **MANAGER)).status_code == 200


async def test_two_servers_on_one_database_share_the_lockout(lab: Lab, settings: Settings) -> None:
    """Two server processes: each its own app, Database and throttle, one database."""
    strict = Settings(
        database_url=settings.database_url,
        data_dir=settings.data_dir,
        secret_key="test-secret",
        login_max_failures=2,
    )
    servers = [ServerContext(strict), ServerContext(strict)]
    try:
        clients = [
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=create_api(server)),
                base_url="http://lenstrack.test",
            )
            for server in servers
        ]
        for client in clients:
            assert (await _log_in(client, "manager", "wrong-password")).status_code == 401
        for client in clients:
            refused = await _log_in(client, **MANAGER)
            assert refused.status_code == 429, refused.text
            assert list(field_errors(refused)) == ["username"]
        for client in clients:
            await client.aclose()
    finally:
        for server in servers:
            server.close()


async def test_the_api_locks_an_address_out(
    client: httpx.AsyncClient, lab: Lab, lab_throttle: LoginThrottle, password_checks: list[str]
) -> None:
    for number in range(RULES.max_failures_per_address):
        assert (await _log_in(client, f"guess{number}", "wrong-password")).status_code == 401
    password_checks.clear()
    refused = await _log_in(client, **MANAGER)
    assert refused.status_code == 429, refused.text
    assert refused.headers["retry-after"] == "30"
    assert list(field_errors(refused)) == ["address"]
    assert password_checks == []


async def test_a_log_in_clears_the_failures_of_its_user_name(
    client: httpx.AsyncClient, lab: Lab, lab_throttle: LoginThrottle
) -> None:
    for _ in range(2):
        for _ in range(RULES.max_failures_per_account - 1):
            assert (await _log_in(client, "manager", "wrong-password")).status_code == 401
        assert (await _log_in(client, **MANAGER)).status_code == 200


async def test_the_login_form_shows_the_lockout(
    client: httpx.AsyncClient, lab: Lab, lab_throttle: LoginThrottle, password_checks: list[str]
) -> None:
    wrong = {"username": "north", "password": "wrong-password"}
    for _ in range(RULES.max_failures_per_account):
        assert (await client.post("/login", data=wrong)).status_code == 401
    password_checks.clear()
    refused = await client.post("/login", data={"username": "north", "password": "demo-store-pass"})
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "30"
    assert refused.headers["content-type"].startswith("text/html")
    assert (
        'role="alert">too many failed log-ins for this user name; try again in 30 s</p>'
        in refused.text
    )
    assert "set-cookie" not in refused.headers
    assert password_checks == []


async def test_the_login_form_locks_an_address_out(
    client: httpx.AsyncClient, lab: Lab, lab_throttle: LoginThrottle
) -> None:
    for number in range(RULES.max_failures_per_address):
        wrong = {"username": f"guess{number}", "password": "wrong-password"}
        assert (await client.post("/login", data=wrong)).status_code == 401
    refused = await client.post("/login", data={"username": "north", "password": "demo-store-pass"})
    assert refused.status_code == 429
    assert "too many failed log-ins from this address" in refused.text


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _hold_password_check(
    monkeypatch: pytest.MonkeyPatch, lab: Lab
) -> tuple[threading.Event, threading.Event, list[tuple[int, bool]]]:
    """Makes the password check wait until `release` is set; `checking` is set when it began,
    and `seen` gets how many database connections were in use then and whether it ran on the
    event loop (where it would stall every page and request)."""
    checking, release, seen = threading.Event(), threading.Event(), []
    real_verify = auth.verify_password

    def held_verify(password_hash: str | None, password: str) -> bool:
        seen.append((lab.context.db.engine.pool.checkedout(), _on_event_loop()))
        checking.set()
        release.wait(timeout=60)
        return real_verify(password_hash, password)

    monkeypatch.setattr(auth, "verify_password", held_verify)
    return checking, release, seen


async def test_a_station_writes_while_a_password_is_being_checked(
    client: httpx.AsyncClient, lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    lab.make_job("J1")
    station = lab.station_headers("EDGE-1")
    checking, release, seen = _hold_password_check(monkeypatch, lab)
    log_in = asyncio.create_task(_log_in(client, **MANAGER))
    try:
        assert await asyncio.to_thread(checking.wait, 60)
        # Inside a write transaction the check would hold SQLite's only write lock: this
        # event would wait for it and fail; on PostgreSQL it would hold a connection.
        event = await client.post("/api/events", json=event_body("J1", 1), headers=station)
    finally:
        release.set()
    assert event.status_code == 201, event.text
    assert (await log_in).status_code == 200
    assert seen == [(0, False)]


async def test_a_login_form_check_holds_no_connection_nor_the_event_loop(
    client: httpx.AsyncClient, lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    checking, release, seen = _hold_password_check(monkeypatch, lab)
    release.set()
    response = await client.post(
        "/login", data={"username": "north", "password": "demo-store-pass"}
    )
    assert response.status_code == 303
    assert checking.is_set() and seen == [(0, False)]
