"""Jobs over HTTP: creation and its validation, number reuse, store scoping, lookup, timeline."""

from datetime import timedelta

import httpx
import pytest

from server.domain import jobs
from server.models import EventAction, Job, PrescriptionEye, utcnow
from tests.server.conftest import Floor, Lab
from tests.server.payloads import (
    STOCK_SV_STATIONS,
    count_rows,
    field_errors,
    job_body,
    run_route,
)

MANAGER = ("manager", "demo-manager-pass")
NORTH = ("north", "demo-store-pass")


@pytest.fixture
async def manager(client: httpx.AsyncClient, lab: Lab) -> httpx.AsyncClient:
    await lab.log_in(client, *MANAGER)
    return client


@pytest.fixture
def two_stores(lab: Lab) -> dict[str, int]:
    """One NORTH job and one SOUTH job, by job number."""
    return {
        "N1": lab.make_job("N1", store="NORTH", tray="T-N1"),
        "S1": lab.make_job("S1", store="SOUTH", tray="T-S1"),
    }


async def test_a_stock_single_vision_job_starts_at_edging(manager: httpx.AsyncClient) -> None:
    response = await manager.post("/api/jobs", json=job_body("J100", tray_number="0042"))
    assert response.status_code == 201, response.text
    job = response.json()
    assert (job["job_number"], job["tray_number"], job["store_code"]) == ("J100", "0042", "NORTH")
    assert job["route_code"] == "stock_sv"
    assert [stage["code"] for stage in job["route_stages"]] == [
        "edging",
        "fitting",
        "final_qc",
        "shipping",
    ]
    assert (job["current_stage"]["code"], job["status"]) == ("edging", "queued")
    eyes = {eye["eye"]: eye for eye in job["prescription"]}
    assert (eyes["R"]["sph"], eyes["R"]["cyl"], eyes["R"]["axis"]) == (-1.25, -0.5, 90)
    assert eyes["L"]["sph"] == -1.0
    fetched = await manager.get(f"/api/jobs/{job['id']}")
    assert fetched.json() == job


async def test_a_surfaced_progressive_job_starts_at_generating(
    manager: httpx.AsyncClient,
) -> None:
    body = job_body(
        "J101",
        lens_design="PAL",
        surfaced=True,
        right={"sph": 1.0, "add": 2.0, "fitting_height": 18},
        left={"sph": 1.25, "add": 2.0, "fitting_height": 18},
    )
    response = await manager.post("/api/jobs", json=body)
    assert response.status_code == 201, response.text
    assert response.json()["route_code"] == "surfaced_pal"
    assert response.json()["current_stage"]["code"] == "generating"


def _eye(**fields: object) -> dict[str, object]:
    return {"sph": -1.0, **fields}


NOT_ORDERED_YET = (utcnow() - timedelta(days=3)).isoformat()
IN_TWO_HOURS = (utcnow() + timedelta(hours=2)).isoformat()
IN_A_WEEK = (utcnow() + timedelta(days=7)).isoformat()

INVALID_ORDERS = {
    "axis 0": ({"right": _eye(cyl=-0.5, axis=0)}, "right.axis"),
    "axis 181": ({"right": _eye(cyl=-0.5, axis=181)}, "right.axis"),
    "sphere +40": ({"right": _eye(sph=40)}, "right.sph"),
    "sphere -40": ({"left": _eye(sph=-40)}, "left.sph"),
    "sphere off the 0.125 step": ({"right": _eye(sph=1.1)}, "right.sph"),
    "sphere not a number": ({"right": _eye(sph="plano")}, "right.sph"),
    "cylinder without axis": ({"right": _eye(cyl=-0.75)}, "right.axis"),
    "PD 10 mm": ({"right": _eye(mono_pd=10)}, "right.mono_pd"),
    "PAL without add": ({"lens_design": "PAL", "surfaced": True}, "right.add"),
    "promised before ordered": ({"promised_at": NOT_ORDERED_YET}, "promised_at"),
    "ordered in the future": ({"ordered_at": IN_TWO_HOURS, "promised_at": IN_A_WEEK}, "ordered_at"),
    "ordered in 2999": (
        {"ordered_at": "2999-01-01T09:00:00Z", "promised_at": "2999-01-03T09:00:00Z"},
        "ordered_at",
    ),
    "promised years ahead": ({"promised_at": "2999-01-01T09:00:00Z"}, "promised_at"),
    "no time zone": ({"ordered_at": "2025-01-01T09:00:00"}, "ordered_at"),
    "no eye at all": ({"right": None, "left": None}, "body"),
    "unknown store": ({"store_code": "EAST"}, "store_code"),
    "unknown field": ({"colour": "blue"}, "colour"),
    "job number with a space": ({"job_number": "J 1"}, "job_number"),
    "lens index 3": ({"lens_index": 3}, "lens_index"),
}


@pytest.mark.parametrize(("changes", "field"), INVALID_ORDERS.values(), ids=list(INVALID_ORDERS))
async def test_an_impossible_order_is_422_naming_the_field_and_writes_nothing(
    manager: httpx.AsyncClient, lab: Lab, changes: dict[str, object], field: str
) -> None:
    response = await manager.post("/api/jobs", json=job_body(**changes))
    assert response.status_code == 422, response.text
    assert field in field_errors(response), response.text
    assert count_rows(lab.context.db, Job) == 0
    assert count_rows(lab.context.db, PrescriptionEye) == 0


async def test_an_active_job_number_or_tray_cannot_be_taken_twice(
    manager: httpx.AsyncClient, lab: Lab
) -> None:
    created = await manager.post("/api/jobs", json=job_body("J100", tray_number="0042"))
    assert created.status_code == 201
    same_number = await manager.post("/api/jobs", json=job_body("J100"))
    assert same_number.status_code == 409
    assert field_errors(same_number) == {"job_number": "job J100 is already active"}
    same_tray = await manager.post("/api/jobs", json=job_body("J101", tray_number="0042"))
    assert same_tray.status_code == 409
    assert field_errors(same_tray) == {"tray_number": "tray 0042 is in use by an active job"}
    assert count_rows(lab.context.db, Job) == 1


async def test_a_job_number_and_tray_are_free_again_after_completion(
    manager: httpx.AsyncClient, lab: Lab
) -> None:
    first = await manager.post("/api/jobs", json=job_body("J100", tray_number="0042"))
    headers = {station: lab.station_headers(station) for station in STOCK_SV_STATIONS}
    await run_route(manager, headers, "0042")
    done = await manager.get(f"/api/jobs/{first.json()['id']}")
    assert done.json()["status"] == "completed"
    again = await manager.post("/api/jobs", json=job_body("J100", tray_number="0042"))
    assert again.status_code == 201, again.text
    # A scan of the reused code now finds the new, active job.
    found = await manager.get("/api/jobs/lookup/0042")
    assert found.json()["id"] == again.json()["id"]


async def test_store_staff_create_jobs_for_their_own_store_only(
    client: httpx.AsyncClient, lab: Lab
) -> None:
    await lab.log_in(client, *NORTH)
    own = await client.post("/api/jobs", json=job_body(None, store_code="NORTH"))
    assert own.status_code == 201, own.text
    other = await client.post("/api/jobs", json=job_body(None, store_code="SOUTH"))
    assert other.status_code == 403
    assert "store_code" in field_errors(other)
    assert count_rows(lab.context.db, Job) == 1


async def test_the_lab_assigns_a_stores_job_number_and_the_answer_tells_it(
    client: httpx.AsyncClient, lab: Lab
) -> None:
    lab.make_job("J100500", store="SOUTH")  # the lab's highest number so far
    await lab.log_in(client, *NORTH)
    created = await client.post("/api/jobs", json=job_body(None))
    assert created.status_code == 201, created.text
    assert (created.json()["job_number"], created.json()["tray_number"]) == ("J100501", None)
    again = await client.post("/api/jobs", json=job_body(None))
    assert again.json()["job_number"] == "J100502"
    checked = await client.post("/api/jobs/check", json=job_body(None))
    assert checked.status_code == 200, checked.text


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("job_number", "J100", "assigned by the lab; leave it out"),
        ("tray_number", "0042", "set by the lab; leave it out"),
    ],
)
@pytest.mark.parametrize("path", ["/api/jobs", "/api/jobs/check"])
async def test_store_staff_giving_a_number_is_422_naming_it(
    client: httpx.AsyncClient, lab: Lab, field: str, value: str, message: str, path: str
) -> None:
    await lab.log_in(client, *NORTH)
    response = await client.post(path, json={**job_body(None), field: value})
    assert response.status_code == 422, response.text
    assert field_errors(response) == {field: message}
    assert count_rows(lab.context.db, Job) == 0


async def test_the_lab_may_leave_the_job_number_out_too(manager: httpx.AsyncClient) -> None:
    created = await manager.post("/api/jobs", json=job_body(None, tray_number="0042"))
    assert created.status_code == 201, created.text
    assert (created.json()["job_number"], created.json()["tray_number"]) == ("J100001", "0042")


async def test_a_number_a_concurrent_order_took_first_is_drawn_again(
    client: httpx.AsyncClient, lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two orders drawing the next number at once (PostgreSQL: each reads the highest before
    the other commits): the second insert meets the unique index and draws again."""
    lab.make_job("J100001")
    stale = iter(["J100001"])  # what the draw read before the other order committed
    drawn = jobs.next_job_number
    monkeypatch.setattr(jobs, "next_job_number", lambda *args: next(stale, None) or drawn(*args))
    await lab.log_in(client, *NORTH)
    created = await client.post("/api/jobs", json=job_body(None))
    assert created.status_code == 201, created.text
    assert created.json()["job_number"] == "J100002"
    assert count_rows(lab.context.db, Job) == 2


@pytest.mark.parametrize("username", ["tech1", "qc"])
async def test_lab_floor_people_cannot_create_jobs(
    client: httpx.AsyncClient, lab: Lab, username: str
) -> None:
    password = "demo-tech-pass" if username.startswith("tech") else "demo-qc-pass"
    await lab.log_in(client, username, password)
    response = await client.post("/api/jobs", json=job_body("J100"))
    assert response.status_code == 403
    assert "role" in field_errors(response)
    assert count_rows(lab.context.db, Job) == 0


async def test_a_station_cannot_create_jobs(client: httpx.AsyncClient, lab: Lab) -> None:
    response = await client.post(
        "/api/jobs", json=job_body("J100"), headers=lab.station_headers("EDGE-1")
    )
    assert response.status_code == 403


async def test_a_station_lists_only_the_jobs_at_its_own_stage(
    client: httpx.AsyncClient, lab: Lab, floor: Floor, two_stores: dict[str, int]
) -> None:
    """What it prefetches; any other job it reads by the code it scanned, one at a time."""
    lab.make_job("F1", store="SOUTH")
    floor.send("EDGE-1", "F1", EventAction.start)
    floor.send("EDGE-1", "F1", EventAction.complete)  # queued at fitting now
    headers = lab.station_headers("FIT-1")
    for query in ({}, {"stage": "fitting", "active": "true"}):
        page = (await client.get("/api/jobs", params=query, headers=headers)).json()
        assert [item["job_number"] for item in page["items"]] == ["F1"], query
        assert page["total"] == 1
    elsewhere = await client.get("/api/jobs", params={"stage": "edging"}, headers=headers)
    assert elsewhere.status_code == 403
    assert "stage" in field_errors(elsewhere)
    # The card of a job at another stage still reads, to show it needs an override.
    assert (await client.get("/api/jobs/lookup/T-N1", headers=headers)).status_code == 200


async def test_store_staff_list_only_their_own_stores_jobs(
    client: httpx.AsyncClient, lab: Lab, two_stores: dict[str, int]
) -> None:
    lab.make_job("N2", store="NORTH")
    await lab.log_in(client, *NORTH)
    page = (await client.get("/api/jobs")).json()
    assert page["total"] == 2
    assert sorted(item["job_number"] for item in page["items"]) == ["N1", "N2"]
    assert {item["store_code"] for item in page["items"]} == {"NORTH"}


async def test_store_staff_cannot_read_another_stores_job_in_any_way(
    client: httpx.AsyncClient, lab: Lab, two_stores: dict[str, int]
) -> None:
    await lab.log_in(client, *NORTH)
    south_id = two_stores["S1"]
    missing_id = south_id + 1000
    hidden = await client.get(f"/api/jobs/{south_id}")
    missing = await client.get(f"/api/jobs/{missing_id}")
    assert hidden.status_code == missing.status_code == 404
    # Same shape and wording: only the id differs, so existence is not disclosed.
    assert hidden.text.replace(str(south_id), "ID") == missing.text.replace(str(missing_id), "ID")
    for path in (
        f"/api/jobs/{south_id}/timeline",
        "/api/jobs/lookup/S1",
        "/api/jobs/lookup/T-S1",
    ):
        response = await client.get(path)
        assert response.status_code == 404, (path, response.text)
    # …while their own store's job reads fine through the same endpoints.
    north_id = two_stores["N1"]
    for path in (
        f"/api/jobs/{north_id}",
        f"/api/jobs/{north_id}/timeline",
        "/api/jobs/lookup/N1",
        "/api/jobs/lookup/T-N1",
    ):
        assert (await client.get(path)).status_code == 200, path


async def test_a_manager_sees_every_store(
    manager: httpx.AsyncClient, two_stores: dict[str, int]
) -> None:
    page = (await manager.get("/api/jobs")).json()
    assert {item["store_code"] for item in page["items"]} == {"NORTH", "SOUTH"}
    assert (await manager.get(f"/api/jobs/{two_stores['S1']}")).status_code == 200
    assert (await manager.get("/api/jobs/lookup/S1")).status_code == 200


async def test_lookup_by_job_number_or_tray_number(
    manager: httpx.AsyncClient, two_stores: dict[str, int]
) -> None:
    by_job = await manager.get("/api/jobs/lookup/N1")
    by_tray = await manager.get("/api/jobs/lookup/T-N1")
    assert by_job.status_code == by_tray.status_code == 200
    assert by_job.json()["id"] == by_tray.json()["id"] == two_stores["N1"]
    unknown = await manager.get("/api/jobs/lookup/NOPE")
    assert unknown.status_code == 404
    assert field_errors(unknown) == {"job": "no job or tray 'NOPE'"}


async def test_the_timeline_lists_events_in_order_with_operator_initials(
    manager: httpx.AsyncClient, lab: Lab
) -> None:
    job_id = lab.make_job("J1")
    headers = {station: lab.station_headers(station) for station in STOCK_SV_STATIONS[:2]}
    await run_route(manager, headers, "J1", STOCK_SV_STATIONS[:1], badge="B1001")
    await run_route(manager, headers, "J1", STOCK_SV_STATIONS[1:2], badge="B1002")
    response = await manager.get(f"/api/jobs/{job_id}/timeline")
    assert response.status_code == 200, response.text
    timeline = response.json()
    assert [(entry["station"], entry["action"]) for entry in timeline] == [
        ("EDGE-1", "start"),
        ("EDGE-1", "complete"),
        ("FIT-1", "start"),
        ("FIT-1", "complete"),
    ]
    assert [entry["operator_initials"] for entry in timeline] == ["TB", "TB", "TB", "TB"]
    assert [entry["stage"]["code"] for entry in timeline] == [
        "edging",
        "edging",
        "fitting",
        "fitting",
    ]
    times = [entry["at"] for entry in timeline]
    assert times == sorted(times)


async def test_the_list_filters_by_stage_and_pages(manager: httpx.AsyncClient, lab: Lab) -> None:
    for number in range(5):
        lab.make_job(f"J{number}")
    lab.make_job("P1", design="PAL", surfaced=True)
    at_generating = (await manager.get("/api/jobs", params={"stage": "generating"})).json()
    assert [item["job_number"] for item in at_generating["items"]] == ["P1"]
    page = (await manager.get("/api/jobs", params={"limit": 2, "offset": 2})).json()
    assert page["total"] == 6
    assert len(page["items"]) == 2
    everything = (await manager.get("/api/jobs")).json()
    assert everything["next_cursor"] is None
    # Page by page after each page's cursor: the same jobs in the same order, counted once.
    walked, totals, cursor = [], [], None
    while True:
        params = {"limit": 4} | ({"after": cursor} if cursor else {})
        page = (await manager.get("/api/jobs", params=params)).json()
        walked += [item["job_number"] for item in page["items"]]
        totals.append(page["total"])
        if (cursor := page["next_cursor"]) is None:
            break
    assert walked == [item["job_number"] for item in everything["items"]]
    assert totals == [6, None]


async def test_a_cursor_pages_within_the_callers_scope_and_a_bad_one_is_422(
    client: httpx.AsyncClient, lab: Lab, two_stores: dict[str, int]
) -> None:
    lab.make_job("N2", store="NORTH")
    await lab.log_in(client, *NORTH)
    first = (await client.get("/api/jobs", params={"limit": 1})).json()
    rest = (await client.get("/api/jobs", params={"after": first["next_cursor"]})).json()
    assert [item["job_number"] for item in first["items"] + rest["items"]] == ["N1", "N2"]
    assert rest["total"] is None and rest["next_cursor"] is None
    for params, field in (
        ({"after": "yesterday"}, "after"),
        ({"after": "9999999999999999999.1"}, "after"),  # past the year 9999
        ({"after": "0.0"}, "after"),
        ({"after": first["next_cursor"], "offset": 1}, "offset"),
    ):
        refused = await client.get("/api/jobs", params=params)
        assert refused.status_code == 422, params
        assert field in field_errors(refused), params


async def test_a_list_counts_and_offsets_up_to_its_reach_and_points_beyond_at_the_cursor(
    manager: httpx.AsyncClient, lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    for number in range(5):
        lab.make_job(f"J{number}")
    monkeypatch.setattr(jobs, "COUNT_REACH", 3)
    monkeypatch.setattr(jobs, "OFFSET_REACH", 3)
    first = (await manager.get("/api/jobs", params={"limit": 2})).json()
    assert (first["total"], first["total_capped"]) == (3, True)
    stage = (await manager.get("/api/jobs", params={"stage": "generating"})).json()
    assert (stage["total"], stage["total_capped"]) == (0, False)
    assert len((await manager.get("/api/jobs", params={"offset": 3})).json()["items"]) == 2
    refused = await manager.get("/api/jobs", params={"offset": 4})
    assert refused.status_code == 422
    assert "next_cursor" in field_errors(refused)["offset"]


async def test_a_freeform_order_carries_its_verification_powers_and_thickness(
    manager: httpx.AsyncClient, lab: Lab
) -> None:
    right = {"sph": -1.25, "cyl": -0.5, "axis": 90, "verify_sph": -1.31, "verify_cyl": -0.56}
    refused = await manager.post("/api/jobs", json=job_body(right=right))
    assert refused.status_code == 422
    assert "right.verify_axis" in field_errors(refused)  # a compensated cylinder needs its axis
    right |= {"verify_axis": 88, "center_thickness": 1.9}
    created = await manager.post("/api/jobs", json=job_body(right=right))
    assert created.status_code == 201, created.text
    (eye,) = [eye for eye in created.json()["prescription"] if eye["eye"] == "R"]
    assert (eye["verify_sph"], eye["verify_cyl"], eye["verify_axis"]) == (-1.31, -0.56, 88)
    assert eye["center_thickness"] == 1.9
