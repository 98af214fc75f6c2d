"""Jobs: creation with route selection, access-scoped reads, lookup by scan, timeline."""

from datetime import datetime, timedelta

from sqlalchemy import Select, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from server.domain.auth import LAB_ROLES, PersonPrincipal, Principal
from server.domain.errors import Conflict, Forbidden, Invalid, NotFound
from server.domain.flags import refresh_job
from server.feed import append_update
from server.models import (
    Eye,
    Job,
    JobStatus,
    JobType,
    LensDesign,
    PrescriptionEye,
    Role,
    Route,
    Stage,
    StageEvent,
    Store,
    utcnow,
)
from server.schemas import JobCreate

JOB_CREATORS = frozenset({Role.lab_manager, Role.admin, Role.store_staff})
# An order is entered when it is placed: one dated further ahead than a clock can be off is a
# typo, and so is a promise more than a year after the order.
MAX_ORDER_CLOCK_AHEAD = timedelta(hours=1)
MAX_PROMISE = timedelta(days=366)


def check_order_dates(order: JobCreate, now: datetime) -> None:
    if order.ordered_at > now + MAX_ORDER_CLOCK_AHEAD:
        raise Invalid("ordered_at", "is in the future")
    if order.promised_at > order.ordered_at + MAX_PROMISE:
        raise Invalid("promised_at", "is more than a year after ordered_at")


def visible_jobs(principal: Principal) -> Select[tuple[Job]]:
    """All jobs this principal may see: store staff only their own store's, in the query."""
    statement = select(Job).where(Job.lab_id == principal.lab_id)
    if isinstance(principal, PersonPrincipal) and principal.role not in LAB_ROLES:
        # Store staff (and any role added later without lab rights) see one store at most.
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


def create_job(
    session: Session, principal: Principal, order: JobCreate, now: datetime | None = None
) -> Job:
    if not isinstance(principal, PersonPrincipal) or principal.role not in JOB_CREATORS:
        raise Forbidden("role", "only lab managers, admins and store staff create jobs")
    check_order_dates(order, now or utcnow())
    store = session.scalar(
        select(Store).where(Store.lab_id == principal.lab_id, Store.code == order.store_code)
    )
    if store is None:
        raise Invalid("store_code", f"unknown store {order.store_code!r}")
    if principal.role == Role.store_staff and store.id != principal.store_id:
        raise Forbidden("store_code", "store staff create jobs for their own store only")
    route = select_route(
        session, principal.lab_id, order.job_type, order.lens_design, order.surfaced
    )
    job = Job(
        lab_id=principal.lab_id,
        job_number=order.job_number,
        tray_number=order.tray_number,
        store_id=store.id,
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
        frame=order.frame.model_dump(exclude_none=True),
        special_instructions=order.special_instructions,
        route_id=route.id,
        current_stage_id=route.steps[0].stage_id,
        status=JobStatus.queued,
        prescription=[
            PrescriptionEye(eye=eye, **rx.model_dump())
            for eye, rx in ((Eye.R, order.right), (Eye.L, order.left))
            if rx is not None
        ],
    )
    _ensure_numbers_free(session, principal.lab_id, order.job_number, order.tray_number)
    try:
        with session.begin_nested():
            session.add(job)
    except IntegrityError as error:  # a concurrent order took the number between check and insert
        raise Conflict("job_number", "job or tray number is already in use") from error
    refresh_job(session, job, utcnow(), changed=True)
    return job


def _ensure_numbers_free(
    session: Session, lab_id: int, job_number: str, tray_number: str | None
) -> None:
    active = select(Job.id).where(Job.lab_id == lab_id, Job.is_active)
    if session.scalar(active.where(Job.job_number == job_number)) is not None:
        raise Conflict("job_number", f"job {job_number} is already active")
    if tray_number and session.scalar(active.where(Job.tray_number == tray_number)) is not None:
        raise Conflict("tray_number", f"tray {tray_number} is in use by an active job")


def get_job(session: Session, principal: Principal, job_id: int) -> Job:
    # Another store's job answers exactly like a missing one: existence is not disclosed.
    job = session.scalar(visible_jobs(principal).where(Job.id == job_id))
    if job is None:
        raise NotFound("job_id", f"no job {job_id}")
    return job


def lookup_job(session: Session, principal: Principal, code: str) -> Job:
    """A scanned job or tray number: the active job first, else the latest by job number."""
    scoped = visible_jobs(principal)
    job = session.scalar(
        scoped.where(Job.is_active, or_(Job.job_number == code, Job.tray_number == code))
    )
    if job is None:
        job = session.scalar(scoped.where(Job.job_number == code).order_by(Job.id.desc()))
    if job is None:
        raise NotFound("job", f"no job or tray {code!r}")
    return job


def list_jobs(
    session: Session,
    principal: Principal,
    *,
    stage: str | None = None,
    status: JobStatus | None = None,
    active: bool | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[int, list[Job]]:
    statement = visible_jobs(principal)
    if stage is not None:
        statement = statement.join(Stage, Job.current_stage_id == Stage.id).where(
            Stage.code == stage
        )
    if status is not None:
        statement = statement.where(Job.status == status)
    if active is not None:
        statement = statement.where(Job.is_active == active)
    total = session.scalar(select(func.count()).select_from(statement.subquery())) or 0
    page = statement.order_by(Job.promised_at, Job.id).limit(limit).offset(offset)
    return total, list(session.scalars(page))


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


STORE_MILESTONE_ROLES = frozenset({Role.store_staff, Role.lab_manager, Role.admin})


def _store_milestone(session: Session, principal: Principal, job_id: int) -> Job:
    if not isinstance(principal, PersonPrincipal) or principal.role not in STORE_MILESTONE_ROLES:
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
    return job
