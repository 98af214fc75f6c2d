"""The `lenstrack` server subcommands as an operator runs them, and the migrations' fidelity."""

import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from server import migrate
from server.app import create_api
from server.context import ServerContext
from server.domain import auth
from server.domain.seed import seed_demo
from server.labconfig import LabConfig
from server.models import Base, EventAction
from server.settings import Settings
from tests.conftest import child_environment
from tests.server.conftest import Floor, Lab

LENSTRACK = Path(sys.executable).with_name("lenstrack")
PROJECT_ROOT = Path(__file__).resolve().parents[2]


class Cli:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.env = child_environment("LENSTRACK_")
        self.env |= {
            "LENSTRACK_DATA_DIR": str(data_dir),
            "LENSTRACK_SETTINGS_FILE": str(data_dir / "no-settings.toml"),
        }

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.data_dir / 'lenstrack.db'}"

    def run(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(LENSTRACK), *args],
            env=self.env,
            cwd=PROJECT_ROOT,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def ok(self, *args: str, stdin: str = "") -> str:
        done = self.run(*args, stdin=stdin)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done.stdout


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Cli:
    """A data directory migrated and seeded by the CLI, shared by this module's tests."""
    cli = Cli(tmp_path_factory.mktemp("cli"))
    cli.ok("db", "upgrade")
    out = cli.ok("seed-demo", "--jobs", "20")
    assert "seeded the demo lab" in out
    for login in ("manager  demo-manager-pass", "north    demo-store-pass"):
        assert login in out, out
    return cli


@pytest.fixture
async def api(seeded: Cli) -> AsyncIterator[httpx.AsyncClient]:
    """The API on the CLI's SQLite file."""
    context = ServerContext(Settings(database_url=seeded.database_url, data_dir=seeded.data_dir))
    transport = httpx.ASGITransport(app=create_api(context))
    async with httpx.AsyncClient(transport=transport, base_url="http://lenstrack.test") as http:
        yield http
    context.db.dispose()


def test_seed_demo_in_bulk_writes_the_history_straight_to_the_tables(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    out = cli.ok("seed-demo", "--jobs", "120", "--bulk", "2")
    assert "seeded the demo lab" in out
    with sqlite3.connect(tmp_path / "lenstrack.db") as db:
        jobs, active = db.execute("SELECT count(*), sum(is_active) FROM job").fetchone()
        events = db.execute("SELECT count(*) FROM stage_event").fetchone()[0]
    # 120 jobs over two days of history, with the demo's new orders and remake on top.
    assert jobs > 120 and 0 < active < jobs
    assert events > 120 * 4  # every job moved along its route by its events


def test_seeding_again_changes_nothing(seeded: Cli) -> None:
    out = seeded.ok("seed-demo", "--jobs", "5")
    assert "the demo lab has jobs already; left as it is" in out


async def test_a_station_token_from_the_cli_works_until_revoked(
    seeded: Cli, api: httpx.AsyncClient
) -> None:
    token = seeded.ok("station-token", "create", "--station", "EDGE-1", "--label", "bench").strip()
    assert token.startswith("lst_") and len(token) > 40
    headers = {"Authorization": f"Bearer {token}"}
    me = await api.get("/api/stations/me", headers=headers)
    assert me.status_code == 200, me.text
    assert me.json()["name"] == "EDGE-1"
    out = seeded.ok("station-token", "revoke", "--station", "EDGE-1")
    assert "revoked 1 token(s) of station EDGE-1" in out
    assert (await api.get("/api/stations/me", headers=headers)).status_code == 401


def test_an_unknown_station_is_exit_1_with_a_message(seeded: Cli) -> None:
    for action in ("create", "revoke"):
        done = seeded.run("station-token", action, "--station", "NOPE-9")
        assert done.returncode == 1
        assert "no station named 'NOPE-9'" in done.stderr
        assert done.stdout == ""


def test_user_create_reads_the_password_from_stdin(seeded: Cli) -> None:
    out = seeded.ok(
        "user",
        "create",
        "--username",
        "eve",
        "--name",
        "Eve East",
        "--role",
        "store_staff",
        "--store",
        "SOUTH",
        "--password-stdin",
        stdin="a-long-password\n",
    )
    assert "created store_staff eve" in out
    context = ServerContext(Settings(database_url=seeded.database_url, data_dir=seeded.data_dir))
    try:
        logged_in = auth.log_in(context.db, "eve", "a-long-password", context.session_lifetime)
        with context.db.session() as session:
            principal = auth.authenticate(session, logged_in.token)
        assert isinstance(principal, auth.PersonPrincipal)
        assert principal.store_id is not None
    finally:
        context.db.dispose()
    short = seeded.run(
        "user", "create", "--username", "x", "--name", "X", "--role", "technician",
        "--password-stdin", stdin="short\n",
    )  # fmt: skip
    assert short.returncode == 1 and "at least 8 characters" in short.stderr
    unknown_store = seeded.run(
        "user", "create", "--username", "y", "--name", "Y", "--role", "store_staff",
        "--store", "EAST", "--password-stdin", stdin="a-long-password\n",
    )  # fmt: skip
    assert unknown_store.returncode == 1 and "unknown store 'EAST'" in unknown_store.stderr


def test_downgrade_to_base_and_upgrade_again(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    cli.ok("db", "upgrade")
    cli.ok("db", "downgrade", "base")
    assert _tables(cli.database_url) <= {"alembic_version"}
    cli.ok("db", "upgrade")
    assert set(Base.metadata.tables) <= _tables(cli.database_url)


def _tables(database_url: str) -> set[str]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return set(inspect(connection).get_table_names())
    finally:
        engine.dispose()


def test_the_migrated_schema_matches_the_models(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            differences = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert differences == []


def test_migration_0007_keeps_each_uuids_first_rejection_and_drops_stored_ones(
    tmp_path: Path, lab_config: LabConfig
) -> None:
    """Rows the old re-judging left behind: a UUID rejected three times keeps its first
    rejection; one rejected and later stored keeps the stored event alone."""
    path = tmp_path / "old.db"
    url = f"sqlite:///{path}"
    migrate.upgrade(url)
    context = ServerContext(Settings(database_url=url, data_dir=tmp_path, secret_key="x"))
    try:
        with context.db.session() as session:
            seed_demo(session, lab_config, job_count=0)
        lab = Lab(context)
        lab.make_job("J1")
        Floor(lab).send("EDGE-1", "J1", EventAction.start)
    finally:
        context.db.dispose()
    # The data key decrypts the job's personal columns back into 0006's plain ones.
    migrate.downgrade(url, "0006", context.settings.data_cipher)
    rejected = "insert into rejected_event (event_uuid, station_id, station_sequence, payload,"
    rejected += " field, message, received_at) select ?, station_id, ?, '{}', 'action', ?,"
    rejected += " server_received_at from stage_event"
    with sqlite3.connect(path) as connection:
        [stored] = connection.execute("select event_uuid from stage_event").fetchone()
        for sequence, (event_uuid, message) in enumerate(
            [("a" * 32, "first"), ("a" * 32, "again"), (stored, "refused"), ("a" * 32, "3rd")],
            start=2,
        ):
            connection.execute(rejected, (event_uuid, sequence, message))
    migrate.upgrade(url, cipher=context.settings.data_cipher)
    with sqlite3.connect(path) as connection:
        rows = connection.execute(
            "select event_uuid, message, status_code from rejected_event order by id"
        ).fetchall()
        assert rows == [("a" * 32, "first", 422)]
        with pytest.raises(sqlite3.IntegrityError):
            connection.execute(rejected, ("a" * 32, 9, "once more"))
