"""Backing up and restoring the database, consistent while the server runs.

SQLite: the online backup API copies one consistent snapshot while the server goes on
writing (WAL readers never block the writer). PostgreSQL: `pg_dump --format=custom` (one
snapshot), restored by `pg_restore` in a single transaction, so a failed restore leaves the
database as it was. A backup holds patient data: the file is owner-only (0600) from its
first byte, and appears under its name only once complete.

A restore first checks that the file is a LensTrack database at a migration revision this
version knows, refuses to replace a database that holds data (or, on PostgreSQL, has other
sessions) unless forced, and migrates the restored database up to this version.
"""

import os
import sqlite3
import subprocess
from contextlib import closing
from pathlib import Path

from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import URL, make_url

from server import migrate
from server.crypto import open_cipher
from server.db import make_engine, private_sqlite_file

# A forced restore waits this long for a running server's locks, then gives up unchanged.
PG_LOCK_TIMEOUT = "-c lock_timeout=10000"


class BackupError(Exception):
    """What went wrong, told to the operator."""


def _sqlite_path(url: URL) -> Path | None:
    if url.get_backend_name() != "sqlite":
        return None
    if not url.database or url.database == ":memory:":
        raise BackupError("an in-memory SQLite database has nothing to back up")
    return Path(url.database)


def _read_only(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)


def _libpq(url: URL) -> tuple[str, dict[str, str]]:
    """The URL for libpq tools and their environment: the password goes in PGPASSWORD, not on
    a command line every user can read."""
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    plain = url.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def _run(command: list[str], env: dict[str, str]) -> str:
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    except FileNotFoundError as error:
        raise BackupError(f"{command[0]} not found: install the PostgreSQL client") from error
    if done.returncode != 0:
        raise BackupError(f"{command[0]} failed: {done.stderr.strip()}")
    return done.stdout


def backup(database_url: str, target: Path) -> None:
    """Writes a backup of the database to `target` (replaced if it exists)."""
    url = make_url(database_url)
    path = _sqlite_path(url)
    if path is not None and not path.exists():
        raise BackupError(f"no database at {path}")
    draft = target.with_name(f".{target.name}.partial")
    try:
        draft.unlink(missing_ok=True)
        os.close(os.open(draft, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        if path is None:
            dsn, env = _libpq(url)
            _run(["pg_dump", "--format=custom", f"--file={draft}", dsn], env)
        else:
            with closing(_read_only(path)) as source, closing(sqlite3.connect(draft)) as copy:
                source.backup(copy)
                copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
        draft.replace(target)
    except OSError as error:
        raise BackupError(f"cannot write {target}: {error.strerror}") from error
    finally:
        draft.unlink(missing_ok=True)


def _known_revisions(database_url: str) -> set[str]:
    script = ScriptDirectory.from_config(migrate.alembic_config(database_url))
    return {revision.revision for revision in script.walk_revisions()}


def backup_revision(database_url: str, source: Path) -> str:
    """The migration revision of the LensTrack database in `source`, read without restoring
    anything; BackupError if it is not one (or not for this database's kind)."""
    if not source.is_file():
        raise BackupError(f"no backup file at {source}")
    sqlite = _sqlite_path(make_url(database_url)) is not None
    kind = "SQLite" if sqlite else "PostgreSQL (pg_dump custom format)"
    not_ours = BackupError(f"{source} is not a LensTrack {kind} backup")
    rows = _sqlite_revisions(source, not_ours) if sqlite else _dump_revisions(source, not_ours)
    if len(rows) != 1:
        raise not_ours
    if rows[0] not in _known_revisions(database_url):
        raise BackupError(
            f"{source} is at migration {rows[0]!r}, which this LensTrack version does not know "
            "(made by a newer version?)"
        )
    return rows[0]


def _sqlite_revisions(source: Path, not_ours: BackupError) -> list[str]:
    try:
        with closing(_read_only(source)) as backup_db:
            if backup_db.execute("PRAGMA quick_check").fetchone() != ("ok",):
                raise BackupError(f"{source} is damaged (SQLite quick_check failed)")
            return [row[0] for row in backup_db.execute("SELECT version_num FROM alembic_version")]
    except sqlite3.DatabaseError as error:
        raise not_ours from error


def _dump_revisions(source: Path, not_ours: BackupError) -> list[str]:
    """The rows of alembic_version in a pg_dump file, as pg_restore prints them:
    `COPY public.alembic_version (version_num) FROM stdin;`, a line per row, then `\\.`."""
    command = ["pg_restore", "--data-only", "--table=alembic_version", "--file=-", str(source)]
    try:
        lines = _run(command, dict(os.environ)).splitlines()
    except BackupError as error:
        raise not_ours from error
    starts = [index for index, line in enumerate(lines) if line.startswith("COPY ")]
    if not starts or "\\." not in lines[starts[0] :]:
        return []
    return lines[starts[0] + 1 : lines.index("\\.", starts[0])]


def _holds_data(database_url: str) -> list[str]:
    """Why replacing this database needs --force; empty if nothing would be lost."""
    path = _sqlite_path(make_url(database_url))
    if path is not None and not path.exists():
        return []
    reasons = []
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            if inspect(connection).get_table_names():
                reasons.append("it holds a database")
            if engine.dialect.name == "postgresql":
                others = connection.scalar(
                    text(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                )
                if others:
                    reasons.append(f"{others} other session(s) are connected (a running server?)")
    finally:
        engine.dispose()
    return reasons


def _current_revision(database_url: str) -> str | None:
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            if not inspect(connection).has_table("alembic_version"):
                return None
            return connection.scalar(text("SELECT version_num FROM alembic_version"))
    finally:
        engine.dispose()


def restore(
    database_url: str, source: Path, *, force: bool = False, data_keys_file: Path | None = None
) -> str:
    """Replaces the database with the backup in `source` and migrates it up to this
    version; returns the revision the backup was at. `data_keys_file`: the keys, checked
    against the restored values (`DataKeysError` naming the file, the migration left to
    `lenstrack db upgrade` with the right one) and used by migrations that convert
    personal columns; the database replaced need not be readable with them."""
    revision = backup_revision(database_url, source)
    reasons = _holds_data(database_url)
    if reasons and not force:
        raise BackupError(
            f"refusing to replace the database: {'; '.join(reasons)}. Stop the server, "
            "then run again with --force to replace it"
        )
    url = make_url(database_url)
    path = _sqlite_path(url)
    if path is None:
        current = _current_revision(database_url)
        if current not in (None, revision):
            # pg_restore --clean drops only what the backup has: tables of later migrations
            # would stay and break the upgrade below.
            raise BackupError(
                f"the database is at migration {current!r}, the backup at {revision!r}: "
                "restore into an empty database (createdb) instead"
            )
        dsn, env = _libpq(url)
        env["PGOPTIONS"] = f"{env.get('PGOPTIONS', '')} {PG_LOCK_TIMEOUT}".strip()
        options = ["--clean", "--if-exists", "--single-transaction", "--no-owner"]
        _run(["pg_restore", *options, f"--dbname={dsn}", str(source)], env)
    else:
        private_sqlite_file(path)
        # Through SQLite itself, page by page under its locks: never a half-copied file.
        with closing(_read_only(source)) as backup_db, closing(sqlite3.connect(path)) as live:
            backup_db.backup(live)
    cipher = open_cipher(data_keys_file, database_url) if data_keys_file else None
    migrate.upgrade(database_url, cipher=cipher)
    return revision
