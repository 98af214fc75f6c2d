"""Patient data stays out of error messages and logs, and the database files are private."""

import logging
import os
import stat
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from server import migrate
from server.db import Database
from server.settings import Settings
from tests.server.conftest import Lab

PATIENT = "PATIENT-Jane-Roe-4711"


def test_a_failed_insert_does_not_carry_its_parameters(
    lab: Lab, caplog: pytest.LogCaptureFixture
) -> None:
    lab.make_job("J1")
    caplog.set_level(logging.DEBUG)
    with lab.context.db.engine.connect() as connection:
        columns = list(connection.execute(text("SELECT * FROM job")).keys())
        copied = ", ".join(":patient_ref" if name == "patient_ref" else name for name in columns)
        # The same job again (a primary key conflict), its patient reference a parameter.
        copy = f"INSERT INTO job ({', '.join(columns)}) SELECT {copied} FROM job"
        with pytest.raises(IntegrityError) as failed:
            connection.execute(text(copy), {"patient_ref": PATIENT})
        logging.getLogger("test").exception("insert failed", exc_info=failed.value)
    told = "".join(traceback.format_exception(failed.value)) + caplog.text
    assert "INSERT INTO job" in told  # the statement is still there to debug with
    assert PATIENT not in told


@pytest.fixture
def usual_umask() -> Iterator[None]:
    """The common 022, under which files are world-readable unless made otherwise."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.usefixtures("usual_umask")
def test_a_fresh_data_dir_and_its_database_files_are_private(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "var", database_url="", secret_key="")
    migrate.upgrade(settings.resolved_database_url)
    assert settings.resolved_secret_key
    database = Database(settings.resolved_database_url)
    try:
        with database.engine.begin() as connection:  # a write: SQLite makes -wal and -shm
            connection.execute(text("UPDATE alembic_version SET version_num = version_num"))
        names = ["lenstrack.db", "lenstrack.db-wal", "lenstrack.db-shm", "secret_key"]
        modes = {name: _mode(settings.data_dir / name) for name in names}
    finally:
        database.dispose()
    assert modes == dict.fromkeys(names, 0o600)
    assert _mode(settings.data_dir) == 0o700


@pytest.mark.usefixtures("usual_umask")
def test_a_world_readable_database_of_an_older_install_is_made_private(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'lenstrack.db'}"
    migrate.upgrade(url)
    files = [tmp_path / name for name in ("lenstrack.db", "lenstrack.db-wal")]
    for file in files:
        file.touch()
        file.chmod(0o644)
    Database(url).dispose()
    assert [_mode(file) for file in files] == [0o600, 0o600]
