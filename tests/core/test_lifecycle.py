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


def case(name: str, *values: Any) -> Any:
    """One row of the table, its test id first."""
    return pytest.param(*values, id=name)


CLOSED = refused("job", "job J1 is completed; nothing more can happen")
ON_HOLD = refused("action", "job J1 is on hold; release it first")

# (name, progress, action, here, what the event carries, expected)
TABLE: list[Any] = [
    # start
    case("start-here", at("edging"), Action.start, "edging", {}, moved("edging", P)),
    case(
        "start-again-here",
        at("edging", P),
        Action.start,
        "edging",
        {},
        refused("action", "job J1 is already started here"),
    ),
    case("start-on-hold", at("edging", H, Q), Action.start, "edging", {}, ON_HOLD),
    case(
        "start-hold-beats-override", at("fitting", H, P), Action.start, "edging", OVERRIDE, ON_HOLD
    ),
    case(
        "start-job-before-here",
        at("edging"),
        Action.start,
        "fitting",
        {},
        needs_override("Edging", "Fitting"),
    ),
    case(
        "start-before-override",
        at("edging"),
        Action.start,
        "fitting",
        OVERRIDE,
        moved("fitting", P),
    ),
    case(
        "start-taken-from-another-stage",
        at("edging", P),
        Action.start,
        "fitting",
        OVERRIDE,
        moved("fitting", P),
    ),
    case(
        "start-job-after-here",
        at("final_qc"),
        Action.start,
        "edging",
        {},
        needs_override("Final QC", "Edging"),
    ),
    case(
        "start-after-override", at("final_qc"), Action.start, "edging", OVERRIDE, moved("edging", P)
    ),
    case(
        "start-not-routed",
        at("edging"),
        Action.start,
        "generating",
        {},
        needs_override("Edging", "Generating", "is not routed to"),
    ),
    case(
        "start-not-routed-override",
        at("edging"),
        Action.start,
        "generating",
        OVERRIDE,
        moved("generating", P),
    ),
    case(
        "start-no-stage", at(None), Action.start, "edging", {}, needs_override("no stage", "Edging")
    ),
    case("start-completed", at("shipping", DONE), Action.start, "shipping", {}, CLOSED),
    case(
        "start-cancelled",
        at("edging", CANCELLED),
        Action.start,
        "edging",
        OVERRIDE,
        refused("job", "job J1 is cancelled; nothing more can happen"),
    ),
    case(
        "start-inspection-stage", at("final_qc"), Action.start, "final_qc", {}, moved("final_qc", P)
    ),
    # complete
    case("complete-here", at("edging", P), Action.complete, "edging", {}, moved("fitting")),
    case(
        "complete-queued-here",
        at("edging"),
        Action.complete,
        "edging",
        {},
        refused("action", "job J1 is not in progress at Edging"),
    ),
    case("complete-on-hold", at("edging", H, P), Action.complete, "edging", {}, ON_HOLD),
    case(
        "complete-job-before-here",
        at("edging", P),
        Action.complete,
        "fitting",
        {},
        refused("action", "job J1 is not in progress at Fitting"),
    ),
    case(
        "complete-job-after-here",
        at("fitting", P),
        Action.complete,
        "edging",
        {},
        refused("action", "job J1 is not in progress at Edging"),
    ),
    case(
        "complete-last-stage-finishes",
        at("shipping", P),
        Action.complete,
        "shipping",
        {},
        moved("shipping", DONE),
    ),
    case(
        "complete-off-route-finishes",
        at("generating", P),
        Action.complete,
        "generating",
        {},
        moved("generating", DONE),
    ),
    case(
        "complete-inspection-stage-uninspected",
        at("final_qc", P),
        Action.complete,
        "final_qc",
        {},
        refused("inspection", NO_INSPECTION, "invalid"),
    ),
    case(
        "complete-inspection-stage-inspected",
        at("final_qc", P),
        Action.complete,
        "final_qc",
        {"inspected": True},
        moved("shipping"),
    ),
    case(
        "complete-inspection-stage-queued",
        at("final_qc"),
        Action.complete,
        "final_qc",
        {},
        refused("action", "job J1 is not in progress at Final QC"),
    ),
    case(
        "complete-inspected-ordinary-stage",
        at("edging", P),
        Action.complete,
        "edging",
        {"inspected": True},
        moved("fitting"),
    ),
    case("complete-closed", at("shipping", DONE), Action.complete, "shipping", {}, CLOSED),
    # hold: where the job is, whatever stage holds it
    case("hold-queued", at("edging"), Action.hold, "edging", {}, moved("edging", H, before=Q)),
    case(
        "hold-in-progress", at("edging", P), Action.hold, "edging", {}, moved("edging", H, before=P)
    ),
    case("hold-elsewhere", at("fitting"), Action.hold, "edging", {}, moved("fitting", H, before=Q)),
    case("hold-no-stage", at(None), Action.hold, "edging", {}, moved(None, H, before=Q)),
    case(
        "hold-on-hold",
        at("edging", H, Q),
        Action.hold,
        "edging",
        {},
        refused("action", "job J1 is already on hold"),
    ),
    case("hold-closed", at("shipping", DONE), Action.hold, "shipping", {}, CLOSED),
    # release: restores the status before the hold, wherever the job is
    case(
        "release-to-started", at("edging", H, P), Action.release, "edging", {}, moved("edging", P)
    ),
    case("release-to-queued", at("edging", H, Q), Action.release, "edging", {}, moved("edging")),
    case("release-before-unknown", at("edging", H), Action.release, "edging", {}, moved("edging")),
    case(
        "release-elsewhere", at("fitting", H, P), Action.release, "edging", {}, moved("fitting", P)
    ),
    case(
        "release-queued",
        at("edging"),
        Action.release,
        "edging",
        {},
        refused("action", "job J1 is not on hold"),
    ),
    case(
        "release-in-progress",
        at("edging", P),
        Action.release,
        "edging",
        {},
        refused("action", "job J1 is not on hold"),
    ),
    case("release-closed", at("shipping", DONE), Action.release, "shipping", {}, CLOSED),
    # breakage: back to the reason's return stage if routed, else the route's first stage
    case(
        "breakage-to-routed-return-stage",
        at("final_qc", P),
        Action.breakage,
        "final_qc",
        reason("fitting"),
        moved("fitting", breakages=1),
    ),
    case(
        "breakage-return-stage-off-route",
        at("fitting"),
        Action.breakage,
        "fitting",
        reason("generating"),
        moved("edging", breakages=1),
    ),
    case(
        "breakage-no-return-stage",
        at("edging"),
        Action.breakage,
        "edging",
        reason(None),
        moved("edging", breakages=1),
    ),
    case(
        "breakage-on-hold",
        at("fitting", H, P),
        Action.breakage,
        "fitting",
        reason("fitting"),
        moved("fitting", breakages=1),
    ),
    case(
        "breakage-closed", at("shipping", DONE), Action.breakage, "shipping", reason(None), CLOSED
    ),
    # rework: to the explicit stage, else the defect's return stage (same rule as breakage)
    case(
        "rework-to-stage",
        at("final_qc", P),
        Action.rework,
        "final_qc",
        {"to_stage": "edging"},
        moved("edging", reworks=1, rework_stage="edging"),
    ),
    case(
        "rework-to-stage-off-route",
        at("final_qc", P),
        Action.rework,
        "final_qc",
        {"to_stage": "generating"},
        refused("to_stage", "job J1's route has no such stage", "invalid"),
    ),
    case(
        "rework-defect-return-stage",
        at("final_qc", P),
        Action.rework,
        "final_qc",
        reason("fitting"),
        moved("fitting", reworks=1, rework_stage="fitting"),
    ),
    case(
        "rework-defect-return-stage-off-route",
        at("final_qc", P),
        Action.rework,
        "final_qc",
        reason("generating"),
        moved("edging", reworks=1, rework_stage="edging"),
    ),
    case(
        "rework-defect-no-return-stage",
        at("fitting"),
        Action.rework,
        "fitting",
        reason(None),
        moved("edging", reworks=1, rework_stage="edging"),
    ),
    case(
        "rework-to-stage-beats-defect",
        at("final_qc", P),
        Action.rework,
        "final_qc",
        {"to_stage": "edging", **reason("fitting")},
        moved("edging", reworks=1, rework_stage="edging"),
    ),
    case(
        "rework-without-target",
        at("final_qc", P),
        Action.rework,
        "final_qc",
        {},
        refused("reason_code", "a rework needs a defect reason code or to_stage", "invalid"),
    ),
    case(
        "rework-on-hold",
        at("final_qc", H, P),
        Action.rework,
        "final_qc",
        reason("fitting"),
        moved("fitting", reworks=1, rework_stage="fitting"),
    ),
    case(
        "rework-failed-inspection",
        at("final_qc", P),
        Action.rework,
        "final_qc",
        {"inspected": True, **reason("fitting")},
        moved("fitting", reworks=1, rework_stage="fitting"),
    ),
    # A failed inspection is of the job in hand here, not of one at another stage.
    case(
        "rework-failed-inspection-elsewhere",
        at("fitting", P),
        Action.rework,
        "final_qc",
        {"inspected": True, **reason("fitting")},
        refused("action", "job J1 is not in progress at Final QC"),
    ),
    case(
        "rework-failed-inspection-queued",
        at("final_qc"),
        Action.rework,
        "final_qc",
        {"inspected": True, **reason("fitting")},
        refused("action", "job J1 is not in progress at Final QC"),
    ),
    case("rework-closed", at("shipping", DONE), Action.rework, "shipping", reason(None), CLOSED),
    # note: never changes anything, never refused
    case("note-queued", at("edging"), Action.note, "fitting", {}, moved("edging")),
    case("note-started", at("edging", P), Action.note, "edging", {}, moved("edging", P)),
    case(
        "note-on-hold", at("edging", H, P), Action.note, "edging", {}, moved("edging", H, before=P)
    ),
    case("note-closed", at("shipping", DONE), Action.note, "shipping", {}, moved("shipping", DONE)),
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
