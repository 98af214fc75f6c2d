"""The delay engine: each open job's ETA and its flags, with reasons a store person understands.

Everything takes `now` explicitly, so tests run it on a controllable clock. It runs on every
event (for that job, in the event's transaction) and in a periodic sweep (for time-based
flags such as late and stalled, and to learn stage times from history).
"""

import math
import statistics
from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session, defer, lazyload

from server.db import forget_memos, memo
from server.domain.lab_time import duration_text, lab_zone, local_text
from server.feed import append_update
from server.models import (
    Breakage,
    EventAction,
    FlagKind,
    Job,
    JobFlag,
    JobStatus,
    ReasonCode,
    Route,
    Stage,
    StageEvent,
    StageTime,
    Station,
)

# How lists, flags and the event path load jobs: without what they do not show, chiefly the
# patient data, decrypted on load (some 26 values a job: leaving it cut a sweep of 535 open
# jobs from 80-150 to 25 ms of CPU). What is read after all loads then, job by job.
WITHOUT_PRESCRIPTION = (
    lazyload(Job.prescription),
    lazyload(Job.remakes),
    lazyload(Job.remake_of),
    defer(Job.dcs_labels),
)
PRODUCTION_ONLY = (*WITHOUT_PRESCRIPTION, defer(Job.patient_ref))
# What a store counter needs to act on first; the row colour follows the worst open flag.
RED_FLAGS = frozenset({FlagKind.late, FlagKind.breakage, FlagKind.rework})
AMBER_FLAGS = frozenset({FlagKind.at_risk, FlagKind.stalled, FlagKind.on_hold})
RED_RANK, AMBER_RANK = 0, 1  # Job.flag_rank
LEARNING_WINDOW = timedelta(days=14)
MIN_SAMPLES = 5
# While a stage runs over its expected time, assume at least this share of it is still left.
MIN_REMAINING_SHARE = 0.1


@dataclass(frozen=True)
class FloorLoad:
    """What the ETA needs to know about the lab right now."""

    learned_minutes: dict[tuple[int, int], float]  # (route_id, stage_id) -> median minutes
    queued: dict[int, int]  # stage_id -> active jobs at that stage
    stations: dict[int, int]  # stage_id -> active stations
    capacity: dict[int, int]  # stage_id -> jobs a station runs at once

    def minutes(self, route_id: int, stage_id: int, standard: float) -> float:
        return self.learned_minutes.get((route_id, stage_id), standard)

    def queue_wait(self, stage_id: int, minutes: float, ahead_of_self: int = 0) -> float:
        """Minutes until a station at the stage is free for one more job."""
        waiting = max(0, self.queued.get(stage_id, 0) - ahead_of_self)
        slots = self.stations.get(stage_id, 1) * self.capacity.get(stage_id, 1)
        return math.floor(waiting / max(1, slots)) * minutes


@dataclass(frozen=True)
class _LabTimes:
    """The parts of the floor load that change only with the lab's setup or learned times,
    and the time zone flag reasons are written in."""

    learned_minutes: dict[tuple[int, int], float]
    stations: dict[int, int]
    capacity: dict[int, int]
    zone: ZoneInfo


def _lab_times(session: Session, lab_id: int) -> _LabTimes:
    """Read once per session: a group of events (server/writer.py) shares them."""
    return memo(session, (_LabTimes, lab_id), lambda: _read_lab_times(session, lab_id))


def _read_lab_times(session: Session, lab_id: int) -> _LabTimes:
    learned = {
        (row.route_id, row.stage_id): row.median_minutes
        for row in session.scalars(
            select(StageTime)
            .join(Stage, StageTime.stage_id == Stage.id)
            .where(Stage.lab_id == lab_id)
        )
    }
    stations: dict[int, int] = {}
    capacity: dict[int, int] = {}
    for stage_id, stage_capacity, active_stations in session.execute(
        select(Stage.id, Stage.capacity, func.count(Station.id))
        .outerjoin(Station, (Station.stage_id == Stage.id) & Station.active)
        .where(Stage.lab_id == lab_id)
        .group_by(Stage.id, Stage.capacity)
    ):
        capacity[stage_id] = stage_capacity
        if active_stations:  # a stage no station works at waits as if one did (queue_wait)
            stations[stage_id] = active_stations
    return _LabTimes(learned, stations, capacity, lab_zone(session, lab_id))


def floor_load(session: Session, lab_id: int) -> FloorLoad:
    times = _lab_times(session, lab_id)
    queued = dict(
        session.execute(
            select(Job.current_stage_id, func.count(Job.id))
            .where(Job.lab_id == lab_id, Job.is_active, Job.current_stage_id.is_not(None))
            .group_by(Job.current_stage_id)
        ).all()
    )
    return FloorLoad(times.learned_minutes, queued, times.stations, times.capacity)


def route_minutes(
    route: Route,
    load: FloorLoad,
    start: int = 0,
    *,
    elapsed: float | None = None,
    queued_at_start: bool = False,
) -> float:
    """Minutes to run `route` from step `start`: queue wait and work at each stage.

    `elapsed`: the first stage's work started that many minutes ago (no queue left there).
    `queued_at_start`: the job is already counted in the first stage's queue (an order not
    yet entered is not)."""
    remaining = 0.0
    for offset, step in enumerate(route.steps[start:]):
        minutes = load.minutes(route.id, step.stage_id, step.standard_minutes)
        if offset == 0 and elapsed is not None:
            remaining += max(minutes - elapsed, minutes * MIN_REMAINING_SHARE)
        else:
            ahead_of_self = int(offset == 0 and queued_at_start)
            remaining += load.queue_wait(step.stage_id, minutes, ahead_of_self) + minutes
    return remaining


def estimate_eta(job: Job, load: FloorLoad, now: datetime) -> datetime | None:
    """Now plus the remaining route: the current stage's rest, then queue and work at each
    later stage. A finished job has no ETA."""
    if not job.is_active:
        return None
    stage_ids = [step.stage_id for step in job.route.steps]
    start = stage_ids.index(job.current_stage_id) if job.current_stage_id in stage_ids else 0
    elapsed = None
    if job.status == JobStatus.in_progress:
        elapsed = (now - job.state_changed_at).total_seconds() / 60
    remaining = route_minutes(job.route, load, start, elapsed=elapsed, queued_at_start=True)
    return now + timedelta(minutes=remaining)


def _last_event(session: Session, job: Job, action: EventAction) -> StageEvent | None:
    return session.scalar(
        select(StageEvent)
        .where(StageEvent.job_id == job.id, StageEvent.action == action)
        .order_by(StageEvent.id.desc())
        .limit(1)
    )


def _last_breakage(session: Session, job: Job) -> StageEvent | None:
    """The latest breakage not reversed: one booked by mistake flags nothing."""
    return session.scalar(
        select(StageEvent)
        .outerjoin(Breakage, Breakage.event_id == StageEvent.id)
        .where(
            StageEvent.job_id == job.id,
            StageEvent.action == EventAction.breakage,
            Breakage.reversed_at.is_(None),
        )
        .order_by(StageEvent.id.desc())
        .limit(1)
    )


def _reason_text(session: Session, lab_id: int, code: str | None) -> str:
    if code is None:
        return "no reason given"
    description = session.scalar(
        select(ReasonCode.description).where(ReasonCode.lab_id == lab_id, ReasonCode.code == code)
    )
    return (description or code).lower()


def _still_redoing(job: Job, event: StageEvent | None) -> bool:
    """A rework or breakage stays flagged until the job is past the stage where it happened."""
    if event is None:
        return False
    positions = {step.stage_id: step.position for step in job.route.steps}
    here = positions.get(job.current_stage_id or -1, 0)
    return here <= positions.get(event.stage_id, len(positions))


def assess_flags(
    session: Session, job: Job, eta: datetime | None, now: datetime, zone: ZoneInfo
) -> dict[FlagKind, str]:
    """The flags the job should have now, each with its reason."""
    if not job.is_active:
        return {}
    stage = job.current_stage.name if job.current_stage else "no stage"
    promised = local_text(job.promised_at, zone)
    flags: dict[FlagKind, str] = {}
    if now > job.promised_at:
        flags[FlagKind.late] = f"Promised for {promised}; still at {stage}." + (
            f" Now expected {local_text(eta, zone)}." if eta else ""
        )
    elif eta is not None and eta > job.promised_at:
        expected = local_text(eta, zone)
        flags[FlagKind.at_risk] = f"Expected {expected}, after the promised {promised}."
    if job.status == JobStatus.on_hold:
        hold = _last_event(session, job, EventAction.hold)
        why = _reason_text(session, job.lab_id, hold.reason_code if hold else None)
        flags[FlagKind.on_hold] = f"On hold at {stage}: {why}."
    elif job.current_stage is not None:
        idle = now - job.state_changed_at
        if idle > timedelta(minutes=job.current_stage.stalled_after_minutes):
            flags[FlagKind.stalled] = f"No progress at {stage} for {duration_text(idle)}."
    # The counts say whether there is anything to look for: most jobs never failed or broke.
    rework = _last_event(session, job, EventAction.rework) if job.rework_count else None
    if _still_redoing(job, rework):
        assert rework is not None
        why = _reason_text(session, job.lab_id, rework.reason_code)
        flags[FlagKind.rework] = (
            f"Failed at {rework.stage.name} ({why}); being redone from {stage}."
        )
    breakage = _last_breakage(session, job) if job.breakage_count else None
    if _still_redoing(job, breakage):
        assert breakage is not None
        why = _reason_text(session, job.lab_id, breakage.reason_code)
        flags[FlagKind.breakage] = (
            f"Broke at {breakage.stage.name} ({why}); being remade from {stage}."
        )
    return flags


def refresh_job(
    session: Session,
    job: Job,
    now: datetime,
    load: FloorLoad | None = None,
    changed: bool = False,
) -> None:
    """Recompute the job's ETA and raise or clear its flags; every change goes to the feed.

    `changed` says the caller changed the job itself (an event), which the feed reports too.
    """
    load = load or floor_load(session, job.lab_id)
    _refresh(session, job, now, load, _lab_times(session, job.lab_id).zone, changed)
    session.flush()


def refresh_moved_jobs(session: Session, moved: Iterable[tuple[Job, datetime]]) -> None:
    """`refresh_job` for the jobs a group of events changed, each once at the time of its last
    event, under one floor load per lab read after all of them moved."""
    loads: dict[int, FloorLoad] = {}
    for job, now in moved:
        if job.lab_id not in loads:
            loads[job.lab_id] = floor_load(session, job.lab_id)
        zone = _lab_times(session, job.lab_id).zone
        _refresh(session, job, now, loads[job.lab_id], zone, changed=True)
    session.flush()


def _refresh(
    session: Session, job: Job, now: datetime, load: FloorLoad, zone: ZoneInfo, changed: bool
) -> None:
    eta = estimate_eta(job, load, now)
    eta_moved = eta != job.eta and (
        job.eta is None or eta is None or abs((eta - job.eta).total_seconds()) >= 60
    )
    if eta_moved:
        job.eta = eta
    wanted = assess_flags(session, job, job.eta, now, zone)
    # Loaded with the job; it reads only the open ones, so it is reloaded once changed below.
    open_flags = {flag.kind: flag for flag in job.open_flags}
    for kind, flag in open_flags.items():
        if kind not in wanted:
            flag.cleared_at = now
            append_update(session, job, "flag_cleared", {"flag": kind.value, "reason": flag.reason})
        elif wanted[kind] != flag.reason:
            flag.reason = wanted[kind]  # same flag, fresher wording (e.g. a longer stall)
    for kind, reason in wanted.items():
        if kind not in open_flags:
            session.add(JobFlag(job_id=job.id, kind=kind, reason=reason, raised_at=now))
            append_update(session, job, "flag_raised", {"flag": kind.value, "reason": reason})
    if open_flags.keys() != wanted.keys():
        session.expire(job, ["open_flags"])
    job.flag_rank = flag_rank(wanted.keys())
    if changed or eta_moved:
        append_update(
            session,
            job,
            "job_changed" if changed else "eta_changed",
            {
                "stage": job.current_stage.code if job.current_stage else None,
                "status": job.status.value,
                "eta": job.eta.isoformat() if job.eta else None,
            },
        )


def flag_rank(kinds: Collection[FlagKind]) -> int | None:
    """The worst of a job's open flags as the job keeps it (`Job.flag_rank`)."""
    if RED_FLAGS.intersection(kinds):
        return RED_RANK
    return AMBER_RANK if AMBER_FLAGS.intersection(kinds) else None


StageTimes = dict[tuple[int, int], list[float]]  # (route_id, stage_id) -> minutes of each pass


def measure_stage_times(session: Session, lab_id: int, now: datetime) -> StageTimes:
    """Start→complete minutes per route and stage over the recent window: reads only, so the
    background task runs it outside any write transaction (weeks of events)."""
    rows = session.execute(
        select(
            StageEvent.job_id,
            Job.route_id,
            StageEvent.stage_id,
            StageEvent.action,
            StageEvent.corrected_at,
        )
        .join(Job, StageEvent.job_id == Job.id)
        .where(
            Job.lab_id == lab_id,
            StageEvent.action.in_([EventAction.start, EventAction.complete]),
            StageEvent.corrected_at >= now - LEARNING_WINDOW,
        )
        .order_by(StageEvent.job_id, StageEvent.id)
    )
    started: dict[tuple[int, int], datetime] = {}
    durations: StageTimes = defaultdict(list)
    for job_id, route_id, stage_id, action, at in rows:
        if action == EventAction.start:
            started[(job_id, stage_id)] = at
        elif (job_id, stage_id) in started:
            minutes = (at - started.pop((job_id, stage_id))).total_seconds() / 60
            durations[(route_id, stage_id)].append(minutes)
    return durations


def store_stage_times(session: Session, lab_id: int, durations: StageTimes, now: datetime) -> int:
    """The median of each (route, stage) with at least MIN_SAMPLES samples replaces its
    standard minutes; returns how many medians were stored."""
    existing = {
        (row.route_id, row.stage_id): row
        for row in session.scalars(
            select(StageTime)
            .join(Stage, StageTime.stage_id == Stage.id)
            .where(Stage.lab_id == lab_id)
        )
    }
    stored = 0
    forget_memos(session)
    for (route_id, stage_id), samples in durations.items():
        if len(samples) < MIN_SAMPLES:
            continue
        row = existing.get((route_id, stage_id)) or StageTime(route_id=route_id, stage_id=stage_id)
        row.median_minutes = statistics.median(samples)
        row.samples = len(samples)
        row.updated_at = now
        session.add(row)
        stored += 1
    session.flush()
    return stored


def learn_stage_times(session: Session, lab_id: int, now: datetime) -> int:
    """Median start→complete minutes per route and stage over the recent window, stored in
    this session (see `measure_stage_times` and `store_stage_times`)."""
    return store_stage_times(session, lab_id, measure_stage_times(session, lab_id, now), now)


def open_job_ids(session: Session, lab_id: int) -> list[int]:
    return list(
        session.scalars(select(Job.id).where(Job.lab_id == lab_id, Job.is_active).order_by(Job.id))
    )


def sweep(
    session: Session,
    lab_id: int,
    now: datetime,
    job_ids: Sequence[int] | None = None,
    load: FloorLoad | None = None,
) -> int:
    """Refresh every open job, or those of `job_ids` still open (time alone raises late and
    stalled); returns jobs visited. `load`: the floor as read once for a round of chunks.
    Their changes are written in one flush: batched statements, not a few per job.
    """
    load = load or floor_load(session, lab_id)
    zone = lab_zone(session, lab_id)
    query = select(Job).where(Job.lab_id == lab_id, Job.is_active).options(*PRODUCTION_ONLY)
    if job_ids is not None:
        query = query.where(Job.id.in_(job_ids))
    jobs = session.scalars(query).all()
    for job in jobs:
        _refresh(session, job, now, load, zone, changed=False)
    session.flush()
    # Flags of jobs that finished since the last sweep are cleared by their final event.
    return len(jobs)
