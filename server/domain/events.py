"""Event ingestion: each station event is stored once and moves its job's state with it.

An event is applied in one savepoint: the event row (an atomic `INSERT … ON CONFLICT DO
NOTHING` on its UUID, so a resend can never store it twice, even racing) and the job's new
state commit together or not at all.
"""

import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache

from sqlalchemy import CompoundSelect, Insert, func, select, union
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from core.optics import ToleranceFile, load_profiles
from server.domain.auth import StationPrincipal
from server.domain.breakage import record_breakage
from server.domain.errors import AlreadyRejected, Conflict, DomainError, Invalid
from server.domain.flags import refresh_job
from server.domain.inspection import check_verdict, judge, record_inspection, validate_defects
from server.domain.jobs import lookup_job
from server.models import (
    EventAction,
    Job,
    JobStatus,
    Person,
    ReasonCode,
    ReasonKind,
    RejectedEvent,
    Stage,
    StageEvent,
    utcnow,
)
from server.schemas import (
    DefectIn,
    EventIn,
    EventResult,
    FieldError,
    JobState,
    SequenceGap,
)

REASON_KIND_FOR_ACTION = {
    EventAction.hold: ReasonKind.hold,
    EventAction.breakage: ReasonKind.breakage,
    EventAction.rework: ReasonKind.defect,
}


@dataclass(frozen=True)
class Transition:
    stage_id: int | None
    status: JobStatus
    status_before_hold: JobStatus | None
    is_active: bool
    rework_increment: int = 0
    breakage_increment: int = 0
    to_stage_id: int | None = None


@cache
def _default_tolerances() -> ToleranceFile:
    return load_profiles()


@dataclass(frozen=True)
class IngestRules:
    """The server's policy for incoming events (from settings; defaults for tests and tools)."""

    max_clock_ahead: timedelta = timedelta(hours=1)
    tolerances: ToleranceFile = field(default_factory=_default_tolerances)


def _insert_ignoring(table: type[StageEvent | RejectedEvent], dialect: str) -> Insert:
    """An insert that does nothing when the row's event UUID is there already."""
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=["event_uuid"])
    if dialect == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing(index_elements=["event_uuid"])
    raise NotImplementedError(f"no atomic insert-or-ignore for {dialect}")


def _job_state(job: Job) -> JobState:
    return JobState(
        job_number=job.job_number,
        tray_number=job.tray_number,
        stage=job.current_stage.code if job.current_stage else None,
        status=job.status,
    )


def _reason(session: Session, lab_id: int, event: EventIn) -> ReasonCode | None:
    kind = REASON_KIND_FOR_ACTION.get(event.action)
    if kind is None or event.reason_code is None:
        if kind in (ReasonKind.hold, ReasonKind.breakage):
            raise Invalid("reason_code", f"a {event.action} needs a {kind} reason code")
        return None
    reason = session.scalar(
        select(ReasonCode).where(
            ReasonCode.lab_id == lab_id,
            ReasonCode.kind == kind,
            ReasonCode.code == event.reason_code,
        )
    )
    if reason is None:
        raise Invalid("reason_code", f"{event.reason_code!r} is not a {kind} reason code")
    return reason


def _furthest_back(session: Session, job: Job, defects: list[DefectIn]) -> str:
    """The code of the defect that sends the job furthest back along its route: redoing that
    stage redoes the later ones. On a tie, the one listed first.
    """
    reasons = {
        reason.code: reason
        for reason in session.scalars(
            select(ReasonCode).where(
                ReasonCode.lab_id == job.lab_id,
                ReasonCode.kind == ReasonKind.defect,
                ReasonCode.code.in_({defect.code for defect in defects}),
            )
        )
    }
    route = [step.stage_id for step in job.route.steps]
    return min(
        (defect.code for defect in defects),
        key=lambda code: route.index(_return_stage_id(job, reasons.get(code))),
    )


def _stage_by_code(session: Session, lab_id: int, code: str, field: str) -> Stage:
    stage = session.scalar(select(Stage).where(Stage.lab_id == lab_id, Stage.code == code))
    if stage is None:
        raise Invalid(field, f"unknown stage {code!r}")
    return stage


def _next_stage_id(job: Job, stage_id: int) -> int | None:
    stage_ids = [step.stage_id for step in job.route.steps]
    if stage_id not in stage_ids:
        return None
    position = stage_ids.index(stage_id)
    return stage_ids[position + 1] if position + 1 < len(stage_ids) else None


def _return_stage_id(job: Job, reason: ReasonCode | None) -> int:
    """The reason's return stage if this job's route has it, else the route's first stage
    (a stock lens with a power defect is picked again, not surfaced)."""
    route_stages = [step.stage_id for step in job.route.steps]
    if reason is not None and reason.return_stage_id in route_stages:
        return reason.return_stage_id
    return route_stages[0]


def plan_transition(
    session: Session,
    job: Job,
    station: StationPrincipal,
    event: EventIn,
    reason: ReasonCode | None,
) -> Transition:
    """What the event does to the job, or a Conflict saying why it cannot happen now."""
    here = job.current_stage_id
    station_stage = session.get_one(Stage, station.stage_id)
    keep = Transition(here, job.status, job.status_before_hold, job.is_active)
    if not job.is_active and event.action != EventAction.note:
        raise Conflict("job", f"job {job.job_number} is {job.status}; nothing more can happen")
    match event.action:
        case EventAction.note:
            return keep
        case EventAction.start:
            if job.status == JobStatus.on_hold:
                raise Conflict("action", f"job {job.job_number} is on hold; release it first")
            if here == station.stage_id and job.status == JobStatus.in_progress:
                raise Conflict("action", f"job {job.job_number} is already started here")
            if here != station.stage_id and event.override_reason is None:
                where = job.current_stage.name if job.current_stage else "no stage"
                routed = station.stage_id in {step.stage_id for step in job.route.steps}
                why = "skips" if routed else "is not routed to"
                raise Conflict(
                    "override_reason",
                    f"job {job.job_number} is at {where}; starting it at {station_stage.name} "
                    f"{why} its route — give an override reason",
                )
            return Transition(station.stage_id, JobStatus.in_progress, None, True)
        case EventAction.complete:
            if job.status == JobStatus.on_hold:
                raise Conflict("action", f"job {job.job_number} is on hold; release it first")
            if here != station.stage_id or job.status != JobStatus.in_progress:
                raise Conflict(
                    "action", f"job {job.job_number} is not in progress at {station_stage.name}"
                )
            next_stage = _next_stage_id(job, station.stage_id)
            if next_stage is None:
                return Transition(here, JobStatus.completed, None, False)
            return Transition(next_stage, JobStatus.queued, None, True)
        case EventAction.hold:
            if job.status == JobStatus.on_hold:
                raise Conflict("action", f"job {job.job_number} is already on hold")
            return Transition(here, JobStatus.on_hold, job.status, True)
        case EventAction.release:
            if job.status != JobStatus.on_hold:
                raise Conflict("action", f"job {job.job_number} is not on hold")
            return Transition(here, job.status_before_hold or JobStatus.queued, None, True)
        case EventAction.breakage:
            target = _return_stage_id(job, reason)
            return Transition(target, JobStatus.queued, None, True, breakage_increment=1)
        case EventAction.rework:
            if event.to_stage is not None:
                target = _stage_by_code(session, station.lab_id, event.to_stage, "to_stage").id
            elif reason is not None:
                target = _return_stage_id(job, reason)
            else:
                raise Invalid("reason_code", "a rework needs a defect reason code or to_stage")
            if target not in {step.stage_id for step in job.route.steps}:
                raise Invalid("to_stage", f"job {job.job_number}'s route has no such stage")
            return Transition(target, JobStatus.queued, None, True, 1, 0, target)
    raise Invalid("action", f"unknown action {event.action}")  # pragma: no cover


def _check_clock(event: EventIn, received_at: datetime, max_ahead: timedelta) -> None:
    if event.sent_at > received_at + max_ahead:
        raise Invalid("sent_at", "is in the future beyond the allowed clock difference")
    if event.created_at > received_at + max_ahead:
        raise Invalid("created_at", "is in the future beyond the allowed clock difference")


def _lock_uuid(session: Session, event_uuid: uuid.UUID) -> None:
    """Serialise every attempt at one UUID until its transaction ends, so the fate an attempt
    reads (stored, rejected, unknown) cannot change before it commits its own. SQLite needs
    nothing: a writing transaction holds the database's only write lock throughout."""
    if session.get_bind().dialect.name == "postgresql":
        key = int.from_bytes(event_uuid.bytes[:8], "big", signed=True)
        session.execute(select(func.pg_advisory_xact_lock(key)))


def _known_fate(session: Session, event: EventIn) -> EventResult | None:
    """A UUID's fate is final: stored answers "duplicate", rejected raises the first rejection
    again; None for a UUID never seen."""
    existing = session.scalar(select(StageEvent).where(StageEvent.event_uuid == event.event_uuid))
    if existing is not None:
        job = session.get_one(Job, existing.job_id)
        return EventResult(
            event_uuid=event.event_uuid,
            status="duplicate",
            event_id=existing.id,
            job=_job_state(job),
        )
    rejected = session.scalar(
        select(RejectedEvent).where(RejectedEvent.event_uuid == event.event_uuid)
    )
    if rejected is not None:
        raise AlreadyRejected(rejected.field, rejected.message, rejected.status_code)
    return None


def ingest_event(
    session: Session,
    station: StationPrincipal,
    event: EventIn,
    *,
    received_at: datetime | None = None,
    rules: IngestRules | None = None,
) -> EventResult:
    """Store one event and apply it to its job; DomainError if it cannot be applied (and
    AlreadyRejected for a resend of an event rejected before)."""
    rules = rules or IngestRules()
    received_at = received_at or utcnow()
    _lock_uuid(session, event.event_uuid)
    known = _known_fate(session, event)
    if known is not None:
        return known
    _check_clock(event, received_at, rules.max_clock_ahead)
    job = lookup_job(session, station, event.job)
    operator_id = None
    if event.operator_badge is not None:
        operator_id = session.scalar(
            select(Person.id).where(
                Person.lab_id == station.lab_id,
                Person.badge_code == event.operator_badge,
                Person.active,
            )
        )
        if operator_id is None:
            raise Invalid("operator_badge", f"no active person with badge {event.operator_badge!r}")
    judged = None
    if event.inspection is not None:
        validate_defects(session, station.lab_id, event.inspection)
        judged = judge(session, job, event.inspection, rules.tolerances)
        check_verdict(event.action, event.inspection, judged[2])
        if event.action == EventAction.rework and not (event.reason_code or event.to_stage):
            code = _furthest_back(session, job, event.inspection.defects)
            event = event.model_copy(update={"reason_code": code})
    reason = _reason(session, station.lab_id, event)
    with session.begin_nested() as savepoint:
        # Serialise concurrent events for the same job (SQLite has one writer anyway), then
        # re-read it: the state another request committed meanwhile is the one to move from.
        session.execute(select(Job.id).where(Job.id == job.id).with_for_update())
        session.refresh(job)
        transition = plan_transition(session, job, station, event, reason)
        event_id = session.scalar(
            _insert_ignoring(StageEvent, session.get_bind().dialect.name)
            .values(
                event_uuid=event.event_uuid,
                station_id=station.station_id,
                station_sequence=event.sequence,
                operator_id=operator_id,
                job_id=job.id,
                stage_id=station.stage_id,
                action=event.action,
                reason_code=event.reason_code,
                override_reason=event.override_reason,
                note=event.note,
                to_stage_id=transition.to_stage_id,
                device_created_at=event.created_at,
                device_sent_at=event.sent_at,
                server_received_at=received_at,
                corrected_at=received_at - (event.sent_at - event.created_at),
            )
            .returning(StageEvent.id)
        )
        if event_id is None:  # stored by a concurrent request since the check above
            savepoint.rollback()
            winner = session.scalar(
                select(StageEvent.id).where(StageEvent.event_uuid == event.event_uuid)
            )
            return EventResult(
                event_uuid=event.event_uuid,
                status="duplicate",
                event_id=winner,
                job=_job_state(job),
            )
        stored = session.get_one(StageEvent, event_id)
        if event.action == EventAction.breakage:
            record_breakage(session, job, stored, event.breakage)
        if event.inspection is not None and judged is not None:
            record_inspection(session, job, stored, event.inspection, judged)
        if transition != Transition(
            job.current_stage_id, job.status, job.status_before_hold, job.is_active
        ):
            # Through the relationship, so the job's loaded stage follows (flags name it).
            job.current_stage = (
                session.get_one(Stage, transition.stage_id) if transition.stage_id else None
            )
            job.status = transition.status
            job.status_before_hold = transition.status_before_hold
            job.is_active = transition.is_active
            job.rework_count += transition.rework_increment
            job.breakage_count += transition.breakage_increment
            job.state_changed_at = received_at
        session.flush()
        refresh_job(session, job, received_at, changed=True)
    session.refresh(job)
    return EventResult(
        event_uuid=event.event_uuid, status="stored", event_id=event_id, job=_job_state(job)
    )


def record_rejection(
    session: Session,
    station: StationPrincipal,
    event: EventIn,
    error: DomainError,
    received_at: datetime,
) -> EventResult:
    """Keep the rejection, once per UUID: a resend of a rejected event (AlreadyRejected)
    adds nothing and answers with the first rejection's reason."""
    if not isinstance(error, AlreadyRejected):
        session.execute(
            _insert_ignoring(RejectedEvent, session.get_bind().dialect.name).values(
                event_uuid=event.event_uuid,
                station_id=station.station_id,
                station_sequence=event.sequence,
                payload=event.model_dump(mode="json"),
                field=error.field,
                message=error.message,
                status_code=error.status_code,
                received_at=received_at,
            )
        )
    return EventResult(
        event_uuid=event.event_uuid,
        status="rejected",
        error=FieldError(field=error.field, message=error.message),
    )


def ingest_batch(
    session: Session,
    station: StationPrincipal,
    events: list[EventIn],
    *,
    received_at: datetime | None = None,
    rules: IngestRules | None = None,
    budget_seconds: float | None = None,
) -> list[EventResult]:
    """Events apply in the order given; one that cannot apply is rejected alone, with why.

    With a budget, events stop being taken once it is spent (the first always is): the
    results then cover a prefix of the batch, and the caller sends the rest again.
    """
    received_at = received_at or utcnow()
    stop_at = None if budget_seconds is None else time.monotonic() + budget_seconds
    results: list[EventResult] = []
    for event in events:
        if results and stop_at is not None and time.monotonic() >= stop_at:
            break
        try:
            results.append(
                ingest_event(
                    session,
                    station,
                    event,
                    received_at=received_at,
                    rules=rules,
                )
            )
        except DomainError as error:
            results.append(record_rejection(session, station, event, error, received_at))
    return results


def sequence_gaps(session: Session, station_id: int) -> list[SequenceGap]:
    """Runs of sequence numbers missing between 1 and the highest one the station sent."""
    received = _received_sequences(station_id).subquery()
    previous = func.lag(received.c.sequence, 1, 0).over(order_by=received.c.sequence)
    ordered = select(received.c.sequence, previous.label("previous")).subquery()
    rows = session.execute(
        select(ordered.c.previous, ordered.c.sequence).where(
            ordered.c.sequence > ordered.c.previous + 1
        )
    )
    return [SequenceGap(first_missing=before + 1, last_missing=after - 1) for before, after in rows]


def _received_sequences(station_id: int) -> CompoundSelect[tuple[int]]:
    """Sequence numbers that reached the server, stored or rejected (each once)."""
    return union(
        select(StageEvent.station_sequence.label("sequence")).where(
            StageEvent.station_id == station_id
        ),
        select(RejectedEvent.station_sequence.label("sequence")).where(
            RejectedEvent.station_id == station_id
        ),
    )


def last_sequence(session: Session, station_id: int) -> int:
    received = _received_sequences(station_id).subquery()
    return session.scalar(select(func.max(received.c.sequence))) or 0
