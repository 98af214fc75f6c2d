"""KPIs (server/domain/kpis.py) against figures worked out by hand from a small lab history,
with its edge cases: a job reworked twice, a reversed breakage, a cancelled job, a job that
spans two periods; then the API's scoping, bad parameters and exports."""

import csv
import io
import random
from datetime import date, datetime, timedelta

import httpx
import pytest
from openpyxl import load_workbook
from sqlalchemy import select, update

from server.domain import breakage, changes, kpis
from server.domain.kpis import DrillKind, DrillQuery, KpiQuery, Ratio
from server.domain.lab_time import lab_zone
from server.models import Breakage, EventAction, Job, KpiSpan, utcnow
from tests.server.conftest import Floor, Lab, span_firsts
from tests.server.test_inspection import FAILED, ON_SPEC

WORK = timedelta(minutes=10)  # every start to complete, unless a test says otherwise
QUEUE = timedelta(minutes=5)  # every complete to the next start
STOCK_ROUTE = ("EDGE-1", "FIT-1", "QC-1", "SHIP-1")


class History:
    """Sends a job's events on a clock the test chooses."""

    def __init__(self, lab: Lab, floor: Floor, at: datetime) -> None:
        self.lab, self.floor, self.at = lab, floor, at

    def job(self, number: str, store: str = "NORTH", promised: datetime | None = None) -> int:
        job_id = self.lab.make_job(number, store=store)
        with self.lab.context.db.session() as session:
            session.execute(
                update(Job)
                .where(Job.id == job_id)
                .values(
                    ordered_at=self.at - QUEUE, promised_at=promised or self.at + timedelta(days=1)
                )
            )
        return job_id

    def send(self, station: str, number: str, action: EventAction, **fields: object) -> None:
        assert self.floor.send(station, number, action, self.at, **fields) == "stored"

    def through(self, number: str, stations: tuple[str, ...], work: timedelta = WORK) -> None:
        for station in stations:
            self.at += QUEUE
            self.send(station, number, EventAction.start)
            self.at += work
            if station == "QC-1":
                self.send(station, number, EventAction.complete, inspection={"measured": ON_SPEC})
            else:
                self.send(station, number, EventAction.complete)

    def qc_rework(self, number: str) -> None:
        self.at += QUEUE
        self.send("QC-1", number, EventAction.start)
        self.at += WORK
        self.send("QC-1", number, EventAction.rework, inspection=FAILED, reason_code="D-POWER")

    def breaks_at_edging(self, number: str) -> None:
        self.at += QUEUE
        self.send("EDGE-1", number, EventAction.start)
        self.at += WORK
        self.send("EDGE-1", number, EventAction.breakage, reason_code="B-CHIP")


@pytest.fixture
def history(lab: Lab, floor: Floor) -> tuple[kpis.Period, dict[str, int]]:
    """Two days of history in the lab's zone (the period), and a job reworked before it."""
    manager = lab.manager()
    with lab.context.db.session() as session:
        zone = lab_zone(session, manager.lab_id)
    today = utcnow().astimezone(zone).date()
    query = KpiQuery(period="custom", start=today - timedelta(days=2), end=today)
    period = kpis.resolve_period(query, zone, utcnow())
    before = History(lab, floor, period.start - timedelta(hours=3))
    ids = {"G": before.job("G")}  # reworked before the period, finished in it
    before.through("G", ("EDGE-1", "FIT-1"))
    before.qc_rework("G")
    clock = History(lab, floor, period.start + timedelta(hours=2))
    late = clock.at  # B and C are promised for the period's third hour
    ids["A"] = clock.job("A")
    clock.through("A", STOCK_ROUTE)
    ids["B"] = clock.job("B", promised=late)
    clock.through("B", ("EDGE-1",), work=3 * WORK)
    clock.through("B", STOCK_ROUTE[1:])
    ids["C"] = clock.job("C", store="SOUTH", promised=late)  # reworked twice
    clock.through("C", ("EDGE-1", "FIT-1"))
    for _ in range(2):
        clock.qc_rework("C")
        clock.through("C", ("EDGE-1", "FIT-1"))
    clock.through("C", STOCK_ROUTE[2:])
    ids["D"] = clock.job("D")  # its breakage reversed
    clock.breaks_at_edging("D")
    clock.through("D", STOCK_ROUTE)
    ids["E"] = clock.job("E", store="SOUTH")  # broken, not reversed
    clock.breaks_at_edging("E")
    clock.through("E", STOCK_ROUTE)
    ids["F"] = clock.job("F")  # broken, then cancelled: in no figure
    clock.breaks_at_edging("F")
    clock.at += QUEUE
    clock.send("EDGE-1", "F", EventAction.start)
    ids["H"] = clock.job("H")  # in progress at edging
    clock.at += QUEUE
    clock.send("EDGE-1", "H", EventAction.start)
    clock.through("G", ("EDGE-1", "FIT-1", "QC-1", "SHIP-1"))
    with lab.context.db.session() as session:
        reversed_id = session.scalar(
            select(Breakage.id).where(Breakage.job_id == ids["D"]).order_by(Breakage.id)
        )
        assert reversed_id is not None
        breakage.reverse_breakage(
            session, manager, reversed_id, "booked on the wrong job", utcnow()
        )
        changes.cancel_job(session, manager, ids["F"], "patient moved away")
    return period, ids


def test_every_figure_matches_the_hand_count(
    lab: Lab, history: tuple[kpis.Period, dict[str, int]]
) -> None:
    period, ids = history
    manager, south_staff = lab.manager(), lab.person("south")
    query = KpiQuery(period="custom", start=period.first_day, end=period.last_day)
    with lab.context.db.session() as session:
        board = kpis.dashboard(session, manager, query, utcnow())
        south = kpis.dashboard(session, south_staff, query, utcnow())
        jobs = {
            kind: {row.job_id for row in kpis.drill(session, manager, drill, utcnow())[1]}
            for kind, drill in (
                (kind, DrillQuery(**query.model_dump(), kind=kind)) for kind in DrillKind
            )
        }
        late_reworked = kpis.drill(
            session,
            manager,
            DrillQuery(**query.model_dump(), kind="late", dimension="cause", value="rework"),
            utcnow(),
        )[1]
    now = board.current
    # Finished: A B C D E G; late: B (flow) and C (rework); F cancelled, H still in the lab.
    assert now.finished == 6
    assert now.on_time == Ratio(4, 6)
    # First QC inspections in the period: A B C(failed) D E; G's first was before it.
    assert now.first_pass == Ratio(4, 5)
    assert now.rework == Ratio(2, 6)  # C (twice, counted once) and G
    assert now.breakages == Ratio(1, 6)  # E: D's was reversed, F was cancelled
    assert now.breakage_cost == 12.0  # two SV lenses at 6.0
    assert now.remakes == Ratio(0, 6)
    assert board.previous.finished == 0
    assert board.previous.first_pass == Ratio(0, 1)  # G's failed first inspection
    assert {row.key: row.count for row in board.defects} == {"D-POWER": 2}
    assert {row.key: row.count for row in board.late_causes} == {
        "breakage": 0,
        "rework": 1,
        "hold": 0,
        "flow": 1,
    }
    edging = next(row for row in board.stages if row.stage_code == "edging")
    # Completions at edging: A B D E G, and C three times; B took 30 minutes, the rest 10.
    assert edging.completions == 8
    assert edging.cycle.median_minutes == pytest.approx(10, abs=0.01)
    assert edging.cycle.p90_minutes == pytest.approx(30, abs=0.01)
    assert (edging.breakages, edging.breakage_cost) == (1, 12.0)
    assert (edging.wip_queued, edging.wip_in_progress) == (0, 1)  # H; F is cancelled
    fitting = next(row for row in board.stages if row.stage_code == "fitting")
    assert fitting.queue.median_minutes == pytest.approx(5, abs=0.01)
    assert {row.key: (row.finished, row.on_time) for row in board.stores} == {
        "NORTH": (4, Ratio(3, 4)),
        "SOUTH": (2, Ratio(1, 2)),
    }
    # SOUTH's staff see SOUTH's figures only, and no station or operator tables.
    assert (south.current.finished, south.current.first_pass) == (2, Ratio(1, 2))
    assert south.stores == south.stations == south.operators == []
    assert jobs[DrillKind.finished] == {ids[n] for n in "ABCDEG"}
    assert jobs[DrillKind.late] == {ids["B"], ids["C"]}
    assert jobs[DrillKind.reworked] == {ids["C"], ids["G"]}
    assert jobs[DrillKind.first_pass_failed] == {ids["C"]}
    assert jobs[DrillKind.broken] == {ids["E"]}
    assert jobs[DrillKind.wip] == {ids["H"]}
    assert [row.job_id for row in late_reworked] == [ids["C"]]


BAD_PARAMETERS = [
    ({"period": "year"}, "period"),
    ({"start": "2026-02-30"}, "start"),
    ({"period": "custom", "start": "2026-01-01"}, "end"),
    ({"period": "custom", "start": "2026-03-01", "end": "2026-02-01"}, "end"),
    ({"period": "custom", "start": "2025-01-01", "end": "2026-02-01"}, "end"),
    ({"period": "day", "end": "2026-02-01"}, "end"),
    ({"store": "NO SUCH"}, "store"),
    ({"colour": "red"}, "colour"),
]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # checks before any SQL
async def test_a_bad_parameter_is_a_422_naming_it(lab: Lab, client: httpx.AsyncClient) -> None:
    await lab.log_in(client, "manager", "demo-manager-pass")
    for params, field in BAD_PARAMETERS:
        response = await client.get("/api/kpis", params=params)
        assert response.status_code == 422, (params, response.text)
        assert field in response.text, (params, response.text)


async def test_store_scope_drill_down_and_exports_over_http(
    lab: Lab, floor: Floor, client: httpx.AsyncClient
) -> None:
    lab.make_job("W1", store="NORTH")
    floor.send("EDGE-1", "W1", EventAction.start)
    await lab.log_in(client, "south", "demo-store-pass")
    assert (await client.get("/api/kpis", params={"store": "NORTH"})).status_code == 404
    wip = await client.get("/api/kpis/jobs", params={"kind": "wip"})
    assert wip.status_code == 200 and wip.json()["jobs"] == []  # NORTH's job is not SOUTH's
    unknown = await client.get("/api/kpis/jobs", params={"kind": "wip", "dimension": "shift"})
    assert unknown.status_code == 422 and "dimension" in unknown.text
    client.cookies.clear()
    await lab.log_in(client, "manager", "demo-manager-pass")
    board = (await client.get("/api/kpis", params={"store": "NORTH"})).json()
    edging = next(row for row in board["stages"] if row["stage_code"] == "edging")
    assert edging["wip_in_progress"] == 1 and board["targets"]["on_time"] == 0.95
    listed = await client.get("/api/kpis/jobs/export.csv", params={"kind": "wip"})
    rows = list(csv.reader(io.StringIO(listed.content.decode("utf-8-sig"))))
    assert rows[0][0] == "job" and [row[0] for row in rows[1:]] == ["W1"]
    sheet = await client.get("/api/kpis/export/stages.xlsx")
    assert sheet.headers["content-type"].startswith("application/vnd.openxmlformats")
    workbook = load_workbook(io.BytesIO(sheet.content))
    table = list(workbook.active.iter_rows(values_only=True))  # type: ignore[union-attr]
    assert table[0][0] == "stage" and table[5][:2] == ("Edging", 0)


def test_a_periods_count_rows_cover_each_of_its_days_once() -> None:
    """Any run of days, read from month, week and day rows (`kpis._spans`): each row read is
    one whose first day its span gives, and the days they count are the period's, each once."""
    rng = random.Random(16)
    kinds: set[KpiSpan] = set()
    for _ in range(300):
        first = date(2026, 1, 1) + timedelta(days=rng.randrange(400))
        last = first + timedelta(days=rng.randrange(kpis.MAX_CUSTOM_DAYS))
        days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
        counted = []
        for span, span_first, following in kpis._spans(first, last):
            kinds.add(span)
            # The days of a row of this span: those whose own row of that span it is.
            calendar = [span_first + timedelta(days=n) for n in range(-31, 400)]
            counted += [
                day for day in calendar if span_first <= dict(span_firsts(day))[span] < following
            ]
        assert sorted(counted) == days, (first, last)
    assert kinds == set(KpiSpan)
