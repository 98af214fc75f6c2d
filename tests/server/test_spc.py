"""SPC charts and lab alerts (server.domain.spc, issue #16) on a month of bulk history with
the drift the demo plants on EDGE-2: the chart of a machine holds exactly the lenses it
processed last before QC, the drifting edger breaks the run rules upwards far more than its
twin, a scan raises each chart and rule's alert once, and only a lab manager acknowledges."""

import re
import time
from collections import defaultdict
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.sync_api import expect
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.domain import spc
from server.domain.breakage import shift_at
from server.domain.bulk_seed import DRIFT_DAYS, DRIFT_STATION, bulk_seed
from server.domain.errors import Conflict, Forbidden, Invalid
from server.models import (
    EventAction,
    Inspection,
    InspectionCheck,
    Job,
    Lab,
    LabAlert,
    StageEvent,
    Station,
    utcnow,
)
from tests.chromium import chromium, log_in, screenshot
from tests.liveserver import LiveServer
from tests.server.conftest import Lab as LabFixture
from tests.server.test_kpi_stage_times import after_a_dst_change

JOBS = 500
HISTORY = timedelta(days=30)


def _last_edged_at(session: Session, stage_id: int) -> dict[int, int]:
    """Inspection id -> the station of the job's last completion at the stage before it,
    worked out event by event in Python (the chart's SQL does it in one statement)."""
    completions: dict[int, list[tuple[int, int]]] = defaultdict(list)
    rows = session.execute(
        select(StageEvent.job_id, StageEvent.id, StageEvent.station_id)
        .where(StageEvent.stage_id == stage_id, StageEvent.action == EventAction.complete)
        .order_by(StageEvent.id)
    )
    for job_id, event_id, station_id in rows:
        completions[job_id].append((event_id, station_id))
    last: dict[int, int] = {}
    for inspection_id, job_id, event_id in session.execute(
        select(Inspection.id, Inspection.job_id, Inspection.event_id)
    ):
        before = [station for done, station in completions[job_id] if done < event_id]
        if before:
            last[inspection_id] = before[-1]
    return last


def test_a_drifting_edger_is_charted_and_alerted_once(lab: LabFixture) -> None:
    now = utcnow()
    manager, technician = lab.manager(), lab.person("tech1")
    with lab.context.db.session() as session:
        lab_row = session.scalars(select(Lab)).one()
        bulk_seed(session, lab_row.id, JOBS, as_of=now, history=HISTORY)
    since = now - timedelta(days=DRIFT_DAYS)
    with lab.context.db.session() as session:
        drifting = spc.chart(
            session, manager, spc.ChartQuery(measure="sph", station=DRIFT_STATION), now
        )
        twin = spc.chart(session, manager, spc.ChartQuery(measure="sph", station="EDGE-1"), now)
        edger = session.scalars(select(Station).where(Station.name == DRIFT_STATION)).one()
        # Exactly the lenses last edged there: every inspection of the window, judged apart.
        charted = {(p.job_id, p.at) for p in drifting.points[drifting.baseline :]}
        edged = _last_edged_at(session, edger.stage_id)
        inspections = session.execute(
            select(Inspection.id, Inspection.job_id, Inspection.inspected_at).where(
                Inspection.inspected_at >= now - spc.PHASE_TWO
            )
        )
        edged_there = {
            (job_id, at) for id_, job_id, at in inspections if edged.get(id_) == edger.id
        }
        assert charted and charted <= edged_there
        assert len(charted) == min(len(edged_there), spc.POINTS // 2)  # two lenses a job

    assert drifting.limits is not None and twin.limits is not None
    assert drifting.baseline == spc.BASELINE_POINTS
    assert all(p.at < drifting.since for p in drifting.points[: drifting.baseline])
    drifted = [v for v in drifting.violations if v.at >= since]
    above = [v for v in drifted if v.side == "above"]
    assert {v.rule for v in above} >= {3, 4}
    below = len(drifted) - len(above)
    assert len(above) > 3 * below  # the drift is upwards
    assert len(above) > 2 * sum(v.side == "above" for v in twin.violations if v.at >= since)
    for violation in drifting.violations:
        point = drifting.points[violation.index]
        assert (violation.job_id, violation.at) == (point.job_id, point.at)

    with lab.context.db.session() as session:
        late = spc.chart(
            session,
            technician,
            spc.ChartQuery(measure="sph", station="QC-1", shift="late", material="CR-39"),
            now,
        )
        jobs = {p.job_id for p in late.points}
        materials = session.scalars(select(Job.lens_material).where(Job.id.in_(jobs))).all()
        assert late.points and set(materials) == {"CR-39"}
        assert {shift_at(lab_row, p.at) for p in late.points} == {"late"}
        means = spc.chart(
            session,
            manager,
            spc.ChartQuery(measure="sph", station=DRIFT_STATION, kind="xbar_r", subgroup=4),
            now,
        )
        assert len(means.points) == len(drifting.points) // 4
        assert means.limits is not None and means.limits.spread_lower == 0.0

    raised = spc.scan_for_violations(lab.context.db, lab_row.id, now)
    assert any(a.chart == f"sph|{DRIFT_STATION}|*|*" for a in raised)
    assert len({(a.chart, a.rule) for a in raised}) == len(raised)
    assert spc.scan_for_violations(lab.context.db, lab_row.id, now) == []
    with lab.context.db.session() as session:
        open_alerts = spc.list_alerts(session, technician)
        assert len(open_alerts) == len(raised)
        with pytest.raises(Forbidden):
            spc.acknowledge_alert(session, technician, open_alerts[0].id, now)
        seen = spc.acknowledge_alert(session, manager, open_alerts[0].id, now)
        assert seen.acknowledged_at == now
        with pytest.raises(Conflict):
            spc.acknowledge_alert(session, manager, seen.id, now)
    # Acknowledged: the same violation raises nothing again; the others stay open.
    assert spc.scan_for_violations(lab.context.db, lab_row.id, now + timedelta(minutes=10)) == []
    with lab.context.db.session() as session:
        assert len(spc.list_alerts(session, manager)) == len(raised) - 1
        assert len(spc.list_alerts(session, manager, include_acknowledged=True)) == len(raised)
        assert session.get_one(LabAlert, seen.id).acknowledged_by_id == manager.person_id


def test_a_shift_chart_holds_the_latest_lenses_of_its_shift_across_a_dst_change(
    lab: LabFixture,
) -> None:
    """The shift is judged in SQL, by the lab's local time of day: an inspecting station's
    chart of each shift (the night's over midnight) holds exactly the latest lenses inspected
    in it as shift_at judges them, its judged points across a DST change of the lab's zone."""
    manager = lab.manager()
    with lab.context.db.session() as session:
        lab_row = session.scalars(select(Lab)).one()
        zone = ZoneInfo(lab_row.timezone)
        now = after_a_dst_change(zone, utcnow())
        bulk_seed(session, lab_row.id, 400, as_of=now, history=timedelta(days=40))
    with lab.context.db.read_session() as session:
        lab_row = session.scalars(select(Lab)).one()
        lenses = session.execute(
            select(Inspection.job_id, Inspection.inspected_at)
            .join(InspectionCheck, InspectionCheck.inspection_id == Inspection.id)
            .join(Station, Station.id == Inspection.station_id)
            .where(Station.name == "QC-1", InspectionCheck.field == "sph")
            .order_by(
                Inspection.inspected_at.desc(), Inspection.id.desc(), InspectionCheck.id.desc()
            )
        ).all()
        shifts = [shift["name"] for shift in lab_row.shifts]
        assert len(shifts) == 3
        for shift in shifts:
            query = spc.ChartQuery(measure="sph", station="QC-1", shift=shift)
            chart = spc.chart(session, manager, query, now)
            ours = [(job, at) for job, at in lenses if shift_at(lab_row, at) == shift]
            baseline = [lens for lens in ours if lens[1] < chart.since][: spc.BASELINE_POINTS]
            recent = [lens for lens in ours if lens[1] >= chart.since][: spc.POINTS]
            assert recent and baseline
            assert [(p.job_id, p.at) for p in chart.points] == baseline[::-1] + recent[::-1]
            offsets = {at.astimezone(zone).utcoffset() for _job, at in recent}
            assert len(offsets) == 2  # inspected before and after the change


def test_a_chart_without_history_has_no_limits_and_judges_nothing(lab: LabFixture) -> None:
    with lab.context.db.session() as session:
        empty = spc.chart(
            session, lab.manager(), spc.ChartQuery(measure="pd", station="EDGE-1"), utcnow()
        )
    assert (empty.points, empty.limits, empty.violations) == ([], None, [])


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"measure": "sph", "station": "EDGE-9"}, "station"),
        ({"measure": "sph", "station": "EDGE-1", "shift": "siesta"}, "shift"),
        ({"measure": "sph", "station": "EDGE-1", "material": "glass"}, "material"),
    ],
)
def test_a_chart_of_what_the_lab_has_not_is_refused_naming_the_field(
    lab: LabFixture, query: dict[str, str], field: str
) -> None:
    with lab.context.db.session() as session, pytest.raises(Invalid) as refused:
        spc.chart(session, lab.manager(), spc.ChartQuery.model_validate(query), utcnow())
    assert refused.value.field == field


async def test_the_api_refuses_a_bad_query_with_a_4xx_naming_it(
    lab: LabFixture, client: httpx.AsyncClient
) -> None:
    await lab.log_in(client, "manager", "demo-manager-pass")
    for params, field in [
        ({"measure": "colour", "station": "EDGE-1"}, "measure"),
        ({"measure": "sph", "station": "EDGE-1", "since": "2026-12-01T10:00:00"}, "since"),
        ({"measure": "sph", "station": "EDGE-1", "subgroup": "11"}, "subgroup"),
        ({"measure": "sph", "station": "EDGE-1", "colour": "red"}, "colour"),
    ]:
        response = await client.get("/api/kpis/spc/chart", params=params)
        assert response.status_code == 422, response.text
        assert field in response.text
    response = await client.get(
        "/api/kpis/spc/chart", params={"measure": "sph", "station": "EDGE-1", "kind": "xbar_r"}
    )
    assert response.status_code == 200 and response.json()["kind"] == "xbar_r"
    missing = await client.post("/api/kpis/spc/alerts/999999/acknowledge")
    assert missing.status_code == 404


@pytest.mark.browser
def test_a_lab_manager_sees_the_drift_acknowledges_and_drills_to_a_job(tmp_path: Path) -> None:
    """The demo's way: bulk history with the planted drift, the server's sweep scans it, the
    WIP board shows the alerts, the chart names each violation's rule and opens its job."""
    server = LiveServer(tmp_path / "server")
    server.cli("seed-demo", "--jobs", "500", "--bulk", "20")
    server.start()
    try:
        with chromium() as browser:
            page = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()
            page.set_default_timeout(15_000)
            refused: list[str] = []
            page.on(
                "console",
                lambda m: refused.append(m.text) if "Security Policy" in m.text else None,
            )
            log_in(page, server.url, "manager", "demo-manager-pass")
            acknowledge = page.get_by_role("button", name="Acknowledge")
            for _ in range(30):  # the first sweep round scans as the server starts
                page.goto(f"{server.url}/wip")
                if acknowledge.count():
                    break
                time.sleep(1)
            alerts = page.locator("a:has-text('the centre line')")
            shown = alerts.count()
            assert shown >= 1
            screenshot(page, "spc-wip-alerts-1440x900")
            first = alerts.first.inner_text()
            acknowledge.first.click()
            expect(page.locator(f"a:text-is('{first}')")).to_have_count(0)

            page.goto(f"{server.url}/lab/spc?measure=sph&station={DRIFT_STATION}")
            expect(page.locator("canvas").first).to_be_visible()
            expect(page.get_by_text("Rule 3").first).to_be_visible()
            screenshot(page, "spc-1440x900")
            job_link = page.locator("a[href^='/store/jobs/']").first
            number = job_link.inner_text()
            job_link.click()
            page.wait_for_url(re.compile(r"/store/jobs/\d+$"))
            expect(page.get_by_text(number).first).to_be_visible()
            assert not refused, refused
    finally:
        server.stop()
