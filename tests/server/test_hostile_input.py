"""Hostile and careless input (issue #14, findings 4–7): each is a 4xx naming the field, never a
5xx; loose values are refused, not coerced; sizes and depths are bounded; another store's jobs
stay invisible; the OpenAPI document describes the errors the server really sends."""

import copy
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from server.models import ChangeRequest, EventAction, Job, RejectedEvent, StageEvent
from server.schemas import ErrorOut
from server.settings import Settings
from tests.server.conftest import Floor, Lab
from tests.server.payloads import count_rows, event_body, field_errors, job_body

OVERFLOWING = "0001-01-01T00:00:00+14:00"  # not a time in UTC at all: converting overflows


async def _post(
    client: httpx.AsyncClient, path: str, body: Any, headers: dict[str, str] | None = None
) -> httpx.Response:
    """POST as JSON the way Python's json writes it: NaN and Infinity included."""
    content = json.dumps(body)
    headers = {**(headers or {}), "Content-Type": "application/json"}
    return await client.post(path, content=content, headers=headers)


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.fixture
def edge(lab: Lab) -> dict[str, str]:
    lab.make_job("J1", tray="0001")
    return lab.station_headers("EDGE-1")


@pytest.fixture
async def manager(client: httpx.AsyncClient, lab: Lab) -> httpx.AsyncClient:
    await lab.log_in(client, "manager", "demo-manager-pass")
    return client


# -- finding 4: bad input never makes a 5xx --

BAD_EVENTS = {
    "created_at overflows": ({"created_at": OVERFLOWING}, "created_at"),
    "measured nested 255 deep": (
        {"action": "complete", "inspection": {"measured": _nested(255)}},
        "inspection.measured",
    ),
}


@pytest.mark.parametrize(("changes", "field"), BAD_EVENTS.values(), ids=list(BAD_EVENTS))
async def test_an_overflowing_date_or_deep_nesting_is_a_422_alone_and_in_a_batch(
    client: httpx.AsyncClient, lab: Lab, edge: dict[str, str], changes: dict[str, Any], field: str
) -> None:
    single = await client.post("/api/events", json=event_body("J1", 1, **changes), headers=edge)
    assert single.status_code == 422, single.text
    assert field in field_errors(single), single.text
    batch = {"events": [event_body("J1", 1), event_body("J1", 2, **changes)]}
    refused = await client.post("/api/events/batch", json=batch, headers=edge)
    assert refused.status_code == 422, refused.text
    assert f"events.1.{field}" in field_errors(refused), refused.text
    assert count_rows(lab.context.db, StageEvent) == count_rows(lab.context.db, RejectedEvent) == 0


BAD_ORDERS = {
    "ordered_at overflows": ({"ordered_at": OVERFLOWING}, "ordered_at"),
    "frame detail nested 255 deep": ({"frame": {"colour": _nested(255)}}, "frame.colour"),
    # -- finding 5: loose values are refused, not coerced --
    "year 1": ({"ordered_at": "0001-01-01T00:00:00Z"}, "ordered_at"),
    "index as text": ({"lens_index": "1.5"}, "lens_index"),
    "surfaced as text": ({"surfaced": "yes"}, "surfaced"),
    "surfaced as a number": ({"surfaced": 1}, "surfaced"),
    "sphere as text": ({"right": {"sph": "-1.25"}}, "right.sph"),
    "axis as true": ({"right": {"sph": -1.0, "cyl": -0.5, "axis": True}}, "right.axis"),
    "20,000 treatments in the frame": (
        {"frame": {"treatments": ["AR"] * 20_000}},
        "frame.treatments",
    ),
    "a 1 MB frame detail": ({"frame": {"colour": "x" * 1_000_000}}, "frame.colour"),
    "a frame detail NaN": ({"frame": {"colour": float("nan")}}, "frame.colour"),
    "a frame detail Infinity": ({"frame": {"tint": float("inf")}}, "frame.tint"),
    "50 frame details": ({"frame": {f"k{n}": n for n in range(50)}}, "frame"),
    "a 1 MB store code": ({"store_code": "x" * 1_000_000}, "store_code"),
}


@pytest.mark.parametrize(("changes", "field"), BAD_ORDERS.values(), ids=list(BAD_ORDERS))
async def test_a_hostile_order_is_a_422_naming_the_field_and_stores_nothing(
    manager: httpx.AsyncClient, lab: Lab, changes: dict[str, Any], field: str
) -> None:
    response = await _post(manager, "/api/jobs", job_body("J9", **changes))
    assert response.status_code == 422, response.text[:500]
    assert field in field_errors(response), response.text[:500]
    assert "x" * 1000 not in response.text  # never echoed
    assert count_rows(lab.context.db, Job) == 0


async def test_whole_numbers_in_number_fields_and_bounded_frame_details_are_accepted(
    manager: httpx.AsyncClient,
) -> None:
    order = job_body(
        "J9",
        lens_index=1.5,
        right={"sph": -1, "cyl": 0, "mono_pd": 31},  # JSON integers for float fields
        frame={"a_mm": 52, "colour": "tortoise", "hinge": {"spring": True, "width_mm": 3.5}},
    )
    response = await manager.post("/api/jobs", json=order)
    assert response.status_code == 201, response.text
    assert response.json()["frame"] == order["frame"]


# -- finding 5: loose or unbounded event input --

LOOSE_EVENTS = {
    "sequence true": ({"sequence": True}, "sequence"),
    "sequence as text": ({"sequence": "1"}, "sequence"),
    "sequence 1.0": ({"sequence": 1.0}, "sequence"),
    "year 1": ({"created_at": "0001-01-01T00:00:00Z"}, "created_at"),
    "a 1 MB to_stage": ({"action": "rework", "to_stage": "s" * 1_000_000}, "to_stage"),
    "a 1 MB profile": (
        {"action": "complete", "inspection": {"measured": {}, "profile": "p" * 1_000_000}},
        "inspection.profile",
    ),
    "measured 1e308": (
        {"action": "complete", "inspection": {"measured": {"R": {"sph": 1e308}}}},
        "inspection.measured",
    ),
    "measured NaN": (
        {"action": "complete", "inspection": {"measured": {"R": {"sph": float("nan")}}}},
        "inspection.measured",
    ),
    "cosmetic as text": (
        {"action": "complete", "inspection": {"measured": {}, "cosmetic": {"scratch": "yes"}}},
        "inspection.cosmetic.scratch",
    ),
}


@pytest.mark.parametrize(("changes", "field"), LOOSE_EVENTS.values(), ids=list(LOOSE_EVENTS))
async def test_a_loose_or_unbounded_event_field_is_a_422_naming_it(
    client: httpx.AsyncClient, lab: Lab, edge: dict[str, str], changes: dict[str, Any], field: str
) -> None:
    response = await _post(client, "/api/events", {**event_body("J1", 1), **changes}, edge)
    assert response.status_code == 422, response.text[:500]
    assert field in field_errors(response), response.text[:500]
    assert len(response.content) < 2000  # nothing echoed
    assert count_rows(lab.context.db, StageEvent) == 0


async def test_a_station_whose_clock_was_never_set_is_still_heard(
    client: httpx.AsyncClient, lab: Lab, edge: dict[str, str]
) -> None:
    """The bound on times leaves 1970 in: the server corrects device times by their offset."""
    event = event_body("J1", 1, created_at="1970-01-01T00:00:05Z", sent_at="1970-01-01T00:00:09Z")
    response = await client.post("/api/events", json=event, headers=edge)
    assert response.status_code == 201, response.text


async def test_a_measured_power_no_lens_has_is_refused_naming_it(
    client: httpx.AsyncClient, lab: Lab, edge: dict[str, str]
) -> None:
    qc = lab.station_headers("QC-1")
    inspection = {"measured": {"R": {"sph": -1.25, "cyl": -0.5, "axis": 90}, "L": {"sph": 99.0}}}
    event = event_body("J1", 1, "complete", inspection=inspection)
    response = await client.post("/api/events", json=event, headers=qc)
    assert response.status_code == 422, response.text
    assert "inspection.measured.L.sph" in field_errors(response), response.text


async def test_an_oversized_batch_is_refused_before_its_events_are_read(
    client: httpx.AsyncClient, lab: Lab, edge: dict[str, str]
) -> None:
    # Every event is invalid: read one by one they would each be named; unread, only the
    # list's length is.
    response = await client.post("/api/events/batch", json={"events": [{}] * 1001}, headers=edge)
    assert response.status_code == 422
    assert list(field_errors(response)) == ["events"], response.text[:300]


async def test_a_body_over_the_limit_is_413_naming_body(
    client: httpx.AsyncClient, lab: Lab, edge: dict[str, str], settings: Settings
) -> None:
    too_big = b"[" + b" " * settings.max_request_bytes + b"]"
    declared = await client.post(
        "/api/events/batch", content=too_big, headers={**edge, "Content-Type": "application/json"}
    )

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: sent chunked
        for start in range(0, len(too_big), 1 << 20):
            yield too_big[start : start + (1 << 20)]

    streamed = await client.post(
        "/api/events/batch", content=chunks(), headers={**edge, "Content-Type": "application/json"}
    )
    for response in (declared, streamed):
        assert response.status_code == 413, response.text[:300]
        assert list(field_errors(response)) == ["body"]


async def test_a_small_chunked_body_still_reaches_the_endpoint(
    client: httpx.AsyncClient, lab: Lab, edge: dict[str, str]
) -> None:
    body = httpx.Request("POST", "/", json=event_body("J1", 1)).content

    async def chunks() -> AsyncIterator[bytes]:
        yield body[:10]
        yield body[10:]

    response = await client.post(
        "/api/events", content=chunks(), headers={**edge, "Content-Type": "application/json"}
    )
    assert response.status_code == 201, response.text


async def test_one_uuid_twice_in_a_batch_with_different_content_refuses_the_batch(
    client: httpx.AsyncClient, lab: Lab, edge: dict[str, str]
) -> None:
    lab.make_job("J2")
    first = event_body("J1", 1)
    other_job = {**event_body("J2", 2), "event_uuid": first["event_uuid"]}
    response = await client.post(
        "/api/events/batch", json={"events": [first, other_job]}, headers=edge
    )
    assert response.status_code == 422, response.text
    assert list(field_errors(response)) == ["events.1.event_uuid"]
    assert count_rows(lab.context.db, StageEvent) == 0
    # The same event twice is a resend: stored once, the copy a duplicate.
    resent = await client.post(
        "/api/events/batch", json={"events": [first, copy.deepcopy(first)]}, headers=edge
    )
    assert resent.status_code == 200, resent.text
    assert [r["status"] for r in resent.json()["results"]] == ["stored", "duplicate"]


# -- finding 6: another store's job numbers --


async def _number_probes(
    client: httpx.AsyncClient, targets: dict[str, int], shipped_id: int, field: str, value: str
) -> dict[str, tuple[int, str]]:
    """What store staff are answered when they give `value` as `field` in every way a store
    may: a new order, an edit, a change request (the job started), a remake's edit and
    opening a remake."""
    answers = {}
    create = await client.post("/api/jobs", json={**job_body(None), field: value})
    answers["create"] = create
    for path, job_id in targets.items():
        current = (await client.get(f"/api/jobs/{job_id}")).json()
        order = {
            **job_body(None, store_code="NORTH", promised_at=current["promised_at"]),
            "ordered_at": current["ordered_at"],
            "priority": "rush",  # a real change beside the number
            field: value,
        }
        answers[path] = await client.patch(f"/api/jobs/{job_id}", json=order)
    answers["remake"] = await client.post(
        f"/api/jobs/{shipped_id}/remakes",
        json={"remake_class": "lab_redo", "reason": "scratched", field: value},
    )
    return {
        path: (response.status_code, response.text.replace(value, "VALUE"))
        for path, response in answers.items()
    }


async def test_a_store_cannot_learn_whether_another_stores_number_exists(
    client: httpx.AsyncClient, lab: Lab, floor: Floor
) -> None:
    """Numbers are one namespace for the whole lab, so a store never gives one: whether
    another store's active job holds it or no job does, every way of giving it is answered
    alike, a 422 naming the field, and nothing changes."""
    lab.make_job("S1", store="SOUTH", tray="T-S1")
    edit_id = lab.make_job("N1", store="NORTH", tray="T-N1")
    requested_id = lab.make_job("N2", store="NORTH")
    floor.send("EDGE-1", "N2", EventAction.start)  # an edit of it becomes a change request
    shipped_id = lab.make_job("N3", store="NORTH")
    floor.ship("N3")
    await lab.log_in(client, "north", "demo-store-pass")
    opened = await client.post(
        f"/api/jobs/{shipped_id}/remakes", json={"remake_class": "lab_redo", "reason": "scratch"}
    )
    assert opened.status_code == 201, opened.text
    targets = {
        "edit": edit_id,
        "change request": requested_id,
        "remake's edit": opened.json()["id"],
    }
    jobs_before = count_rows(lab.context.db, Job)
    for field, held, free in (("job_number", "S1", "FREE1"), ("tray_number", "T-S1", "T-FREE")):
        to_holder = await _number_probes(client, targets, shipped_id, field, held)
        to_nobody = await _number_probes(client, targets, shipped_id, field, free)
        assert to_holder == to_nobody, field
        for path, (status, text) in to_holder.items():
            assert status == 422 and field in text, (path, text)
    assert count_rows(lab.context.db, Job) == jobs_before
    assert count_rows(lab.context.db, ChangeRequest) == 0
    numbers = {
        (lab.job(job_id).job_number, lab.job(job_id).tray_number) for job_id in targets.values()
    }
    assert numbers == {("N1", "T-N1"), ("N2", None), (opened.json()["job_number"], None)}


# -- finding 7: the OpenAPI document tells the errors as sent --


async def test_every_operation_documents_its_errors_in_the_shape_sent(
    client: httpx.AsyncClient, lab: Lab
) -> None:
    document = (await client.get("/openapi.json")).json()
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas
    assert schemas["ErrorOut"]["properties"]["detail"]["items"] == {
        "$ref": "#/components/schemas/FieldError"
    }
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}
    wrong = {}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            expected = set()
            if operation.get("parameters") or operation.get("requestBody"):
                expected.add("422")
            if path not in ("/api/health", "/api/auth/login"):
                expected |= {"401", "403"}
            if "{" in path:
                expected.add("404")
            if method in ("post", "patch", "delete"):
                expected |= {"413", "422"}
            missing = expected - set(responses)
            off_shape = [
                status
                for status, response in responses.items()
                if status >= "400" and response.get("content") != error
            ]
            if missing or off_shape:
                wrong[f"{method.upper()} {path}"] = (sorted(missing), off_shape)
    assert not wrong, wrong
    login = document["paths"]["/api/auth/login"]["post"]["responses"]
    assert "401" in login


async def test_errors_sent_read_as_the_documented_model(
    client: httpx.AsyncClient, lab: Lab, edge: dict[str, str]
) -> None:
    for response in (
        await client.get("/api/jobs/1"),
        await client.get("/api/jobs/0", headers=edge),
        await client.get("/api/jobs/lookup/NOPE", headers=edge),
        await client.post("/api/events", json=event_body("NOPE", 1), headers=edge),
    ):
        assert response.status_code in (401, 404, 422), response.text
        ErrorOut.model_validate(response.json())
