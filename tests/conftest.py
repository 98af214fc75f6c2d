"""Shared fixtures: every database test runs on SQLite and on PostgreSQL.

PostgreSQL is taken from LENSTRACK_TEST_POSTGRES_URL (default: the local server's `test`
database). Without a server the PostgreSQL half skips with a clear message — except under
CI (CI=true), where a missing server fails the run.
"""

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from server import migrate
from server.app import create_api
from server.context import ServerContext
from server.db import Database
from server.models import Base
from server.settings import Settings

POSTGRES_URL = os.environ.get(
    "LENSTRACK_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
BACKENDS = ("sqlite", "postgresql")


def child_environment(*dropped: str) -> dict[str, str]:
    """This environment for an app the tests start as a process: without pytest's variables
    (NiceGUI's ui.run takes PYTEST_CURRENT_TEST for its test mode), nor those starting with
    any of `dropped` (e.g. LENSTRACK_, so the child reads only what the test sets).
    """
    return {
        key: value for key, value in os.environ.items() if not key.startswith(("PYTEST_", *dropped))
    }


def _postgres_database(worker_name: str) -> Iterator[str]:
    """A throwaway database on the PostgreSQL server, dropped afterwards."""
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text("SELECT 1"))
    except OperationalError as error:
        admin.dispose()
        message = f"PostgreSQL not reachable at {POSTGRES_URL}: {error.orig}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message} (CI=true requires it)")
        pytest.skip(f"{message} — PostgreSQL tests skipped")
    admin.dispose()
    with throwaway_postgres_database(f"lenstrack_{worker_name}") as url:
        yield url


@contextmanager
def throwaway_postgres_database(
    prefix: str, *, keep: bool = False, before_drop: Callable[[], None] | None = None
) -> Iterator[str]:
    """A new database on the PostgreSQL server of POSTGRES_URL, dropped afterwards unless
    `keep` (`before_drop` runs first: a fault test brings a stopped server back)."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        if keep:
            print(f"  kept database {name}")
        else:
            if before_drop is not None:
                before_drop()
            # A new engine: a pooled connection may predate a server restart.
            admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A database migrated to head, once per backend per test session."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'lenstrack.db'}"
        migrate.upgrade(url)
        yield url
        return
    for url in _postgres_database("test"):
        migrate.upgrade(url)
        yield url


# Every sequence that has been used starts again, as in a new database. setval, not ALTER
# SEQUENCE … RESTART: that is DDL, ~4 ms a sequence, ~0.1 s a test.
_RESTART_SEQUENCES = (
    "SELECT setval((quote_ident(schemaname) || '.' || quote_ident(sequencename))::regclass,"
    " start_value, false) FROM pg_sequences WHERE last_value IS NOT NULL"
)


def _empty_all_tables(database: Database) -> None:
    """Every table emptied and, on PostgreSQL, every id sequence restarted, as a new database.

    DELETE rather than TRUNCATE: on a few rows per table it is ~13 ms against ~900 ms for
    TRUNCATE, which makes a new file (and fsyncs) for each of 30-odd tables and their indexes.
    """
    deletes = [f'DELETE FROM "{table.name}"' for table in reversed(Base.metadata.sorted_tables)]
    with database.engine.begin() as connection:
        if database.dialect == "postgresql":  # one round trip, not one per table
            connection.exec_driver_sql("; ".join(deletes))
            connection.exec_driver_sql(_RESTART_SEQUENCES)
        else:  # sqlite3 runs one statement at a time (and in process: no round trips)
            for delete in deletes:
                connection.exec_driver_sql(delete)
    if database.dialect == "sqlite":
        # No SQLite connection kept between tests (it costs nothing to open): with one held,
        # a test after a `lenstrack` child process on the same file met "disk I/O error".
        database.engine.dispose()


@pytest.fixture(scope="session")
def bare_database(database_url: str) -> Iterator[Database]:
    """The test database without data keys (nothing personal is read), for the fixtures;
    kept for the session: a new connection to PostgreSQL costs ~30 ms a test."""
    database = Database(database_url)
    yield database
    database.dispose()


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    # A loaded machine must not cut a test's batch short (a station would send the rest
    # again; a test would see it missing): the budget and deadline tests set their own.
    return Settings(
        database_url=database_url,
        data_dir=tmp_path,
        secret_key="test-secret",
        ingest_budget_seconds=60.0,
        ingest_deadline_seconds=120.0,
    )


@pytest.fixture
def context(settings: Settings, bare_database: Database) -> Iterator[ServerContext]:
    """A server context on an empty (migrated) database."""
    # Emptied first: the server refuses a database whose values this test's new data_keys
    # cannot read, which the previous test's would be.
    _empty_all_tables(bare_database)
    server_context = ServerContext(settings)
    yield server_context
    server_context.close()


@pytest.fixture
def db(context: ServerContext) -> Database:
    return context.db


@pytest.fixture
async def client(context: ServerContext) -> AsyncIterator[httpx.AsyncClient]:
    """The API alone, driven through httpx against the ASGI app."""
    transport = httpx.ASGITransport(app=create_api(context))
    async with httpx.AsyncClient(transport=transport, base_url="http://lenstrack.test") as http:
        yield http
