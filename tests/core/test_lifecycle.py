"""The job lifecycle as one table: every action × status × where the job is on its route
(at the station's stage, before or after it, off the route, no stage, on hold, closed), with
the outcome or the refusal — the same sentences the server answers and the station shows."""

from typing import Any, Literal

import pytest

from core.lifecycle import Action, JobStatus, Outcome, Progress, Refusal, Route, apply

Q, P, H = JobStatus.queued, JobStatus.in_progress, JobStatus.on_hold
DONE, CANCELLED = JobStatus.completed, JobStatus.cancelled
NAMES = {
    "generating": "Generating",
    "edging": "Edging",
    "fitting": "Fitting",
    "final_qc": "Final QC",
    "shipping": "Shipping",
}
# A stock route; final QC passes a job only with a judged inspection. Generating is off it.
ROUTE = Route("J1", ("edging", "fitting", "final_qc", "shipping"), frozenset({"final_qc"}), NAMES)
OVERRIDE = {"override": True}
NO_INSPECTION = (
    "Final QC is an inspection stage: job J1 passes only with its inspection "
    "(measure it, then send the measurements with the pass)"
)


def at(stage: str | None, status: JobStatus = Q, before: JobStatus | None = None) -> Progress:
    return Progress(stage, status, before, active=status not in (DONE, CANCELLED))


def moved(stage: str | None, status: JobStatus = Q, **changes: Any) -> Outcome:
    return Outcome(at(stage, status, changes.pop("before", None)), **changes)


def refused(field: str, message: str, kind: Literal["conflict", "invalid"] = "conflict") -> Refusal:
    return Refusal(field, message, kind)


def needs_override(where: str, here: str, why: str = "skips") -> Refusal:
    return refused(
        "override_reason",
        f"job J1 is at {where}; starting it at {here} {why} its route — give an override reason",
    )


def reason(return_stage: str | None, code: str = "R-1") -> dict[str, Any]:
    return {"reason": code, "reason_return_stage": return_stage}


CLOSED = refused("job", "job J1 is completed; nothing more can happen")
ON_HOLD = refused("action", "job J1 is on hold; release it first")

# (progress, action, here, what the event carries, expected)
TABLE: list[Any] = [
    # start
    pytest.param(at("edging"), Action.start, "edging", {}, moved("edging", P), id="start-here"),
    pytest.param(
        at("edging", P),
        Action.start,
        "edging",
        {},
        refused("action", "job J1 is already started here"),
        id="start-again-here",
    ),
    pytest.param(at("edging", H, Q), Action.start, "edging", {}, ON_HOLD, id="start-on-hold"),
    pytest.param(
        at("fitting", H, P),
        Action.start,
        "edging",
        OVERRIDE,
        ON_HOLD,
        id="start-hold-beats-override",
    ),
    pytest.param(
        at("edging"),
        Action.start,
        "fitting",
        {},
        needs_override("Edging", "Fitting"),
        id="start-job-before-here",
    ),
    pytest.param(
        at("edging"),
        Action.start,
        "fitting",
        OVERRIDE,
        moved("fitting", P),
        id="start-before-override",
    ),
    pytest.param(
        at("edging", P),
        Action.start,
        "fitting",
        OVERRIDE,
        moved("fitting", P),
        id="start-taken-from-another-stage",
    ),
    pytest.param(
        at("final_qc"),
        Action.start,
        "edging",
        {},
        needs_override("Final QC", "Edging"),
        id="start-job-after-here",
    ),
    pytest.param(
        at("final_qc"),
        Action.start,
        "edging",
        OVERRIDE,
        moved("edging", P),
        id="start-after-override",
    ),
    pytest.param(
        at("edging"),
        Action.start,
        "generating",
        {},
        needs_override("Edging", "Generating", "is not routed to"),
        id="start-not-routed",
    ),
    pytest.param(
        at("edging"),
        Action.start,
        "generating",
        OVERRIDE,
        moved("generating", P),
        id="start-not-routed-override",
    ),
    pytest.param(
        at(None),
        Action.start,
        "edging",
        {},
        needs_override("no stage", "Edging"),
        id="start-no-stage",
    ),
    pytest.param(at("shipping", DONE), Action.start, "shipping", {}, CLOSED, id="start-completed"),
    pytest.param(
        at("edging", CANCELLED),
        Action.start,
        "edging",
        OVERRIDE,
        refused("job", "job J1 is cancelled; nothing more can happen"),
        id="start-cancelled",
    ),
    pytest.param(
        at("final_qc"),
        Action.start,
        "final_qc",
        {},
        moved("final_qc", P),
        id="start-inspection-stage",
    ),
    # complete
    pytest.param(
        at("edging", P), Action.complete, "edging", {}, moved("fitting"), id="complete-here"
    ),
    pytest.param(
        at("edging"),
        Action.complete,
        "edging",
        {},
        refused("action", "job J1 is not in progress at Edging"),
        id="complete-queued-here",
    ),
    pytest.param(at("edging", H, P), Action.complete, "edging", {}, ON_HOLD, id="complete-on-hold"),
    pytest.param(
        at("edging", P),
        Action.complete,
        "fitting",
        {},
        refused("action", "job J1 is not in progress at Fitting"),
        id="complete-job-before-here",
    ),
    pytest.param(
        at("fitting", P),
        Action.complete,
        "edging",
        {},
        refused("action", "job J1 is not in progress at Edging"),
        id="complete-job-after-here",
    ),
    pytest.param(
        at("shipping", P),
        Action.complete,
        "shipping",
        {},
        moved("shipping", DONE),
        id="complete-last-stage-finishes",
    ),
    pytest.param(
        at("generating", P),
        Action.complete,
        "generating",
        {},
        moved("generating", DONE),
        id="complete-off-route-finishes",
    ),
    pytest.param(
        at("final_qc", P),
        Action.complete,
        "final_qc",
        {},
        refused("inspection", NO_INSPECTION, "invalid"),
        id="complete-inspection-stage-uninspected",
    ),
    pytest.param(
        at("final_qc", P),
        Action.complete,
        "final_qc",
        {"inspected": True},
        moved("shipping"),
        id="complete-inspection-stage-inspected",
    ),
    pytest.param(
        at("final_qc"),
        Action.complete,
        "final_qc",
        {},
        refused("action", "job J1 is not in progress at Final QC"),
        id="complete-inspection-stage-queued",
    ),
    pytest.param(
        at("edging", P),
        Action.complete,
        "edging",
        {"inspected": True},
        moved("fitting"),
        id="complete-inspected-ordinary-stage",
    ),
    pytest.param(
        at("shipping", DONE), Action.complete, "shipping", {}, CLOSED, id="complete-closed"
    ),
    # hold: where the job is, whatever stage holds it
    pytest.param(
        at("edging"), Action.hold, "edging", {}, moved("edging", H, before=Q), id="hold-queued"
    ),
    pytest.param(
        at("edging", P),
        Action.hold,
        "edging",
        {},
        moved("edging", H, before=P),
        id="hold-in-progress",
    ),
    pytest.param(
        at("fitting"), Action.hold, "edging", {}, moved("fitting", H, before=Q), id="hold-elsewhere"
    ),
    pytest.param(at(None), Action.hold, "edging", {}, moved(None, H, before=Q), id="hold-no-stage"),
    pytest.param(
        at("edging", H, Q),
        Action.hold,
        "edging",
        {},
        refused("action", "job J1 is already on hold"),
        id="hold-on-hold",
    ),
    pytest.param(at("shipping", DONE), Action.hold, "shipping", {}, CLOSED, id="hold-closed"),
    # release: restores the status before the hold, wherever the job is
    pytest.param(
        at("edging", H, P),
        Action.release,
        "edging",
        {},
        moved("edging", P),
        id="release-to-started",
    ),
    pytest.param(
        at("edging", H, Q), Action.release, "edging", {}, moved("edging"), id="release-to-queued"
    ),
    pytest.param(
        at("edging", H), Action.release, "edging", {}, moved("edging"), id="release-before-unknown"
    ),
    pytest.param(
        at("fitting", H, P),
        Action.release,
        "edging",
        {},
        moved("fitting", P),
        id="release-elsewhere",
    ),
    pytest.param(
        at("edging"),
        Action.release,
        "edging",
        {},
        refused("action", "job J1 is not on hold"),
        id="release-queued",
    ),
    pytest.param(
        at("edging", P),
        Action.release,
        "edging",
        {},
        refused("action", "job J1 is not on hold"),
        id="release-in-progress",
    ),
    pytest.param(at("shipping", DONE), Action.release, "shipping", {}, CLOSED, id="release-closed"),
    # breakage: back to the reason's return stage if routed, else the route's first stage
    pytest.param(
        at("final_qc", P),
        Action.breakage,
        "final_qc",
        reason("fitting"),
        moved("fitting", breakages=1),
        id="breakage-to-routed-return-stage",
    ),
    pytest.param(
        at("fitting"),
        Action.breakage,
        "fitting",
        reason("generating"),
        moved("edging", breakages=1),
        id="breakage-return-stage-off-route",
    ),
    pytest.param(
        at("edging"),
        Action.breakage,
        "edging",
        reason(None),
        moved("edging", breakages=1),
        id="breakage-no-return-stage",
    ),
    pytest.param(
        at("fitting", H, P),
        Action.breakage,
        "fitting",
        reason("fitting"),
        moved("fitting", breakages=1),
        id="breakage-on-hold",
    ),
    pytest.param(
        at("shipping", DONE),
        Action.breakage,
        "shipping",
        reason(None),
        CLOSED,
        id="breakage-closed",
    ),
    # rework: to the explicit stage, else the defect's return stage (same rule as breakage)
    pytest.param(
        at("final_qc", P),
        Action.rework,
        "final_qc",
        {"to_stage": "edging"},
        moved("edging", reworks=1, rework_stage="edging"),
        id="rework-to-stage",
    ),
    pytest.param(
        at("final_qc", P),
        Action.rework,
        "final_qc",
        {"to_stage": "generating"},
        refused("to_stage", "job J1's route has no such stage", "invalid"),
        id="rework-to-stage-off-route",
    ),
    pytest.param(
        at("final_qc", P),
        Action.rework,
        "final_qc",
        reason("fitting"),
        moved("fitting", reworks=1, rework_stage="fitting"),
        id="rework-defect-return-stage",
    ),
    pytest.param(
        at("final_qc", P),
        Action.rework,
        "final_qc",
        reason("generating"),
        moved("edging", reworks=1, rework_stage="edging"),
        id="rework-defect-return-stage-off-route",
    ),
    pytest.param(
        at("fitting"),
        Action.rework,
        "fitting",
        reason(None),
        moved("edging", reworks=1, rework_stage="edging"),
        id="rework-defect-no-return-stage",
    ),
    pytest.param(
        at("final_qc", P),
        Action.rework,
        "final_qc",
        {"to_stage": "edging", **reason("fitting")},
        moved("edging", reworks=1, rework_stage="edging"),
        id="rework-to-stage-beats-defect",
    ),
    pytest.param(
        at("final_qc", P),
        Action.rework,
        "final_qc",
        {},
        refused("reason_code", "a rework needs a defect reason code or to_stage", "invalid"),
        id="rework-without-target",
    ),
    pytest.param(
        at("final_qc", H, P),
        Action.rework,
        "final_qc",
        reason("fitting"),
        moved("fitting", reworks=1, rework_stage="fitting"),
        id="rework-on-hold",
    ),
    pytest.param(
        at("shipping", DONE), Action.rework, "shipping", reason(None), CLOSED, id="rework-closed"
    ),
    # note: never changes anything, never refused
    pytest.param(at("edging"), Action.note, "fitting", {}, moved("edging"), id="note-queued"),
    pytest.param(at("edging", P), Action.note, "edging", {}, moved("edging", P), id="note-started"),
    pytest.param(
        at("edging", H, P),
        Action.note,
        "edging",
        {},
        moved("edging", H, before=P),
        id="note-on-hold",
    ),
    pytest.param(
        at("shipping", DONE), Action.note, "shipping", {}, moved("shipping", DONE), id="note-closed"
    ),
]


@pytest.mark.parametrize(("progress", "action", "here", "carries", "expected"), TABLE)
def test_the_lifecycle(
    progress: Progress,
    action: Action,
    here: str,
    carries: dict[str, Any],
    expected: Outcome | Refusal,
) -> None:
    assert apply(progress, action, route=ROUTE, here=here, **carries) == expected


def test_the_table_covers_every_action_in_every_status() -> None:
    covered = {(row.values[1], row.values[0].status) for row in TABLE}
    every = {(action, status) for action in Action for status in (Q, P, H, DONE)}
    assert every - covered == set()
