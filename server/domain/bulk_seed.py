"""A year of a lab's history in minutes: a million jobs with genuine-looking timelines.

`seed_demo` reaches every state through `ingest_event`, which is right for ~200 jobs and
takes hours for a million. Here each job's route is walked in memory instead — every
transition decided by `core.lifecycle.apply`, the rule the server applies to each event —
and the rows are written in bulk: COPY on PostgreSQL, `executemany` on SQLite. The values
pass through each ORM column type's own bind processing first, so times are stored as the
app stores them and personal columns are encrypted with the engine's data keys.

What holds afterwards, as if every event had been ingested: a job's stage, status and
counts are those its last event left; each event UUID is unique; each station's sequence
numbers (after one sign-in per operator) run from its last one without gaps, in time order,
as do event ids; at most one active job holds a job or tray number; each pass or failure at
an inspection stage carries its judged inspection (the shared tolerance engine's checks),
each breakage its breakage record. Flags of finished jobs are kept as cleared history; the
open jobs' ETAs and flags are then brought up to `as_of` by the app's own sweep.
"""

import heapq
import itertools
import json
import queue
import random
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache, partial
from operator import itemgetter
from typing import Any

from sqlalchemy import JSON, Connection, Dialect, Table, func, select, text
from sqlalchemy.orm import Session

from core.contract import SignAction
from core.lifecycle import Outcome, Progress, Refusal, apply
from core.lifecycle import Route as LifecycleRoute
from core.optics import PairRx, ToleranceFile, check_pair
from core.optics import ordered_pair as optics_ordered_pair
from server.crypto import Encrypted
from server.domain.auth import STATION_ROLES
from server.domain.breakage import breakage_cost, shift_at
from server.domain.events import IngestRules, last_sequence
from server.domain.flags import learn_stage_times, sweep
from server.domain.jobs import lab_catalogue, next_job_number
from server.domain.kpis import record_stage_times, recount_jobs
from server.domain.lab_time import lab_zone, local_text
from server.domain.seed import _random_rx
from server.models import (
    Base,
    Breakage,
    BreakagePart,
    EventAction,
    FlagKind,
    Inspection,
    InspectionCheck,
    InspectionDefect,
    Job,
    JobFlag,
    JobStatus,
    JobType,
    KpiStageBucket,
    KpiStageTime,
    Lab,
    LensDesign,
    Person,
    PrescriptionEye,
    Priority,
    ReasonCode,
    ReasonKind,
    Role,
    Route,
    StageEvent,
    Station,
    StationSignIn,
    Store,
)

# Rows buffered per table before they are written (memory stays flat whatever the count).
CHUNK_ROWS = 20_000
# Distinct prescriptions per lens design: each is encrypted and judged once, then shared.
RX_POOL = 2_000
# Trays in circulation; an active job never shares one (see `_free_tray`).
TRAYS = 50_000
# Chances per job, tuned to what labs report: reworks 3-5 %, breakages ~2 %.
QC_FAIL = 0.04
HOLD = 0.02
BREAKAGE_AT = {"generating": 0.004, "polishing": 0.002, "edging": 0.012, "fitting": 0.003}
# Mean minutes a job waits before its route starts (frames, blanks) and in each queue.
WAIT_BEFORE_ROUTE = 8 * 60
QUEUE_WAIT = {"hard_coat": 120, "ar_coat": 150}
DEFAULT_QUEUE_WAIT = 75
MAX_REWORKS = 2
MAX_BREAKAGES = 2
# Bounds a walk: a route of 8 stages redone twice is 24 visits.
MAX_STAGE_VISITS = 40
# Lensmeter readings of the sphere scatter about the ordered power this much (D), read to
# 0.001 D as a digital lensmeter does (0.01 D steps would put SPC run rules off by ties).
SPH_NOISE = 0.03
# The planted process drift the SPC charts catch (issue #16): lenses edged at this station in
# the last days of the history read this much more sphere (~0.8σ of the scatter above): rules
# 3 and 4 fire on its chart while every lens still passes its tolerance.
DRIFT_STATION = "EDGE-2"
DRIFT_STAGE = "edging"
DRIFT_DAYS = 10
DRIFT_SPH = 0.015


@dataclass(frozen=True)
class _RxTemplate:
    """One prescription as stored, the ordered lenses the engine reads, and (per tolerance
    profile, made on first use) a passing and a power-failing measurement with its checks."""

    eyes: tuple[dict[str, Any], ...]
    ordered: PairRx
    judged: dict[tuple[str, bool, float], tuple[dict[str, Any], list[dict[str, Any]]]] = field(
        default_factory=dict
    )


@dataclass
class _Event:
    """One planned station event; ids, UUID and sequence are given when it is written, in
    time order."""

    at: datetime
    job_id: int
    stage_id: int
    station_id: int
    operator_id: int
    action: EventAction
    reason_code: str | None = None
    to_stage_id: int | None = None
    inspection: dict[str, Any] | None = None
    breakage: dict[str, Any] | None = None


class _TableWriter:
    """Buffers rows of one table and writes them in bulk, each value bound by its column's
    type as an ORM insert would bind it (UTC times, encrypted personal data, JSON)."""

    def __init__(self, connection: Connection, table: Table) -> None:
        self.connection = connection
        self.table = table
        self.rows: list[dict[str, Any]] = []
        self.written = 0
        self._columns: list[str] = []
        self._binders: list[Callable[[Any], Any]] = []

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)

    def _bound(self, rows: list[dict[str, Any]]) -> Iterable[tuple[Any, ...]]:
        if not self._columns:  # every row of a table names the same columns
            self._columns = list(rows[0])
            types = [self.table.c[name].type for name in self._columns]
            self._binders = _binders(types, self.connection.dialect)
        values_of = itemgetter(*self._columns)
        binders = [(index, bind) for index, bind in enumerate(self._binders) if bind]
        for row in rows:
            values = list(values_of(row))
            for index, bind in binders:
                values[index] = bind(values[index])
            yield tuple(values)

    def take(self) -> list[dict[str, Any]]:
        """The rows buffered so far, for `write`; the buffer starts again empty."""
        rows, self.rows = self.rows, []
        return rows

    def write(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        bound = self._bound(rows)
        names = ", ".join(f'"{name}"' for name in rows[0])
        if self.connection.dialect.name == "postgresql":
            dbapi = self.connection.connection.dbapi_connection
            assert dbapi is not None
            with (
                dbapi.cursor() as cursor,
                cursor.copy(f'COPY "{self.table.name}" ({names}) FROM STDIN') as copy,
            ):
                for values in bound:
                    copy.write_row(values)
        else:
            marks = ", ".join("?" for _ in rows[0])
            self.connection.exec_driver_sql(
                f'INSERT INTO "{self.table.name}" ({names}) VALUES ({marks})', list(bound)
            )
        self.written += len(rows)


def _binders(column_types: list[Any], dialect: Dialect) -> list[Callable[[Any], Any] | None]:
    """Each column type's bind processing (None: the value goes as it is), as an insert
    through the ORM table applies it.

    Two shortcuts keep a million jobs in minutes: an encrypted value is encrypted once per
    distinct value (prescriptions come from a pool; a token decrypts the same wherever it is
    stored), and columns of one type share a binder that binds the object it bound last
    again without work (an event's four times are one object).
    """
    shared: dict[str, Callable[[Any], Any]] = {}
    binders: list[Callable[[Any], Any] | None] = []
    for column_type in column_types:
        # The dialect's own form of the type, as a compiled insert binds it (SQLite's
        # DATETIME writes its text itself: '…00.000000', never the driver's '…00').
        process = column_type.dialect_impl(dialect).bind_processor(dialect)
        if process is None and isinstance(column_type, JSON):
            # psycopg takes JSON parameters as JSON, but COPY takes text (as the type would
            # be serialised in a parameter: json.dumps, SQLAlchemy's default serializer).
            process = json.dumps
        if process is None:
            binders.append(None)
        elif isinstance(column_type, Encrypted):
            binders.append(cache(process))
        else:
            binders.append(shared.setdefault(repr(column_type), _bind_last_again(process)))
    return binders


def _bind_last_again(process: Callable[[Any], Any]) -> Callable[[Any], Any]:
    last: list[Any] = [object(), None]  # holds the object, so its identity is not reused

    def bind(value: Any) -> Any:
        if value is not last[0]:
            last[0], last[1] = value, process(value)
        return last[1]

    return bind


class _BackgroundWrites:
    """Writes batches of rows on a thread of its own, one batch at a time and in order (a
    batch lists parents first). The database's part of a write — PostgreSQL taking a COPY,
    SQLite's B-trees — runs without the GIL, so it overlaps with the generator's next rows;
    one batch waits at most, so memory stays flat. The connection is the thread's alone from
    the first batch until `close`: the generator reads nothing while it runs."""

    def __init__(self) -> None:
        self._batches: queue.Queue[list[tuple[_TableWriter, list[dict[str, Any]]]] | None] = (
            queue.Queue(maxsize=1)
        )
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="bulk-seed-writes", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (batch := self._batches.get()) is not None:
            if self._failure is not None:
                continue  # drained unwritten: the caller raises and rolls back
            try:
                for writer, rows in batch:
                    writer.write(rows)
            except BaseException as error:  # re-raised in the generator's thread
                self._failure = error

    def put(self, batch: list[tuple["_TableWriter", list[dict[str, Any]]]]) -> None:
        self._raise_failure()
        self._batches.put(batch)

    def close(self, *, raise_failure: bool = True) -> None:
        """Waits for every batch put so far to be written (or the thread's failure)."""
        if self._thread.is_alive():
            self._batches.put(None)
            self._thread.join()
        if raise_failure:
            self._raise_failure()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure


@contextmanager
def _foreign_keys_checked_once(connection: Connection, tables: Iterable[str]) -> Iterator[None]:
    """On PostgreSQL, `tables`' foreign keys dropped for the load and added again after it.

    PostgreSQL checks a foreign key per row written, by a trigger that looks the parent up: at
    five per event that was most of the server's time taking a COPY. Added again, each
    constraint is checked in one pass over its table, as pg_restore does, with its exact
    definition as read here. DDL is transactional: a failure leaves every constraint as it
    was. The tables stay locked until the seed's transaction ends (no lab works while its
    history is generated)."""
    if connection.dialect.name != "postgresql":
        yield
        return
    constraints = connection.execute(
        text(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) "
            "FROM pg_constraint WHERE contype = 'f' "
            "AND conrelid = ANY(CAST(:tables AS regclass[])) ORDER BY conrelid, conname"
        ),
        {"tables": list(tables)},
    ).all()
    for table, name, _definition in constraints:
        connection.exec_driver_sql(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
    yield
    for table, name, definition in constraints:
        connection.exec_driver_sql(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')


class _Writers:
    """One writer per table, flushed parents first so foreign keys always find their row."""

    ORDER = (
        Job,
        PrescriptionEye,
        StationSignIn,
        StageEvent,
        Inspection,
        InspectionCheck,
        InspectionDefect,
        Breakage,
        JobFlag,
    )

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.by_model = {
            model: _TableWriter(connection, Base.metadata.tables[model.__tablename__])
            for model in self.ORDER
        }
        self.next_id = {
            model: (connection.scalar(select(func.max(model.id))) or 0) + 1 for model in self.ORDER
        }
        self.background = _BackgroundWrites()

    def new_id(self, model: type[Base]) -> int:
        value = self.next_id[model]
        self.next_id[model] = value + 1
        return value

    def add(self, model: type[Base], row: dict[str, Any]) -> None:
        self.by_model[model].add(row)

    def full(self) -> bool:
        return any(len(writer.rows) >= CHUNK_ROWS for writer in self.by_model.values())

    def flush(self) -> None:
        """Hands every table's buffered rows to the writing thread, which writes them while
        the generator goes on."""
        self.background.put([(writer, writer.take()) for writer in self.by_model.values()])

    def finish(self) -> dict[str, int]:
        self.flush()
        self.background.close()
        if self.connection.dialect.name == "postgresql":
            # Ids were given here, not drawn from the sequences: move those past them.
            for writer in self.by_model.values():
                name = writer.table.name
                self.connection.exec_driver_sql(
                    f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                    f'(SELECT coalesce(max(id), 0) + 1 FROM "{name}"), false)'
                )
                # The planner's statistics of what was just written: until autovacuum comes
                # by, it takes the filled tables for empty ones and reads them whole.
                self.connection.exec_driver_sql(f'ANALYZE "{name}"')
        return {writer.table.name: writer.written for writer in self.by_model.values()}


@dataclass(frozen=True)
class _StageInfo:
    id: int
    code: str
    name: str
    inspection: bool
    stations: tuple[int, ...]


@dataclass(frozen=True)
class _RouteInfo:
    id: int
    rule: LifecycleRoute
    minutes: dict[str, float]  # standard minutes per stage code


class _LabFloor:
    """What the generator reads of the lab once: stages, stations, routes, people, reasons."""

    def __init__(self, session: Session, lab_id: int) -> None:
        self.lab = session.get_one(Lab, lab_id)
        self.zone = lab_zone(session, lab_id)
        self.catalogue = lab_catalogue(session, lab_id)
        stations = session.scalars(
            select(Station).where(Station.lab_id == lab_id, Station.active).order_by(Station.id)
        ).all()
        self.stations = [station.id for station in stations]
        self.drifting_station = next(
            (station.id for station in stations if station.name == DRIFT_STATION), None
        )
        self.stages: dict[str, _StageInfo] = {}
        for station in stations:
            stage = station.stage
            known = self.stages.get(stage.code)
            ids = (known.stations if known else ()) + (station.id,)
            self.stages[stage.code] = _StageInfo(
                stage.id, stage.code, stage.name, stage.inspection, ids
            )
        self.routes: dict[tuple[str, str, bool], _RouteInfo] = {}
        routes = session.scalars(select(Route).where(Route.lab_id == lab_id).order_by(Route.id))
        for route in routes:
            info = self._route_info(route)
            for job_type, design in itertools.product(route.job_types, route.designs):
                # The first matching route wins, as in jobs.select_route.
                self.routes.setdefault((job_type, design, route.surfaced), info)
        self.stores = list(
            session.execute(
                select(Store.id, Store.tolerance_profile).where(Store.lab_id == lab_id)
            ).all()
        )
        people = session.execute(
            select(Person.id, Person.role).where(
                Person.lab_id == lab_id, Person.active, Person.role.in_(STATION_ROLES)
            )
        ).all()
        self.technicians = [id_ for id_, role in people if role == Role.technician]
        self.inspectors = [id_ for id_, role in people if role == Role.qc_inspector]
        manager = session.scalar(
            select(Person.id).where(Person.lab_id == lab_id, Person.role == Role.lab_manager)
        )
        self.manager_id = manager
        reasons = session.scalars(select(ReasonCode).where(ReasonCode.lab_id == lab_id)).all()
        self.reasons = {
            kind: [
                (reason.code, reason.return_stage.code if reason.return_stage else None)
                for reason in reasons
                if reason.kind == kind
            ]
            for kind in ReasonKind
        }
        if not (self.technicians and self.inspectors and self.stores and self.routes):
            raise ValueError("bulk seeding needs the demo lab: stores, routes, stations, people")

    def _route_info(self, route: Route) -> _RouteInfo:
        codes = tuple(step.stage.code for step in route.steps)
        missing = [code for code in codes if code not in self.stages]
        if missing:
            raise ValueError(f"route {route.code} has no active station at {missing[0]}")
        rule = LifecycleRoute(
            job_number="",
            stages=codes,
            inspection_stages=frozenset(c for c in codes if self.stages[c].inspection),
            names={code: self.stages[code].name for code in codes},
        )
        minutes = {step.stage.code: step.standard_minutes for step in route.steps}
        return _RouteInfo(route.id, rule, minutes)


class _Generator:
    def __init__(
        self,
        session: Session,
        floor: _LabFloor,
        writers: _Writers,
        rng: random.Random,
        as_of: datetime,
        tolerances: ToleranceFile,
    ) -> None:
        self.session = session
        self.floor = floor
        self.writers = writers
        self.rng = rng
        self.as_of = as_of
        self.tolerances = tolerances
        self.pending: list[tuple[datetime, int, _Event]] = []  # heap: written in time order
        self.tie = itertools.count()
        self.sequences = {sid: last_sequence(session, sid) for sid in floor.stations}
        self.active_trays: set[str] = set()
        self.rx_pools: dict[LensDesign, list[_RxTemplate]] = {design: [] for design in LensDesign}

    # Time order -------------------------------------------------------------------------

    def sign_in_everyone(self, at: datetime) -> None:
        """One sign-in per operator and station before the history, as stations send them."""
        for station_id in self.floor.stations:
            for person_id in self.floor.technicians + self.floor.inspectors:
                self.sequences[station_id] += 1
                self.writers.add(
                    StationSignIn,
                    {
                        "id": self.writers.new_id(StationSignIn),
                        "event_uuid": self._uuid(),
                        "station_id": station_id,
                        "station_sequence": self.sequences[station_id],
                        "person_id": person_id,
                        "action": SignAction.sign_in,
                        "device_created_at": at,
                        "server_received_at": at,
                    },
                )

    def _uuid(self) -> uuid.UUID:
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)

    def write_events_before(self, moment: datetime) -> None:
        """Writes every planned event earlier than `moment`: later jobs only add later ones."""
        while self.pending and self.pending[0][0] < moment:
            self._write_event(heapq.heappop(self.pending)[2])

    def _write_event(self, event: _Event) -> None:
        event_id = self.writers.new_id(StageEvent)
        self.sequences[event.station_id] += 1
        self.writers.add(
            StageEvent,
            {
                "id": event_id,
                "event_uuid": self._uuid(),
                "station_id": event.station_id,
                "station_sequence": self.sequences[event.station_id],
                "operator_id": event.operator_id,
                "job_id": event.job_id,
                "stage_id": event.stage_id,
                "action": event.action,
                "reason_code": event.reason_code,
                "override_reason": None,
                "note": None,
                "to_stage_id": event.to_stage_id,
                # Sent as scanned and received at once: corrected = received − (sent − created).
                "device_created_at": event.at,
                "device_sent_at": event.at,
                "server_received_at": event.at,
                "corrected_at": event.at,
            },
        )
        if event.inspection is not None:
            self._write_inspection(event, event_id, event.inspection)
        if event.breakage is not None:
            self.writers.add(
                Breakage,
                {
                    "id": self.writers.new_id(Breakage),
                    "event_id": event_id,
                    "station_id": event.station_id,
                    "shift": shift_at(self.floor.lab, event.at),
                    "occurred_at": event.at,
                    **event.breakage,
                },
            )

    def _write_inspection(self, event: _Event, event_id: int, details: dict[str, Any]) -> None:
        inspection_id = self.writers.new_id(Inspection)
        checks = details.pop("checks")
        defects = details.pop("defects")
        self.writers.add(
            Inspection,
            {
                "id": inspection_id,
                "event_id": event_id,
                "station_id": event.station_id,
                "operator_id": event.operator_id,
                "inspected_at": event.at,
                "passed": event.action == EventAction.complete,
                **details,
            },
        )
        for check in checks:
            self.writers.add(
                InspectionCheck,
                {"id": self.writers.new_id(InspectionCheck), "inspection_id": inspection_id}
                | check,
            )
        for eye, code in defects:
            self.writers.add(
                InspectionDefect,
                {
                    "id": self.writers.new_id(InspectionDefect),
                    "inspection_id": inspection_id,
                    "eye": eye,
                    "code": code,
                },
            )

    # Prescriptions and QC ---------------------------------------------------------------

    def _rx(self, design: LensDesign) -> _RxTemplate:
        pool = self.rx_pools[design]
        if len(pool) < RX_POOL:
            eyes = tuple(
                {"eye": eye} | _random_rx(self.rng, design).model_dump() for eye in ("R", "L")
            )
            lines = [PrescriptionEye(**eye) for eye in eyes]
            pool.append(_RxTemplate(eyes, optics_ordered_pair(lines)))
            return pool[-1]
        return self.rng.choice(pool)

    def _judged(
        self,
        template: _RxTemplate,
        design: LensDesign,
        profile: str,
        power_off: bool,
        drift: float,
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """A lensmeter reading within tolerance (or the right sphere 0.25 D out), `drift` D
        more sphere, and the engine's checks of it, made once per prescription and profile."""
        key = (profile, power_off, drift)
        if key not in template.judged:
            measured = template.ordered.model_dump(exclude_none=True)
            for lens in (measured.get("R"), measured.get("L")):
                if lens is not None:
                    noise = self.rng.uniform(-SPH_NOISE, SPH_NOISE)
                    lens["sph"] = round(lens["sph"] + noise + drift, 3)
            if power_off:
                measured["R"]["sph"] = round(measured["R"]["sph"] + 0.25, 2)
            result = check_pair(
                template.ordered,
                PairRx.model_validate(measured),
                design.value,
                self.tolerances.profile(profile),
            )
            stored = {"eye", "field", "ordered", "measured", "deviation", "tolerance", "passed"}
            checks = [check.model_dump(include=stored) for check in result.checks]
            template.judged[key] = (measured, checks)
        return template.judged[key]

    def inspection(
        self,
        template: _RxTemplate,
        design: LensDesign,
        profile: str,
        job_id: int,
        attempt: int,
        defect: str | None,
        drift: float,
    ) -> dict[str, Any]:
        measured, checks = self._judged(template, design, profile, defect == "D-POWER", drift)
        return {
            "job_id": job_id,
            "attempt": attempt,
            "profile": profile,
            "design": design,
            "ordered": template.ordered.model_dump(mode="json", exclude_none=True),
            "measured": measured,
            "cosmetic": {"scratches": True, "coating": defect != "D-COAT", "frame_fit": True},
            "checks": checks,
            "defects": [("R" if defect == "D-POWER" else None, defect)] if defect else [],
        }

    # One job ----------------------------------------------------------------------------

    def _free_tray(self, number: int) -> str:
        """Trays go round; an active job takes the next one no other active job holds."""
        for offset in range(TRAYS):
            tray = _tray(number + offset)
            if tray not in self.active_trays:
                self.active_trays.add(tray)
                return tray
        raise ValueError(f"more than {TRAYS} active jobs: no tray left")

    def job(self, number: int, ordered_at: datetime) -> None:
        """Job J`number`, ordered at `ordered_at`: its row and Rx now, its events once the
        time order reaches them (`write_events_before`)."""
        rng, floor = self.rng, self.floor
        job_id = self.writers.new_id(Job)
        design = rng.choice([LensDesign.SV, LensDesign.SV, LensDesign.PAL, LensDesign.MF])
        job_type = rng.choices(list(JobType), weights=[85, 8, 5, 2])[0]
        surfaced = design != LensDesign.SV or rng.random() < 0.5
        route = floor.routes[(job_type, design, surfaced)]
        store_id, store_profile = rng.choice(floor.stores)
        profile = store_profile or self.tolerances.default
        rush = rng.random() < 0.12
        promised_at = ordered_at + timedelta(days=1 if rush else rng.choice([2, 3, 4, 5]))
        template = self._rx(design)
        walk = _Walk(self, route, job_id, ordered_at)
        walk.run(template, design, profile)
        progress = walk.progress
        finished = walk.finished_at
        ready = delivered = None
        if finished is not None:
            ready = finished + timedelta(hours=rng.uniform(12, 48))
            delivered = ready + timedelta(days=rng.uniform(0.5, 10))
        tray = self._free_tray(number) if progress.active else _tray(number)
        material = rng.choice([m for m in floor.catalogue.materials if design in m.designs])
        self.writers.add(
            Job,
            {
                "id": job_id,
                "lab_id": floor.lab.id,
                "job_number": f"J{number}",
                "tray_number": tray,
                "store_id": store_id,
                "patient_ref": f"P-{rng.randint(10000, 99999)}",
                "job_type": job_type,
                "priority": Priority.rush if rush else Priority.regular,
                "ordered_at": ordered_at,
                "promised_at": promised_at,
                "lens_design": design,
                "lens_material": material.code,
                "lens_index": material.index,
                "surfaced": surfaced,
                "treatments": rng.sample([t.code for t in floor.catalogue.treatments], k=2),
                "frame": {"code": rng.choice(floor.catalogue.frames).code}
                if rng.random() < 0.5
                else {"type": rng.choice(["full_rim", "semi_rimless", "rimless"]), "a_mm": 52.0},
                "special_instructions": "",
                "route_id": route.id,
                "current_stage_id": floor.stages[progress.stage].id if progress.stage else None,
                "status": progress.status,
                "status_before_hold": progress.status_before_hold,
                "is_active": progress.active,
                "rework_count": walk.reworks,
                "breakage_count": walk.breakages,
                "state_changed_at": walk.changed_at,
                "eta": None,  # open jobs get theirs from the sweep at the end
                "ready_for_pickup_at": ready if ready and ready <= self.as_of else None,
                "delivered_at": delivered if delivered and delivered <= self.as_of else None,
                "created_at": ordered_at,
                "entered_by_id": floor.manager_id,
                "ticket_printed_at": ordered_at + timedelta(minutes=rng.uniform(1, 30)),
            },
        )
        for eye in template.eyes:
            eye_id = self.writers.new_id(PrescriptionEye)
            self.writers.add(PrescriptionEye, {"id": eye_id, "job_id": job_id} | eye)
        for kind, reason, raised, cleared in walk.cleared_flags(promised_at, self.floor.zone):
            self.writers.add(
                JobFlag,
                {
                    "id": self.writers.new_id(JobFlag),
                    "job_id": job_id,
                    "kind": kind,
                    "reason": reason,
                    "raised_at": raised,
                    "cleared_at": cleared,
                },
            )
        for event in walk.events:
            heapq.heappush(self.pending, (event.at, next(self.tie), event))


def _tray(number: int) -> str:
    return f"{number % TRAYS + 1:05d}"


class _Walk:
    """One job along its route until it ships or `as_of` comes: each event decided by the
    shared lifecycle, the job's state being the one its last event left."""

    def __init__(
        self, generator: _Generator, route: _RouteInfo, job_id: int, ordered_at: datetime
    ) -> None:
        self.generator = generator
        self.rng = generator.rng
        self.route = route
        self.job_id = job_id
        self.clock = ordered_at
        self.progress = Progress(route.rule.stages[0], JobStatus.queued)
        self.changed_at = ordered_at
        self.events: list[_Event] = []
        self.reworks = 0
        self.breakages = 0
        self.attempts = 0
        self.finished_at: datetime | None = None
        # (kind, stage code, raised at, reason) of a rework or breakage flag still open.
        self.redo: list[tuple[FlagKind, str, datetime, str]] = []
        self.redone: list[tuple[FlagKind, str, datetime, datetime]] = []

    def _minutes(self, mean: float) -> timedelta:
        return timedelta(minutes=self.rng.expovariate(1 / mean))

    def _emit(
        self,
        action: EventAction,
        at: datetime,
        *,
        reason: tuple[str, str | None] | None = None,
        inspection: Callable[[], dict[str, Any]] | None = None,
        breakage: dict[str, Any] | None = None,
    ) -> Outcome | None:
        """The event at `at`, unless that is after `as_of` (None: the job stops there)."""
        if at > self.generator.as_of:
            return None
        floor = self.generator.floor
        here = floor.stages[self.progress.stage or self.route.rule.stages[0]]
        outcome = apply(
            self.progress,
            action,
            route=self.route.rule,
            here=here.code,
            reason=reason[0] if reason else None,
            reason_return_stage=reason[1] if reason else None,
            inspected=inspection is not None,
        )
        if isinstance(outcome, Refusal):
            raise AssertionError(f"the generator planned a refused event: {outcome.message}")
        pool = floor.inspectors if here.inspection else floor.technicians
        self.events.append(
            _Event(
                at=at,
                job_id=self.job_id,
                stage_id=here.id,
                station_id=self.rng.choice(here.stations),
                operator_id=self.rng.choice(pool),
                action=action,
                reason_code=reason[0] if reason else None,
                to_stage_id=floor.stages[outcome.rework_stage].id if outcome.rework_stage else None,
                inspection=inspection() if inspection else None,
                breakage=breakage,
            )
        )
        self._close_redone(outcome.progress, at)
        self.progress = outcome.progress
        self.reworks += outcome.reworks
        self.breakages += outcome.breakages
        self.changed_at = at
        self.clock = at
        return outcome

    def _close_redone(self, progress: Progress, at: datetime) -> None:
        """A rework or breakage flag clears once the job is past the stage where it happened
        (flags._still_redoing), or when it leaves the lab."""
        stages = self.route.rule.stages
        position = stages.index(progress.stage) if progress.stage in stages else 0
        still = []
        for kind, stage, raised, reason in self.redo:
            if not progress.active or position > stages.index(stage):
                self.redone.append((kind, reason, raised, at))
            else:
                still.append((kind, stage, raised, reason))
        self.redo = still

    def run(self, template: _RxTemplate, design: LensDesign, profile: str) -> None:
        rng = self.rng
        floor = self.generator.floor
        clock = self.clock + self._minutes(WAIT_BEFORE_ROUTE)
        held = rng.random() < HOLD
        for _visit in range(MAX_STAGE_VISITS):
            if not self.progress.active:
                return
            stage = floor.stages[self.progress.stage or ""]
            clock += self._minutes(QUEUE_WAIT.get(stage.code, DEFAULT_QUEUE_WAIT))
            if held:
                held = False
                hold = rng.choice(floor.reasons[ReasonKind.hold])
                if not self._emit(EventAction.hold, clock, reason=hold):
                    return
                clock += self._minutes(6 * 60)
                if not self._emit(EventAction.release, clock):
                    return
            if not self._emit(EventAction.start, clock):
                return
            work = self.route.minutes[stage.code] * rng.uniform(0.7, 1.6)
            clock += timedelta(minutes=work)
            if not self._finish_stage(stage, clock, template, design, profile):
                return
            clock = self.clock

    def _finish_stage(
        self,
        stage: _StageInfo,
        at: datetime,
        template: _RxTemplate,
        design: LensDesign,
        profile: str,
    ) -> bool:
        """Completes, fails QC or breaks at the stage; False once `as_of` stops the job."""
        rng = self.rng
        floor = self.generator.floor
        if stage.inspection:
            self.attempts += 1
            failed = self.reworks < MAX_REWORKS and rng.random() < QC_FAIL
            defect = rng.choice(floor.reasons[ReasonKind.defect]) if failed else None

            inspection = partial(
                self.generator.inspection,
                template,
                design,
                profile,
                self.job_id,
                self.attempts,
                defect[0] if defect else None,
                self._drift(),
            )
            if defect is not None:
                outcome = self._emit(EventAction.rework, at, reason=defect, inspection=inspection)
                if outcome is not None:
                    why = f"Failed at {stage.name} ({defect[0]})"
                    self.redo.append((FlagKind.rework, stage.code, at, why))
                return outcome is not None
            return self._emit(EventAction.complete, at, inspection=inspection) is not None
        if self.breakages < MAX_BREAKAGES and rng.random() < BREAKAGE_AT.get(stage.code, 0.0):
            reason = rng.choice(floor.reasons[ReasonKind.breakage])
            outcome = self._emit(
                EventAction.breakage, at, reason=reason, breakage=self._breakage(reason[0], design)
            )
            if outcome is not None:
                why = f"Broke at {stage.name} ({reason[0]})"
                self.redo.append((FlagKind.breakage, stage.code, at, why))
            return outcome is not None
        outcome = self._emit(EventAction.complete, at)
        if outcome is not None and not outcome.progress.active:
            self.finished_at = at
        return outcome is not None

    def _drift(self) -> float:
        """The planted drift if the job's lenses were last edged at the drifting station
        within its last days (else 0)."""
        floor, as_of = self.generator.floor, self.generator.as_of
        stage = floor.stages.get(DRIFT_STAGE)
        edged = [
            event
            for event in self.events
            if stage is not None
            and event.stage_id == stage.id
            and event.action == EventAction.complete
        ]
        if not edged or edged[-1].station_id != floor.drifting_station:
            return 0.0
        return DRIFT_SPH if edged[-1].at >= as_of - timedelta(days=DRIFT_DAYS) else 0.0

    def _breakage(self, reason_code: str, design: LensDesign) -> dict[str, Any]:
        lens = self.rng.random() < 0.9
        part = BreakagePart.lens if lens else BreakagePart.frame
        eyes = self.rng.choice(["R", "L", "RL"]) if lens else ""
        costs = self.generator.floor.lab.breakage_costs
        cost, currency = breakage_cost(costs, part, design, eyes)
        return {
            "job_id": self.job_id,
            "stage_id": self.generator.floor.stages[self.progress.stage or ""].id,
            "reason_code": reason_code,
            "part": part,
            "eyes": eyes,
            "cost": cost,
            "currency": currency,
            "replacement_blanks": [],
            "reversed_at": None,
            "reversed_by_id": None,
            "reversal_reason": None,
        }

    def cleared_flags(
        self, promised_at: datetime, zone: Any
    ) -> list[tuple[FlagKind, str, datetime, datetime]]:
        """The flags the job had and that cleared: reworks and breakages redone, late past its
        promise once it shipped. The open ones are the sweep's to raise (at the end)."""
        flags = list(self.redone)
        if self.finished_at is not None and self.finished_at > promised_at:
            promised = local_text(promised_at, zone)
            flags.append(
                (FlagKind.late, f"Promised for {promised}.", promised_at, self.finished_at)
            )
        return flags


def bulk_seed(
    session: Session,
    lab_id: int,
    job_count: int,
    *,
    seed: int = 7,
    as_of: datetime,
    history: timedelta = timedelta(days=365),
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, int]:
    """Adds `job_count` jobs ordered evenly over `history` up to `as_of`, each as far along its
    route as its events by `as_of` take it, to a lab configured as the demo's (`seed_demo`
    with `job_count=0`). Returns rows written per table. `progress(done, total)` is told
    every 1 % of jobs. Runs in the session's transaction; the caller commits."""
    floor = _LabFloor(session, lab_id)
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        # Random UUIDs land all over their index: a bigger page cache (1 GiB, this
        # connection only) keeps it in memory instead of re-reading pages per row.
        connection.exec_driver_sql("PRAGMA cache_size = -1048576")
    # The KPIs' stage times and counts and the sweep's flags are written under the same rule.
    tables = [model.__tablename__ for model in (*_Writers.ORDER, KpiStageTime, KpiStageBucket)]
    with _foreign_keys_checked_once(connection, tables):
        written = _write_history(session, floor, job_count, seed, as_of, history, progress)
        # The KPIs' queue and cycle times, as the ingest records them (one statement).
        record_stage_times(session)
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql(f'ANALYZE "{KpiStageTime.__tablename__}"')
        # The KPIs' job counts: its jobs were written past the session's hooks.
        recount_jobs(session, lab_id)
        # The open jobs' ETAs and flags as of now, by the app's own rules.
        learn_stage_times(session, lab_id, as_of)
        sweep(session, lab_id, as_of)
    return written


def _write_history(
    session: Session,
    floor: _LabFloor,
    job_count: int,
    seed: int,
    as_of: datetime,
    history: timedelta,
    progress: Callable[[int, int], None] | None,
) -> dict[str, int]:
    """`bulk_seed`'s jobs and their events, sign-ins, inspections, breakages and cleared
    flags, written in time order; rows written per table."""
    writers = _Writers(session.connection())
    rng = random.Random(seed)
    generator = _Generator(session, floor, writers, rng, as_of, IngestRules().tolerances)
    start = as_of - history
    generator.sign_in_everyone(start - timedelta(hours=1))
    first_number = int(next_job_number(session, floor.lab.id)[1:])
    step = max(1, job_count // 100)
    try:
        for index in range(job_count):
            ordered_at = start + history * ((index + rng.random()) / job_count)
            generator.write_events_before(ordered_at)
            generator.job(first_number + index, ordered_at)
            if writers.full():
                writers.flush()
            if progress is not None and ((index + 1) % step == 0 or index + 1 == job_count):
                progress(index + 1, job_count)
        generator.write_events_before(as_of + timedelta(seconds=1))
    except BaseException:
        writers.background.close(raise_failure=False)  # the generator's error is the one told
        raise
    return writers.finish()
