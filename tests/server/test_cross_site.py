"""Cross-site requests: another site's page cannot make a logged-in browser write here, GET
never logs out, the session cookie is Secure over HTTPS, and every response carries the
browser's security headers."""

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import httpx
import pytest
from starlette.types import Message, Receive, Scope, Send

from server.api.cross_site import SECURITY_HEADERS, SameOriginWrites, origin_of
from server.api.deps import SESSION_COOKIE
from server.app import create_api
from server.context import ServerContext
from server.models import Job
from tests.server.conftest import Lab
from tests.server.payloads import count_rows, event_body, field_errors, job_body

OWN = "http://lenstrack.test"
FOREIGN = "https://evil.example"
NORTH = {"username": "north", "password": "demo-store-pass"}

ClientFactory = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def serving(context: ServerContext) -> ClientFactory:
    """A client of the API made with the given settings changed and the given base URL."""

    @asynccontextmanager
    async def client(base_url: str = OWN, **settings: object) -> AsyncIterator[httpx.AsyncClient]:
        context.settings = context.settings.model_copy(update=settings)
        transport = httpx.ASGITransport(app=create_api(context))
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as http:
            yield http

    return client


async def _as_north(client: httpx.AsyncClient, lab: Lab) -> None:
    await lab.log_in(client, **NORTH)


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": FOREIGN},
        {"Origin": "null"},  # a sandboxed frame, or a page with no-referrer
        {"Origin": "http://lenstrack.test.evil.example"},
        {"Origin": "https://lenstrack.test"},  # another scheme is another origin
        {"Origin": "http://lenstrack.test:8443"},
        {"Referer": f"{FOREIGN}/page"},  # no Origin: the Referer tells
    ],
)
async def test_a_cookie_write_from_another_origin_is_403_and_changes_nothing(
    client: httpx.AsyncClient, lab: Lab, headers: dict[str, str]
) -> None:
    await _as_north(client, lab)
    response = await client.post("/api/jobs", json=job_body(None), headers=headers)
    assert response.status_code == 403, response.text
    assert list(field_errors(response)) == ["origin"]
    assert count_rows(lab.context.db, Job) == 0
    logout = await client.post("/api/auth/logout", headers=headers)
    assert logout.status_code == 403
    assert (await client.get("/api/auth/me")).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": OWN},
        {"Origin": "http://LensTrack.test:80"},  # the same origin spelled otherwise
        {"Referer": f"{OWN}/store/orders/new"},
        {},  # scripts send neither; a browser names the origin of every cross-site write
    ],
)
async def test_a_cookie_write_from_the_servers_own_pages_works(
    client: httpx.AsyncClient, lab: Lab, headers: dict[str, str]
) -> None:
    await _as_north(client, lab)
    response = await client.post("/api/jobs", json=job_body(None), headers=headers)
    assert response.status_code == 201, response.text


async def test_an_allowed_origin_may_write(serving: ClientFactory, lab: Lab) -> None:
    async with serving(allowed_origins=["https://portal.example"]) as client:
        await _as_north(client, lab)
        allowed = {"Origin": "https://portal.example"}
        response = await client.post("/api/jobs", json=job_body(None), headers=allowed)
        assert response.status_code == 201, response.text
        refused = await client.post("/api/jobs", json=job_body(None), headers={"Origin": FOREIGN})
        assert refused.status_code == 403


async def test_a_bearer_token_request_is_not_cookie_authenticated_and_passes(
    client: httpx.AsyncClient, lab: Lab
) -> None:
    lab.make_job("J1")
    headers = {**lab.station_headers("EDGE-1"), "Origin": FOREIGN}
    response = await client.post("/api/events", json=event_body("J1", 1), headers=headers)
    assert response.status_code == 201, response.text


async def test_a_log_in_from_another_origin_is_refused(client: httpx.AsyncClient, lab: Lab) -> None:
    # Else another site could log a browser into the attacker's account (login CSRF).
    response = await client.post("/login", data=NORTH, headers={"Origin": FOREIGN})
    assert response.status_code == 403
    assert SESSION_COOKIE not in client.cookies


async def test_get_logout_asks_and_only_post_logs_out(client: httpx.AsyncClient, lab: Lab) -> None:
    await _as_north(client, lab)
    asked = await client.get("/logout")
    assert asked.status_code == 200
    assert '<form method="post" action="/logout">' in asked.text
    assert "set-cookie" not in asked.headers
    assert (await client.get("/api/auth/me")).status_code == 200

    logged_out = await client.post("/logout", headers={"Origin": OWN})
    assert logged_out.status_code == 303
    assert logged_out.headers["location"] == "/login"
    assert (await client.get("/api/auth/me")).status_code == 401
    client.cookies.clear()
    assert (await client.post("/logout")).status_code == 303  # with no session: harmless


@pytest.mark.parametrize(
    ("request_path", "expected_status"),
    [("/api/health", 200), ("/login", 200), ("/logout", 200), ("/api/auth/me", 401)],
)
async def test_every_response_carries_the_security_headers(
    client: httpx.AsyncClient, lab: Lab, request_path: str, expected_status: int
) -> None:
    response = await client.get(request_path)
    assert response.status_code == expected_status
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


async def test_a_refused_cross_site_write_carries_them_too(
    client: httpx.AsyncClient, lab: Lab
) -> None:
    response = await client.post("/api/auth/logout", headers={"Origin": FOREIGN})
    assert response.status_code == 403
    assert response.headers["x-frame-options"] == "DENY"


def _cookie_is_secure(response: httpx.Response) -> bool:
    assert response.status_code == 200, response.text
    return "secure" in response.headers["set-cookie"].lower().split("; ")


async def test_the_session_cookie_is_secure_over_https(serving: ClientFactory, lab: Lab) -> None:
    async with serving(base_url="https://lenstrack.test") as client:
        assert _cookie_is_secure(await client.post("/api/auth/login", json=NORTH))
        form = await client.post("/login", data=NORTH, headers={"Origin": "https://lenstrack.test"})
        assert form.status_code == 303
        assert "secure" in form.headers["set-cookie"].lower().split("; ")


async def test_the_session_cookie_is_not_secure_over_plain_http_unless_forced(
    serving: ClientFactory, lab: Lab
) -> None:
    async with serving() as client:
        assert not _cookie_is_secure(await client.post("/api/auth/login", json=NORTH))
    async with serving(cookie_secure=True) as client:
        assert _cookie_is_secure(await client.post("/api/auth/login", json=NORTH))


async def test_a_trusted_proxy_tells_the_scheme_and_no_one_else_does(
    serving: ClientFactory, lab: Lab
) -> None:
    # Behind a TLS-terminating proxy the browser's origin is https, the request to us http.
    from_proxy = {"X-Forwarded-Proto": "https", "Origin": "https://lenstrack.test"}
    async with serving() as client:
        response = await client.post("/api/auth/login", json=NORTH, headers=from_proxy)
        assert response.status_code == 403  # X-Forwarded-Proto believed from no one
    async with serving(trusted_proxies=["127.0.0.1"]) as client:  # the test client's address
        assert _cookie_is_secure(
            await client.post("/api/auth/login", json=NORTH, headers=from_proxy)
        )


async def _open_socket(origin: str) -> list[Message]:
    """What SameOriginWrites answers a browser opening a WebSocket from `origin`."""

    async def accepting(_scope: Scope, _receive: Receive, send: Send) -> None:
        await send({"type": "websocket.accept"})

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    headers = [(b"host", b"lenstrack.test"), (b"origin", origin.encode())]
    scope = {"type": "websocket", "scheme": "ws", "path": "/socket", "headers": headers}
    await SameOriginWrites(accepting)(scope, receive, send)
    return sent


async def test_a_websocket_from_another_origin_is_refused() -> None:
    assert await _open_socket(OWN) == [{"type": "websocket.accept"}]
    [refusal] = await _open_socket(FOREIGN)
    assert refusal["type"] == "websocket.close"


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("http://LAB.example", "http://lab.example:80"),
        ("https://lab.example/some/page?q=1", "https://lab.example:443"),
        ("http://[::1]:8080", "http://::1:8080"),
        ("null", None),
        ("ftp://lab.example", None),
        ("http://user@lab.example", None),
        ("http://lab.example:99999", None),
        ("http://", None),
    ],
)
def test_origins_compare_in_one_spelling(url: str, origin: str | None) -> None:
    assert origin_of(url) == origin
