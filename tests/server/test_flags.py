"""The delay engine on a controlled clock: ETAs, flags with their reasons, the change feed."""

from datetime import datetime, timedelta

import pytest
from sqlalchemy import event, select

from server.domain.flags import estimate_eta, floor_load, learn_stage_times, refresh_job, sweep
from server.models import EventAction, FlagKind, Job, JobFlag, JobUpdate, LensDesign, utcnow
from tests.server.conftest import Floor, Lab

# Stock SV route in config/lab.example.toml: edging 12, fitting 8, final QC 5, shipping 10.
STOCK_ROUTE_MINUTES = 12 + 8 + 5 + 10
STATIONS_PER_STAGE = 2  # the example config has two stations at every stage


def _refresh(lab: Lab, job_id: int, now: datetime) -> Job:
    with lab.context.db.session() as session:
        job = session.get_one(Job, job_id)
        refresh_job(session, job, now)
        return job


def _open_flags(lab: Lab, job_id: int) -> dict[FlagKind, str]:
    with lab.context.db.session() as session:
        flags = session.scalars(
            select(JobFlag).where(JobFlag.job_id == job_id, JobFlag.cleared_at.is_(None))
        )
        return {flag.kind: flag.reason for flag in flags}


def _eta(lab: Lab, job_id: int, now: datetime) -> datetime | None:
    with lab.context.db.session() as session:
        job = session.get_one(Job, job_id)
        return estimate_eta(job, floor_load(session, job.lab_id), now)


def test_a_new_job_is_due_after_its_route_standard_minutes(lab: Lab) -> None:
    job_id = lab.make_job("J1")
    now = utcnow()
    assert _eta(lab, job_id, now) == now + timedelta(minutes=STOCK_ROUTE_MINUTES)


def test_a_started_stage_counts_only_its_remaining_minutes(lab: Lab, floor: Floor) -> None:
    job_id = lab.make_job("J1")
    started = utcnow() - timedelta(minutes=5)
    floor.send("EDGE-1", "J1", EventAction.start, at=started)
    now = started + timedelta(minutes=5)
    assert _eta(lab, job_id, now) == now + timedelta(minutes=STOCK_ROUTE_MINUTES - 5)
    # Running over: at least a tenth of the stage is assumed left, never a past ETA.
    late_now = started + timedelta(minutes=60)
    assert _eta(lab, job_id, late_now) == late_now + timedelta(minutes=1.2 + 8 + 5 + 10)


def test_jobs_queued_ahead_add_their_work_to_the_wait(lab: Lab) -> None:
    jobs = [lab.make_job(f"J{number}") for number in range(5)]
    now = utcnow()
    # Five jobs wait at edging with two edgers: four are ahead of any one of them, which
    # the two edgers work off in two rounds.
    with lab.context.db.session() as session:
        assert set(floor_load(session, 1).stations.values()) == {STATIONS_PER_STAGE}
    assert _eta(lab, jobs[0], now) == now + timedelta(minutes=2 * 12 + STOCK_ROUTE_MINUTES)


def test_batch_stages_wait_by_batches_not_by_jobs(lab: Lab) -> None:
    # Hard coat runs 40 jobs at once: 39 jobs queued there add no wait for a newcomer.
    with lab.context.db.session() as session:
        load = floor_load(session, 1)
    hard_coat = next(stage for stage, capacity in load.capacity.items() if capacity == 40)
    assert load.queue_wait(hard_coat, 90) == 0
    # 160 jobs at two 40-job chambers: two full rounds before a newcomer gets in.
    busy = type(load)(load.learned_minutes, {hard_coat: 160}, load.stations, load.capacity)
    assert busy.queue_wait(hard_coat, 90) == 2 * 90


def test_learned_medians_replace_standard_minutes_once_there_is_history(
    lab: Lab, floor: Floor
) -> None:
    start = utcnow() - timedelta(hours=3)
    for number, minutes in enumerate([20, 22, 30, 25, 21]):
        lab.make_job(f"J{number}")
        floor.send("EDGE-1", f"J{number}", EventAction.start, at=start)
        floor.send(
            "EDGE-1", f"J{number}", EventAction.complete, at=start + timedelta(minutes=minutes)
        )
    job_id = lab.make_job("JX")
    now = utcnow()
    with lab.context.db.session() as session:
        assert learn_stage_times(session, 1, now) == 1
    # Median of 20, 21, 22, 25, 30 is 22 (instead of the standard 12); the five edged jobs
    # now wait at fitting ahead of this one: two fitters, 8 minutes each, two full rounds.
    assert _eta(lab, job_id, now) == now + timedelta(minutes=22 + 2 * 8 + 8 + 5 + 10)


def test_four_samples_are_not_enough_to_learn_from(lab: Lab, floor: Floor) -> None:
    start = utcnow() - timedelta(hours=3)
    for number in range(4):
        lab.make_job(f"J{number}")
        floor.send("EDGE-1", f"J{number}", EventAction.start, at=start)
        floor.send("EDGE-1", f"J{number}", EventAction.complete, at=start + timedelta(hours=1))
    with lab.context.db.session() as session:
        assert learn_stage_times(session, 1, utcnow()) == 0


def test_at_risk_then_late_as_the_clock_passes_the_promise(lab: Lab) -> None:
    job_id = lab.make_job("J1", promised_in=timedelta(minutes=20))
    now = utcnow()
    _refresh(lab, job_id, now)
    flags = _open_flags(lab, job_id)
    assert set(flags) == {FlagKind.at_risk}
    assert flags[FlagKind.at_risk].startswith("Expected ")
    _refresh(lab, job_id, now + timedelta(minutes=25))
    flags = _open_flags(lab, job_id)
    assert set(flags) == {FlagKind.late}
    assert "still at Edging" in flags[FlagKind.late]


def test_a_job_waiting_too_long_at_a_stage_is_stalled(lab: Lab) -> None:
    job_id = lab.make_job("J1")
    arrived = lab.job(job_id).state_changed_at
    _refresh(lab, job_id, arrived + timedelta(minutes=119))
    assert FlagKind.stalled not in _open_flags(lab, job_id)
    _refresh(lab, job_id, arrived + timedelta(minutes=121))
    assert _open_flags(lab, job_id)[FlagKind.stalled] == "No progress at Edging for 2 h 1 min."
    # The wording follows the clock without raising the flag twice.
    _refresh(lab, job_id, arrived + timedelta(minutes=200))
    assert _open_flags(lab, job_id)[FlagKind.stalled] == "No progress at Edging for 3 h 20 min."
    with lab.context.db.session() as session:
        raised = session.scalars(select(JobUpdate.detail).where(JobUpdate.kind == "flag_raised"))
        assert [detail["flag"] for detail in raised] == ["stalled"]


def test_a_hold_is_flagged_with_its_reason_and_cleared_on_release(lab: Lab, floor: Floor) -> None:
    job_id = lab.make_job("J1")
    floor.send("EDGE-1", "J1", EventAction.hold, reason_code="H-FRAME")
    assert _open_flags(lab, job_id) == {FlagKind.on_hold: "On hold at Edging: waiting for frame."}
    floor.send("EDGE-1", "J1", EventAction.release)
    assert _open_flags(lab, job_id) == {}


def test_rework_stays_flagged_until_the_job_is_past_the_failing_stage(
    lab: Lab, floor: Floor
) -> None:
    job_id = lab.make_job("J1", design=LensDesign.PAL, surfaced=True)
    floor.send("QC-1", "J1", EventAction.start, override_reason="test: straight to QC")
    floor.send("QC-1", "J1", EventAction.rework, reason_code="D-PD")
    assert _open_flags(lab, job_id)[FlagKind.rework] == (
        "Failed at Final QC (pd or fitting height out of tolerance); being redone from Edging."
    )
    for station in ("EDGE-1", "FIT-1", "QC-1"):
        assert FlagKind.rework in _open_flags(lab, job_id)
        floor.send(station, "J1", EventAction.start)
        floor.complete(station, "J1")
    assert FlagKind.rework not in _open_flags(lab, job_id)  # passed QC: now at shipping


def test_a_breakage_is_flagged_with_where_and_why(lab: Lab, floor: Floor) -> None:
    job_id = lab.make_job("J1")
    floor.send("EDGE-1", "J1", EventAction.start)
    floor.send("EDGE-1", "J1", EventAction.breakage, reason_code="B-CHIP")
    assert _open_flags(lab, job_id)[FlagKind.breakage] == (
        "Broke at Edging (chip or crack at edging); being remade from Edging."
    )


def test_finishing_the_route_clears_every_flag(lab: Lab, floor: Floor) -> None:
    job_id = lab.make_job("J1", promised_in=timedelta(minutes=1))
    now = utcnow() + timedelta(minutes=5)
    for station in ("EDGE-1", "FIT-1", "QC-1", "SHIP-1"):
        floor.send(station, "J1", EventAction.start, at=now)
        floor.complete(station, "J1", at=now)
    assert _open_flags(lab, job_id) == {}
    with lab.context.db.session() as session:
        kinds = [u.kind for u in session.scalars(select(JobUpdate).order_by(JobUpdate.id))]
    assert "flag_cleared" in kinds
    assert kinds.count("job_changed") == 1 + 8  # created, then eight events


@pytest.mark.parametrize("minutes_late", [1, 600])
def test_the_sweep_raises_late_without_any_event(lab: Lab, minutes_late: int) -> None:
    job_id = lab.make_job("J1", promised_in=timedelta(minutes=30))
    with lab.context.db.session() as session:
        visited = sweep(session, 1, utcnow() + timedelta(minutes=30 + minutes_late))
    assert visited == 1
    assert FlagKind.late in _open_flags(lab, job_id)


def test_the_sweep_writes_its_jobs_changes_in_one_flush(lab: Lab) -> None:
    """Batched statements, not a few per job: the transaction that holds other writers stays
    short (benchmarks/scale.py counts its statements)."""
    job_ids = [lab.make_job(f"J{number}", promised_in=timedelta(minutes=30)) for number in range(5)]
    flushes: list[object] = []
    with lab.context.db.session() as session:
        event.listen(session, "after_flush", lambda *_: flushes.append(None))
        assert sweep(session, 1, utcnow() + timedelta(minutes=60)) == 5
        # On PostgreSQL the feed's one NOTIFY a transaction flushes the first job's changes.
        assert len(flushes) == (2 if lab.context.db.dialect == "postgresql" else 1)
    assert all(FlagKind.late in _open_flags(lab, job_id) for job_id in job_ids)
