"""The one place that makes database engines and sessions."""

import logging
import os
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from server.crypto import DataCipher, attach_cipher
from server.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")
_MEMO = "lenstrack.memo"  # session.info key: what this session has read once


def memo(session: Session, key: Hashable, load: Callable[[], T]) -> T:
    """`load()` once per session for `key`: a writer's group of events runs in one session
    and shares what every event looks up (a lab's setup and learned times)."""
    cache: dict[Hashable, Any] = session.info.setdefault(_MEMO, {})
    if key not in cache:
        cache[key] = load()
    value: T = cache[key]
    return value


def forget_memos(session: Session) -> None:
    """After this session changed what the memos hold (the lab's setup, learned times)."""
    session.info.pop(_MEMO, None)


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    # pysqlite's own transaction handling breaks SAVEPOINT; SQLAlchemy emits BEGIN instead.
    dbapi_connection.isolation_level = None
    # WAL lets pages read while stations write; FULL survives power loss (NORMAL may drop
    # the last commits); foreign keys are off in SQLite unless asked for per connection.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


READ_ONLY = "lenstrack_read_only"
# PostgreSQL aborts one of two transactions that wait on each other (deadlock detected) or
# that could not be serialised; the aborted one stored nothing and may simply run again.
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})


def is_retryable(error: DBAPIError) -> bool:
    return getattr(error.orig, "sqlstate", None) in RETRYABLE_SQLSTATES


def conflict_insert(dialect: str, table: Any) -> postgresql.Insert | sqlite.Insert:
    """An INSERT that takes ON CONFLICT clauses, which PostgreSQL and SQLite spell alike."""
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"no INSERT … ON CONFLICT for {dialect}")


def _begin(connection: Connection) -> None:
    # A writer takes the write lock up front: a deferred transaction that reads and then
    # writes fails at once with SQLITE_BUSY when another writer committed in between
    # (busy_timeout cannot help there). A reader must not take it: in WAL mode it reads its
    # snapshot while one writer works, where BEGIN IMMEDIATE would queue it behind every
    # writer (a long flag sweep made pages fail with 'database is locked').
    read_only = connection.get_execution_options().get(READ_ONLY, False)
    connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def make_engine(url: str, cipher: DataCipher | None = None) -> Engine:
    """An engine for `url`; `cipher` reads and writes its personal columns (none: refused)."""
    engine = _make_engine(url)
    attach_cipher(engine, cipher)
    return engine


def private_sqlite_file(path: Path) -> None:
    """Makes the database file owner-only (0600), in a 0700 directory if it makes that.

    SQLite gives the -wal and -shm files it creates later the mode of the database file, so
    this covers them, in every process that opens the database (not only `serve`); an older,
    world-readable file and its -wal/-shm are tightened here too.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))  # SQLite takes an empty file
        for file in (path, path.with_name(f"{path.name}-wal"), path.with_name(f"{path.name}-shm")):
            if file.exists() and file.stat().st_mode & 0o077:
                file.chmod(0o600)
    except OSError:
        return  # not a file this process may open (a folder, another owner's): connecting says why


def _make_engine(url: str) -> Engine:
    parsed = make_url(url)
    # hide_parameters: a failed statement's message (logged, or in a traceback) would
    # otherwise carry its parameters, patient references and prescriptions among them.
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            private_sqlite_file(Path(parsed.database))
        engine = create_engine(url, connect_args={"check_same_thread": False}, hide_parameters=True)
        event.listen(engine, "connect", _configure_sqlite)
        event.listen(engine, "begin", _begin)
        return engine
    # jit off: the planner's cost of a bounded read (a LIMIT walking an index, a subquery per
    # row) passes jit_above_cost, and compiling it took ~200 ms of a 5 ms query (SPC charts).
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=10,
        max_overflow=20,
        hide_parameters=True,
        connect_args={"options": "-c jit=off"},
    )


class Database:
    """An engine and its session factory; the app holds one, tests make their own."""

    def __init__(self, url: str, cipher: DataCipher | None = None) -> None:
        self.engine = make_engine(url, cipher)
        self.session_factory = sessionmaker(self.engine, expire_on_commit=False)
        # Imported here: the audit trail knows principals, whose module uses this one.
        from server.domain import audit, kpis

        audit.install(self.session_factory)  # every write session appends to the trail
        kpis.install(self.session_factory)  # and keeps the KPIs' job counts
        self.read_session_factory = sessionmaker(
            self.engine.execution_options(**{READ_ONLY: True}), expire_on_commit=False
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> "Database":
        """The configured database, with the data keys that read its personal columns."""
        return cls(settings.resolved_database_url, settings.data_cipher)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session whose transaction commits on success and rolls back on any error."""
        with self.session_factory() as session, session.begin():
            yield session

    @contextmanager
    def read_session(self) -> Iterator[Session]:
        """A session for reading only: on SQLite it waits for no writer (see `_begin`)."""
        with self.read_session_factory() as session, session.begin():
            yield session

    def optimize(self) -> None:
        """SQLite: refreshes the planner's statistics of the tables that need it (ANALYZE of
        those that grew, each bounded to a sample), as SQLite advises now and then and before
        closing; without them a planner facing a year of jobs may pick a poor index.
        PostgreSQL's autovacuum does this itself."""
        if self.dialect != "sqlite":
            return
        with self.engine.begin() as connection:  # ANALYZE writes its statistics
            connection.exec_driver_sql("PRAGMA analysis_limit=400")
            connection.exec_driver_sql("PRAGMA optimize")

    def dispose(self) -> None:
        try:
            self.optimize()
        except DBAPIError as error:  # closing goes on: the statistics wait for the next time
            log.warning("PRAGMA optimize failed at close: %s", type(error.orig).__name__)
        self.engine.dispose()
