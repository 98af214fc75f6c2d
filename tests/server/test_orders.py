"""Orders: the catalogue, the Rx step and the cylinder form checked in one core for the API and
the order page, every problem at once, warnings that never refuse, the promised date."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select

from server.domain import jobs, orders
from server.domain.errors import InvalidFields
from server.domain.flags import FloorLoad, floor_load
from server.domain.jobs import create_job, select_route
from server.labconfig import LabConfig
from server.models import Job, JobType, Lab, LensDesign, Priority, Route, utcnow
from server.schemas import JobCreate
from tests.server.conftest import Lab as DemoLab
from tests.server.payloads import count_rows, field_errors, job_body

BERLIN = ZoneInfo("Europe/Berlin")  # the example lab's time zone
TUESDAY_9 = datetime(2026, 3, 3, 9, 0, tzinfo=BERLIN)
TUESDAY_13 = datetime(2026, 3, 3, 13, 0, tzinfo=BERLIN)
FRIDAY_1630 = datetime(2026, 3, 6, 16, 30, tzinfo=BERLIN)


def _order(job_number: str | None = "J100", **changes: Any) -> JobCreate:
    return JobCreate.model_validate(job_body(job_number, **changes))


def _create(lab: DemoLab, order: JobCreate) -> Job:
    with lab.context.db.session() as session:
        job = create_job(session, lab.manager(), order)
        session.flush()
        session.expunge(job)
        return job


def _refusals(lab: DemoLab, order: JobCreate) -> dict[str, str]:
    with pytest.raises(InvalidFields) as refused:
        _create(lab, order)
    return dict(refused.value.problems)


def _edit_lab(lab: DemoLab, **values: Any) -> None:
    with lab.context.db.session() as session:
        row = session.scalars(select(Lab)).one()
        for name, value in values.items():
            setattr(row, name, value)


CATALOGUE_REFUSALS = {
    "material not in the catalogue": ({"lens_material": "Glass"}, "lens_material", "Glass"),
    "index not the material's": ({"lens_index": 1.6}, "lens_index", "index 1.50"),
    "design the material is not made in": (
        {
            "lens_material": "MR-174",
            "lens_index": 1.74,
            "lens_design": "MF",
            "surfaced": True,
            "right": {"sph": -1.0, "add": 2.0},
            "left": {"sph": -1.0, "add": 2.0},
        },
        "lens_material",
        "SV, PAL only",
    ),
    "treatment not in the catalogue": ({"treatments": ["ar", "gold_leaf"]}, "treatments", "gold"),
    "frame not in the catalogue": ({"frame": {"code": "F-NONE"}}, "frame.code", "F-NONE"),
}


@pytest.mark.parametrize(
    ("changes", "field", "says"), CATALOGUE_REFUSALS.values(), ids=list(CATALOGUE_REFUSALS)
)
def test_each_catalogue_refusal_names_its_field(
    lab: DemoLab, changes: dict[str, Any], field: str, says: str
) -> None:
    refusals = _refusals(lab, _order(**changes))
    assert list(refusals) == [field]
    assert says in refusals[field]


def test_a_lab_without_a_catalogue_checks_only_the_rx_step(lab: DemoLab) -> None:
    _edit_lab(lab, catalogue=None)
    odd = {"lens_material": "Glass", "lens_index": 1.7, "treatments": ["gold_leaf"]}
    assert _create(lab, _order(**odd, frame={"code": "F-NONE"})).lens_material == "Glass"
    assert list(_refusals(lab, _order(job_number="J2", right={"sph": -1.125}))) == ["right.sph"]


def test_eighths_are_refused_at_a_quarter_step_and_taken_where_the_lab_allows_them(
    lab: DemoLab, lab_config: LabConfig
) -> None:
    eighths = _order(right={"sph": -1.125, "cyl": -0.375, "axis": 90}, left={"sph": 0.625})
    assert _refusals(lab, eighths) == {
        "right.sph": "must be a multiple of 0.25 D",
        "right.cyl": "must be a multiple of 0.25 D",
        "left.sph": "must be a multiple of 0.25 D",
    }
    _edit_lab(lab, catalogue=lab_config.catalogue.model_dump(mode="json") | {"rx_step": 0.125})
    job = _create(lab, eighths)
    assert [(eye.sph, eye.cyl) for eye in job.prescription] == [(-1.125, -0.375), (0.625, 0.0)]


def test_a_plus_cylinder_order_is_stored_in_minus_cylinder(lab: DemoLab) -> None:
    right = {"sph": -1.0, "cyl": 0.5, "axis": 10, "verify_sph": -1.02, "verify_cyl": 0.51}
    right |= {"verify_axis": 100}
    job = _create(lab, _order(cylinder_form="plus", right=right, left={"sph": 2.0}))
    eyes = {eye.eye: eye for eye in job.prescription}
    assert (eyes["R"].sph, eyes["R"].cyl, eyes["R"].axis) == (-0.5, -0.5, 100)
    assert (eyes["R"].verify_sph, eyes["R"].verify_cyl, eyes["R"].verify_axis) == (-0.51, -0.51, 10)
    assert (eyes["L"].sph, eyes["L"].cyl, eyes["L"].axis) == (2.0, 0.0, None)


def test_a_cylinder_sign_against_the_orders_form_is_refused(lab: DemoLab) -> None:
    plus_in_minus = _order(right={"sph": -1.0, "cyl": 0.5, "axis": 10})
    assert _refusals(lab, plus_in_minus) == {"right.cyl": "plus cylinder in a minus-cylinder order"}
    minus_in_plus = _order(
        cylinder_form="plus", right={"sph": -1.0}, left={"sph": -1.0, "cyl": -0.5, "axis": 10}
    )
    assert _refusals(lab, minus_in_plus) == {"left.cyl": "minus cylinder in a plus-cylinder order"}


def test_a_catalogue_frame_brings_its_type_and_sizes(lab: DemoLab) -> None:
    job = _create(lab, _order(frame={"code": "F-ROUND48", "a_mm": 60.0}))
    assert job.frame == {
        "code": "F-ROUND48",
        "type": "full_rim",
        "a_mm": 48.0,
        "b_mm": 44.0,
        "dbl_mm": 20.0,
        "ed_mm": 50.0,
        "description": "Panto round 48□20",
    }


def test_the_person_who_entered_it_and_the_frame_trace_are_stored(lab: DemoLab) -> None:
    trace = {"right": {"radii": [2500, 2400, 2200, 2400, 2500, 2400, 2200, 2400]}}
    job = _create(lab, _order(trace=trace))
    assert job.entered_by_id == lab.manager().person_id
    assert job.trace == trace


async def test_the_api_lists_every_problem_of_an_order_at_once(
    client: httpx.AsyncClient, lab: DemoLab
) -> None:
    await lab.log_in(client, "manager", "demo-manager-pass")
    typed_wrong = job_body(right={"sph": -1.13, "cyl": -0.5, "add": 2.0}, left={"sph": "x"})
    response = await client.post("/api/jobs", json=typed_wrong)
    assert response.status_code == 422
    assert set(field_errors(response)) == {"right.sph", "right.axis", "right.add", "left.sph"}
    off_catalogue = job_body(
        lens_material="Glass",
        treatments=["gold_leaf"],
        frame={"code": "F-NONE"},
        right={"sph": -1.125},
        store_code="EAST",
    )
    response = await client.post("/api/jobs", json=off_catalogue)
    assert response.status_code == 422
    assert set(field_errors(response)) == {
        "store_code",
        "lens_material",
        "treatments",
        "frame.code",
        "right.sph",
    }
    assert count_rows(lab.context.db, Job) == 0


async def test_the_check_answers_warnings_and_a_promise_and_creates_nothing(
    client: httpx.AsyncClient, lab: DemoLab
) -> None:
    await lab.log_in(client, "north", "demo-store-pass")
    unusual = job_body(None, left={"sph": -5.0})  # R -1.25: 3.75 D apart
    response = await client.post("/api/jobs/check", json=unusual)
    assert response.status_code == 200, response.text
    check = response.json()
    assert [w["field"] for w in check["warnings"]] == ["left.sph"]
    promised = datetime.fromisoformat(check["proposed_promised_at"]).astimezone(BERLIN)
    assert (promised.hour, promised.minute) == (17, 0) and promised > utcnow()
    refused = await client.post("/api/jobs/check", json=job_body(None, store_code="SOUTH"))
    assert refused.status_code == 403  # store staff order for their own store only
    assert set(field_errors(refused)) == {"store_code"}
    assert count_rows(lab.context.db, Job) == 0
    assert (await client.post("/api/jobs", json=unusual)).status_code == 201  # never refused


def _eyes(right: dict[str, Any], left: dict[str, Any], design: str = "PAL") -> JobCreate:
    return _order(lens_design=design, surfaced=True, right=right, left=left)


def test_unusual_values_are_warned_about_on_their_fields() -> None:
    unusual = _eyes(
        {"sph": -11.0, "cyl": -6.5, "axis": 90, "add": 3.75, "prism": 6, "prism_base": "in"}
        | {"mono_pd": 30, "fitting_height": 18},
        {"sph": -7.5, "cyl": -3.25, "axis": 90, "add": 3.0, "mono_pd": 34, "fitting_height": 21},
    )
    assert dict(orders.order_warnings(unusual)) == {
        "right.sph": "sphere beyond ±10.00 D",
        "right.cyl": "cylinder beyond ±6.00 D",
        "right.add": "add over +3.50 D",
        "right.prism": "prism over 5 Δ",
        "left.sph": "R/L differ by 3.5 D (over 3): anisometropia",
        "left.cyl": "R/L differ by 3.25 D (over 3): anisometropia",
        "left.add": "R/L differ by 0.75 D (over 0.5): adds are nearly always equal",
        "left.mono_pd": "R/L differ by 4 mm (over 3): check the PD measurement",
        "left.fitting_height": "R/L differ by 3 mm (over 2): check the fitting heights",
    }
    usual = _eyes(
        {"sph": -2.0, "cyl": -1.0, "axis": 90, "add": 2.0, "mono_pd": 31, "fitting_height": 18},
        {"sph": -1.0, "add": 2.0, "mono_pd": 32, "fitting_height": 19},
    )
    assert orders.order_warnings(usual) == []


def test_eyes_are_compared_in_minus_cylinder_whatever_form_they_were_written_in() -> None:
    # R written in plus cylinder is -0.50 -3.50 x 180: the same lens as L.
    same = _eyes({"sph": -4.0, "cyl": 3.5, "axis": 90, "add": 2.0}, {"sph": -0.5, "add": 2.0})
    same = same.model_copy(update={"cylinder_form": "plus"})
    assert [field for field, _ in orders.order_warnings(same)] == ["left.cyl"]


@pytest.fixture
def stock_sv(lab: DemoLab) -> Route:
    with lab.context.db.session() as session:
        lab_id = lab.manager().lab_id
        route = select_route(session, lab_id, JobType.new, LensDesign.SV, surfaced=False)
        session.expunge(route)
        return route


def _promise(route: Route, load: FloorLoad, priority: Priority, now: datetime) -> datetime:
    return orders.promise_for(route, load, priority, now.astimezone(UTC), BERLIN)


def test_the_promise_is_a_working_days_end_one_day_later_unless_rush(stock_sv: Route) -> None:
    idle = FloorLoad({}, {}, {}, {})
    # Stock SV is 35 min of work: ready Tuesday morning.
    assert _promise(stock_sv, idle, Priority.rush, TUESDAY_9) == datetime(
        2026, 3, 3, 17, tzinfo=BERLIN
    )
    assert _promise(stock_sv, idle, Priority.regular, TUESDAY_9) == datetime(
        2026, 3, 4, 17, tzinfo=BERLIN
    )
    # Friday 16:30 + 35 min + the margin is after hours: Monday, and a regular order Tuesday.
    assert _promise(stock_sv, idle, Priority.rush, FRIDAY_1630) == datetime(
        2026, 3, 9, 17, tzinfo=BERLIN
    )
    assert _promise(stock_sv, idle, Priority.regular, FRIDAY_1630) == datetime(
        2026, 3, 10, 17, tzinfo=BERLIN
    )


def test_the_promise_grows_with_the_queue_ahead(stock_sv: Route) -> None:
    edging = stock_sv.steps[0].stage_id
    # 40 jobs ahead at one edger of 12 min each: 8 h of queue push Tuesday's work into Wednesday.
    busy = FloorLoad({}, {edging: 40}, {edging: 1}, {edging: 1})
    assert _promise(stock_sv, busy, Priority.rush, TUESDAY_9) == datetime(
        2026, 3, 4, 17, tzinfo=BERLIN
    )


def test_the_proposal_reads_the_floor_and_the_labs_time_zone(lab: DemoLab) -> None:
    lab_id = lab.manager().lab_id

    def proposal() -> datetime:
        with lab.context.db.session() as session:
            return orders.propose_promise(
                session, lab_id, JobType.new, LensDesign.SV, False, Priority.rush, TUESDAY_13
            )

    idle = proposal()  # 35 min of work and the margin: ready 14:35, promised today
    for number in range(30):  # 3 h of queue at two edgers (12 min a job): ready after 17:00
        lab.make_job(f"Q{number}")
    with lab.context.db.session() as session:
        assert floor_load(session, lab_id).queued  # the jobs wait at edging
    assert proposal() > idle
    _edit_lab(lab, timezone="America/New_York")
    in_new_york = proposal().astimezone(ZoneInfo("America/New_York"))
    assert (in_new_york.hour, in_new_york.minute) == (17, 0)


def test_the_next_job_number_follows_the_highest_j_number(lab: DemoLab) -> None:
    lab_id = lab.manager().lab_id
    with lab.context.db.session() as session:
        assert jobs.next_job_number(session, lab_id) == "J100001"  # an empty lab
    for number in ("J99", "J100", "JX7", "R5000", "J100123", "J100124-R1"):
        lab.make_job(number)
    with lab.context.db.session() as session:
        assert jobs.next_job_number(session, lab_id) == "J100124"


def test_two_store_orders_at_once_never_share_a_number(lab: DemoLab) -> None:
    """The second order reads the highest number while the first's insert is not committed:
    on PostgreSQL its own insert then meets the unique index and draws again (SQLite writers
    take turns, so it reads the first's number already)."""
    north = lab.person("north")
    order = _order(None)
    first_inserted, first_may_commit = threading.Event(), threading.Event()

    def first() -> str:
        with lab.context.db.session() as session:
            job = create_job(session, north, order)
            first_inserted.set()
            assert first_may_commit.wait(10)
            return job.job_number

    def second() -> str:
        assert first_inserted.wait(10)
        with lab.context.db.session() as session:
            return create_job(session, north, order).job_number

    with ThreadPoolExecutor(2) as pool:
        numbers = pool.submit(first), pool.submit(second)
        time.sleep(0.5)  # the second waits on the first's row (or SQLite's write lock)
        first_may_commit.set()
        assert (numbers[0].result(), numbers[1].result()) == ("J100001", "J100002")
