"""The lab a reliability run works in: the example lab config (stages, routes, stations), a
technician with badge B1001, and stock single-vision jobs made for the run (route edging →
fitting → final QC → shipping). Nobody logs in, so no password is hashed (argon2 would cost
seconds per database).

The same function builds the server's database and the fresh one the checker replays the
stored events into, so both start from identical jobs.
"""

from datetime import UTC, datetime, timedelta
from pathlib import Path

from server import migrate
from server.crypto import DataCipher
from server.db import Database
from server.domain.auth import PersonPrincipal, create_station_token
from server.domain.jobs import create_job
from server.domain.labsetup import apply_lab_config
from server.labconfig import load_lab_config
from server.models import Person, Role
from server.schemas import JobCreate, PrescriptionEyeIn
from server.settings import CONFIG_DIR
from tests.reliability.poster import BADGE

# Pinned rather than the default (config/lab.toml if someone made one): the stations and the
# stock SV route below must exist.
LAB_CONFIG = CONFIG_DIR / "lab.example.toml"


def job_order(job_number: str, now: datetime) -> JobCreate:
    return JobCreate(
        job_number=job_number,
        store_code="NORTH",
        patient_ref="P-RELIABILITY",
        ordered_at=now,
        promised_at=now + timedelta(days=2),
        lens_design="SV",
        lens_material="CR-39",
        lens_index=1.5,
        surfaced=False,
        right=PrescriptionEyeIn(sph=-1.0),
        left=PrescriptionEyeIn(sph=-1.25),
    )


def prepare_lab(
    database_url: str, jobs: list[str], stations: list[str], cipher: DataCipher
) -> dict[str, str]:
    """Migrates, applies the lab config, adds the people and `jobs` (at their first stage,
    patient data encrypted with `cipher`); returns a new token per station in `stations`."""
    migrate.upgrade(database_url, cipher=cipher)
    database = Database(database_url, cipher)
    try:
        with database.session() as session:
            config = load_lab_config(LAB_CONFIG)  # its stores' tolerance profiles all exist
            lab = apply_lab_config(session, config)
            manager = Person(lab_id=lab.id, username="rt-manager", name="RT", role=Role.lab_manager)
            session.add(manager)
            session.add(
                Person(
                    lab_id=lab.id,
                    username="rt-tech",
                    name="RT Tech",
                    role=Role.technician,
                    badge_code=BADGE,
                )
            )
            session.flush()
            creator = PersonPrincipal(manager.id, lab.id, manager.role, None, manager.name)
            now = datetime.now(UTC)
            for job in jobs:
                create_job(session, creator, job_order(job, now))
            return {name: create_station_token(session, name, "reliability") for name in stations}
    finally:
        database.dispose()


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"
