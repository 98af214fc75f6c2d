"""The scan state machine and the outbox, without UI or server."""

import random
from dataclasses import replace
from pathlib import Path

import pytest

from station.flow import INSPECTING, Projected, StationFlow, Verdict, decide, project
from station.outbox import Outbox, OutboxWriteFailed
from station.uplink import backoff_delay
from station.wire import Action, JobCard, JobStatus, Operator, SignAction
from tests.station.fakes import OPERATORS, REASONS, FakeSource, card


@pytest.fixture
def outbox(tmp_path: Path) -> Outbox:
    return Outbox(tmp_path / "outbox.sqlite3")


@pytest.fixture
def clock() -> list[float]:
    return [1000.0]


@pytest.fixture
def flow(outbox: Outbox, clock: list[float]) -> StationFlow:
    return StationFlow(
        outbox,
        FakeSource(outbox),
        stage="edging",
        idle_sign_out_seconds=600,
        repeat_scan_seconds=2,
        clock=lambda: clock[0],
    )


def test_sequences_are_monotonic_and_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    first = Outbox(path)
    seqs = [first.record("J1", Action.note, operator_badge=None).seq for _ in range(3)]
    first.close()
    again = Outbox(path)
    seqs.append(again.record("J1", Action.note, operator_badge=None).seq)
    assert seqs == [1, 2, 3, 4]
    assert again.counts() == {"queued": 4, "sent": 0, "rejected": 0}


def test_the_sequence_base_is_set_once(outbox: Outbox) -> None:
    assert outbox.sequence_base is None
    assert outbox.set_sequence_base_once(41) == 41
    assert outbox.set_sequence_base_once(99) == 41


def test_backoff_grows_is_capped_and_jittered() -> None:
    rng = random.Random(1)
    delays = [backoff_delay(n, 0.5, 8.0, rng) for n in range(1, 12)]
    assert 0.25 <= delays[0] <= 0.5
    assert all(4.0 <= delay <= 8.0 for delay in delays[5:])
    assert len({round(d, 6) for d in delays[5:]}) > 1  # jitter spreads the resends


@pytest.mark.parametrize(
    ("stage", "status", "verdict"),
    [
        ("edging", "queued", Verdict.start),
        ("edging", "in_progress", Verdict.complete),
        ("fitting", "queued", Verdict.needs_override),  # already past this stage
        (None, "queued", Verdict.needs_override),
        ("edging", "on_hold", Verdict.on_hold),
        ("shipping", "completed", Verdict.closed),
    ],
)
def test_decide(stage: str | None, status: str, verdict: Verdict) -> None:
    job = card(stage=stage, status=status)
    assert decide(job, Projected(stage, JobStatus(status)), "edging")[0] == verdict


def test_a_cancelled_job_is_closed_and_the_card_says_why() -> None:
    job = card(status="cancelled").model_copy(update={"cancel_reason": "Patient moved away"})
    verdict, message = decide(job, Projected("edging", JobStatus.cancelled), "edging")
    assert (verdict, message) == (Verdict.closed, "Job J1 is cancelled: Patient moved away")


def test_a_stage_not_on_the_route_needs_an_override() -> None:
    job = card()
    verdict, message = decide(job, Projected("edging", JobStatus.queued), "generating")
    assert verdict == Verdict.needs_override and "Not routed here" in message


def test_projection_applies_local_events_idempotently(outbox: Outbox) -> None:
    reasons = {reason.code: reason for reason in REASONS}
    start = outbox.record("J1", Action.start, operator_badge="B1001")
    complete = outbox.record("J1", Action.complete, operator_badge="B1001")
    once = project(card(), [start, complete], reasons, "edging")
    assert once == Projected("fitting", JobStatus.queued)
    # the card may already reflect the start: applying it again changes nothing
    assert project(card(status="in_progress"), [start, complete], reasons, "edging") == once
    rework = outbox.record("J1", Action.rework, operator_badge="B1001", reason_code="D-FIT")
    assert project(card(), [rework], reasons, "edging") == Projected("fitting", JobStatus.queued)


def qc_inspects(job: JobCard) -> JobCard:
    """The card as the example lab's server sends it: final QC is an inspection stage."""
    stages = [s.model_copy(update={"inspection": s.code == "final_qc"}) for s in job.route_stages]
    return job.model_copy(update={"route_stages": stages})


def test_an_inspection_stage_passes_a_job_by_inspection_not_by_scan(outbox: Outbox) -> None:
    job = qc_inspects(card(stage="final_qc", status="in_progress"))
    state = Projected("final_qc", JobStatus.in_progress)
    assert decide(job, state, "final_qc") == (Verdict.inspect, INSPECTING)
    reasons = {reason.code: reason for reason in REASONS}
    plain = outbox.record("J1", Action.complete, operator_badge="B1001")
    assert project(job, [plain], reasons, "final_qc") == state  # the server refuses it
    measured = {"measured": {"R": {"sph": -1.25, "cyl": -0.5, "axis": 90}}}
    passed = replace(plain, fields={**plain.fields, "inspection": measured})
    assert project(job, [passed], reasons, "final_qc") == Projected("shipping", JobStatus.queued)


def test_release_restores_the_status_before_the_hold_as_the_server_does(outbox: Outbox) -> None:
    reasons = {reason.code: reason for reason in REASONS}
    held = card(status="on_hold").model_copy(update={"status_before_hold": JobStatus.queued})
    release = outbox.record("J1", Action.release, operator_badge="B1001")
    assert project(held, [release], reasons, "edging") == Projected("edging", JobStatus.queued)
    hold = outbox.record("J1", Action.hold, operator_badge="B1001", reason_code="H-FRAME")
    start = outbox.record("J1", Action.start, operator_badge="B1001")
    events = [start, hold, release]
    assert project(card(), events, reasons, "edging") == Projected("edging", "in_progress")


def test_an_event_the_server_rejected_changes_nothing(outbox: Outbox) -> None:
    reasons = {reason.code: reason for reason in REASONS}
    rework = outbox.record("J1", Action.rework, operator_badge="B1001", reason_code="D-FIT")
    rejected = replace(rework, state="rejected")
    assert project(card(), [rejected], reasons, "edging") == Projected("edging", JobStatus.queued)


async def test_a_scan_at_an_inspection_stage_starts_but_never_passes(
    outbox: Outbox, clock: list[float]
) -> None:
    source = FakeSource(outbox)
    source.cards["J1"] = qc_inspects(card(stage="final_qc"))
    flow = StationFlow(
        outbox,
        source,
        stage="final_qc",
        idle_sign_out_seconds=600,
        repeat_scan_seconds=2,
        clock=lambda: clock[0],
    )
    await flow.scan("B1001")
    assert (await flow.scan("J1")).message == "Started"
    clock[0] += 5
    screen = await flow.scan("J1")
    assert (screen.verdict, screen.message) == (Verdict.inspect, INSPECTING)
    assert [event.action for event in outbox.queued(10)] == [SignAction.sign_in, Action.start]


async def test_badge_then_job_scans_start_and_complete(
    flow: StationFlow, outbox: Outbox, clock: list[float]
) -> None:
    flow.source.cards["J1"] = card()  # type: ignore[attr-defined]
    assert (await flow.scan("J1")).tone == "error"  # nobody signed in
    assert (await flow.scan("B1001")).operator is not None
    screen = await flow.scan("T1")  # the tray number finds the job
    assert (screen.tone, screen.message) == ("ok", "Started")
    assert (await flow.scan("T1")).scan_count == screen.scan_count  # a double read: one scan
    clock[0] += 5
    screen = await flow.scan("J1")
    assert screen.message == "Completed, next: Fitting"
    actions = [event.action for event in outbox.queued(10)]
    assert actions == [SignAction.sign_in, Action.start, Action.complete]
    assert all(event.fields["operator_badge"] == "B1001" for event in outbox.queued(10))


async def test_wrong_stage_warns_and_override_records_the_reason(
    flow: StationFlow, outbox: Outbox
) -> None:
    flow.source.cards["J2"] = card("J2", stage="fitting")  # type: ignore[attr-defined]
    await flow.scan("B1001")
    screen = await flow.scan("J2")
    assert (screen.tone, screen.verdict) == ("warning", Verdict.needs_override)
    assert [event.action for event in outbox.queued(10)] == [SignAction.sign_in]
    assert flow.override("no").tone == "error"
    assert flow.override("Route is wrong").message == "Started"
    assert outbox.queued(10)[-1].fields["override_reason"] == "Route is wrong"


async def test_reason_barcodes_hold_and_break_the_shown_job(
    flow: StationFlow, outbox: Outbox
) -> None:
    flow.source.cards["J3"] = card("J3")  # type: ignore[attr-defined]
    await flow.scan("B1001")
    await flow.scan("J3")
    assert (await flow.scan("H-FRAME")).state == Projected("edging", JobStatus.on_hold)
    assert flow.record(Action.release).message == "Released"
    screen = await flow.scan("B-CHIP")
    assert (screen.message, screen.state) == ("Breakage recorded", Projected("edging", "queued"))
    assert [e.action for e in outbox.queued(10)][-3:] == [
        Action.hold,
        Action.release,
        Action.breakage,
    ]


async def test_offline_uncached_jobs_are_still_recorded(
    flow: StationFlow, outbox: Outbox, clock: list[float]
) -> None:
    flow.source.online = False  # type: ignore[attr-defined]
    await flow.scan("B1001")
    assert (await flow.scan("J77")).tone == "warning"
    clock[0] += 5
    await flow.scan("J77")
    actions = [e.action for e in outbox.queued(10)]
    assert actions == [SignAction.sign_in, Action.start, Action.complete]


async def test_unknown_job_and_idle_sign_out(flow: StationFlow, clock: list[float]) -> None:
    await flow.scan("B1001")
    assert (await flow.scan("J404")).message == "Unknown job or tray J404"
    clock[0] += 601
    flow.check_idle()
    assert flow.screen.operator is None and "idle" in flow.screen.message


async def test_sign_ins_and_outs_are_recorded_in_order_with_the_job_events(
    flow: StationFlow, outbox: Outbox, clock: list[float]
) -> None:
    """The server accepts a job event only from the operator signed in at this station: the
    outbox sends it who that was, in order, offline too."""
    flow.source.online = False  # type: ignore[attr-defined]
    other = Operator(badge_code="B1002", name="Ann Lee", initials="AL", role="technician")
    flow.source.operators = lambda: [*OPERATORS, other]  # type: ignore[method-assign]
    await flow.scan("B1001")
    await flow.scan("J77")
    clock[0] += 5
    await flow.scan("B1002")  # another badge: the first operator is signed out
    assert flow.screen.operator == other
    clock[0] += 5
    await flow.scan("B1002")  # scanned again: signed out
    await flow.scan("B1001")
    clock[0] += 601
    flow.check_idle()
    assert flow.screen.operator is None
    sequence = [(event.action, event.job or None) for event in outbox.queued(20)]
    assert sequence == [
        (SignAction.sign_in, None),
        (Action.start, "J77"),
        (SignAction.sign_out, None),
        (SignAction.sign_in, None),
        (SignAction.sign_out, None),
        (SignAction.sign_in, None),
        (SignAction.sign_out, None),
    ]
    badges = [e.fields["operator_badge"] for e in outbox.queued(20) if e.job == ""]
    assert badges == ["B1001", "B1001", "B1002", "B1002", "B1001", "B1001"]
    wire = outbox.queued(1)[0].wire(sequence_base=0, sent_at=outbox.queued(1)[0].created_at)
    assert (wire.job, wire.action, wire.operator_badge) == (None, SignAction.sign_in, "B1001")


async def test_a_sign_in_the_disk_cannot_save_signs_no_one_in(
    flow: StationFlow, outbox: Outbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(*_: object, **__: object) -> None:
        raise OutboxWriteFailed("database or disk is full")

    monkeypatch.setattr(outbox, "record_sign", disk_full)
    screen = await flow.scan("B1001")
    assert screen.operator is None
    assert screen.message.startswith("NOT RECORDED: sign_in of B1001")
