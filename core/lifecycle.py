"""The job lifecycle, written once: what each station action does to a job on its route.

The server applies it when it stores an event; the station applies it to show, offline too,
what the server will do. Pure: stage codes in, the job's next progress (or why not) out.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Literal, assert_never


class JobStatus(StrEnum):
    queued = "queued"  # waiting at its current stage
    in_progress = "in_progress"
    on_hold = "on_hold"
    completed = "completed"  # route finished (shipped)
    cancelled = "cancelled"


class Action(StrEnum):
    """What a station event does; stored as the event's action."""

    start = "start"
    complete = "complete"
    hold = "hold"
    release = "release"
    breakage = "breakage"
    rework = "rework"
    note = "note"


@dataclass(frozen=True)
class Progress:
    """Where a job is and what it is doing there."""

    stage: str | None
    status: JobStatus
    status_before_hold: JobStatus | None = None  # what a release restores
    active: bool = True  # False once completed or cancelled: only notes may follow


@dataclass(frozen=True)
class Route:
    """A job's route: its stage codes in order, which of them pass a job only with a judged
    inspection, and for messages the job's number and the stages' names."""

    job_number: str
    stages: tuple[str, ...]
    inspection_stages: frozenset[str] = frozenset()
    names: Mapping[str, str] = field(default_factory=dict)

    def name(self, stage: str | None) -> str:
        return "no stage" if stage is None else self.names.get(stage, stage)


@dataclass(frozen=True)
class Outcome:
    """The action applies: the job's new progress and the counts it adds to."""

    progress: Progress
    breakages: int = 0
    reworks: int = 0
    rework_stage: str | None = None  # where a rework sends the job (recorded on its event)


@dataclass(frozen=True)
class Refusal:
    """The action cannot apply: the field to fix and why. A conflict is about the job's state
    now (a later scan may succeed); invalid means the event itself lacks something."""

    field: str
    message: str
    kind: Literal["conflict", "invalid"] = "conflict"


def return_stage(route: Sequence[str], configured: str | None) -> str:
    """Where a breakage or defect sends a job: its reason's return stage if the job's route has
    it, else the route's first stage (a stock lens with a power defect is picked again, not
    surfaced)."""
    return configured if configured in route else route[0]


def apply(
    progress: Progress,
    action: Action,
    *,
    route: Route,
    here: str,
    override: bool = False,
    reason: str | None = None,
    reason_return_stage: str | None = None,
    to_stage: str | None = None,
    inspected: bool = False,
) -> Outcome | Refusal:
    """What `action`, recorded by a station at stage `here`, does to a job.

    `override`: an override reason was given; `reason`: the hold, breakage or defect code given,
    `reason_return_stage` its configured return stage; `to_stage`: a rework's explicit stage;
    `inspected`: the event carries a judged inspection.
    """
    job = f"job {route.job_number}"
    if action == Action.note:
        return Outcome(progress)
    if not progress.active:
        return Refusal("job", f"{job} is {progress.status}; nothing more can happen")
    match action:
        case Action.start:
            return _start(progress, route, here, override)
        case Action.complete:
            return _complete(progress, route, here, inspected)
        case Action.hold:
            if progress.status == JobStatus.on_hold:
                return Refusal("action", f"{job} is already on hold")
            return Outcome(
                replace(progress, status=JobStatus.on_hold, status_before_hold=progress.status)
            )
        case Action.release:
            if progress.status != JobStatus.on_hold:
                return Refusal("action", f"{job} is not on hold")
            restored = progress.status_before_hold or JobStatus.queued
            return Outcome(replace(progress, status=restored, status_before_hold=None))
        case Action.breakage:
            target = return_stage(route.stages, reason_return_stage)
            return Outcome(Progress(target, JobStatus.queued), breakages=1)
        case Action.rework:
            if inspected and (refused := _not_in_progress_here(progress, route, here)):
                return refused  # a failed inspection is of the job in hand at this stage
            return _rework(route, reason, reason_return_stage, to_stage)
    assert_never(action)


def _start(progress: Progress, route: Route, here: str, override: bool) -> Outcome | Refusal:
    job = f"job {route.job_number}"
    if progress.status == JobStatus.on_hold:
        return Refusal("action", f"{job} is on hold; release it first")
    if progress.stage == here and progress.status == JobStatus.in_progress:
        return Refusal("action", f"{job} is already started here")
    if progress.stage != here and not override:
        why = "skips" if here in route.stages else "is not routed to"
        return Refusal(
            "override_reason",
            f"{job} is at {route.name(progress.stage)}; starting it at {route.name(here)} "
            f"{why} its route — give an override reason",
        )
    return Outcome(Progress(here, JobStatus.in_progress))


def _not_in_progress_here(progress: Progress, route: Route, here: str) -> Refusal | None:
    if progress.stage == here and progress.status == JobStatus.in_progress:
        return None
    return Refusal("action", f"job {route.job_number} is not in progress at {route.name(here)}")


def _complete(progress: Progress, route: Route, here: str, inspected: bool) -> Outcome | Refusal:
    job = f"job {route.job_number}"
    if progress.status == JobStatus.on_hold:
        return Refusal("action", f"{job} is on hold; release it first")
    if refused := _not_in_progress_here(progress, route, here):
        return refused
    if here in route.inspection_stages and not inspected:
        return Refusal(
            "inspection",
            f"{route.name(here)} is an inspection stage: {job} passes only with its "
            "inspection (measure it, then send the measurements with the pass)",
            "invalid",
        )
    if here not in route.stages or here == route.stages[-1]:  # off the route: nothing follows
        return Outcome(Progress(here, JobStatus.completed, active=False))
    return Outcome(Progress(route.stages[route.stages.index(here) + 1], JobStatus.queued))


def _rework(
    route: Route, reason: str | None, reason_return_stage: str | None, to_stage: str | None
) -> Outcome | Refusal:
    if to_stage is not None:
        target = to_stage
    elif reason is not None:
        target = return_stage(route.stages, reason_return_stage)
    else:
        return Refusal("reason_code", "a rework needs a defect reason code or to_stage", "invalid")
    if target not in route.stages:
        return Refusal("to_stage", f"job {route.job_number}'s route has no such stage", "invalid")
    return Outcome(Progress(target, JobStatus.queued), reworks=1, rework_stage=target)
