"""Patient data stays out of error messages and logs, and the database files are private."""

import logging
import os
import stat
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import IntegrityError

from server import migrate
from server.context import ServerContext
from server.db import Database
from server.domain.seed import seed_demo
from server.labconfig import LabConfig
from server.models import JobUpdate, NotificationDelivery, utcnow
from server.settings import Settings
from tests.server.conftest import Lab
from tests.server.test_patient_data import fresh_url  # noqa: F401 (a fixture)

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
    database = Database(url)
    try:  # private once opened (closing may checkpoint and remove the -wal file)
        assert [_mode(file) for file in files] == [0o600, 0o600]
    finally:
        database.dispose()


def test_migration_0015_makes_old_webhook_errors_generic(
    fresh_url: str,  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
    lab_config: LabConfig,
) -> None:
    settings = Settings(database_url=fresh_url, data_dir=tmp_path, secret_key="x")
    migrate.upgrade(fresh_url, cipher=settings.data_cipher)
    kept = ["HTTP 503", "could not deliver", "webhook removed or deactivated"]
    leaky = ["ConnectError: [Errno 111] Connection refused", "ReadTimeout: timed out"]
    email = "recipient refused: {'desk@store.example': (550, b'no such user')}"
    errors = [("webhook", error) for error in (*kept, *leaky)] + [("email", email)]
    context = ServerContext(settings)
    try:
        with context.db.session() as session:
            seed_demo(session, lab_config, job_count=0)
        lab = Lab(context)
        job = lab.job(lab.make_job("J1"))
        with context.db.session() as session:  # the log as an older version wrote it
            feed = JobUpdate(job_id=job.id, store_id=job.store_id, kind="job_ready")
            session.add(feed)
            session.flush()
            session.add_all(
                NotificationDelivery(
                    channel=channel,
                    destination_id=destination,
                    job_update_id=feed.id,
                    next_attempt_at=utcnow(),
                    last_error=error,
                )
                for destination, (channel, error) in enumerate(errors)
            )
    finally:
        context.db.dispose()
    migrate.downgrade(fresh_url, "0014", settings.data_cipher)

    migrate.upgrade(fresh_url, cipher=settings.data_cipher)

    engine = create_engine(fresh_url)
    try:
        with engine.connect() as connection:
            query = text("SELECT last_error FROM notification_delivery ORDER BY id")
            after = connection.scalars(query).all()
    finally:
        engine.dispose()
    assert after == [*kept, "could not deliver", "could not deliver", email]
