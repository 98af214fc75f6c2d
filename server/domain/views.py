"""Read models for every page (job list, store portal, WIP board): plain functions, scoped by
`visible_jobs`, returning dataclasses. Pages read only through here.

Times are shown in the lab's own time zone (`lab_time`); every function takes `now` so tests
control it.
"""

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, time, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ColumnElement,
    Row,
    Select,
    Subquery,
    and_,
    case,
    func,
    literal,
    or_,
    select,
    true,
    tuple_,
    union_all,
)
from sqlalchemy.orm import Session, defer

from server.domain import breakage, changes, inspection, orders
from server.domain.auth import LAB_ROLES, PersonPrincipal
from server.domain.errors import DomainError
from server.domain.flags import (
    AMBER_RANK,
    RED_FLAGS,
    RED_RANK,
    WITHOUT_PRESCRIPTION,
    flag_rank,
)
from server.domain.jobs import job_events, list_jobs, visible_jobs
from server.domain.lab_time import duration_text, lab_zone, local_text
from server.domain.orders import OrderChoices
from server.domain.shipping import ShipmentView, shipment_view
from server.models import (
    ChangeRequest,
    ChangeState,
    EventAction,
    FlagKind,
    Job,
    JobChange,
    JobFlag,
    JobStatus,
    Priority,
    ReasonCode,
    RemakeClass,
    Stage,
    StageEvent,
    Store,
)
from server.schemas import InspectionOut, JobCreate

# What a job shows for its patient once retention purged the personal data.
PURGED_PATIENT = "(purged)"
FLAG_LABELS = {
    FlagKind.late: "Late",
    FlagKind.at_risk: "At risk",
    FlagKind.stalled: "Stalled",
    FlagKind.on_hold: "On hold",
    FlagKind.rework: "Rework",
    FlagKind.breakage: "Breakage",
}


class Tone(StrEnum):
    red = "red"  # late, breakage or rework: tell the patient
    amber = "amber"  # at risk, stalled or on hold
    ready = "ready"  # left the lab / ready for pickup: the store acts
    normal = "normal"
    done = "done"  # delivered


class StoreFilter(StrEnum):
    all = "all"
    late = "late"
    rework = "rework"
    ready = "ready"


def scope_key(principal: PersonPrincipal) -> tuple[int, int | None]:
    """Principals with equal keys see the same jobs under `visible_jobs` (lab, or one store)."""
    store = None if principal.role in LAB_ROLES else (principal.store_id or -1)
    return principal.lab_id, store


def scope_name(session: Session, principal: PersonPrincipal) -> str:
    """Whose jobs a page shows: the person's store, or all stores for the lab."""
    if principal.store_id is None:
        return "All stores"
    return session.get_one(Store, principal.store_id).name


@dataclass(frozen=True)
class JobListRow:
    job_id: int
    job_number: str
    tray_number: str | None
    store_code: str
    stage: str | None
    status: JobStatus
    rush: bool
    promised: str


@dataclass(frozen=True)
class JobList:
    total: int  # every active job up to jobs.COUNT_REACH; `rows` holds the first JOB_LIST_LIMIT
    rows: tuple[JobListRow, ...]
    total_capped: bool = False  # more are active than `total`


JOB_LIST_LIMIT = 500


def job_list(session: Session, principal: PersonPrincipal, now: datetime) -> JobList:
    """The active jobs, soonest promised first."""
    zone = lab_zone(session, principal.lab_id)
    page = list_jobs(session, principal, active=True, limit=JOB_LIST_LIMIT)
    rows = tuple(
        JobListRow(
            job_id=job.id,
            job_number=job.job_number,
            tray_number=job.tray_number,
            store_code=job.store_code,
            stage=job.current_stage.name if job.current_stage else None,
            status=job.status,
            rush=job.priority == Priority.rush,
            promised=local_text(job.promised_at, zone, now),
        )
        for job in page.jobs
    )
    assert page.total is not None  # a first page
    return JobList(page.total, rows, page.total_capped)


@dataclass(frozen=True)
class FlagView:
    kind: FlagKind
    label: str
    reason: str


@dataclass(frozen=True)
class StoreRow:
    job_id: int
    job_number: str
    tray_number: str | None
    patient_ref: str
    rush: bool
    status: JobStatus
    state: str  # "At Edging (in progress)", "Shipped: on its way", "Ready for pickup"
    step: int  # 1-based position on the route; the route length when it left the lab
    steps: int
    promised: str
    promised_at: datetime  # the list's order (StoreKey)
    eta: str | None
    eta_after_promise: bool
    flags: tuple[FlagView, ...]
    tone: Tone
    can_mark_ready: bool
    can_mark_delivered: bool

    @property
    def progress(self) -> float:
        return self.step / self.steps if self.steps else 0.0


def _state(job: Job) -> str:
    if job.delivered_at is not None:
        return "Delivered to the patient"
    if job.ready_for_pickup_at is not None:
        return "Ready for pickup"
    if job.status == JobStatus.completed:
        return "Shipped by the lab"
    if job.status == JobStatus.cancelled:
        return "Cancelled"
    stage = job.current_stage.name if job.current_stage else "the lab"
    return f"At {stage} ({job.status.value.replace('_', ' ')})"


_FLAG_TONES = {RED_RANK: Tone.red, AMBER_RANK: Tone.amber}


def _tone(job: Job, kinds: set[FlagKind]) -> Tone:
    if (rank := flag_rank(kinds)) is not None:  # the rule the job's stored flag_rank keeps
        return _FLAG_TONES[rank]
    if job.delivered_at is not None:
        return Tone.done
    if job.status == JobStatus.completed:
        return Tone.ready
    return Tone.normal


def _step(job: Job) -> tuple[int, int]:
    stage_ids = [step.stage_id for step in job.route.steps]
    if not job.is_active:
        return len(stage_ids), len(stage_ids)
    position = stage_ids.index(job.current_stage_id) if job.current_stage_id in stage_ids else 0
    return position + 1, len(stage_ids)


def store_row(job: Job, zone: ZoneInfo, now: datetime) -> StoreRow:
    flags = tuple(
        FlagView(flag.kind, FLAG_LABELS[flag.kind], flag.reason)
        for flag in sorted(job.open_flags, key=lambda flag: flag.kind not in RED_FLAGS)
    )
    step, steps = _step(job)
    shipped = job.status == JobStatus.completed
    return StoreRow(
        job_id=job.id,
        job_number=job.job_number,
        tray_number=job.tray_number,
        patient_ref=job.patient_ref or PURGED_PATIENT,
        rush=job.priority == Priority.rush,
        status=job.status,
        state=_state(job),
        step=step,
        steps=steps,
        promised=local_text(job.promised_at, zone, now),
        promised_at=job.promised_at,
        eta=local_text(job.eta, zone, now) if job.eta else None,
        eta_after_promise=job.eta is not None and job.eta > job.promised_at,
        flags=flags,
        tone=_tone(job, {flag.kind for flag in flags}),
        can_mark_ready=shipped and job.ready_for_pickup_at is None,
        can_mark_delivered=(
            shipped and job.ready_for_pickup_at is not None and job.delivered_at is None
        ),
    )


# What a store row shows of a job: no prescription, no frame shape or treatments (JSON decoded
# per job).
_ROW_ONLY = (*WITHOUT_PRESCRIPTION, defer(Job.frame), defer(Job.trace), defer(Job.treatments))
# The jobs on a store's list: still in the lab, or finished and not collected by the patient.
_UNDELIVERED = and_(Job.status == JobStatus.completed, Job.delivered_at.is_(None))


# The store list's first page and each "Show more" (rows): a counter screen shows about six
# rows at a time; each row costs its job loaded and its patient reference decrypted.
STORE_PAGE_SIZE = 50
TONE_ORDER = tuple(Tone)  # the store list's order: red rows first, then amber, …

_UNFLAGGED = Job.flag_rank.is_(None)
# `_tone` in SQL, tone by tone: the store list's jobs (still in the lab, or shipped and not
# delivered) of each, from the worst open flag as the job keeps it (`flags.flag_rank`), then
# its own columns; each tone is one index range in list order, read up to the page's end
# (ordered by a computed tone, every open job of the store was read and its flags probed).
_TONES: dict[Tone, ColumnElement[bool]] = {
    Tone.red: and_(Job.flag_rank == RED_RANK, or_(Job.is_active, _UNDELIVERED)),
    Tone.amber: and_(Job.flag_rank == AMBER_RANK, or_(Job.is_active, _UNDELIVERED)),
    Tone.ready: and_(_UNFLAGGED, _UNDELIVERED),
    Tone.normal: and_(
        _UNFLAGGED, Job.is_active, Job.delivered_at.is_(None), Job.status != JobStatus.completed
    ),
    Tone.done: and_(_UNFLAGGED, Job.is_active, Job.delivered_at.is_not(None)),
}


def _has_open_flag(kinds: frozenset[FlagKind]) -> ColumnElement[bool]:
    """The job has an open flag of one of `kinds` (one probe of uq_job_flag_open per kind)."""
    return (
        select(JobFlag.id)
        .where(JobFlag.job_id == Job.id, JobFlag.cleared_at.is_(None), JobFlag.kind.in_(kinds))
        .exists()
    )


@dataclass(frozen=True)
class _Filter:
    """`matches` in SQL: which of the list's jobs a filter shows, and the only tones they can
    have (a late, rework or breakage flag is red; a shipped job is never in the lab or
    delivered), so the others' ranges are not read at all."""

    shows: ColumnElement[bool]
    tones: tuple[Tone, ...]


_FILTERS: dict[StoreFilter, _Filter] = {
    StoreFilter.all: _Filter(true(), TONE_ORDER),
    StoreFilter.late: _Filter(_has_open_flag(frozenset({FlagKind.late})), (Tone.red,)),
    StoreFilter.rework: _Filter(
        _has_open_flag(frozenset({FlagKind.rework, FlagKind.breakage})), (Tone.red,)
    ),
    StoreFilter.ready: _Filter(
        Job.status == JobStatus.completed, (Tone.red, Tone.amber, Tone.ready)
    ),
}


def _store_jobs(principal: PersonPrincipal, tone: Tone, view: StoreFilter) -> Select[tuple[Job]]:
    """The store list's jobs of `tone` that `view` shows (a row shows the patient reference,
    never the prescription); `visible_jobs` keeps them to what the principal may see."""
    statement = visible_jobs(principal).where(_TONES[tone], _FILTERS[view].shows)
    return statement.options(*_ROW_ONLY)


@dataclass(frozen=True, order=True)
class StoreKey:
    """Where a row sits on the store list (tone, promise, id): a page ends at its last key
    and the next starts after it in the same order, however the rows before it changed."""

    tone: int  # position in TONE_ORDER
    promised_at: datetime
    job_id: int


@dataclass(frozen=True)
class StorePage:
    rows: list[StoreRow]
    more: StoreKey | None  # the last row's key when more rows follow; None at the end


def store_key(row: StoreRow) -> StoreKey:
    return StoreKey(TONE_ORDER.index(row.tone), row.promised_at, row.job_id)


def store_page(
    session: Session,
    principal: PersonPrincipal,
    now: datetime,
    view: StoreFilter,
    after: StoreKey | None,
    limit: int,
) -> StorePage:
    """A page of the store's open jobs under `view`: the ones needing attention first, then
    by promised time; read tone by tone, each range cut in the database where the page ends."""
    jobs: list[Job] = []
    for tone in _FILTERS[view].tones:
        rank = TONE_ORDER.index(tone)
        if after is not None and rank < after.tone:
            continue
        statement = _store_jobs(principal, tone, view)
        if after is not None and rank == after.tone:
            statement = statement.where(
                tuple_(Job.promised_at, Job.id) > (after.promised_at, after.job_id)
            )
        wanted = limit + 1 - len(jobs)
        jobs.extend(session.scalars(statement.order_by(Job.promised_at, Job.id).limit(wanted)))
        if len(jobs) > limit:
            break
    zone = lab_zone(session, principal.lab_id)
    rows = [store_row(job, zone, now) for job in jobs[:limit]]
    return StorePage(rows, store_key(rows[-1]) if len(jobs) > limit else None)


def store_counts(session: Session, principal: PersonPrincipal) -> dict[StoreFilter, int]:
    """How many open jobs each filter shows, in one statement: each tone's range read once,
    counting there the rows of each filter that can show that tone."""
    tones = [
        _store_jobs(principal, tone, StoreFilter.all).with_only_columns(
            *(
                func.count(case((shown.shows, 1))) if tone in shown.tones else literal(0)
                for shown in _FILTERS.values()
            )
        )
        for tone in TONE_ORDER
    ]
    totals = session.execute(union_all(*tones)).all()
    return {view: sum(row[index] for row in totals) for index, view in enumerate(_FILTERS)}


def store_row_by_id(
    session: Session, principal: PersonPrincipal, job_id: int, now: datetime
) -> StoreRow | None:
    """One row for a live refresh; None once the job no longer belongs on the store list."""
    job = session.scalar(
        visible_jobs(principal)
        .where(Job.id == job_id, or_(Job.is_active, _UNDELIVERED))
        .options(*_ROW_ONLY)
    )
    return store_row(job, lab_zone(session, principal.lab_id), now) if job else None


def matches(row: StoreRow, view: StoreFilter) -> bool:
    """Whether `view` shows the row (`_FILTERS` in SQL), for a row a live update brings."""
    kinds = {flag.kind for flag in row.flags}
    match view:
        case StoreFilter.late:
            return FlagKind.late in kinds
        case StoreFilter.rework:
            return bool(kinds & {FlagKind.rework, FlagKind.breakage})
        case StoreFilter.ready:
            return row.status == JobStatus.completed
        case _:
            return True


@dataclass(frozen=True)
class FlagEntry:
    flag_id: int
    job_id: int
    job_number: str
    label: str
    reason: str
    raised: str
    red: bool
    open: bool


def flag_feed(
    session: Session, principal: PersonPrincipal, now: datetime, limit: int = 15
) -> list[FlagEntry]:
    """The latest flags raised on the visible jobs, newest first, open or since cleared."""
    zone = lab_zone(session, principal.lab_id)
    # The newest flags are read from their index, each job checked by its key, until `limit`
    # of them belong to visible jobs: never the visible ids of a year first (`IN`), and not a
    # join, which SQLite's sampled statistics start from every job the store ever had.
    visible = visible_jobs(principal).with_only_columns(Job.id).where(Job.id == JobFlag.job_id)
    number = select(Job.job_number).where(Job.id == JobFlag.job_id).scalar_subquery()
    rows = session.execute(
        select(JobFlag, number)
        .where(visible.exists(), JobFlag.kind != FlagKind.at_risk)
        .order_by(JobFlag.raised_at.desc(), JobFlag.id.desc())
        .limit(limit)
    )
    return [
        FlagEntry(
            flag_id=flag.id,
            job_id=flag.job_id,
            job_number=job_number,
            label=FLAG_LABELS[flag.kind],
            reason=flag.reason,
            raised=local_text(flag.raised_at, zone, now),
            red=flag.kind in RED_FLAGS,
            open=flag.cleared_at is None,
        )
        for flag, job_number in rows
    ]


@dataclass(frozen=True)
class StepView:
    stage: str
    state: str  # done | current | todo
    started: str | None
    completed: str | None
    operators: str  # initials of who started and completed it, e.g. "AT · BK"


@dataclass(frozen=True)
class EventView:
    at: str
    action: str
    stage: str
    station: str
    operator: str | None
    reason: str | None  # "B-CHIP · Chip or crack at edging"
    note: str | None


@dataclass(frozen=True)
class ValueChange:
    field: str  # "Right SPH", "Frame type"
    old: str
    new: str


@dataclass(frozen=True)
class HistoryEntry:
    """One changed value of the order (JobChange)."""

    at: str
    who: str
    change: ValueChange
    request_id: int | None  # the change request it came with


@dataclass(frozen=True)
class RequestView:
    id: int
    state: ChangeState
    requested: str  # "today 14:32 by Nora North"
    decided: str | None
    decline_reason: str | None
    return_stage: str | None  # where accepting sent the job (name)
    changes: tuple[ValueChange, ...]  # old: the job's value now, or before it was accepted


@dataclass(frozen=True)
class JobLink:
    job_id: int
    job_number: str
    remake_class: str | None
    reason: str | None


@dataclass(frozen=True)
class JobDetail:
    row: StoreRow
    store_code: str
    lens: str
    steps: tuple[StepView, ...]
    problems: tuple[EventView, ...]  # rework and breakage history
    events: tuple[EventView, ...]  # newest first
    qc: tuple[InspectionOut, ...]  # QC attempts, first to last
    history: tuple[HistoryEntry, ...]  # changed values, newest first
    requests: tuple[RequestView, ...]  # change requests, newest first
    remake_of: JobLink | None
    remakes: tuple[JobLink, ...]
    cancel_reason: str | None
    in_lab: bool  # still editable or cancellable (not shipped, not cancelled)
    started: bool  # production started: edits and a store's cancel are requests
    pending_request: bool
    can_remake: bool  # shipped (or delivered)
    shipment: ShipmentView | None = None  # how it left the lab: carrier, tracking, box


def _event_view(
    event: StageEvent, reasons: dict[str, str], zone: ZoneInfo, now: datetime
) -> EventView:
    reason = None
    if event.reason_code:
        description = reasons.get(event.reason_code)
        reason = f"{event.reason_code} · {description}" if description else event.reason_code
    return EventView(
        at=local_text(event.corrected_at, zone, now),
        action=event.action.value,
        stage=event.stage.name,
        station=event.station.name,
        operator=event.operator_initials,
        reason=reason,
        note=event.note,
    )


def _steps(job: Job, events: list[StageEvent], zone: ZoneInfo, now: datetime) -> list[StepView]:
    """Each route stage with its latest start and completion (a redo shows the last pass)."""
    starts: dict[int, StageEvent] = {}
    completes: dict[int, StageEvent] = {}
    for event in events:
        if event.action == EventAction.start:
            starts[event.stage_id] = event
        elif event.action == EventAction.complete:
            completes[event.stage_id] = event
    here, _ = _step(job)
    views = []
    for position, route_step in enumerate(job.route.steps, start=1):
        stage_id = route_step.stage_id
        if not job.is_active or position < here:
            state = "done"
        else:
            state = "current" if position == here else "todo"
        start, complete = starts.get(stage_id), completes.get(stage_id)
        if state != "done":
            complete = None  # a completion from before a rework belongs to the old pass
        people = [who for e in (start, complete) if e and (who := e.operator_initials)]
        views.append(
            StepView(
                stage=route_step.stage.name,
                state=state,
                started=local_text(start.corrected_at, zone, now) if start else None,
                completed=local_text(complete.corrected_at, zone, now) if complete else None,
                operators=" · ".join(dict.fromkeys(people)),
            )
        )
    return views


def job_detail(
    session: Session, principal: PersonPrincipal, job_id: int, now: datetime
) -> JobDetail | None:
    """The job page: None for a job this principal may not see (as for a missing one)."""
    job = session.scalar(visible_jobs(principal).where(Job.id == job_id))
    if job is None:
        return None
    zone = lab_zone(session, principal.lab_id)
    events = job_events(session, job)
    reasons = dict(
        session.execute(
            select(ReasonCode.code, ReasonCode.description).where(ReasonCode.lab_id == job.lab_id)
        ).all()
    )
    views = [_event_view(event, reasons, zone, now) for event in events]
    reversals = breakage.reversal_reasons(session, job)
    problems = [
        replace(view, reason=f"{view.reason or 'no reason'} · reversed: {reversals[event.id]}")
        if event.id in reversals
        else view
        for view, event in zip(views, events, strict=True)
        if event.action in (EventAction.rework, EventAction.breakage)
    ]
    requests = session.scalars(
        select(ChangeRequest).where(ChangeRequest.job_id == job.id).order_by(ChangeRequest.id)
    ).all()
    history = session.scalars(
        select(JobChange).where(JobChange.job_id == job.id).order_by(JobChange.id)
    ).all()
    return JobDetail(
        shipment=shipment_view(session, job.id, zone, now),
        row=store_row(job, zone, now),
        store_code=job.store_code,
        lens=f"{job.lens_design.value} {job.lens_material} {job.lens_index:g}",
        steps=tuple(_steps(job, events, zone, now)),
        problems=tuple(problems),
        events=tuple(reversed(views)),
        qc=tuple(inspection.job_inspections(session, job)),
        history=tuple(
            HistoryEntry(
                at=local_text(change.changed_at, zone, now),
                who=change.person.name if change.person else "the lab",
                change=_value_change(change.field, change.old_value, change.new_value, zone),
                request_id=change.change_request_id,
            )
            for change in reversed(history)
        ),
        requests=tuple(
            request_view(job, request, history, zone, now) for request in reversed(requests)
        ),
        remake_of=(
            _link(job.remake_of, job.remake_class, job.remake_reason) if job.remake_of else None
        ),
        remakes=tuple(
            _link(remake, remake.remake_class, remake.remake_reason) for remake in job.remakes
        ),
        cancel_reason=job.cancel_reason,
        in_lab=job.status not in (JobStatus.completed, JobStatus.cancelled),
        started=bool(events),  # changes.production_started: any stage event
        pending_request=any(r.state == ChangeState.pending for r in requests),
        can_remake=job.status == JobStatus.completed,
    )


FIELD_NAMES = {
    "right": "Right",
    "left": "Left",
    "frame": "Frame",
    "job_number": "Job number",
    "tray_number": "Tray",
    "patient_ref": "Patient",
    "job_type": "Job type",
    "priority": "Priority",
    "promised_at": "Promised",
    "lens_design": "Design",
    "lens_material": "Material",
    "lens_index": "Index",
    "surfaced": "Surfaced",
    "treatments": "Treatments",
    "special_instructions": "Instructions",
    "trace": "Frame shape",
    "status": "Status",
    "cancel_reason": "Cancel reason",
    "remake_of": "Remake of",
    "remakes": "Remakes",
}
SIGNED = frozenset({"sph", "cyl", "add", "verify_sph", "verify_cyl"})


def field_name(path: str) -> str:
    """'right.sph' → 'Right SPH', 'frame.a_mm' → 'Frame A mm', 'promised_at' → 'Promised'."""
    head, _, name = path.partition(".")
    words = FIELD_NAMES.get(head, head.replace("_", " ").capitalize())
    if name:
        short = name.upper() if name in SIGNED or name == "axis" else name.replace("_", " ")
        words = f"{words} {short}"
    return words


def value_text(path: str, value: object, zone: ZoneInfo) -> str:
    """A changed value as a person reads it: powers signed, times local, lists joined."""
    name = path.rpartition(".")[2]
    match value:
        case None | [] | "":
            return "—"
        case bool():
            return "yes" if value else "no"
        case float() | int() if name in SIGNED:
            return f"{value:+.2f}"
        case float():
            return f"{value:g}"
        case list():
            return ", ".join(str(item) for item in value)
        case dict():
            return "a traced shape" if path == "trace" else str(value)
        case str() if path == "promised_at":
            return local_text(datetime.fromisoformat(value), zone)
    return (
        str(value).replace("_", " ") if path in ("status", "priority", "job_type") else str(value)
    )


def _value_change(path: str, old: object, new: object, zone: ZoneInfo) -> ValueChange:
    return ValueChange(field_name(path), value_text(path, old, zone), value_text(path, new, zone))


def request_view(
    job: Job,
    request: ChangeRequest,
    history: Sequence[JobChange],
    zone: ZoneInfo,
    now: datetime,
) -> RequestView:
    """A change request with old → new per value: the old value is the one it replaced once
    accepted, else the job's value now (which it keeps if declined)."""
    replaced = {c.field: c.old_value for c in history if c.change_request_id == request.id}
    current = _current_values(job) | {"status": job.status.value}
    by = request.requested_by.name if request.requested_by else "the lab"
    decided = None
    if request.decided_at is not None:
        who = request.decided_by.name if request.decided_by else "the lab"
        decided = f"{local_text(request.decided_at, zone, now)} by {who}"
    return RequestView(
        id=request.id,
        state=request.state,
        requested=f"{local_text(request.requested_at, zone, now)} by {by}",
        decided=decided,
        decline_reason=request.decline_reason,
        return_stage=request.return_stage.name if request.return_stage else None,
        changes=tuple(
            _value_change(path, replaced.get(path, current.get(path)), new, zone)
            for path, new in request.changes.items()
        ),
    )


REMAKE_CLASS_NAMES = {
    RemakeClass.doctor_redo: "doctor redo",
    RemakeClass.lab_redo: "lab redo",
    RemakeClass.warranty: "warranty",
    RemakeClass.non_adapt: "non-adapt",
    RemakeClass.other: "other",
}


def _current_values(job: Job) -> dict[str, object]:
    """The job's order values by path; none for an order stored under older rules."""
    try:
        return changes.order_values(changes.order_of(job))
    except DomainError:
        return {}


def _link(job: Job, remake_class: RemakeClass | None, reason: str | None) -> JobLink:
    label = REMAKE_CLASS_NAMES[remake_class] if remake_class else None
    return JobLink(job.id, job.job_number, label, reason)


@dataclass(frozen=True)
class OrderEdit:
    """The edit page: the job's order for the form, and whether saving edits or requests."""

    order: JobCreate | None  # None: not editable here (see note)
    choices: OrderChoices | None
    started: bool
    editable: bool
    title: str
    note: str | None


def order_edit(
    session: Session, principal: PersonPrincipal, job_id: int, now: datetime
) -> OrderEdit | None:
    job = session.scalar(visible_jobs(principal).where(Job.id == job_id))
    if job is None:
        return None
    started = changes.production_started(session, job)
    pending = started and any(
        request.state == ChangeState.pending
        for request in session.scalars(select(ChangeRequest).where(ChangeRequest.job_id == job.id))
    )
    editable = job.status not in (JobStatus.completed, JobStatus.cancelled) and not pending
    note = None
    try:
        order = changes.order_of(job)
    except DomainError as error:
        return OrderEdit(None, None, started, False, f"Order {job.job_number}", error.message)
    if job.status == JobStatus.completed:
        note = "This job has left the lab: open a remake from the job page to make it again."
    elif job.status == JobStatus.cancelled:
        note = "This order is cancelled."
    elif pending:
        note = "A change request for this job is waiting for the lab."
    elif started:
        note = "Production has started: your changes go to the lab as a change request."
    return OrderEdit(
        order=order,
        choices=orders.order_choices(session, principal),
        started=started,
        editable=editable,
        title=f"{'Request a change to' if started else 'Edit'} order {job.job_number}",
        note=note,
    )


@dataclass(frozen=True)
class QueueItem:
    """A pending change request as the lab manager decides it."""

    job_id: int
    job_number: str
    store_code: str
    state: str  # where the job is now
    request: RequestView
    cancel: bool  # the store asks to cancel the order
    stages: tuple[tuple[str, str], ...]  # (code, name): the route the job would be on
    suggested: str | None  # the stage the change needs (code); None: it stays where it is
    problem: str | None  # why accepting would be refused as the request stands


def _queue_item(
    session: Session, request: ChangeRequest, zone: ZoneInfo, now: datetime
) -> QueueItem:
    job = request.job
    cancel = changes.CANCEL in request.changes
    stages: tuple[tuple[str, str], ...] = ()
    suggested = problem = None
    if not cancel:
        try:
            plan = changes.plan_return(session, job, request.changes)
        except DomainError as error:
            problem = error.message
        else:
            stages = tuple((step.stage.code, step.stage.name) for step in plan.route.steps)
            suggested = plan.stage.code if plan.stage else None
    return QueueItem(
        job_id=job.id,
        job_number=job.job_number,
        store_code=job.store_code,
        state=_state(job),
        request=request_view(job, request, (), zone, now),
        cancel=cancel,
        stages=stages,
        suggested=suggested,
        problem=problem,
    )


def change_queue(session: Session, principal: PersonPrincipal, now: datetime) -> list[QueueItem]:
    """The pending change requests, oldest first."""
    zone = lab_zone(session, principal.lab_id)
    pending = changes.change_requests(session, principal, ChangeState.pending)
    return [_queue_item(session, request, zone, now) for request in pending]


def change_queue_item(
    session: Session, principal: PersonPrincipal, job_id: int, now: datetime
) -> QueueItem | None:
    """The job's pending request for a live refresh; None once there is none."""
    visible = visible_jobs(principal).with_only_columns(Job.id)
    request = session.scalar(
        select(ChangeRequest).where(
            ChangeRequest.job_id == job_id,
            ChangeRequest.job_id.in_(visible),
            ChangeRequest.state == ChangeState.pending,
        )
    )
    return (
        _queue_item(session, request, lab_zone(session, principal.lab_id), now) if request else None
    )


@dataclass(frozen=True)
class WipCard:
    job_id: int
    stage_id: int
    job_number: str
    tray_number: str | None
    store_code: str
    status: JobStatus
    rush: bool
    late: bool
    flags: tuple[str, ...]  # labels of the open flags
    age: str  # how long in its current state at this stage
    ageing: str  # ok | old (past half the stalled limit) | stalled
    since: datetime


@dataclass(frozen=True)
class StageColumn:
    stage_id: int
    code: str
    name: str
    done_today: int


@dataclass(frozen=True)
class WipColumn:
    """A stage's active jobs: how many, and the cards of the oldest few."""

    stage_id: int
    count: int
    cards: tuple[WipCard, ...]  # oldest first (state_changed_at, id)


@dataclass(frozen=True)
class WipBoard:
    columns: tuple[StageColumn, ...]
    wip: dict[int, WipColumn]  # stage_id -> its active jobs, for each of `columns`
    done_today: int


# What a column shows: a big lab's floor holds thousands of active jobs, and nobody reads the
# 300th card of a column; the board counts the rest.
CARDS_PER_COLUMN = 40

# What a card shows of an active job, read as plain rows (no Job instances: building 2,754 of
# them with their flags was most of a big lab's board); `_card_rows` adds the store's code and
# the stage's stall limit, `_wip_cards` the open flags.
_CARD_COLUMNS = (
    Job.id,
    Job.current_stage_id,
    Job.job_number,
    Job.tray_number,
    Job.store_id,
    Job.status,
    Job.priority,
    Job.state_changed_at,
)


def _card_rows(jobs: Subquery) -> Select[Any]:
    """The rows of `jobs` (`_CARD_COLUMNS` and any more) with what their cards show of their
    store and stage, oldest first."""
    return (
        select(jobs, Store.code, Stage.stalled_after_minutes)
        .join(Store, jobs.c.store_id == Store.id)
        .join(Stage, jobs.c.current_stage_id == Stage.id)
        .order_by(jobs.c.state_changed_at, jobs.c.id)
    )


def _wip_cards(
    session: Session, rows: Sequence[Row[tuple[Any, ...]]], now: datetime
) -> list[WipCard]:
    """The cards of `rows` (`_card_rows`) with their open flags, read for these jobs only."""
    kinds: dict[int, set[FlagKind]] = {}
    if rows:
        flagged = select(JobFlag.job_id, JobFlag.kind).where(
            JobFlag.cleared_at.is_(None), JobFlag.job_id.in_([row.id for row in rows])
        )
        for job_id, kind in session.execute(flagged):
            kinds.setdefault(job_id, set()).add(kind)
    return [_wip_card(row, kinds.get(row.id, set()), now) for row in rows]


def _wip_card(row: Row[tuple[Any, ...]], kinds: set[FlagKind], now: datetime) -> WipCard:
    age = now - row.state_changed_at
    limit = timedelta(minutes=row.stalled_after_minutes)
    return WipCard(
        job_id=row.id,
        stage_id=row.current_stage_id,
        job_number=row.job_number,
        tray_number=row.tray_number,
        store_code=row.code,
        status=row.status,
        rush=row.priority == Priority.rush,
        late=FlagKind.late in kinds,
        flags=tuple(FLAG_LABELS[kind] for kind in FLAG_LABELS if kind in kinds),
        age=duration_text(age),
        ageing="stalled" if age > limit else "old" if age > limit / 2 else "ok",
        since=row.state_changed_at,
    )


def wip_card_by_id(
    session: Session, principal: PersonPrincipal, job_id: int, now: datetime
) -> WipCard | None:
    """The job's card for a live refresh; None once it is off the board."""
    job = visible_jobs(principal).where(Job.is_active, Job.id == job_id)
    rows = session.execute(_card_rows(job.with_only_columns(*_CARD_COLUMNS).subquery())).all()
    cards = _wip_cards(session, rows, now)
    return cards[0] if cards else None


def _wip_columns(
    session: Session, jobs: Select[tuple[Job]], per_column: int, now: datetime
) -> dict[int, WipColumn]:
    """Each stage's count of the active `jobs` and its `per_column` oldest cards (stages
    without one are left out): ranked and counted in SQL (ix_job_lab_wip), so only the cards
    shown are read. The ranked rows carry the card's job columns: joined back to job by id,
    PostgreSQL expected every active job back and scanned all of job."""
    oldest_first = (Job.state_changed_at, Job.id)
    ranked = (
        jobs.where(Job.is_active)
        .with_only_columns(
            *_CARD_COLUMNS,
            func.row_number()
            .over(partition_by=Job.current_stage_id, order_by=oldest_first)
            .label("place"),
            func.count().over(partition_by=Job.current_stage_id).label("jobs"),
        )
        .subquery()
    )
    rows = session.execute(_card_rows(ranked).where(ranked.c.place <= per_column)).all()
    cards: dict[int, list[WipCard]] = {}
    for card in _wip_cards(session, rows, now):
        cards.setdefault(card.stage_id, []).append(card)
    counts = {row.current_stage_id: row.jobs for row in rows}
    return {
        stage_id: WipColumn(stage_id, counts[stage_id], tuple(stage_cards))
        for stage_id, stage_cards in cards.items()
    }


def done_today(session: Session, principal: PersonPrincipal, now: datetime) -> dict[int, int]:
    """Jobs completed per stage since midnight in the lab's time zone (stage_id -> count)."""
    zone = lab_zone(session, principal.lab_id)
    midnight = datetime.combine(now.astimezone(zone).date(), time(), tzinfo=zone)
    completions = select(StageEvent.stage_id, func.count(func.distinct(StageEvent.job_id))).where(
        StageEvent.action == EventAction.complete, StageEvent.corrected_at >= midnight
    )
    # Today's completions come from their index, scoped by a join, never by `IN (the visible
    # job ids)` of a year: the lab's by their stages (a handful), a store's by their jobs.
    _, store = scope_key(principal)
    if store is None:
        scoped = completions.join(Stage, StageEvent.stage_id == Stage.id).where(
            Stage.lab_id == principal.lab_id
        )
    else:
        scoped = completions.join(Job, StageEvent.job_id == Job.id).where(
            visible_jobs(principal).whereclause
        )
    return dict(session.execute(scoped.group_by(StageEvent.stage_id)).all())


def wip_board(
    session: Session, principal: PersonPrincipal, now: datetime, per_column: int = CARDS_PER_COLUMN
) -> WipBoard:
    """Each stage of the lab with today's completions, its count of active jobs and the cards
    of its `per_column` oldest."""
    done = done_today(session, principal, now)
    stages = session.scalars(
        select(Stage).where(Stage.lab_id == principal.lab_id).order_by(Stage.position)
    )
    columns = tuple(
        StageColumn(stage.id, stage.code, stage.name, done.get(stage.id, 0)) for stage in stages
    )
    wip = _wip_columns(session, visible_jobs(principal), per_column, now)
    return WipBoard(
        columns,
        {c.stage_id: wip.get(c.stage_id, WipColumn(c.stage_id, 0, ())) for c in columns},
        sum(done.values()),
    )


def wip_column(
    session: Session, principal: PersonPrincipal, stage_id: int, per_column: int, now: datetime
) -> WipColumn:
    """One stage's count of active jobs and the cards of its `per_column` oldest (a board
    refills a column whose shown card left)."""
    jobs = visible_jobs(principal).where(Job.current_stage_id == stage_id)
    return _wip_columns(session, jobs, per_column, now).get(stage_id, WipColumn(stage_id, 0, ()))


def wip_counts(session: Session, principal: PersonPrincipal) -> dict[int, int]:
    """Active jobs per stage (stage_id -> count; stages without one are left out)."""
    active = visible_jobs(principal).where(Job.is_active, Job.current_stage_id.is_not(None))
    counts = active.with_only_columns(Job.current_stage_id, func.count()).group_by(
        Job.current_stage_id
    )
    return dict(session.execute(counts).all())
