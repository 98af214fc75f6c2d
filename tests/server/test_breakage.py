"""Breakage records: part, eyes, shift and cost from config; reversal by a lab manager."""

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import func, select

from server.domain import views
from server.domain.breakage import shift_at
from server.domain.errors import Invalid
from server.models import Breakage, EventAction, FlagKind, JobUpdate, LensDesign, StageEvent, utcnow
from server.models import Lab as LabRow
from tests.server.conftest import Floor, Lab


def test_a_lens_breakage_is_costed_per_lens_and_booked_to_its_shift(lab: Lab, floor: Floor) -> None:
    lab.make_job("J1", design=LensDesign.PAL, surfaced=True)
    # 23:30 UTC is 00:30 in Berlin in November: the night shift (starts 22:00 local). Both the
    # scan and its arrival are put on that clock: the server books the skew-corrected time.
    at = datetime(2026, 11, 20, 23, 30, tzinfo=UTC)
    floor.send("GEN-1", "J1", EventAction.start, at=at - timedelta(minutes=20))
    floor.send(
        "GEN-1",
        "J1",
        EventAction.breakage,
        at=at,
        reason_code="B-WAVE",
        breakage={"part": "lens", "eyes": ["R"], "replacement_blanks": ["PAL-1.6-LOT42"]},
    )
    with lab.context.db.session() as session:
        breakage = session.scalar(select(Breakage))
        assert breakage is not None
        assert (breakage.part, breakage.eyes, breakage.cost, breakage.currency) == (
            "lens",
            "R",
            38.0,
            "EUR",
        )
        assert breakage.shift == "night"
        assert breakage.stage.code == "generating"
        assert breakage.replacement_blanks == ["PAL-1.6-LOT42"]


def test_without_details_both_lenses_count_and_a_frame_costs_the_frame(
    lab: Lab, floor: Floor
) -> None:
    lab.make_job("J1")
    lab.make_job("J2")
    floor.send("EDGE-1", "J1", EventAction.start)
    floor.send("EDGE-1", "J1", EventAction.breakage, reason_code="B-CHIP")
    floor.send("EDGE-1", "J2", EventAction.start)
    floor.send(
        "EDGE-1", "J2", EventAction.breakage, reason_code="B-GROOVE", breakage={"part": "frame"}
    )
    with lab.context.db.session() as session:
        rows = session.execute(select(Breakage.eyes, Breakage.cost).order_by(Breakage.id)).all()
    assert [tuple(row) for row in rows] == [("RL", 12.0), ("", 25.0)]


def test_breaking_a_lens_the_job_does_not_have_is_refused_whole(lab: Lab, floor: Floor) -> None:
    job_id = lab.make_job("J1")
    with lab.context.db.session() as session:
        job = lab.job(job_id)
        left = next(eye for eye in job.prescription if eye.eye == "L")
        session.delete(session.merge(left))
    floor.send("EDGE-1", "J1", EventAction.start)
    with pytest.raises(Invalid) as refused:
        floor.send(
            "EDGE-1", "J1", EventAction.breakage, reason_code="B-CHIP", breakage={"eyes": ["L"]}
        )
    assert refused.value.field == "breakage.eyes"
    with lab.context.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Breakage)) == 0
        breakages = select(func.count()).where(StageEvent.action == "breakage")
        assert session.scalar(breakages) == 0
    assert lab.job(job_id).status == "in_progress"


def test_breakage_details_only_ride_on_breakage_events(lab: Lab, floor: Floor) -> None:
    with pytest.raises(ValidationError, match="belong to a breakage event"):
        floor.event("EDGE-1", "J1", EventAction.note, breakage={"part": "frame"})


@pytest.mark.parametrize(
    ("utc_hour", "shift"),
    [(4, "night"), (5, "early"), (12, "early"), (13, "late"), (20, "late"), (21, "night")],
)
def test_shifts_follow_the_lab_clock_across_midnight(utc_hour: int, shift: str) -> None:
    lab = LabRow(
        timezone="Europe/Berlin",  # UTC+1 in November
        shifts=[
            {"name": "early", "starts": "06:00:00"},
            {"name": "late", "starts": "14:00:00"},
            {"name": "night", "starts": "22:00:00"},
        ],
    )
    assert shift_at(lab, datetime(2026, 11, 20, utc_hour, 0, tzinfo=UTC)) == shift


async def test_a_lab_manager_reverses_a_breakage_booked_by_mistake(
    lab: Lab, floor: Floor, client: httpx.AsyncClient
) -> None:
    job_id = lab.make_job("J1")
    floor.send("EDGE-1", "J1", EventAction.start)
    floor.send("EDGE-1", "J1", EventAction.breakage, reason_code="B-CHIP")
    assert lab.job(job_id).breakage_count == 1

    await lab.log_in(client, "tech1", "demo-tech-pass")
    listed = (await client.get("/api/breakages")).json()
    assert [b["job_number"] for b in listed] == ["J1"]
    refused = await client.post(f"/api/breakages/{listed[0]['id']}/reverse", json={"reason": "x"})
    assert refused.status_code == 422  # reason too short
    refused = await client.post(
        f"/api/breakages/{listed[0]['id']}/reverse", json={"reason": "scanned wrong tray"}
    )
    assert refused.status_code == 403

    await lab.log_in(client, "manager", "demo-manager-pass")
    reversed_ = await client.post(
        f"/api/breakages/{listed[0]['id']}/reverse", json={"reason": "scanned wrong tray"}
    )
    assert reversed_.status_code == 200, reversed_.text
    assert reversed_.json()["reversal_reason"] == "scanned wrong tray"
    again = await client.post(
        f"/api/breakages/{listed[0]['id']}/reverse", json={"reason": "scanned wrong tray"}
    )
    assert again.status_code == 409
    assert (await client.get("/api/breakages")).json() == []
    kept = (await client.get("/api/breakages", params={"include_reversed": True})).json()
    assert [b["reversed_at"] is not None for b in kept] == [True]
    assert lab.job(job_id).breakage_count == 0
    # The flag goes with it, the store's pages are told, the history says why.
    assert FlagKind.breakage not in {flag.kind for flag in lab.job(job_id).open_flags}
    manager = lab.manager()
    with lab.context.db.session() as session:
        kinds = list(session.scalars(select(JobUpdate.kind).where(JobUpdate.job_id == job_id)))
        detail = views.job_detail(session, manager, job_id, utcnow())
    assert kinds[-2:] == ["breakage_reversed", "flag_cleared"]
    assert detail is not None
    assert [problem.reason for problem in detail.problems] == [
        "B-CHIP · Chip or crack at edging · reversed: scanned wrong tray"
    ]

    await lab.log_in(client, "north", "demo-store-pass")
    assert (await client.get("/api/breakages")).status_code == 403
