"""Event ingestion: each station event is stored once and moves its job's state with it.

What an event does to its job is `core.lifecycle`'s rule, the one the station's card applies
too; this module loads what that rule needs and stores its outcome.

An event is applied in one savepoint: the event row (an atomic `INSERT … ON CONFLICT DO
NOTHING` on its UUID, so a resend can never store it twice, even racing) and the job's new
state commit together or not at all.
"""

import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache

from sqlalchemy import CompoundSelect, Insert, Select, func, select, union
from sqlalchemy.orm import Session

from core.lifecycle import Outcome, Progress, Refusal, Route, apply, return_stage
from core.optics import ToleranceFile, load_profiles
from server.db import conflict_insert
from server.domain import signins
from server.domain.auth import STATION_ROLES, StationPrincipal
from server.domain.breakage import record_breakage
from server.domain.errors import AlreadyRejected, Conflict, DomainError, Forbidden, Invalid
from server.domain.flags import PRODUCTION_ONLY, refresh_job
from server.domain.inspection import check_verdict, judge, record_inspection, validate_defects
from server.domain.jobs import lookup_job
from server.models import (
    EventAction,
    Job,
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
    """The lifecycle's outcome, its stage codes resolved to this lab's stages."""

    outcome: Outcome
    stage: Stage | None
    rework_stage: Stage | None


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
    return conflict_insert(dialect, table).on_conflict_do_nothing(index_elements=["event_uuid"])


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
    route = [step.stage.code for step in job.route.steps]
    return min(
        (defect.code for defect in defects),
        key=lambda code: route.index(
            return_stage(route, _configured_return_stage(reasons.get(code)))
        ),
    )


def _stage_by_code(session: Session, lab_id: int, code: str, field: str) -> Stage:
    stage = session.scalar(select(Stage).where(Stage.lab_id == lab_id, Stage.code == code))
    if stage is None:
        raise Invalid(field, f"unknown stage {code!r}")
    return stage


def _configured_return_stage(reason: ReasonCode | None) -> str | None:
    return reason.return_stage.code if reason and reason.return_stage else None


def _known_stages(job: Job, here: Stage) -> dict[str, Stage]:
    """The stages an event's outcome may name: the job's route, the station's, the job's own."""
    stages = {step.stage.code: step.stage for step in job.route.steps} | {here.code: here}
    if job.current_stage is not None:
        stages[job.current_stage.code] = job.current_stage
    return stages


def _progress(job: Job) -> Progress:
    stage = job.current_stage.code if job.current_stage else None
    return Progress(stage, job.status, job.status_before_hold, job.is_active)


def plan_transition(
    session: Session,
    job: Job,
    station: StationPrincipal,
    event: EventIn,
    reason: ReasonCode | None,
    *,
    inspected: bool,
) -> Transition:
    """What the event does to the job (the shared lifecycle decides), or a Conflict or
    Invalid saying why it cannot happen now."""
    here = session.get_one(Stage, station.stage_id)
    if event.action == EventAction.rework and event.to_stage is not None:
        _stage_by_code(session, station.lab_id, event.to_stage, "to_stage")  # a known stage
    stages = _known_stages(job, here)
    route = Route(
        job_number=job.job_number,
        stages=tuple(step.stage.code for step in job.route.steps),
        inspection_stages=frozenset(code for code, stage in stages.items() if stage.inspection),
        names={code: stage.name for code, stage in stages.items()},
    )
    result = apply(
        _progress(job),
        event.action,
        route=route,
        here=here.code,
        override=event.override_reason is not None,
        reason=reason.code if reason else None,
        reason_return_stage=_configured_return_stage(reason),
        to_stage=event.to_stage,
        inspected=inspected,
    )
    if isinstance(result, Refusal):
        refusal = Conflict if result.kind == "conflict" else Invalid
        raise refusal(result.field, result.message)
    return Transition(
        result,
        stages.get(result.progress.stage or ""),
        stages.get(result.rework_stage or ""),
    )


def _lock_job(session: Session, job: Job) -> None:
    """Serialise concurrent events for one job and move it from its latest committed state.
    On SQLite the transaction took the database's only write lock when it began, so the job
    as read is current; PostgreSQL locks the row and reads it again."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(Job.id).where(Job.id == job.id).with_for_update())
        session.refresh(job)


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
    # Columns, not rows: a stored event's row would bring its station, stage and operator.
    existing = session.execute(
        select(StageEvent.id, StageEvent.job_id).where(StageEvent.event_uuid == event.event_uuid)
    ).first()
    if existing is not None:
        job = session.get_one(Job, existing.job_id)
        return EventResult(
            event_uuid=event.event_uuid,
            status="duplicate",
            event_id=existing.id,
            job=_job_state(job),
        )
    rejected = session.execute(
        select(RejectedEvent.field, RejectedEvent.message, RejectedEvent.status_code).where(
            RejectedEvent.event_uuid == event.event_uuid
        )
    ).first()
    if rejected is not None:
        raise AlreadyRejected(rejected.field, rejected.message, rejected.status_code)
    return signins.known(session, event.event_uuid)


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
    operator_id = _operator_id(session, station, event.operator_badge)
    if event.signs:
        assert operator_id is not None  # a sign-in or sign-out names its badge (EventIn)
        return signins.record(session, station, event, operator_id, received_at)
    if operator_id is not None:
        signins.check_signed_in(session, station, operator_id, event)
    assert event.job is not None  # a job event names its job (EventIn)
    job = lookup_job(session, station, event.job, *PRODUCTION_ONLY)
    judged = None
    if event.inspection is not None:
        _check_inspects_here(station, session.get_one(Stage, station.stage_id))
        validate_defects(session, station.lab_id, event.inspection)
        judged = judge(session, job, event.inspection, rules.tolerances)
        check_verdict(event.action, event.inspection, judged[2])
        if event.action == EventAction.rework and not (event.reason_code or event.to_stage):
            code = _furthest_back(session, job, event.inspection.defects)
            event = event.model_copy(update={"reason_code": code})
    reason = _reason(session, station.lab_id, event)
    with session.begin_nested() as savepoint:
        _lock_job(session, job)
        transition = plan_transition(
            session, job, station, event, reason, inspected=judged is not None
        )
        event_id = _insert_event(session, station, job, event, operator_id, transition, received_at)
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
        if event.action == EventAction.breakage:
            stored = session.get_one(StageEvent, event_id)
            record_breakage(session, job, stored, event.breakage)
        if event.inspection is not None and judged is not None:
            stored = session.get_one(StageEvent, event_id)
            record_inspection(session, job, stored, event.inspection, judged)
        _move_job(job, transition, received_at)
        session.flush()
        refresh_job(session, job, received_at, changed=True)
    return EventResult(
        event_uuid=event.event_uuid, status="stored", event_id=event_id, job=_job_state(job)
    )


_OPERATORS = "lenstrack_station_operators"


def station_operator_query(lab_id: int) -> Select[tuple[Person]]:
    """The people who may sign in at this lab's stations: active, badged, in a station role."""
    return select(Person).where(
        Person.lab_id == lab_id,
        Person.active,
        Person.badge_code.is_not(None),
        Person.role.in_(STATION_ROLES),
    )


def _operator_id(session: Session, station: StationPrincipal, badge: str | None) -> int | None:
    """The operator the badge names. Sign-in happens on the station, offline too, from the
    badges it cached (`station_operator_query`): the server accepts exactly those. Anyone else's
    badge (a manager's, a store's, unknown, disabled) answers alike, revealing no one."""
    if badge is None:
        return None
    known: dict[tuple[int, str], int | None] = session.info.setdefault(_OPERATORS, {})
    if (station.lab_id, badge) not in known:  # once per badge in a group of events
        known[(station.lab_id, badge)] = session.scalar(
            station_operator_query(station.lab_id)
            .where(Person.badge_code == badge)
            .with_only_columns(Person.id)
        )
    operator_id = known[(station.lab_id, badge)]
    if operator_id is None:
        raise Invalid("operator_badge", f"no station operator has badge {badge!r}")
    return operator_id


def _check_inspects_here(station: StationPrincipal, here: Stage) -> None:
    """Only a station at an inspection stage judges lenses: any other sending QC results
    would record an attempt (and fail a job) in a stage it does not work at."""
    if not here.inspection:
        raise Forbidden(
            "inspection",
            f"station {station.name} works at {here.name}, not an inspection stage: "
            "it cannot send QC results",
        )


def _insert_event(
    session: Session,
    station: StationPrincipal,
    job: Job,
    event: EventIn,
    operator_id: int | None,
    transition: Transition,
    received_at: datetime,
) -> int | None:
    """The stored event's id; None if a concurrent request stored its UUID first."""
    return session.scalar(
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
            to_stage_id=transition.rework_stage.id if transition.rework_stage else None,
            device_created_at=event.created_at,
            device_sent_at=event.sent_at,
            server_received_at=received_at,
            corrected_at=received_at - (event.sent_at - event.created_at),
        )
        .returning(StageEvent.id)
    )


def _move_job(job: Job, transition: Transition, at: datetime) -> None:
    """The job takes the outcome's state, if the event changes anything."""
    outcome = transition.outcome
    if outcome == Outcome(_progress(job)):
        return
    # Through the relationship, so the job's loaded stage follows (flags name it).
    job.current_stage = transition.stage
    job.status = outcome.progress.status
    job.status_before_hold = outcome.progress.status_before_hold
    job.is_active = outcome.progress.active
    job.rework_count += outcome.reworks
    job.breakage_count += outcome.breakages
    job.state_changed_at = at


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
    """Sequence numbers that reached the server, stored (job events, sign-ins and sign-outs)
    or rejected, each once."""
    return union(
        select(StageEvent.station_sequence.label("sequence")).where(
            StageEvent.station_id == station_id
        ),
        select(RejectedEvent.station_sequence.label("sequence")).where(
            RejectedEvent.station_id == station_id
        ),
        signins.received_sequences(station_id),
    )


def last_sequence(session: Session, station_id: int) -> int:
    received = _received_sequences(station_id).subquery()
    return session.scalar(select(func.max(received.c.sequence))) or 0
