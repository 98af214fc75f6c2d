"""Jobs: orders checked (catalogue, Rx, route) and created, access-scoped reads, lookup by scan,
timeline."""

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeGuard

from sqlalchemy import Select, func, or_, select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, lazyload, load_only, selectinload
from sqlalchemy.orm.interfaces import ORMOption

from core.optics.rx import SphCyl, transpose
from server.domain.aftersales_policy import schedule_follow_ups
from server.domain.auth import (
    LAB_ROLES,
    ORDER_ROLES,
    LabPrincipal,
    PersonPrincipal,
    Principal,
    StationPrincipal,
)
from server.domain.errors import Conflict, Forbidden, Invalid, InvalidFields, NotFound
from server.domain.flags import WITHOUT_PRESCRIPTION, refresh_job
from server.feed import append_update
from server.labconfig import CatalogueConfig
from server.models import (
    Eye,
    Job,
    JobStatus,
    JobType,
    Lab,
    LensDesign,
    PrescriptionEye,
    Role,
    Route,
    Stage,
    StageEvent,
    Store,
    utcnow,
)
from server.schemas import JobCreate, PrescriptionEyeIn, on_step

# An order is entered when it is placed: one dated further ahead than a clock can be off is a
# typo, and so is a promise more than a year after the order.
MAX_ORDER_CLOCK_AHEAD = timedelta(hours=1)
MAX_PROMISE = timedelta(days=366)
FRAME_SIZES = frozenset({"type", "a_mm", "b_mm", "dbl_mm", "ed_mm"})

Problem = tuple[str, str]  # (field path such as "right.sph", message)


@dataclass(frozen=True)
class CheckedOrder:
    """What a valid order resolves to in the lab: as the job stores it."""

    store: Store
    route: Route
    frame: dict[str, Any]  # a catalogue frame's sizes filled in
    eyes: dict[Eye, PrescriptionEyeIn]  # in minus cylinder


def lab_catalogue(session: Session, lab_id: int) -> CatalogueConfig:
    """The lab's catalogue; before `config load` an empty one (only the Rx step is checked)."""
    return CatalogueConfig.model_validate(session.get_one(Lab, lab_id).catalogue or {})


def date_problems(order: JobCreate, now: datetime) -> list[Problem]:
    problems = []
    if order.ordered_at > now + MAX_ORDER_CLOCK_AHEAD:
        problems.append(("ordered_at", "is in the future"))
    if order.promised_at > order.ordered_at + MAX_PROMISE:
        problems.append(("promised_at", "is more than a year after ordered_at"))
    return problems


def catalogue_problems(order: JobCreate, catalogue: CatalogueConfig) -> list[Problem]:
    """Lens, treatments and frame against the catalogue; an empty list checks nothing."""
    problems: list[Problem] = []
    materials = {material.code: material for material in catalogue.materials}
    material = materials.get(order.lens_material)
    if materials and material is None:
        problems.append(("lens_material", f"{order.lens_material!r} is not in the catalogue"))
    if material is not None and not math.isclose(order.lens_index, material.index):
        problems.append(("lens_index", f"{material.name} is index {material.index:.2f}"))
    if material is not None and order.lens_design not in material.designs:
        designs = ", ".join(material.designs)
        problems.append(("lens_material", f"{material.name} is made for {designs} only"))
    treatments = {treatment.code for treatment in catalogue.treatments}
    unknown = [code for code in order.treatments if treatments and code not in treatments]
    if unknown:
        problems.append(("treatments", f"not in the catalogue: {', '.join(unknown)}"))
    frames = {frame.code for frame in catalogue.frames}
    if frames and order.frame.code is not None and order.frame.code not in frames:
        problems.append(("frame.code", f"{order.frame.code!r} is not in the catalogue"))
    return problems


def rx_problems(order: JobCreate, rx_step: float) -> list[Problem]:
    """Powers in the lab's step, and each cylinder in the form the order says it is written in
    (a sign typed wrong changes the lens, so it is refused rather than guessed)."""
    problems: list[Problem] = []
    for side, eye in (("right", order.right), ("left", order.left)):
        if eye is None:
            continue
        for name in ("sph", "cyl", "add"):
            value = getattr(eye, name)
            if value is not None and not on_step(value, rx_step):
                problems.append((f"{side}.{name}", f"must be a multiple of {rx_step:g} D"))
        if order.cylinder_form == "minus" and eye.cyl > 0:
            problems.append((f"{side}.cyl", "plus cylinder in a minus-cylinder order"))
        if order.cylinder_form == "plus" and eye.cyl < 0:
            problems.append((f"{side}.cyl", "minus cylinder in a plus-cylinder order"))
    return problems


def minus_cylinder(eye: PrescriptionEyeIn) -> PrescriptionEyeIn:
    """The eye as stored: a plus cylinder transposed, its verification powers too."""
    changes: dict[str, float | int | None] = {}
    if eye.cyl > 0:
        changes |= transpose(SphCyl(eye.sph, eye.cyl, eye.axis))._asdict()
    if eye.verify_sph is not None and eye.verify_cyl is not None and eye.verify_cyl > 0:
        sph, cyl, axis = transpose(SphCyl(eye.verify_sph, eye.verify_cyl, eye.verify_axis))
        # Compensated powers come in 0.01 D: keep them there after the addition.
        changes |= {"verify_sph": round(sph, 2), "verify_cyl": cyl, "verify_axis": axis}
    return eye.model_copy(update=changes)


def stored_eyes(order: JobCreate) -> dict[Eye, PrescriptionEyeIn]:
    eyes = ((Eye.R, order.right), (Eye.L, order.left))
    return {eye: minus_cylinder(rx) for eye, rx in eyes if rx is not None}


def _frame(order: JobCreate, catalogue: CatalogueConfig) -> dict[str, Any]:
    """The frame as ordered; a catalogue frame's type and sizes are the catalogue's."""
    frame = order.frame.model_dump(exclude_none=True)
    known = next((f for f in catalogue.frames if f.code == order.frame.code), None)
    if known is not None:
        frame |= known.model_dump(include=FRAME_SIZES, exclude_none=True)
        frame.setdefault("description", known.name)
    return frame


def check_order(
    session: Session, principal: Principal, order: JobCreate, now: datetime | None = None
) -> CheckedOrder:
    """Every refusal of an order at once (InvalidFields), the API's and the order page's
    alike, or what the order resolves to. Who may order for which store is checked first
    (Forbidden); whether the lab's numbers are free is `check_new_order`'s."""
    person = principal if isinstance(principal, PersonPrincipal) else None
    # The lab itself (a lab token, the `lenstrack` command) orders for any store: DCS import.
    if not isinstance(principal, LabPrincipal) and (
        person is None or person.role not in ORDER_ROLES
    ):
        raise Forbidden("role", "only lab managers, admins and store staff create jobs")
    store = session.scalar(
        select(Store).where(Store.lab_id == principal.lab_id, Store.code == order.store_code)
    )
    if person and person.role == Role.store_staff and store and store.id != person.store_id:
        raise Forbidden("store_code", "store staff create jobs for their own store only")
    catalogue = lab_catalogue(session, principal.lab_id)
    problems = date_problems(order, now or utcnow())
    if store is None:
        problems.append(("store_code", f"unknown store {order.store_code!r}"))
    route = None
    try:
        route = select_route(
            session, principal.lab_id, order.job_type, order.lens_design, order.surfaced
        )
    except Invalid as error:
        problems.extend(error.problems)
    problems += catalogue_problems(order, catalogue) + rx_problems(order, catalogue.rx_step)
    problems += store_number_problems(principal, order)
    if problems:
        raise InvalidFields(problems)
    assert store is not None and route is not None  # each missing one is a problem above
    return CheckedOrder(store, route, _frame(order, catalogue), stored_eyes(order))


def check_new_order(
    session: Session, principal: Principal, order: JobCreate, now: datetime | None = None
) -> CheckedOrder:
    """`check_order`, and the numbers it gives (the lab's) not held by an active job
    (Conflict)."""
    checked = check_order(session, principal, order, now)
    _ensure_numbers_free(session, principal.lab_id, order.job_number, order.tray_number)
    return checked


def sees_one_store(principal: Principal) -> TypeGuard[PersonPrincipal]:
    """Store staff (and any role added later without lab rights) see one store at most."""
    return isinstance(principal, PersonPrincipal) and principal.role not in LAB_ROLES


# The numbers only the lab gives: field -> who gives it, as store staff are told.
LAB_NUMBERS = {"job_number": "assigned by the lab", "tray_number": "set by the lab"}


def store_number_problems(principal: Principal, order: JobCreate) -> list[Problem]:
    """Store staff give no job or tray number. Numbers are one namespace for the whole lab
    (stations scan them): were a store to choose one, whether it is free would tell the
    store that another store's job holds it. So the lab assigns a store's job number, and
    its tray is the lab's to set."""
    if not sees_one_store(principal):
        return []
    return [
        (field, f"{who}; leave it out")
        for field, who in LAB_NUMBERS.items()
        if getattr(order, field) is not None
    ]


def visible_jobs(principal: Principal) -> Select[tuple[Job]]:
    """All jobs this principal may see: store staff only their own store's, in the query."""
    statement = select(Job).where(Job.lab_id == principal.lab_id)
    if sees_one_store(principal):
        statement = statement.where(Job.store_id == (principal.store_id or -1))
    return statement


def select_route(
    session: Session, lab_id: int, job_type: JobType, design: LensDesign, surfaced: bool
) -> Route:
    routes = session.scalars(select(Route).where(Route.lab_id == lab_id).order_by(Route.id))
    for route in routes:
        if job_type in route.job_types and design in route.designs and route.surfaced == surfaced:
            return route
    kind = "surfaced" if surfaced else "stock"
    raise Invalid("lens_design", f"no route configured for a {kind} {design} {job_type} job")


# A lab's first assigned number: six digits keep a wand scan of it well above the length a
# station takes for typing (J1 would be read as two keystrokes, not a scan).
FIRST_JOB_NUMBER = 100001
# Draws of the next job number for one order, each lost only to a concurrent order.
NUMBER_DRAWS = 5


def next_job_number(session: Session, lab_id: int) -> str:
    """The highest J-number (J + digits) plus one, at least J100001: free, since none above
    it exists."""
    candidates = session.scalars(
        select(Job.job_number)
        .where(Job.lab_id == lab_id, Job.job_number.like("J%"))
        .order_by(func.length(Job.job_number).desc(), Job.job_number.desc())
    )
    highest = next((int(n[1:]) for n in candidates if n[1:].isdigit()), 0)
    return f"J{max(highest + 1, FIRST_JOB_NUMBER)}"


def create_job(
    session: Session,
    principal: Principal,
    order: JobCreate,
    now: datetime | None = None,
    *,
    number: str | None = None,
) -> Job:
    """A new job, numbered as the order says (the lab's own number, e.g. from its LMS), else
    `number` (one the server chose: a remake's), else the lab's next J-number. A concurrent
    order may insert that same next number first (PostgreSQL; SQLite writers take turns):
    the unique index refuses the second, which draws again."""
    checked = check_new_order(session, principal, order, now)
    chosen = order.job_number or number
    for _ in range(NUMBER_DRAWS):
        job = _new_job(
            principal, order, checked, chosen or next_job_number(session, principal.lab_id)
        )
        try:
            with session.begin_nested():
                session.add(job)
        except IntegrityError as error:  # a concurrent order took a number since the check
            _ensure_numbers_free(session, principal.lab_id, order.job_number, order.tray_number)
            if chosen is None:
                continue
            raise Conflict("job_number", "another order took this number just now") from error
        refresh_job(session, job, utcnow(), changed=True)
        return job
    raise Conflict("job_number", "no job number could be assigned just now; submit again")


def _new_job(principal: Principal, order: JobCreate, checked: CheckedOrder, number: str) -> Job:
    return Job(
        lab_id=principal.lab_id,
        job_number=number,
        tray_number=order.tray_number,
        store_id=checked.store.id,
        patient_ref=order.patient_ref,
        job_type=order.job_type,
        priority=order.priority,
        ordered_at=order.ordered_at,
        promised_at=order.promised_at,
        lens_design=order.lens_design,
        lens_material=order.lens_material,
        lens_index=order.lens_index,
        surfaced=order.surfaced,
        treatments=order.treatments,
        frame=checked.frame,
        special_instructions=order.special_instructions,
        contact_declined=order.contact_declined,
        route_id=checked.route.id,
        current_stage_id=checked.route.steps[0].stage_id,
        status=JobStatus.queued,
        entered_by_id=principal.person_id if isinstance(principal, PersonPrincipal) else None,
        trace=order.trace.model_dump(mode="json", exclude_none=True) if order.trace else None,
        prescription=[
            PrescriptionEye(eye=eye, **rx.model_dump()) for eye, rx in checked.eyes.items()
        ],
    )


def _ensure_numbers_free(
    session: Session, lab_id: int, job_number: str | None, tray_number: str | None
) -> None:
    """The numbers an order gives are not held by an active job: told in detail, since only
    the lab gives numbers (`store_number_problems`)."""
    active = select(Job.id).where(Job.lab_id == lab_id, Job.is_active)
    if job_number and session.scalar(active.where(Job.job_number == job_number)) is not None:
        raise Conflict("job_number", f"job {job_number} is already active")
    if tray_number and session.scalar(active.where(Job.tray_number == tray_number)) is not None:
        raise Conflict("tray_number", f"tray {tray_number} is in use by an active job")


def get_job(session: Session, principal: Principal, job_id: int) -> Job:
    # Another store's job answers exactly like a missing one: existence is not disclosed.
    job = session.scalar(visible_jobs(principal).where(Job.id == job_id))
    if job is None:
        raise NotFound("job_id", f"no job {job_id}")
    return job


def lookup_job(session: Session, principal: Principal, code: str, *options: ORMOption) -> Job:
    """A scanned job or tray number: the active job first, else the latest by job number.
    `options` choose what is loaded with it."""
    scoped = visible_jobs(principal).options(*options)
    job = session.scalar(
        scoped.where(Job.is_active, or_(Job.job_number == code, Job.tray_number == code))
    )
    if job is None:
        job = session.scalar(scoped.where(Job.job_number == code).order_by(Job.id.desc()))
    if job is None:
        raise NotFound("job", f"no job or tray {code!r}")
    return job


def _station_list_stage(session: Session, station: StationPrincipal, stage: str | None) -> str:
    """A station lists only the jobs at its own stage (the cards it prefetches): any other
    job it reads one at a time, by the code it scanned, never a list of every store's jobs."""
    here = session.get_one(Stage, station.stage_id)
    if stage not in (None, here.code):
        raise Forbidden(
            "stage", f"station {station.name} lists only the jobs at its own stage, {here.code}"
        )
    return here.code


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)
MAX_ROW_ID = 2**31 - 1  # as the API's ids (server.api.deps.RowId)


@dataclass(frozen=True)
class JobCursor:
    """Where a page of `list_jobs` ended: its last job's promise and id, the list's order.
    The next page starts right there in the index, where an offset reads and skips every
    job before it (seconds at a million jobs)."""

    promised_at: datetime
    job_id: int

    def __str__(self) -> str:
        return f"{(self.promised_at - EPOCH) // MICROSECOND}.{self.job_id}"

    @classmethod
    def parse(cls, text: str) -> "JobCursor":
        """A cursor as `str` wrote it ("<microseconds since 1970>.<job id>"), else Invalid."""
        micros, _, job_id = text.partition(".")
        try:
            cursor = cls(EPOCH + int(micros) * MICROSECOND, int(job_id))
        except (ValueError, OverflowError) as error:
            raise Invalid("after", "not a cursor a page of this list gave") from error
        if not 0 < cursor.job_id <= MAX_ROW_ID:
            raise Invalid("after", "not a cursor a page of this list gave")
        return cursor


# What a list row shows (the lab page; schemas.JobSummary with its flags): up to 1,000 jobs
# loaded without their route, frame, trace or patient data.
LIST_ROW = (
    *WITHOUT_PRESCRIPTION,
    lazyload(Job.route),
    load_only(
        Job.job_number,
        Job.tray_number,
        Job.store_id,
        Job.priority,
        Job.promised_at,
        Job.current_stage_id,
        Job.status,
        Job.state_changed_at,
        Job.eta,
    ),
)
# A first page counts at most this many jobs: a count reads each (a whole table's took
# 60-120 ms at 200,000 jobs). `total_capped` says more match.
COUNT_REACH = 10_000
# Offsets reach this far: each skipped job is read (10,000: 72 ms at 200,000 jobs), where
# the cursor (`after`) starts in the index however deep.
OFFSET_REACH = 1_000


@dataclass(frozen=True)
class JobsPage:
    # Every job the filters match, counted on a first page only and up to COUNT_REACH:
    # `total_capped` says more match.
    total: int | None
    jobs: list[Job]
    next_cursor: JobCursor | None  # None on the last page
    total_capped: bool = False


def list_jobs(
    session: Session,
    principal: Principal,
    *,
    stage: str | None = None,
    status: JobStatus | None = None,
    active: bool | None = None,
    limit: int = 100,
    offset: int = 0,
    after: JobCursor | None = None,
    with_flags: bool = False,
) -> JobsPage:
    """Soonest promised first. Pages follow `next_cursor` (`after`); `offset` reaches
    OFFSET_REACH (Invalid beyond). `with_flags`: their open flags loaded with them (the lab
    page shows none)."""
    if offset > OFFSET_REACH:
        raise Invalid(
            "offset", f"is at most {OFFSET_REACH:,}; page on with after=<the page's next_cursor>"
        )
    statement = visible_jobs(principal)
    if isinstance(principal, StationPrincipal):
        stage = _station_list_stage(session, principal, stage)
    if stage is not None:
        # The stage's id as a value, not a join: the jobs then come from one index in order.
        stage_id = select(Stage.id).where(Stage.lab_id == principal.lab_id, Stage.code == stage)
        statement = statement.where(Job.current_stage_id == stage_id.scalar_subquery())
    if status is not None:
        statement = statement.where(Job.status == status)
    if active is not None:
        statement = statement.where(Job.is_active == active)
    total = None
    if after is None:
        # Counted in list order: from the page's index, also in the generic plan PostgreSQL
        # caches for a prepared statement (unordered, a rare status read the whole table).
        reach = statement.with_only_columns(Job.id).order_by(Job.promised_at, Job.id)
        reach = reach.limit(COUNT_REACH + 1).subquery()
        total = session.scalar(select(func.count()).select_from(reach)) or 0
    else:
        statement = statement.where(
            tuple_(Job.promised_at, Job.id) > (after.promised_at, after.job_id)
        )
    flags = selectinload(Job.open_flags) if with_flags else lazyload(Job.open_flags)
    page = statement.options(*LIST_ROW, flags).order_by(Job.promised_at, Job.id)
    jobs = list(session.scalars(page.limit(limit + 1).offset(offset)))
    more = len(jobs) > limit
    del jobs[limit:]
    last = jobs[-1] if more else None
    cursor = JobCursor(last.promised_at, last.id) if last else None
    if total is not None and total > COUNT_REACH:
        return JobsPage(COUNT_REACH, jobs, cursor, total_capped=True)
    return JobsPage(total, jobs, cursor)


def job_events(session: Session, job: Job) -> list[StageEvent]:
    """The job's events in the order they happened (device time on the server clock)."""
    return list(
        session.scalars(
            select(StageEvent)
            .where(StageEvent.job_id == job.id)
            .order_by(StageEvent.corrected_at, StageEvent.id)
        )
    )


def job_timeline(session: Session, principal: Principal, job_id: int) -> list[StageEvent]:
    return job_events(session, get_job(session, principal, job_id))


def _store_milestone(session: Session, principal: Principal, job_id: int) -> Job:
    if not isinstance(principal, PersonPrincipal) or principal.role not in ORDER_ROLES:
        raise Forbidden("role", "store staff or a lab manager records pickup milestones")
    job = get_job(session, principal, job_id)  # store staff: their own store's jobs only
    if job.status != JobStatus.completed:
        raise Conflict("job_id", f"job {job.job_number} has not left the lab yet")
    return job


def mark_ready_for_pickup(session: Session, principal: Principal, job_id: int) -> Job:
    job = _store_milestone(session, principal, job_id)
    if job.ready_for_pickup_at is not None:
        raise Conflict("job_id", f"job {job.job_number} is marked ready already")
    job.ready_for_pickup_at = utcnow()
    append_update(
        session, job, "job_ready", {"ready_for_pickup_at": job.ready_for_pickup_at.isoformat()}
    )
    return job


def mark_delivered(session: Session, principal: Principal, job_id: int) -> Job:
    job = _store_milestone(session, principal, job_id)
    if job.ready_for_pickup_at is None:
        raise Conflict("job_id", f"job {job.job_number} is not marked ready for pickup")
    if job.delivered_at is not None:
        raise Conflict("job_id", f"job {job.job_number} was delivered already")
    job.delivered_at = utcnow()
    append_update(session, job, "job_delivered", {"delivered_at": job.delivered_at.isoformat()})
    schedule_follow_ups(session, job, job.delivered_at)
    return job
