"""`lenstrack backup` and `restore`: a restored backup serves the same jobs, on both backends."""

import itertools
import stat
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text

from server import backup, migrate
from server.app import create_api
from server.context import ServerContext
from server.crypto import DataKeysError, new_key, write_keys
from server.domain.seed import seed_demo
from server.labconfig import LabConfig
from server.settings import Settings
from tests.conftest import BACKENDS, _postgres_database
from tests.server.conftest import Lab
from tests.server.test_cli import Cli

FreshUrl = Callable[[], str]


@pytest.fixture(params=BACKENDS)
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FreshUrl]:
    """Makes empty databases of this test's own (a restore replaces all of one)."""
    numbers = itertools.count()
    with ExitStack() as made:

        def make() -> str:
            if request.param == "sqlite":
                return f"sqlite:///{tmp_path / f'db{next(numbers)}' / 'lenstrack.db'}"
            return made.enter_context(contextmanager(_postgres_database)("backup"))

        yield make


def _settings(url: str, data_dir: Path) -> Settings:
    return Settings(database_url=url, data_dir=data_dir, secret_key="test-secret")


def _seed(settings: Settings, lab_config: LabConfig) -> None:
    context = ServerContext(settings)
    try:
        with context.db.session() as session:
            seed_demo(session, lab_config, job_count=6)
    finally:
        context.db.dispose()


async def _served(settings: Settings) -> dict[str, Any]:
    """What a lab manager is served: the job list and each job with its prescription."""
    context = ServerContext(settings)
    transport = httpx.ASGITransport(app=create_api(context))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://lab.test") as client:
            await Lab(context).log_in(client, "manager", "demo-manager-pass")
            listing = (await client.get("/api/jobs", params={"limit": 1000})).json()
            ids = [job["id"] for job in listing["items"]]
            details = [(await client.get(f"/api/jobs/{job_id}")).json() for job_id in ids]
    finally:
        context.db.dispose()
    return {"jobs": listing, "details": details}


def _change_the_lab(settings: Settings) -> None:
    """Another job ordered; the first job renumbered and made rush."""
    context = ServerContext(settings)
    try:
        Lab(context).make_job("AFTER-BACKUP")
        with context.db.engine.begin() as connection:
            first = {"id": connection.scalar(text("SELECT min(id) FROM job"))}
            connection.execute(
                text("UPDATE job SET priority = 'rush', job_number = 'RENUMBERED' WHERE id = :id"),
                first,
            )
    finally:
        context.db.dispose()


def _head(url: str) -> str | None:
    return ScriptDirectory.from_config(migrate.alembic_config(url)).get_current_head()


async def test_a_restored_backup_serves_the_same_jobs(
    fresh_url: FreshUrl, lab_config: LabConfig, tmp_path: Path
) -> None:
    settings = _settings(fresh_url(), tmp_path)
    url = settings.resolved_database_url
    migrate.upgrade(url, cipher=settings.data_cipher)
    _seed(settings, lab_config)
    before = await _served(settings)
    assert before["jobs"]["total"] >= 6

    backup_file = tmp_path / "lab.backup"
    backup.backup(url, backup_file)
    assert stat.S_IMODE(backup_file.stat().st_mode) == 0o600
    assert backup.backup_revision(url, backup_file) == _head(url)

    _change_the_lab(settings)
    assert await _served(settings) != before

    running = ServerContext(settings).db.engine
    with running.connect(), pytest.raises(backup.BackupError, match="--force") as refused:
        backup.restore(url, backup_file, data_keys_file=settings.resolved_data_keys_file)
    running.dispose()
    assert "holds a database" in str(refused.value)
    if running.dialect.name == "postgresql":
        assert "1 other session(s) are connected" in str(refused.value)
    backup.restore(url, backup_file, force=True, data_keys_file=settings.resolved_data_keys_file)
    assert await _served(settings) == before


async def test_an_older_backup_is_migrated_up_after_its_restore(
    fresh_url: FreshUrl, tmp_path: Path
) -> None:
    old = _settings(fresh_url(), tmp_path)
    migrate.upgrade(old.resolved_database_url, "0010", cipher=old.data_cipher)
    backup_file = tmp_path / "old.backup"
    backup.backup(old.resolved_database_url, backup_file)

    target = fresh_url()  # empty: no --force needed
    restored = backup.restore(target, backup_file, data_keys_file=old.resolved_data_keys_file)
    assert restored == "0010"
    engine = ServerContext(_settings(target, tmp_path)).db.engine
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT version_num FROM alembic_version")) == _head(target)
    engine.dispose()


async def test_a_restore_checks_the_key_file_against_the_restored_data(
    fresh_url: FreshUrl, lab_config: LabConfig, tmp_path: Path
) -> None:
    settings = _settings(fresh_url(), tmp_path / "lab")
    migrate.upgrade(settings.resolved_database_url, cipher=settings.data_cipher)
    _seed(settings, lab_config)
    backup_file = tmp_path / "lab.backup"
    backup.backup(settings.resolved_database_url, backup_file)
    elsewhere = _settings(fresh_url(), tmp_path / "elsewhere")
    write_keys(elsewhere.resolved_data_keys_file, [new_key()])  # another database's keys

    with pytest.raises(DataKeysError, match="decrypts the patient data") as refused:
        backup.restore(
            elsewhere.resolved_database_url,
            backup_file,
            data_keys_file=elsewhere.resolved_data_keys_file,
        )

    assert str(elsewhere.resolved_data_keys_file) in str(refused.value)
    # With the lab's own file in place, the restored database is read as it was.
    key_file = settings.resolved_data_keys_file
    elsewhere.resolved_data_keys_file.write_bytes(key_file.read_bytes())
    restored = _settings(elsewhere.resolved_database_url, tmp_path / "elsewhere")
    assert await _served(restored) == await _served(settings)


def test_what_is_not_a_lenstrack_backup_is_refused_before_anything_changes(
    fresh_url: FreshUrl, tmp_path: Path
) -> None:
    url = fresh_url()
    migrate.upgrade(url, "0001")
    junk = tmp_path / "junk.backup"
    junk.write_bytes(b"not a database at all" * 100)
    for bad, reason in (
        (junk, "not a LensTrack"),
        (tmp_path / "missing.backup", "no backup file"),
    ):
        with pytest.raises(backup.BackupError, match=reason):
            backup.restore(url, bad, force=True)
    with pytest.raises(backup.BackupError, match="cannot write"):
        backup.backup(url, tmp_path / "no" / "such" / "folder.backup")
    newer = tmp_path / "newer.backup"
    engine = ServerContext(_settings(url, tmp_path)).db.engine
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    backup.backup(url, newer)
    with pytest.raises(backup.BackupError, match=r"'9999'.*does not know"):
        backup.restore(url, newer, force=True)
    with engine.connect() as connection:  # untouched
        assert connection.scalar(text("SELECT version_num FROM alembic_version")) == "9999"
    engine.dispose()


def test_the_commands_back_up_and_restore_with_force(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    cli.ok("db", "upgrade")
    backup_file = tmp_path / "lab.backup"
    assert "backed up" in cli.ok("backup", str(backup_file))
    refused = cli.run("restore", str(backup_file))
    assert refused.returncode == 1 and "--force" in refused.stderr
    assert "restored" in cli.ok("restore", "--force", str(backup_file))
