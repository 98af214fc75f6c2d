"""Edits and cancels of an order, and the change requests a lab manager decides.

Production has *started* once the job has any stage event (`production_started`), whatever
the event: from then on a station may have acted on the order's values. Before that, the
store (its own jobs) or a lab manager or admin changes the order directly. After it, an edit
— and a store's cancel — becomes a change request that a lab manager or admin accepts (the
job goes back to the stage the change requires, `plan_return`) or declines with a reason;
lab managers and admins cancel directly at any time before the job leaves the lab.

Every changed value is a `JobChange` row (old, new, who, when) named by its path into the
order: "right.sph", "frame.type", "treatments", "promised_at", "trace", "status".
"""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.lifecycle import return_stage
from server.domain.auth import LAB_ROLES, MANAGER_ROLES, ORDER_ROLES, PersonPrincipal, Principal
from server.domain.errors import Conflict, Forbidden, Invalid, NotFound
from server.domain.flags import refresh_job
from server.domain.jobs import (
    check_order,
    get_job,
    sees_one_store,
    select_route,
    visible_jobs,
)
from server.feed import append_update
from server.models import (
    ChangeRequest,
    ChangeState,
    Eye,
    Job,
    JobChange,
    JobStatus,
    PrescriptionEye,
    Role,
    Route,
    Stage,
    StageEvent,
    utcnow,
)
from server.schemas import FrameIn, JobCreate, PrescriptionEyeIn

EYES = {"right": Eye.R, "left": Eye.L}
# Order values whose change selects the job's route again.
ROUTE_FIELDS = frozenset({"job_type", "lens_design", "surfaced"})
# What the lenses are: a change makes them again from the route's first stage.
LENS_FIELDS = ROUTE_FIELDS | {"lens_material", "lens_index", "right", "left"}
FRAME_FIELDS = frozenset({"frame", "trace"})
FRAME_STAGE = "edging"  # where lenses are cut to the frame's shape
# A cancel asked for after production started travels as a change request of these values.
CANCEL = "status"


@dataclass(frozen=True)
class EditResult:
    """An edit or cancel: applied (`changes`), or waiting for the lab (`request`)."""

    job: Job
    request: ChangeRequest | None
    changes: list[JobChange]


@dataclass(frozen=True)
class ReturnPlan:
    """Where an accepted change leaves the job: its route and the stage it goes back to
    (None: it stays where it is)."""

    route: Route
    stage: Stage | None


def production_started(session: Session, job: Job) -> bool:
    """Whether any station event was recorded for the job (see the module docstring)."""
    first = select(StageEvent.id).where(StageEvent.job_id == job.id).limit(1)
    return session.scalar(first) is not None


def order_of(job: Job) -> JobCreate:
    """The job's current order, as an edit form shows it and a remake copies it."""
    if job.personal_data_purged_at is not None:
        raise Invalid("job_id", f"job {job.job_number}'s patient data was purged after retention")
    eyes = {row.eye: row for row in job.prescription}
    stored = {
        "job_number": job.job_number,
        "tray_number": job.tray_number,
        "store_code": job.store_code,
        "patient_ref": job.patient_ref,
        "job_type": job.job_type,
        "priority": job.priority,
        "ordered_at": job.ordered_at,
        "promised_at": job.promised_at,
        "lens_design": job.lens_design,
        "lens_material": job.lens_material,
        "lens_index": job.lens_index,
        "surfaced": job.surfaced,
        "treatments": job.treatments,
        "frame": job.frame,
        "special_instructions": job.special_instructions,
        "contact_declined": job.contact_declined,
        **{
            name: {key: getattr(eyes[eye], key) for key in PrescriptionEyeIn.model_fields}
            for name, eye in EYES.items()
            if eye in eyes
        },
        "trace": job.trace,
    }
    try:  # not strict: the trace is stored as JSON lists, the shape holds tuples
        return JobCreate.model_validate(stored, strict=False)
    except ValidationError as error:  # stored under older rules than the order checks now
        raise Invalid("job_id", f"job {job.job_number}'s stored order does not validate") from error


def order_values(order: JobCreate) -> dict[str, Any]:
    """The order's changeable values as {path: JSON value}, one path per eye and frame value
    (of an order as the job stores it, `_as_stored`).

    Not changeable: the store (an order stays with its store) and when it was ordered.
    """
    data = order.model_dump(mode="json", exclude={"store_code", "ordered_at", "cylinder_form"})
    # Promises are made to the minute (the order form's precision), in UTC for comparing.
    promised = order.promised_at.astimezone(UTC).replace(second=0, microsecond=0)
    data["promised_at"] = promised.isoformat()
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key in EYES or key == "frame":
            values |= {
                f"{key}.{name}": item for name, item in (value or {}).items() if item is not None
            }
        else:
            values[key] = value
    return values


def diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """{path: (old, new)} for every value that differs, in the order's own order."""
    paths = list(before) + [path for path in after if path not in before]
    return {
        path: (before.get(path), after.get(path))
        for path in paths
        if before.get(path) != after.get(path)
    }


def _head(path: str) -> str:
    return path.split(".", 1)[0]


def with_changes(job: Job, changes: dict[str, Any]) -> JobCreate:
    """The job's order with a change request's {path: new value} laid over it, validated as
    a new order is; Invalid names the first wrong field."""
    data = order_of(job).model_dump(mode="json")
    for path, value in changes.items():
        head, _, name = path.partition(".")
        if name:
            data[head] = {**(data.get(head) or {}), name: value}
        else:
            data[head] = value
    for eye in EYES:  # every value of an eye gone: the eye is no longer ordered
        if data.get(eye) is not None and all(v is None for v in data[eye].values()):
            data[eye] = None
    try:
        return JobCreate.model_validate(data, strict=False)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "changes"
        raise Invalid(field, first["msg"]) from error


def _person(principal: Principal, roles: frozenset[Role], what: str) -> PersonPrincipal:
    if not isinstance(principal, PersonPrincipal) or principal.role not in roles:
        raise Forbidden("role", what)
    return principal


def _editor(principal: Principal) -> PersonPrincipal:
    return _person(principal, ORDER_ROLES, "store staff, lab managers and admins change orders")


def _decider(principal: Principal) -> PersonPrincipal:
    return _person(principal, MANAGER_ROLES, "only a lab manager or admin decides change requests")


def checked_reason(reason: str, field: str = "reason") -> str:
    reason = reason.strip()
    if not 3 <= len(reason) <= 200:
        raise Invalid(field, "give a reason of 3 to 200 characters")
    return reason


def _locked_job(session: Session, principal: Principal, job_id: int) -> Job:
    """The job, its row locked until the transaction ends: an edit and a station event
    never interleave (an edit checks whether production started, then writes)."""
    job = get_job(session, principal, job_id)
    session.execute(select(Job.id).where(Job.id == job.id).with_for_update())
    session.refresh(job)
    return job


def _still_in_lab(job: Job) -> None:
    if job.status == JobStatus.cancelled:
        raise Conflict("job_id", f"job {job.job_number} is cancelled")
    if job.status == JobStatus.completed:
        raise Conflict(
            "job_id", f"job {job.job_number} has left the lab; open a remake to make it again"
        )


def _pending(session: Session, job: Job) -> ChangeRequest | None:
    return session.scalar(
        select(ChangeRequest).where(
            ChangeRequest.job_id == job.id, ChangeRequest.state == ChangeState.pending
        )
    )


def _request(
    session: Session, job: Job, person: PersonPrincipal, changes: dict[str, Any], now: datetime
) -> ChangeRequest:
    """A pending change request; one at a time per job, so the lab decides on what it sees."""
    pending = _pending(session, job)
    if pending is not None:
        raise Conflict(
            "job_id",
            f"change request {pending.id} for job {job.job_number} is waiting for the lab; "
            "ask the lab to decide it first",
        )
    request = ChangeRequest(
        job_id=job.id, changes=changes, requested_by_id=person.person_id, requested_at=now
    )
    session.add(request)
    session.flush()
    append_update(session, job, "change_requested", {"change_request": request.id})
    return request


def _as_stored(
    session: Session, principal: Principal, job: Job, order: JobCreate, now: datetime
) -> tuple[JobCreate, Route]:
    """The edited order checked as a new order is (every refusal at once, numbers given by
    store staff too), in the form the job stores it (minus cylinder, a catalogue frame's
    sizes, its numbers kept where the edit gives none), with the route it takes."""
    if order.store_code != job.store_code:
        raise Invalid("store_code", "an order stays with its store; cancel it and order anew")
    if order.promised_at < job.ordered_at:
        raise Invalid("promised_at", "is before the order was placed")
    order = order.model_copy(update={"ordered_at": job.ordered_at})
    checked = check_order(session, principal, order, now)
    # A job always has a number; its tray is the lab's to set, so a store's edit keeps it.
    numbers = {"job_number": order.job_number or job.job_number}
    if sees_one_store(principal):
        numbers["tray_number"] = job.tray_number
    stored = order.model_copy(
        update={
            "right": checked.eyes.get(Eye.R),
            "left": checked.eyes.get(Eye.L),
            "frame": FrameIn.model_validate(checked.frame),
            "cylinder_form": "minus",
            **numbers,
        }
    )
    return stored, checked.route


def _number_free(session: Session, job: Job, field: str, value: str | None) -> None:
    """A number the lab gives the job is not held by another active job (only the lab changes
    numbers: `_as_stored` keeps them through a store's edit)."""
    column = Job.job_number if field == "job_number" else Job.tray_number
    taken = session.scalar(
        select(Job.id).where(
            Job.lab_id == job.lab_id, Job.is_active, column == value, Job.id != job.id
        )
    )
    if value is not None and taken is not None:
        raise Conflict(field, f"{value} is in use by another active job")


def _apply(
    session: Session,
    job: Job,
    order: JobCreate,
    route: Route,
    changed: dict[str, tuple[Any, Any]],
    person: PersonPrincipal,
    request: ChangeRequest | None,
    now: datetime,
) -> list[JobChange]:
    """Writes the changed values of `order` (as stored) to the job, each a JobChange row."""
    heads = {_head(path) for path in changed}
    for field in heads & {"job_number", "tray_number"}:
        _number_free(session, job, field, getattr(order, field))
    for head in heads:
        if head in EYES:
            rx: PrescriptionEyeIn | None = getattr(order, head)
            row = next((row for row in job.prescription if row.eye == EYES[head]), None)
            if row is not None and rx is None:
                job.prescription.remove(row)
            elif row is None and rx is not None:
                job.prescription.append(PrescriptionEye(eye=EYES[head], **rx.model_dump()))
            elif row is not None and rx is not None:
                for key, value in rx.model_dump().items():
                    setattr(row, key, value)
        elif head == "frame":
            job.frame = order.frame.model_dump(exclude_none=True)
        elif head == "trace":
            job.trace = (
                order.trace.model_dump(mode="json", exclude_none=True) if order.trace else None
            )
        else:
            setattr(job, head, getattr(order, head))
    if heads & ROUTE_FIELDS:
        job.route = route
    changes = [
        JobChange(
            job_id=job.id,
            field=path,
            old_value=old,
            new_value=new,
            person_id=person.person_id,
            changed_at=now,
            change_request_id=request.id if request else None,
        )
        for path, (old, new) in changed.items()
    ]
    session.add_all(changes)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError as error:  # a concurrent order took the number since the check
        raise Conflict("job_number", "job or tray number is already in use") from error
    return changes


def check_edit(
    session: Session, principal: Principal, job_id: int, order: JobCreate, now: datetime
) -> None:
    """An edit's refusals without saving it (what the edit form checks before it submits)."""
    _editor(principal)
    job = get_job(session, principal, job_id)
    _still_in_lab(job)
    _as_stored(session, principal, job, order, now)


def edit_order(
    session: Session,
    principal: Principal,
    job_id: int,
    order: JobCreate,
    now: datetime | None = None,
) -> EditResult:
    """`order` is the whole order as edited. Before production starts it is applied (the
    route chosen again if job type, design or surfacing changed); after, it becomes a
    pending change request and the job keeps its values."""
    person = _editor(principal)
    now = now or utcnow()
    job = _locked_job(session, principal, job_id)
    _still_in_lab(job)
    order, route = _as_stored(session, principal, job, order, now)
    changed = diff(order_values(order_of(job)), order_values(order))
    if not changed:
        raise Invalid("order", "nothing to change")
    if production_started(session, job):
        request = _request(session, job, person, {p: new for p, (_, new) in changed.items()}, now)
        return EditResult(job, request, [])
    changes = _apply(session, job, order, route, changed, person, None, now)
    job.current_stage = job.route.steps[0].stage  # not started: still at its first stage
    refresh_job(session, job, now, changed=True)
    return EditResult(job, None, changes)


def cancel_job(
    session: Session, principal: Principal, job_id: int, reason: str, now: datetime | None = None
) -> EditResult:
    """Cancels an order still in the lab. After production started only a lab manager or
    admin cancels at once; a store's cancel then becomes a change request."""
    person = _editor(principal)
    reason = checked_reason(reason)
    now = now or utcnow()
    job = _locked_job(session, principal, job_id)
    _still_in_lab(job)
    if person.role not in MANAGER_ROLES and production_started(session, job):
        request = _request(
            session, job, person, {CANCEL: JobStatus.cancelled.value, "cancel_reason": reason}, now
        )
        return EditResult(job, request, [])
    return EditResult(job, None, _cancel(session, job, reason, person, None, now))


def _cancel(
    session: Session,
    job: Job,
    reason: str,
    person: PersonPrincipal,
    request: ChangeRequest | None,
    now: datetime,
) -> list[JobChange]:
    change = JobChange(
        job_id=job.id,
        field=CANCEL,
        old_value=job.status.value,
        new_value=JobStatus.cancelled.value,
        person_id=person.person_id,
        changed_at=now,
        change_request_id=request.id if request else None,
    )
    session.add(change)
    job.status = JobStatus.cancelled
    job.status_before_hold = None
    job.is_active = False  # frees its job and tray numbers
    job.cancelled_at = now
    job.cancel_reason = reason
    job.state_changed_at = now
    for other in session.scalars(
        select(ChangeRequest).where(
            ChangeRequest.job_id == job.id, ChangeRequest.state == ChangeState.pending
        )
    ):
        if other is not request:  # nothing left to change on a cancelled order
            _decide(other, person, now, "the order was cancelled")
    session.flush()
    refresh_job(session, job, now, changed=True)  # an inactive job: flags cleared, no ETA
    return [change]


def plan_return(
    session: Session,
    job: Job,
    changes: dict[str, Any],
    override: str | None = None,
    stay: bool = False,
) -> ReturnPlan:
    """Where accepting these {path: new value} changes sends the job.

    Lens changes (Rx, design, material, index, surfacing, job type) go back to the route's
    first stage, a treatment change to its first coating stage (a batch stage: capacity > 1),
    a frame or trace change to edging — each the route's first stage when the route lacks
    it, by the lifecycle's `return_stage` rule. Anything else (promise, priority,
    instructions, numbers) leaves the job where it is, and so does a change needed at a
    stage the job has not reached yet (it meets the new values there); a job in progress at
    that very stage is queued there again. The manager may choose: `override`, a stage code
    on the route, or `stay` (where the job is, if its stage is on its route).
    """
    heads = {_head(path) for path in changes}
    route = job.route
    if heads & ROUTE_FIELDS:
        order = with_changes(job, changes)
        route = select_route(session, job.lab_id, order.job_type, order.lens_design, order.surfaced)
    stages = [step.stage for step in route.steps]
    codes = [stage.code for stage in stages]
    here = job.current_stage.code if job.current_stage else None
    if stay:
        if override is not None:
            raise Invalid("return_stage", "choose a return stage or to stay, not both")
        if here not in codes:
            raise Invalid("stay", f"the job's stage is not on its new route {route.name}")
        return ReturnPlan(route, None)
    if override is not None:
        if override not in codes:
            raise Invalid("return_stage", f"job {job.job_number}'s route has no stage {override!r}")
        return ReturnPlan(route, stages[codes.index(override)])
    wanted: list[int] = []
    if heads & LENS_FIELDS:
        wanted.append(0)
    if "treatments" in heads:
        coating = next((stage.code for stage in stages if stage.capacity > 1), None)
        wanted.append(codes.index(return_stage(codes, coating)))
    if heads & FRAME_FIELDS:
        wanted.append(codes.index(return_stage(codes, FRAME_STAGE)))
    if not wanted:
        return ReturnPlan(route, None)
    target = min(wanted)
    if here in codes:
        position = codes.index(here)
        if position < target or (position == target and job.status != JobStatus.in_progress):
            return ReturnPlan(route, None)
    return ReturnPlan(route, stages[target])


def _locked_request(session: Session, principal: Principal, request_id: int) -> ChangeRequest:
    request = get_change_request(session, principal, request_id)
    _locked_job(session, principal, request.job_id)
    session.refresh(request)
    if request.state != ChangeState.pending:
        raise Conflict(
            "change_request_id", f"change request {request.id} is {request.state} already"
        )
    return request


def _decide(
    request: ChangeRequest, person: PersonPrincipal, now: datetime, decline_reason: str | None
) -> None:
    request.state = ChangeState.declined if decline_reason else ChangeState.accepted
    request.decided_by_id = person.person_id
    request.decided_at = now
    request.decline_reason = decline_reason


def accept_change(
    session: Session,
    principal: Principal,
    request_id: int,
    return_stage_code: str | None = None,
    stay: bool = False,
    now: datetime | None = None,
) -> ChangeRequest:
    """Applies a pending request's values, each a JobChange linked to it, and sends the job
    back as `plan_return` says. The job is queued there: a changed order is not the lab's
    rework, so the rework count stays. All or nothing: a value that no longer validates, a
    taken job number or an unknown stage changes nothing."""
    person = _decider(principal)
    now = now or utcnow()
    request = _locked_request(session, principal, request_id)
    job = request.job
    _still_in_lab(job)
    if CANCEL in request.changes:
        if return_stage_code is not None or stay:
            raise Invalid("return_stage", "a cancelled order goes back to no stage")
        _decide(request, person, now, None)
        _cancel(session, job, request.changes["cancel_reason"], person, request, now)
        return request
    plan = plan_return(session, job, request.changes, return_stage_code, stay)
    order, route = _as_stored(session, principal, job, with_changes(job, request.changes), now)
    changed = diff(order_values(order_of(job)), order_values(order))
    _apply(session, job, order, route, changed, person, request, now)
    if plan.stage is not None:
        job.current_stage = plan.stage
        job.status = JobStatus.queued
        job.status_before_hold = None
        job.state_changed_at = now
    request.return_stage = plan.stage
    _decide(request, person, now, None)
    session.flush()
    refresh_job(session, job, now, changed=True)
    return request


def decline_change(
    session: Session,
    principal: Principal,
    request_id: int,
    reason: str,
    now: datetime | None = None,
) -> ChangeRequest:
    """Declines a pending request; the reason is shown to the store."""
    person = _decider(principal)
    reason = checked_reason(reason)
    request = _locked_request(session, principal, request_id)
    _decide(request, person, now or utcnow(), reason)
    append_update(session, request.job, "change_declined", {"change_request": request.id})
    session.flush()
    return request


def get_change_request(session: Session, principal: Principal, request_id: int) -> ChangeRequest:
    """A request on a job the principal may see; any other answers like a missing one."""
    visible = visible_jobs(principal).with_only_columns(Job.id)
    request = session.scalar(
        select(ChangeRequest).where(
            ChangeRequest.id == request_id, ChangeRequest.job_id.in_(visible)
        )
    )
    if request is None:
        raise NotFound("change_request_id", f"no change request {request_id}")
    return request


def change_requests(
    session: Session, principal: Principal, state: ChangeState | None = None
) -> list[ChangeRequest]:
    """The lab's change requests, oldest first (the queue a lab manager works through)."""
    if isinstance(principal, PersonPrincipal) and principal.role not in LAB_ROLES:
        raise Forbidden("role", "the change request queue is for the lab")
    visible = visible_jobs(principal).with_only_columns(Job.id)
    statement = select(ChangeRequest).where(ChangeRequest.job_id.in_(visible))
    if state is not None:
        statement = statement.where(ChangeRequest.state == state)
    return list(session.scalars(statement.order_by(ChangeRequest.requested_at, ChangeRequest.id)))


def job_change_requests(session: Session, principal: Principal, job_id: int) -> list[ChangeRequest]:
    job = get_job(session, principal, job_id)
    return list(
        session.scalars(
            select(ChangeRequest).where(ChangeRequest.job_id == job.id).order_by(ChangeRequest.id)
        )
    )


def job_changes(session: Session, principal: Principal, job_id: int) -> list[JobChange]:
    """The job's history of changed values, oldest first."""
    job = get_job(session, principal, job_id)
    return list(
        session.scalars(select(JobChange).where(JobChange.job_id == job.id).order_by(JobChange.id))
    )
