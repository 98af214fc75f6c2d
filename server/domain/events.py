"""Event ingestion: each station event is stored once and moves its job's state with it.

What an event does to its job is `core.lifecycle`'s rule, the one the station's card applies
too; this module loads what that rule needs and stores its outcome.

Events are taken as a group (a station's batch, or the single events the writer gathered):
what they read is read once for all of them (their UUIDs' fates, their jobs, their lab's
stages and reasons, who was signed in), each is planned in memory in order, and what they
write goes out together at the end: the event rows as one multi-row insert, each job's ETA,
flags and feed once. An event that cannot apply is refused before it writes anything; one
whose side records may still refuse it (a breakage's eyes, a shipment's carrier) is stored
in a savepoint of its own. Every UUID of the group is locked first (PostgreSQL; SQLite's
writer holds the database's only write lock), so the fates read cannot change before the
group commits: a resend can never store an event twice, even racing.
"""

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache

from sqlalchemy import (
    BigInteger,
    CompoundSelect,
    Integer,
    Select,
    String,
    bindparam,
    case,
    cast,
    func,
    literal,
    null,
    or_,
    select,
    text,
    union,
    union_all,
)
from sqlalchemy.orm import Session

from core.lifecycle import Outcome, Progress, Refusal, Route, apply, return_stage
from core.optics import CheckResult, PairRx, ToleranceFile, load_profiles
from server.db import conflict_insert, memo
from server.domain import signins
from server.domain.auth import STATION_ROLES, StationPrincipal
from server.domain.breakage import record_breakage
from server.domain.errors import (
    AlreadyRejected,
    Conflict,
    DomainError,
    Forbidden,
    Invalid,
    NotFound,
)
from server.domain.flags import PRODUCTION_ONLY, refresh_moved_jobs
from server.domain.inspection import check_verdict, judge, record_inspection, validate_defects
from server.domain.jobs import visible_jobs
from server.domain.kpis import record_stage_times
from server.domain.shipping import record_milestones
from server.models import (
    EventAction,
    Job,
    Person,
    ReasonCode,
    ReasonKind,
    RejectedEvent,
    Stage,
    StageEvent,
    StationSequenceMark,
    StationSignIn,
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


@dataclass(frozen=True)
class Arrival:
    """An event as it reached the server: from which station, and when."""

    station: StationPrincipal
    event: EventIn
    received_at: datetime


@dataclass(frozen=True)
class _LabSetup:
    """A lab's stages and reason codes, which every event of a group looks up."""

    stages: dict[int, Stage]
    stage_codes: dict[str, Stage]
    reasons: dict[tuple[ReasonKind, str], ReasonCode]


def _lab_setup(session: Session, lab_id: int) -> _LabSetup:
    """Read once per session: the events of a writer's group share it."""
    return memo(session, (_LabSetup, lab_id), lambda: _read_lab_setup(session, lab_id))


def _read_lab_setup(session: Session, lab_id: int) -> _LabSetup:
    stages = session.scalars(select(Stage).where(Stage.lab_id == lab_id)).all()
    reasons = session.scalars(select(ReasonCode).where(ReasonCode.lab_id == lab_id)).all()
    return _LabSetup(
        {stage.id: stage for stage in stages},
        {stage.code: stage for stage in stages},
        {(reason.kind, reason.code): reason for reason in reasons},
    )


def _job_state(job: Job) -> JobState:
    return JobState(
        job_number=job.job_number,
        tray_number=job.tray_number,
        stage=job.current_stage.code if job.current_stage else None,
        status=job.status,
    )


def _reason(setup: _LabSetup, event: EventIn) -> ReasonCode | None:
    kind = REASON_KIND_FOR_ACTION.get(event.action)
    if kind is None or event.reason_code is None:
        if kind in (ReasonKind.hold, ReasonKind.breakage):
            raise Invalid("reason_code", f"a {event.action} needs a {kind} reason code")
        return None
    reason = setup.reasons.get((kind, event.reason_code))
    if reason is None:
        raise Invalid("reason_code", f"{event.reason_code!r} is not a {kind} reason code")
    return reason


def _furthest_back(setup: _LabSetup, job: Job, defects: list[DefectIn]) -> str:
    """The code of the defect that sends the job furthest back along its route: redoing that
    stage redoes the later ones. On a tie, the one listed first.
    """
    route = [step.stage.code for step in job.route.steps]
    return min(
        (defect.code for defect in defects),
        key=lambda code: route.index(
            return_stage(
                route, _configured_return_stage(setup.reasons.get((ReasonKind.defect, code)))
            )
        ),
    )


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
    setup: _LabSetup,
    job: Job,
    station: StationPrincipal,
    event: EventIn,
    reason: ReasonCode | None,
    *,
    inspected: bool,
) -> Transition:
    """What the event does to the job (the shared lifecycle decides), or a Conflict or
    Invalid saying why it cannot happen now."""
    here = setup.stages[station.stage_id]
    rework_to = event.to_stage if event.action == EventAction.rework else None
    if rework_to is not None and rework_to not in setup.stage_codes:
        raise Invalid("to_stage", f"unknown stage {event.to_stage!r}")
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


def _check_clock(event: EventIn, received_at: datetime, max_ahead: timedelta) -> None:
    if event.sent_at > received_at + max_ahead:
        raise Invalid("sent_at", "is in the future beyond the allowed clock difference")
    if event.created_at > received_at + max_ahead:
        raise Invalid("created_at", "is in the future beyond the allowed clock difference")


def _lock_uuids(session: Session, event_uuids: set[uuid.UUID]) -> None:
    """Serialise every attempt at these UUIDs until the transaction ends, so the fates read
    (stored, rejected, unknown) cannot change before it commits its own. Taken in one order
    by every group, so two groups sharing UUIDs cannot deadlock on them. SQLite needs
    nothing: a writing transaction holds the database's only write lock throughout."""
    if session.get_bind().dialect.name == "postgresql":
        keys = sorted({int.from_bytes(key.bytes[:8], "big", signed=True) for key in event_uuids})
        session.execute(
            text("SELECT pg_advisory_xact_lock(key) FROM unnest(CAST(:keys AS bigint[])) AS key"),
            {"keys": keys},
        )


def _earlier_fates_query() -> CompoundSelect[tuple[str, uuid.UUID, int, int, str, str, int]]:
    """What became of each of the `uuids` before: stored as an event (its id and job),
    rejected (why), or stored as a sign-in or sign-out, in one round trip (built once)."""
    uuids = bindparam("uuids", expanding=True)
    no_id, no_text = cast(null(), BigInteger), cast(null(), String)
    no_number = cast(null(), Integer)
    return union_all(
        select(
            literal("stored").label("fate"),
            StageEvent.event_uuid,
            StageEvent.id.label("event_id"),
            StageEvent.job_id,
            no_text.label("field"),
            no_text.label("message"),
            no_number.label("status_code"),
        ).where(StageEvent.event_uuid.in_(uuids)),
        select(
            literal("rejected"),
            RejectedEvent.event_uuid,
            no_id,
            no_number,
            RejectedEvent.field,
            RejectedEvent.message,
            RejectedEvent.status_code,
        ).where(RejectedEvent.event_uuid.in_(uuids)),
        select(
            literal("signed"),
            StationSignIn.event_uuid,
            no_id,
            no_number,
            no_text,
            no_text,
            no_number,
        ).where(StationSignIn.event_uuid.in_(uuids)),
    )


_EARLIER_FATES = _earlier_fates_query()
_Judged = tuple[str, PairRx, CheckResult]
# A group's badges, each with its operator's id, or None for a badge no station operator has.
_Operators = dict[tuple[int, str], int | None]  # (lab id, badge) → operator id


@dataclass
class _Stored:
    """An event stored by this group (or a resend of one), its id known once the group's
    rows are written."""

    row: StageEvent
    state: JobState  # the job as the event left it
    status: str = "stored"

    def result(self) -> EventResult:
        return EventResult(
            event_uuid=self.row.event_uuid, status=self.status, event_id=self.row.id, job=self.state
        )


def _stored_alone(event: EventIn) -> bool:
    """Whether the event is stored on its own, in a savepoint, before the next is planned:
    its side records may still refuse it (a breakage's eyes, a shipment's carrier), or read
    the records before it (an inspection's attempt number)."""
    return (
        event.action == EventAction.breakage
        or event.shipment is not None
        or event.inspection is not None
    )


def _record_details(
    session: Session, job: Job, stored: StageEvent, event: EventIn, judged: _Judged | None
) -> None:
    """The records an event carries beside its row, once the row has its id."""
    if event.action == EventAction.breakage:
        record_breakage(session, job, stored, event.breakage)
    if event.inspection is not None and judged is not None:
        record_inspection(session, job, stored, event.inspection, judged)
    record_milestones(session, job, stored, event.shipment)


class _Group:
    """What the events of one ingest share, read once for all of them: every UUID's fate,
    the jobs they name (locked in id order on PostgreSQL), who was signed in where."""

    def __init__(self, session: Session, arrivals: Sequence[Arrival], rules: IngestRules) -> None:
        self.session = session
        self.rules = rules
        event_uuids = {arrival.event.event_uuid for arrival in arrivals}
        _lock_uuids(session, event_uuids)
        self.stored_before: dict[uuid.UUID, tuple[int, int]] = {}
        self.rejected: dict[uuid.UUID, AlreadyRejected] = {}
        self.signs: set[uuid.UUID] = set()  # stored sign-ins and sign-outs
        for row in session.execute(_EARLIER_FATES, {"uuids": sorted(event_uuids)}):
            if row.fate == "stored":
                self.stored_before[row.event_uuid] = (row.event_id, row.job_id)
            elif row.fate == "rejected":
                self.rejected[row.event_uuid] = AlreadyRejected(
                    row.field, row.message, row.status_code
                )
            else:
                self.signs.add(row.event_uuid)
        self.stored: dict[uuid.UUID, _Stored] = {}
        self.jobs = _JobsNamed(session, arrivals)
        self.operators = _read_operators(session, arrivals)
        self.sign_ins = _sign_in_log(session, self.operators, arrivals)
        self.unrecorded: list[tuple[Job, StageEvent, EventIn, _Judged | None]] = []
        self.moved: dict[Job, datetime] = {}  # each job changed, at its last event's arrival

    def _known_fate(self, event_uuid: uuid.UUID) -> EventResult | _Stored | None:
        """A UUID's fate is final: stored answers "duplicate", rejected raises the first
        rejection again; None for a UUID never seen."""
        if event_uuid in self.stored:
            return _Stored(self.stored[event_uuid].row, self.stored[event_uuid].state, "duplicate")
        if event_uuid in self.stored_before:
            event_id, job_id = self.stored_before[event_uuid]
            job = self.session.get_one(Job, job_id, options=PRODUCTION_ONLY)
            return EventResult(
                event_uuid=event_uuid, status="duplicate", event_id=event_id, job=_job_state(job)
            )
        if event_uuid in self.rejected:
            raise self.rejected[event_uuid]
        if event_uuid in self.signs:
            return EventResult(event_uuid=event_uuid, status="duplicate")
        return None

    def apply(self, arrival: Arrival) -> EventResult | _Stored:
        """The event planned on its job as the group left it, or a DomainError saying why not."""
        session, station, event = self.session, arrival.station, arrival.event
        known = self._known_fate(event.event_uuid)
        if known is not None:
            return known
        _check_clock(event, arrival.received_at, self.rules.max_clock_ahead)
        operator_id = _operator_id(self.operators, station, event.operator_badge)
        if event.signs:
            assert operator_id is not None  # a sign-in or sign-out names its badge (EventIn)
            self.signs.add(event.event_uuid)
            return signins.record(
                session, self.sign_ins, station, event, operator_id, arrival.received_at
            )
        if operator_id is not None:
            signins.check_signed_in(self.sign_ins, station, operator_id, event)
        assert event.job is not None  # a job event names its job (EventIn)
        job = self.jobs.lookup(station, event.job)
        setup = _lab_setup(session, station.lab_id)
        judged = None
        if event.inspection is not None:
            _check_inspects_here(station, setup.stages[station.stage_id])
            validate_defects(session, station.lab_id, event.inspection)
            judged = judge(session, job, event.inspection, self.rules.tolerances)
            check_verdict(event.action, event.inspection, judged[2])
            if event.action == EventAction.rework and not (event.reason_code or event.to_stage):
                code = _furthest_back(setup, job, event.inspection.defects)
                event = event.model_copy(update={"reason_code": code})
        reason = _reason(setup, event)
        transition = plan_transition(
            setup, job, station, event, reason, inspected=judged is not None
        )
        row = _event_row(station, job, event, operator_id, transition, arrival.received_at)
        if _stored_alone(event):
            with session.begin_nested():  # flushes the group's earlier rows first, in order
                session.add(row)
                session.flush()
                _record_details(session, job, row, event, judged)
                session.flush()
        else:
            session.add(row)
            self.unrecorded.append((job, row, event, judged))
        _move_job(job, transition, arrival.received_at)
        self.moved.pop(job, None)  # the job's place follows its last event
        self.moved[job] = arrival.received_at
        self.stored[event.event_uuid] = _Stored(row, _job_state(job))
        return self.stored[event.event_uuid]

    def reject(self, arrival: Arrival, error: DomainError) -> None:
        """A resend of this UUID later in the group answers the same."""
        if not isinstance(error, AlreadyRejected):
            self.rejected[arrival.event.event_uuid] = AlreadyRejected(
                error.field, error.message, error.status_code
            )

    def finish(self) -> None:
        """The planned rows written (one multi-row insert), their side records, and each moved
        job's ETA, flags and feed once."""
        self.session.flush()
        # What these add reads none of what they add (every row they read is written now):
        # one flush at the end instead of one before each read.
        with self.session.no_autoflush:
            for job, row, event, judged in self.unrecorded:
                _record_details(self.session, job, row, event, judged)
        refresh_moved_jobs(self.session, self.moved.items())


class _JobsNamed:
    """The jobs a group's events name by job or tray number, read at once: a code names its
    active job, else the latest job of that number (as `lookup_job` answers)."""

    def __init__(self, session: Session, arrivals: Sequence[Arrival]) -> None:
        self._candidates: dict[tuple[int, str], list[Job]] = {}
        codes_by_lab: dict[int, set[str]] = {}
        stations: dict[int, StationPrincipal] = {}
        for arrival in arrivals:
            if arrival.event.job is not None:
                codes_by_lab.setdefault(arrival.station.lab_id, set()).add(arrival.event.job)
                stations[arrival.station.lab_id] = arrival.station
        locking = session.get_bind().dialect.name == "postgresql"
        for lab_id, codes in codes_by_lab.items():
            named = visible_jobs(stations[lab_id]).where(
                or_(Job.job_number.in_(codes), Job.tray_number.in_(codes))
            )
            candidates_query = named.with_only_columns(
                Job.id, Job.job_number, Job.is_active
            ).order_by(Job.id)
            if locking:  # concurrent writers lock jobs in one order; PostgreSQL reads them current
                candidates_query = candidates_query.with_for_update()
            candidates = session.execute(candidates_query).all()
            latest = {row.job_number: row.id for row in candidates}  # in id order: the last
            wanted = {row.id for row in candidates if row.is_active} | set(latest.values())
            jobs = session.scalars(
                select(Job)
                .where(Job.id.in_(wanted))
                .order_by(Job.id)
                .options(*PRODUCTION_ONLY)
                .execution_options(populate_existing=True)
            ).all()
            for job in jobs:
                for code in {job.job_number, job.tray_number} & codes:
                    self._candidates.setdefault((lab_id, code), []).append(job)

    def lookup(self, station: StationPrincipal, code: str) -> Job:
        """Read from the jobs as this group left them (one it finished is no longer active)."""
        candidates = self._candidates.get((station.lab_id, code), [])
        active = [job for job in candidates if job.is_active]
        if active:
            return active[0]
        numbered = [job for job in candidates if job.job_number == code]
        if numbered:
            return numbered[-1]
        raise NotFound("job", f"no job or tray {code!r}")


def _sign_in_log(
    session: Session, operators: _Operators, arrivals: Sequence[Arrival]
) -> signins.SignInLog:
    """The sign-ins the group's job events are checked against (unknown badges have none)."""
    job_events = [arrival for arrival in arrivals if not arrival.event.signs]
    pairs = set()
    for arrival in job_events:
        try:
            operator_id = _operator_id(operators, arrival.station, arrival.event.operator_badge)
        except Invalid:
            continue  # refused when its event is applied
        if operator_id is not None:
            pairs.add((arrival.station.station_id, operator_id))
    if not pairs:
        return signins.SignInLog(session, pairs, utcnow(), utcnow())
    times = [arrival.event.created_at for arrival in job_events]
    return signins.SignInLog(session, pairs, min(times), max(times))


def station_operator_query(lab_id: int) -> Select[tuple[Person]]:
    """The people who may sign in at this lab's stations: active, badged, in a station role."""
    return select(Person).where(
        Person.lab_id == lab_id,
        Person.active,
        Person.badge_code.is_not(None),
        Person.role.in_(STATION_ROLES),
    )


def _read_operators(session: Session, arrivals: Sequence[Arrival]) -> _Operators:
    """The operators of every badge the group names, one query per lab."""
    badges_by_lab: dict[int, set[str]] = {}
    for arrival in arrivals:
        badge = arrival.event.operator_badge
        if badge is not None:
            badges_by_lab.setdefault(arrival.station.lab_id, set()).add(badge)
    operators: _Operators = {}
    for lab_id, badges in badges_by_lab.items():
        found = dict(
            session.execute(
                station_operator_query(lab_id)
                .where(Person.badge_code.in_(badges))
                .with_only_columns(Person.badge_code, Person.id)
            ).all()
        )
        operators |= {(lab_id, badge): found.get(badge) for badge in badges}
    return operators


def _operator_id(operators: _Operators, station: StationPrincipal, badge: str | None) -> int | None:
    """The operator the badge names. Sign-in happens on the station, offline too, from the
    badges it cached (`station_operator_query`): the server accepts exactly those. Anyone else's
    badge (a manager's, a store's, unknown, disabled) answers alike, revealing no one."""
    if badge is None:
        return None
    operator_id = operators[(station.lab_id, badge)]
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


def _event_row(
    station: StationPrincipal,
    job: Job,
    event: EventIn,
    operator_id: int | None,
    transition: Transition,
    received_at: datetime,
) -> StageEvent:
    return StageEvent(
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


def ingest_events(
    session: Session,
    arrivals: Sequence[Arrival],
    *,
    rules: IngestRules | None = None,
    budget_seconds: float | None = None,
) -> list[EventResult | DomainError]:
    """Events apply in the order given, each stored with its job's new state or refused
    alone with why (a DomainError; AlreadyRejected for a resend of an event rejected before).
    Rejections are not kept here: `record_rejections` does that.

    With a budget, events stop being taken once it is spent (the first always is): the
    outcomes then cover a prefix of `arrivals`, and the caller sends the rest again.
    """
    rules = rules or IngestRules()
    stop_at = None if budget_seconds is None else time.monotonic() + budget_seconds
    group = _Group(session, arrivals, rules)
    outcomes: list[EventResult | _Stored | DomainError] = []
    for arrival in arrivals:
        if outcomes and stop_at is not None and time.monotonic() >= stop_at:
            break
        try:
            outcomes.append(group.apply(arrival))
        except DomainError as error:
            group.reject(arrival, error)
            outcomes.append(error)
    group.finish()
    if group.stored:  # the KPIs' queue and cycle times of the events stored (kpis.KpiStageTime)
        record_stage_times(session, [stored.row.id for stored in group.stored.values()])
    return [outcome.result() if isinstance(outcome, _Stored) else outcome for outcome in outcomes]


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
    arrival = Arrival(station, event, received_at or utcnow())
    [outcome] = ingest_events(session, [arrival], rules=rules)
    if isinstance(outcome, DomainError):
        raise outcome
    return outcome


def record_rejections(
    session: Session, rejections: Sequence[tuple[Arrival, DomainError]]
) -> list[EventResult]:
    """Keep the rejections, once per UUID, in one insert: a resend of a rejected event
    (AlreadyRejected) adds nothing and answers with the first rejection's reason."""
    rows = [
        {
            "event_uuid": arrival.event.event_uuid,
            "station_id": arrival.station.station_id,
            "station_sequence": arrival.event.sequence,
            "payload": arrival.event.model_dump(mode="json"),
            "field": error.field,
            "message": error.message,
            "status_code": error.status_code,
            "received_at": arrival.received_at,
        }
        for arrival, error in rejections
        if not isinstance(error, AlreadyRejected)
    ]
    if rows:
        insert = conflict_insert(session.get_bind().dialect.name, RejectedEvent)
        session.execute(insert.on_conflict_do_nothing(index_elements=["event_uuid"]), rows)
    return [
        EventResult(
            event_uuid=arrival.event.event_uuid,
            status="rejected",
            error=FieldError(field=error.field, message=error.message),
        )
        for arrival, error in rejections
    ]


def ingest_batch(
    session: Session,
    station: StationPrincipal,
    events: list[EventIn],
    *,
    received_at: datetime | None = None,
    rules: IngestRules | None = None,
    budget_seconds: float | None = None,
) -> list[EventResult]:
    """A station's events in order; one that cannot apply is rejected alone, with why, and
    kept. With a budget, the results may cover a prefix (see `ingest_events`)."""
    received_at = received_at or utcnow()
    arrivals = [Arrival(station, event, received_at) for event in events]
    outcomes = ingest_events(session, arrivals, rules=rules, budget_seconds=budget_seconds)
    rejected = [
        (arrival, outcome)
        for arrival, outcome in zip(arrivals, outcomes, strict=False)
        if isinstance(outcome, DomainError)
    ]
    answers = iter(record_rejections(session, rejected))
    return [next(answers) if isinstance(outcome, DomainError) else outcome for outcome in outcomes]


def sequence_gaps(
    session: Session, station_id: int, *, move_mark: bool = False
) -> list[SequenceGap]:
    """Runs of sequence numbers missing between 1 and the highest one the station sent.

    Read from the station's mark on (every number up to it arrived), so a report reads the
    numbers of the recent past, not the station's whole history. `move_mark` (in a writing
    transaction) moves the mark up to just before the first gap.
    """
    mark = session.get(StationSequenceMark, station_id)
    through = mark.received_through if mark is not None else 0
    received = _received_sequences(station_id, after=through).subquery()
    previous = func.lag(received.c.sequence, 1, through).over(order_by=received.c.sequence)
    highest = func.max(received.c.sequence).over()
    ordered = select(
        received.c.sequence, previous.label("previous"), highest.label("highest")
    ).subquery()
    rows = session.execute(
        select(ordered.c.previous, ordered.c.sequence, ordered.c.highest)
        .where(
            or_(
                ordered.c.sequence > ordered.c.previous + 1,
                ordered.c.sequence == ordered.c.highest,
            )
        )
        .order_by(ordered.c.sequence)
    ).all()
    gaps = [
        SequenceGap(first_missing=before + 1, last_missing=after - 1)
        for before, after, _ in rows
        if after > before + 1
    ]
    if move_mark and rows:
        _move_mark(session, station_id, gaps[0].first_missing - 1 if gaps else rows[0].highest)
    return gaps


def _move_mark(session: Session, station_id: int, received_through: int) -> None:
    """Only ever up: a concurrent report may have moved it further already."""
    table = StationSequenceMark.__table__
    upsert = conflict_insert(session.get_bind().dialect.name, StationSequenceMark).values(
        station_id=station_id, received_through=received_through
    )
    session.execute(
        upsert.on_conflict_do_update(
            index_elements=["station_id"],
            set_={
                "received_through": case(
                    (
                        upsert.excluded.received_through > table.c.received_through,
                        upsert.excluded.received_through,
                    ),
                    else_=table.c.received_through,
                )
            },
        )
    )


def _received_sequences(station_id: int, after: int = 0) -> CompoundSelect[tuple[int]]:
    """Sequence numbers after `after` that reached the server, stored (job events, sign-ins
    and sign-outs) or rejected, each once."""
    return union(
        select(StageEvent.station_sequence.label("sequence")).where(
            StageEvent.station_id == station_id, StageEvent.station_sequence > after
        ),
        select(RejectedEvent.station_sequence.label("sequence")).where(
            RejectedEvent.station_id == station_id, RejectedEvent.station_sequence > after
        ),
        signins.received_sequences(station_id, after),
    )


def last_sequence(session: Session, station_id: int) -> int:
    """The highest sequence number that reached the server: each table's, from its index."""
    highest = union_all(
        select(func.max(StageEvent.station_sequence).label("sequence")).where(
            StageEvent.station_id == station_id
        ),
        select(func.max(RejectedEvent.station_sequence).label("sequence")).where(
            RejectedEvent.station_id == station_id
        ),
        signins.highest_sequence(station_id),
    ).subquery()
    return session.scalar(select(func.max(highest.c.sequence))) or 0
