"""A configured demo lab without jobs, and helpers that make jobs, tokens and log-ins."""

import itertools
import uuid
from collections.abc import Iterator
from dataclasses import InitVar, dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from argon2 import PasswordHasher
from sqlalchemy import Connection, delete, func, select
from sqlalchemy.orm import Session

from core.contract import EARLIEST_TIME, SignAction
from lenstrack.mail_sink import MailSink
from server import migrate
from server.context import ServerContext
from server.crypto import FERNET_PREFIX
from server.domain import auth, security
from server.domain.auth import STATION_ROLES, PersonPrincipal, StationPrincipal
from server.domain.events import ingest_event
from server.domain.inspection import ordered_pair
from server.domain.jobs import create_job, lookup_job
from server.domain.seed import seed_demo
from server.labconfig import LabConfig, load_lab_config
from server.models import (
    Base,
    EventAction,
    Job,
    JobStatus,
    KpiSpan,
    LensDesign,
    Person,
    Priority,
    Stage,
    Station,
    StationSignIn,
    utcnow,
)
from server.models import Lab as LabRow
from server.notify.worker import DeliveryWorker
from server.schemas import EventIn, JobCreate, PrescriptionEyeIn
from server.settings import Settings
from tests.server.payloads import event_body

EXAMPLE_CONFIG = Path(__file__).resolve().parents[2] / "config" / "lab.example.toml"


@pytest.fixture(autouse=True, scope="session")
def cheap_password_hashing() -> Iterator[None]:
    """Real argon2, at the lowest cost, so dozens of log-ins do not dominate the suite."""
    original = security._hasher
    security._hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    yield
    security._hasher = original


@pytest.fixture(scope="session")
def lab_config() -> LabConfig:
    return load_lab_config(EXAMPLE_CONFIG)


@dataclass
class Lab:
    """A seeded lab; making one signs every station operator in at every station (see
    `sign_in_everywhere`), so tests about other things send events under any badge."""

    context: ServerContext
    sign_in: InitVar[bool] = True

    def __post_init__(self, sign_in: bool) -> None:
        if sign_in:
            with self.context.db.session() as session:
                sign_in_everywhere(session)

    def manager(self) -> PersonPrincipal:
        return self.person("manager")

    def person(self, username: str) -> PersonPrincipal:
        with self.context.db.session() as session:
            person = session.scalar(select(Person).where(Person.username == username))
            assert person is not None
            return PersonPrincipal(
                person.id, person.lab_id, person.role, person.store_id, person.name
            )

    def make_job(
        self,
        job_number: str,
        *,
        store: str = "NORTH",
        tray: str | None = None,
        design: LensDesign = LensDesign.SV,
        surfaced: bool = False,
        priority: Priority = Priority.regular,
        promised_in: timedelta = timedelta(days=2),
        right: PrescriptionEyeIn | None = None,
    ) -> int:
        now = utcnow()
        order = JobCreate(
            job_number=job_number,
            tray_number=tray,
            store_code=store,
            patient_ref="P-1",
            priority=priority,
            ordered_at=now - timedelta(hours=1),
            promised_at=now + promised_in,
            lens_design=design,
            lens_material="CR-39",
            lens_index=1.5,
            surfaced=surfaced,
            right=right
            or PrescriptionEyeIn(
                sph=-1.25, cyl=-0.5, axis=90, add=2.0 if design != LensDesign.SV else None
            ),
            left=PrescriptionEyeIn(sph=-1.0, cyl=0.0, add=2.0 if design != LensDesign.SV else None),
        )
        with self.context.db.session() as session:
            job = create_job(session, self.manager(), order)
            session.flush()
            return job.id

    def job(self, job_id: int) -> Job:
        with self.context.db.session() as session:
            return session.get_one(Job, job_id)

    def station_token(self, station: str) -> str:
        with self.context.db.session() as session:
            return auth.create_station_token(session, station)

    def station_headers(self, station: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.station_token(station)}"}

    async def log_in(self, client: httpx.AsyncClient, username: str, password: str) -> None:
        response = await client.post(
            "/api/auth/login", json={"username": username, "password": password}
        )
        assert response.status_code == 200, response.text


Rows = dict[str, list[dict[str, object]]]


@pytest.fixture(scope="session")
def seeded_rows() -> dict[str, Rows]:
    """Per database URL, every row of a freshly seeded, signed-in lab: restoring them costs
    a few ms where `seed_demo` costs 120-350 ms, and most server tests start from that lab."""
    return {}


def _copy_rows(connection: Connection) -> Rows:
    rows = {
        table.name: [dict(row) for row in connection.execute(select(table)).mappings()]
        for table in Base.metadata.sorted_tables
    }
    # The next test's context has new data keys: a copied ciphertext would not open with them.
    ciphertexts = [
        (name, row)
        for name, table_rows in rows.items()
        for row in table_rows
        if any(isinstance(value, str) and value.startswith(FERNET_PREFIX) for value in row.values())
    ]
    assert not ciphertexts, f"the seeded lab holds encrypted values: {ciphertexts[:1]}"
    return rows


def _restore_rows(connection: Connection, rows: Rows) -> None:
    for table in Base.metadata.sorted_tables:
        if rows[table.name]:
            connection.execute(table.insert(), rows[table.name])
    if connection.dialect.name == "postgresql":
        # Ids were inserted explicitly: move each sequence past them, as seeding would have.
        for table in Base.metadata.sorted_tables:
            if rows[table.name] and "id" in table.c:
                sequence = func.pg_get_serial_sequence(table.name, "id")
                last = select(func.max(table.c.id)).scalar_subquery()
                connection.execute(select(func.setval(sequence, last)))


@pytest.fixture
def lab(context: ServerContext, lab_config: LabConfig, seeded_rows: dict[str, Rows]) -> Lab:
    url = context.settings.resolved_database_url
    if url in seeded_rows:
        with context.db.engine.begin() as connection:
            _restore_rows(connection, seeded_rows[url])
        return Lab(context, sign_in=False)
    with context.db.session() as session:
        seed_demo(session, lab_config, job_count=0)
    lab = Lab(context)
    with context.db.engine.connect() as connection:
        seeded_rows[url] = _copy_rows(connection)
    return lab


@pytest.fixture
def nobody_signed_in(lab: Lab) -> None:
    """The lab without `sign_in_everywhere`: only the sign-ins a test sends count."""
    with lab.context.db.session() as session:
        session.execute(delete(StationSignIn))


def sign_in_everywhere(session: Session) -> None:
    """Every station operator signed in at every station since 1970. Sequence 0, which no
    station sends: the tests' own events number from 1, their gaps as before. (Sign-in
    itself: `nobody_signed_in` in tests/server/test_events.py and test_api_events.py.)"""
    operators = session.scalars(select(Person.id).where(Person.role.in_(STATION_ROLES)))
    stations = session.scalars(select(Station.id)).all()
    session.add_all(
        StationSignIn(
            event_uuid=uuid.uuid4(),
            station_id=station_id,
            station_sequence=0,
            person_id=person_id,
            action=SignAction.sign_in,
            device_created_at=EARLIEST_TIME,
            server_received_at=EARLIEST_TIME,
        )
        for person_id, station_id in itertools.product(operators, stations)
    )


class Floor:
    """Sends events as the named station would, numbering them per station."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.sequences: dict[str, int] = {}

    def station(self, name: str) -> StationPrincipal:
        with self.lab.context.db.session() as session:
            station = session.scalar(select(Station).where(Station.name == name))
            assert station is not None
            return StationPrincipal(station.id, station.lab_id, station.stage_id, station.name)

    def event(self, station: str, job: str, action: EventAction, **fields: object) -> EventIn:
        self.sequences[station] = self.sequences.get(station, 0) + 1
        # `fields` may override anything, the sequence too (a test of gaps numbers its own).
        return EventIn.model_validate(
            {**event_body(job, self.sequences[station], action), **fields}
        )

    def send(
        self,
        station: str,
        job: str,
        action: EventAction,
        at: datetime | None = None,
        **fields: object,
    ) -> str:
        """Sends as the station would; `at` puts the scan and its arrival on a chosen clock."""
        if at is not None:
            fields = {"created_at": at, "sent_at": at, **fields}
        event = self.event(station, job, action, **fields)
        with self.lab.context.db.session() as session:
            result = ingest_event(session, self.station(station), event, received_at=at)
        return result.status

    def passing_inspection(self, station: str, job: str) -> dict[str, object]:
        """What a QC station sends with a pass: the job's lenses measured exactly as ordered."""
        with self.lab.context.db.session() as session:
            ordered = ordered_pair(lookup_job(session, self.station(station), job))
            return {"measured": ordered.model_dump(mode="json", exclude_none=True)}

    def complete(self, station: str, job: str, at: datetime | None = None) -> str:
        """Completes as the station would: at an inspection stage, a pass with an on-spec
        inspection."""
        with self.lab.context.db.session() as session:
            inspects = session.get_one(Stage, self.station(station).stage_id).inspection
        if not inspects:
            return self.send(station, job, EventAction.complete, at)
        inspection = self.passing_inspection(station, job)
        return self.send(station, job, EventAction.complete, at, inspection=inspection)

    def ship(self, job: str) -> None:
        """A stock single-vision job from edging through shipping, passing final QC."""
        for station in ("EDGE-1", "FIT-1", "QC-1", "SHIP-1"):
            self.send(station, job, EventAction.start)
            self.complete(station, job)

    def state(self, job_id: int) -> tuple[str | None, JobStatus]:
        job = self.lab.job(job_id)
        return (job.current_stage.code if job.current_stage else None, job.status)


@pytest.fixture
def floor(lab: Lab) -> Floor:
    return Floor(lab)


@pytest.fixture
def worker(lab: Lab) -> DeliveryWorker:
    """The lab's notification delivery worker, run by hand (no background task)."""
    return DeliveryWorker(lab.context)


@pytest.fixture
def mail_sink() -> Iterator[MailSink]:
    """A local SMTP server that keeps what it is sent."""
    with MailSink() as sink:
        yield sink


def span_firsts(day: date) -> list[tuple[KpiSpan, date]]:
    """The KPI count rows a lab-local day counts in, by their definition (KpiSpan): its own,
    its ISO week's (Monday first) and its month's, each keyed by its first day."""
    monday = day - timedelta(days=day.weekday())
    return [(KpiSpan.day, day), (KpiSpan.week, monday), (KpiSpan.month, day.replace(day=1))]


@dataclass
class MigratedLab:
    """A SQLite database migrated to head with the demo lab (no jobs): a backfill's test."""

    url: str
    context: ServerContext
    lab_id: int

    def downgrade(self, revision: str) -> None:
        """Down to `revision`, its connections closed first."""
        self.context.db.dispose()
        migrate.downgrade(self.url, revision)

    def downgrade_and_upgrade(self, revision: str) -> None:
        """Down to `revision`, then up to head again: the backfill under test runs."""
        self.downgrade(revision)
        migrate.upgrade(self.url)


@pytest.fixture
def migrated_lab(tmp_path: Path, lab_config: LabConfig) -> Iterator[MigratedLab]:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    migrate.upgrade(url)
    context = ServerContext(Settings(database_url=url, data_dir=tmp_path, secret_key="x"))
    try:
        with context.db.session() as session:
            seed_demo(session, lab_config, job_count=0)
            lab_id = session.scalars(select(LabRow.id)).one()
        yield MigratedLab(url, context, lab_id)
    finally:
        context.db.dispose()
