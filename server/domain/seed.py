"""A demo lab: two stores, a station per stage, people, and jobs in varied states.

Job states are reached by ingesting real station events, so every timeline is genuine.
"""

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.contract import SignAction
from server.domain.aftersales import open_ticket
from server.domain.aftersales_policy import schedule_follow_ups
from server.domain.auth import PersonPrincipal, StationPrincipal, set_password
from server.domain.dcs_jobs import DcsFile, import_jobs
from server.domain.events import ingest_event, last_sequence
from server.domain.flags import learn_stage_times, sweep
from server.domain.inspection import ordered_pair
from server.domain.jobs import create_job
from server.domain.labsetup import apply_lab_config
from server.domain.remakes import open_remake
from server.labconfig import CatalogueConfig, LabConfig
from server.models import (
    EventAction,
    Eye,
    Job,
    JobStatus,
    JobType,
    LensDesign,
    Person,
    Priority,
    ReasonCode,
    ReasonKind,
    RemakeClass,
    Role,
    Station,
    Store,
    TicketClass,
    utcnow,
)
from server.schemas import DefectIn, EventIn, InspectionIn, JobCreate, PrescriptionEyeIn


@dataclass(frozen=True)
class DemoLogin:
    username: str
    password: str
    role: Role
    store: str | None
    badge: str | None


DEMO_PEOPLE = (
    DemoLogin("admin", "demo-admin-pass", Role.admin, None, None),
    DemoLogin("manager", "demo-manager-pass", Role.lab_manager, None, "B9001"),
    DemoLogin("qc", "demo-qc-pass", Role.qc_inspector, None, "B2001"),
    DemoLogin("tech1", "demo-tech-pass", Role.technician, None, "B1001"),
    DemoLogin("tech2", "demo-tech-pass", Role.technician, None, "B1002"),
    DemoLogin("north", "demo-store-pass", Role.store_staff, "NORTH", None),
    DemoLogin("south", "demo-store-pass", Role.store_staff, "SOUTH", None),
)
# Store staff who manage their store's messages (/store/settings); "south" is staff only.
STORE_MANAGERS = frozenset({"north"})
NAMES = {
    "admin": "Ada Admin",
    "manager": "Maria Lopez",
    "qc": "Quinn Carter",
    "tech1": "Tom Baker",
    "tech2": "Tina Brooks",
    "north": "Nora North",
    "south": "Sam South",
}
# Where the demo's lab manager is sent its SPC alerts (the demo's mail sink keeps them).
EMAILS = {"manager": "maria.lopez@lab.example"}


def _random_rx(rng: random.Random, design: LensDesign) -> PrescriptionEyeIn:
    cyl = rng.choice([0.0, 0.0, -0.25, -0.5, -0.75, -1.0, -1.5, -2.25])
    return PrescriptionEyeIn(
        sph=rng.randint(-24, 16) * 0.25,
        cyl=cyl,
        axis=rng.randint(1, 180) if cyl else None,
        add=rng.choice([1.0, 1.5, 1.75, 2.0, 2.5]) if design != LensDesign.SV else None,
        mono_pd=rng.randint(58, 70) / 2,
        fitting_height=rng.randint(16, 24) if design != LensDesign.SV else None,
    )


def seed_demo(
    session: Session,
    config: LabConfig,
    job_count: int = 200,
    seed: int = 7,
    progress: Callable[[int, int], None] | None = None,
) -> bool:
    """Seeds once; returns False (and changes nothing) if the demo lab already has jobs.
    `progress(done, total)` is told after each job and once more before the final sweep."""
    lab = apply_lab_config(session, config)
    if session.scalar(select(func.count(Job.id)).where(Job.lab_id == lab.id)):
        return False
    rng = random.Random(seed)
    stores = {
        store.code: store for store in session.scalars(select(Store).where(Store.lab_id == lab.id))
    }
    missing = sorted({login.store for login in DEMO_PEOPLE if login.store} - set(stores))
    if missing:
        raise ValueError(f"the demo needs the stores {', '.join(missing)} in the lab config")
    for login in DEMO_PEOPLE:
        if session.scalar(select(Person).where(Person.username == login.username)):
            continue
        person = Person(
            lab_id=lab.id,
            username=login.username,
            name=NAMES[login.username],
            role=login.role,
            badge_code=login.badge,
            store_id=stores[login.store].id if login.store else None,
            store_manager=login.username in STORE_MANAGERS,
            email=EMAILS.get(login.username),
        )
        set_password(person, login.password)
        session.add(person)
    session.flush()
    manager = session.scalars(select(Person).where(Person.role == Role.lab_manager)).first()
    assert manager is not None
    creator = PersonPrincipal(manager.id, lab.id, manager.role, None, manager.name)
    stations = {
        station.stage_id: station
        for station in session.scalars(select(Station).where(Station.lab_id == lab.id))
    }
    reasons = {
        kind: [r.code for r in session.scalars(select(ReasonCode).where(ReasonCode.kind == kind))]
        for kind in ReasonKind
    }
    floor = _DemoFloor(session, rng, stations, reasons, utcnow(), config.catalogue)
    for number in range(job_count):
        floor.seed_job(creator, stores, number)
        if progress is not None:
            progress(number + 1, job_count)
    # History is in place: learn stage times from it and bring ETAs and flags up to now.
    learn_stage_times(session, lab.id, floor.now)
    sweep(session, lab.id, floor.now)
    _seed_aftersales(session, lab.id, floor.now)
    return True


def _seed_aftersales(session: Session, lab_id: int, now: datetime) -> None:
    """NORTH's earliest shipped job delivered an hour after shipping (its follow-ups
    scheduled), and a ticket on it an hour after that: its SLA clocks run from then. Only
    one: the store's other shipped jobs stay to collect, as a lab's day has them."""
    staff = session.scalars(
        select(Person).where(Person.lab_id == lab_id, Person.username == "north")
    ).one()
    assert staff.store_id is not None
    north = PersonPrincipal(staff.id, lab_id, staff.role, staff.store_id, staff.name)
    shipped = session.scalars(
        select(Job)
        .where(Job.store_id == staff.store_id, Job.status == JobStatus.completed)
        .order_by(Job.state_changed_at)
        .limit(1)
    ).all()
    for job in shipped:
        job.ready_for_pickup_at = min(job.state_changed_at + timedelta(minutes=30), now)
        job.delivered_at = min(job.state_changed_at + timedelta(hours=1), now)
        schedule_follow_ups(session, job, job.delivered_at)
    if shipped:
        first = shipped[0]
        assert first.delivered_at is not None
        opened_at = min(first.delivered_at + timedelta(hours=1), now)
        open_ticket(
            session,
            north,
            first.id,
            TicketClass.lens_defect,
            "Fine scratch on the right lens",
            "Noticed at the first wear; visible in daylight near the centre.",
            opened_at,
        )


def seed_new_orders(session: Session, dcs_files: list[DcsFile]) -> list[Job]:
    """The demo's fresh work on top of its history: the seeded jobs' tickets count as printed
    (they are on the floor), then jobs arrive from another system's DCS files and a store
    remakes a shipped job, so "Print new tickets" on the WIP board prints just these."""
    manager = session.scalars(select(Person).where(Person.role == Role.lab_manager)).first()
    if manager is None:
        raise ValueError("seed the demo lab first: it has no lab manager")
    creator = PersonPrincipal(manager.id, manager.lab_id, manager.role, None, manager.name)
    now = utcnow()
    for job in session.scalars(select(Job).where(Job.lab_id == manager.lab_id)):
        job.ticket_printed_at = job.ticket_printed_at or now
    imported = import_jobs(session, creator, dcs_files)
    new = [session.get_one(Job, entry.job_id) for entry in imported if entry.job_id is not None]
    shipped = session.scalars(
        select(Job)
        .where(Job.lab_id == manager.lab_id, Job.status == JobStatus.completed)
        .order_by(Job.id)
    ).first()
    if shipped is not None:
        new.append(
            open_remake(
                session, creator, shipped.id, RemakeClass.doctor_redo, "New Rx from the optometrist"
            )
        )
    return new


class _DemoFloor:
    """Moves demo jobs along their routes by ingesting events from the stage's station."""

    def __init__(
        self,
        session: Session,
        rng: random.Random,
        stations: dict[int, Station],
        reasons: dict[ReasonKind, list[str]],
        now: datetime,
        catalogue: CatalogueConfig,
    ) -> None:
        self.catalogue = catalogue  # the demo orders only what the lab's catalogue offers
        self.session = session
        self.rng = rng
        self.stations = stations
        self.reasons = reasons
        self.now = now
        self.sequences = {
            station.id: last_sequence(session, station.id) for station in stations.values()
        }
        self.signed_in: set[tuple[int, str]] = set()  # (station id, badge)

    def seed_job(self, creator: PersonPrincipal, stores: dict[str, Store], number: int) -> None:
        rng = self.rng
        design = rng.choice([LensDesign.SV, LensDesign.SV, LensDesign.PAL, LensDesign.MF])
        catalogue = self.catalogue
        material = rng.choice([m for m in catalogue.materials if design in m.designs])
        ordered_at = self.now - timedelta(hours=rng.uniform(2, 72))
        order = JobCreate(
            job_number=f"J{100000 + number}",
            tray_number=f"{1 + number:04d}",
            store_code=rng.choice(list(stores)),
            patient_ref=f"P-{rng.randint(10000, 99999)}",
            job_type=rng.choices(list(JobType), weights=[85, 8, 5, 2])[0],
            priority=Priority.rush if rng.random() < 0.12 else Priority.regular,
            ordered_at=ordered_at,
            promised_at=ordered_at + timedelta(days=rng.choice([2, 3, 4, 5])),
            lens_design=design,
            lens_material=material.code,
            lens_index=material.index,
            surfaced=design != LensDesign.SV or rng.random() < 0.5,
            treatments=rng.sample([treatment.code for treatment in catalogue.treatments], k=2),
            # Half the frames are picked from the catalogue, the rest typed at the counter.
            frame={"code": rng.choice(catalogue.frames).code}
            if rng.random() < 0.5
            else {"type": rng.choice(["full_rim", "semi_rimless", "rimless"]), "a_mm": 52.0},
            right=_random_rx(rng, design),
            left=_random_rx(rng, design),
        )
        job = create_job(self.session, creator, order)
        self.session.flush()
        steps = job.route.steps
        done = rng.choice(range(len(steps) + 1))  # how far along the route it got
        # Each step takes ~45 minutes (start and complete, 3–40 minutes apart): start the
        # history so that it ends recently, as on a working floor, not days ago.
        history = timedelta(minutes=45 * done + rng.uniform(5, 150))
        clock = max(ordered_at + timedelta(minutes=10), self.now - history)
        badge = rng.choice(["B1001", "B1002"])
        for step in steps[:done]:
            clock = self._emit(job, step.stage_id, EventAction.start, clock, badge)
            if step.stage.code == "final_qc" and rng.random() < 0.08:
                defect = rng.choice(self.reasons[ReasonKind.defect])
                failed = self._inspection(job, defect)
                self._emit(job, step.stage_id, EventAction.rework, clock, badge, inspection=failed)
                return
            if step.stage.code == "final_qc":
                passed = self._inspection(job)
                clock = self._emit(
                    job, step.stage_id, EventAction.complete, clock, badge, inspection=passed
                )
                continue
            if step.stage.code == "edging" and rng.random() < 0.05:
                breakage = rng.choice(self.reasons[ReasonKind.breakage])
                self._emit(job, step.stage_id, EventAction.breakage, clock, badge, breakage)
                return
            clock = self._emit(job, step.stage_id, EventAction.complete, clock, badge)
        if done < len(steps):
            here = steps[done].stage_id
            roll = rng.random()
            if roll < 0.35:
                self._emit(job, here, EventAction.start, clock, badge)
            elif roll < 0.42:
                hold = rng.choice(self.reasons[ReasonKind.hold])
                self._emit(job, here, EventAction.hold, clock, badge, hold)

    def _inspection(self, job: Job, defect: str | None = None) -> InspectionIn:
        """A lensmeter reading within even a strict store's tolerance; a power defect puts the
        right sphere 0.25 D out."""
        rng = self.rng
        measured = ordered_pair(job).model_dump(exclude_none=True)
        for lens in (measured.get("R"), measured.get("L")):
            if lens is None:
                continue
            lens["sph"] = round(lens["sph"] + rng.uniform(-0.03, 0.03), 2)
            if lens.get("axis") is not None:  # a spherical order reads spherical
                lens["cyl"] = round(lens["cyl"] + rng.uniform(-0.02, 0.02), 2)
                lens["axis"] = min(180, max(1, lens["axis"] + rng.choice([-1, 0, 1])))
        if defect == "D-POWER" and "R" in measured:
            measured["R"]["sph"] = round(measured["R"]["sph"] + 0.25, 2)
        cosmetic = {"scratches": True, "coating": True, "frame_fit": defect != "D-FIT"}
        defects = (
            [DefectIn(eye=Eye.R if defect == "D-POWER" else None, code=defect)] if defect else []
        )
        return InspectionIn(measured=measured, cosmetic=cosmetic, defects=defects)

    def _emit(
        self,
        job: Job,
        stage_id: int,
        action: EventAction,
        clock: datetime,
        badge: str,
        reason_code: str | None = None,
        inspection: InspectionIn | None = None,
    ) -> datetime:
        station = self.stations[stage_id]
        if (station.id, badge) not in self.signed_in:
            # As a station tells the server, before any of the history (orders from 72 h ago).
            self.signed_in.add((station.id, badge))
            since = self.now - timedelta(hours=73)
            self._ingest(station, since, action=SignAction.sign_in, operator_badge=badge)
        at = min(clock + timedelta(minutes=self.rng.uniform(3, 40)), self.now)
        self._ingest(
            station,
            at,
            job=job.job_number,
            action=action,
            operator_badge=badge,
            reason_code=reason_code,
            inspection=inspection,
        )
        return at

    def _ingest(self, station: Station, at: datetime, **fields: object) -> None:
        self.sequences[station.id] += 1
        event = EventIn.model_validate(
            {
                "event_uuid": uuid.uuid4(),
                "sequence": self.sequences[station.id],
                "created_at": at,
                "sent_at": at,
                **fields,
            }
        )
        principal = StationPrincipal(station.id, station.lab_id, station.stage_id, station.name)
        ingest_event(self.session, principal, event, received_at=at)
