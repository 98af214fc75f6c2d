"""Station events over HTTP: idempotency, bad input, batches, sequence gaps, racing resends."""

import asyncio
import logging
from collections.abc import Callable
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.api.deps import StationTokens
from server.app import QuietStoredEvents
from server.domain import auth
from server.domain.auth import StationPrincipal
from server.models import Job, RejectedEvent, Stage, StageEvent, Station, utcnow
from tests.server.conftest import Lab
from tests.server.payloads import count_rows, event_body, field_errors


@pytest.fixture
def edge(lab: Lab) -> dict[str, str]:
    """EDGE-1's bearer header, with stock job J1 (tray 0001) queued at edging."""
    lab.make_job("J1", tray="0001")
    return lab.station_headers("EDGE-1")


async def test_an_event_posted_twice_is_stored_once(
    client: httpx.AsyncClient, lab: Lab, edge: dict[str, str]
) -> None:
    event = event_body("J1", 1)
    first = await client.post("/api/events", json=event, headers=edge)
    again = await client.post("/api/events", json=event, headers=edge)
    assert first.status_code == 201, first.text
    assert again.status_code == 200, again.text
    assert (first.json()["status"], again.json()["status"]) == ("stored", "duplicate")
    assert again.json()["event_id"] == first.json()["event_id"]
    assert first.json()["job"] == {
        "job_number": "J1",
        "tray_number": "0001",
        "stage": "edging",
        "status": "in_progress",
    }
    assert count_rows(lab.context.db, StageEvent) == 1


async def test_a_malformed_json_body_is_a_field_level_422(
    client: httpx.AsyncClient, lab: Lab, edge: dict[str, str]
) -> None:
    response = await client.post(
        "/api/events",
        content=b"{not json",
        headers={**edge, "Content-Type": "application/json"},
    )
    assert response.status_code == 422
    errors = field_errors(response)
    assert list(errors) == ["body"]
    assert errors["body"].startswith("invalid JSON at character 1")
    assert count_rows(lab.context.db, StageEvent) == 0


async def test_an_unknown_job_is_404_and_the_rejection_is_kept(
    client: httpx.AsyncClient, lab: Lab, edge: dict[str, str]
) -> None:
    event = event_body("NO-SUCH-JOB", 1)
    response = await client.post("/api/events", json=event, headers=edge)
    assert response.status_code == 404
    assert field_errors(response) == {"job": "no job or tray 'NO-SUCH-JOB'"}
    assert count_rows(lab.context.db, StageEvent) == 0
    with lab.context.db.session() as session:
        rejected = session.query(RejectedEvent).one()
        assert (str(rejected.event_uuid), rejected.field) == (event["event_uuid"], "job")
        assert rejected.payload["job"] == "NO-SUCH-JOB"


async def test_an_event_from_the_far_future_is_422(
    client: httpx.AsyncClient, lab: Lab, edge: dict[str, str]
) -> None:
    future = (utcnow() + timedelta(days=2)).isoformat()
    response = await client.post(
        "/api/events", json=event_body("J1", 1, created_at=future, sent_at=future), headers=edge
    )
    assert response.status_code == 422
    errors = field_errors(response)
    assert set(errors) <= {"created_at", "sent_at"} and errors, errors
    assert "future" in next(iter(errors.values()))
    assert count_rows(lab.context.db, StageEvent) == 0


async def test_an_event_created_after_it_was_sent_is_422(
    client: httpx.AsyncClient, lab: Lab, edge: dict[str, str]
) -> None:
    now = utcnow()
    event = event_body(
        "J1",
        1,
        created_at=now.isoformat(),
        sent_at=(now - timedelta(minutes=5)).isoformat(),
    )
    response = await client.post("/api/events", json=event, headers=edge)
    assert response.status_code == 422
    assert "sent_at" in field_errors(response)
    assert count_rows(lab.context.db, StageEvent) == 0


async def test_a_batch_with_one_invalid_item_is_422_and_stores_nothing(
    client: httpx.AsyncClient, lab: Lab, edge: dict[str, str]
) -> None:
    events = [event_body("J1", 1), event_body("J1", 0), event_body("J1", 3)]
    response = await client.post("/api/events/batch", json={"events": events}, headers=edge)
    assert response.status_code == 422
    assert field_errors(response) == {
        "events.1.sequence": "Input should be greater than or equal to 1"
    }
    assert count_rows(lab.context.db, StageEvent) == 0
    assert count_rows(lab.context.db, RejectedEvent) == 0
    assert lab.job(lab.make_job("J2")).status == "queued"  # the DB is still writable


async def test_a_rejected_event_in_a_batch_leaves_the_others_and_no_gap(
    client: httpx.AsyncClient, lab: Lab, edge: dict[str, str]
) -> None:
    events = [
        event_body("J1", 1, "start"),
        event_body("J1", 2, "start"),  # already started here: a conflict
        event_body("0001", 3, "complete"),
    ]
    response = await client.post("/api/events/batch", json={"events": events}, headers=edge)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [result["status"] for result in results] == ["stored", "rejected", "stored"]
    assert [result["event_uuid"] for result in results] == [e["event_uuid"] for e in events]
    assert results[1]["error"] == {
        "field": "action",
        "message": "job J1 is already started here",
    }
    assert results[2]["job"]["stage"] == "fitting"
    assert response.json()["sequence_gaps"] == []
    assert (count_rows(lab.context.db, StageEvent), count_rows(lab.context.db, RejectedEvent)) == (
        2,
        1,
    )
    me = (await client.get("/api/stations/me", headers=edge)).json()
    assert (me["last_sequence"], me["sequence_gaps"]) == (3, [])


async def test_a_batch_that_skips_sequence_numbers_reports_the_gap(
    client: httpx.AsyncClient, edge: dict[str, str]
) -> None:
    events = [event_body("J1", 1, "start"), event_body("J1", 2, "note", note="chipped box")]
    events.append(event_body("J1", 5, "complete"))
    response = await client.post("/api/events/batch", json={"events": events}, headers=edge)
    assert response.status_code == 200, response.text
    assert len(response.json()["results"]) == 3
    assert response.json()["sequence_gaps"] == [{"first_missing": 3, "last_missing": 4}]
    me = (await client.get("/api/stations/me", headers=edge)).json()
    assert (me["last_sequence"], me["sequence_gaps"]) == (
        5,
        [{"first_missing": 3, "last_missing": 4}],
    )


async def test_a_batch_over_the_size_limit_is_422(
    client: httpx.AsyncClient, lab: Lab, edge: dict[str, str]
) -> None:
    lab.context.settings.max_batch_size = 3
    notes = [event_body("J1", n, "note", note=f"n{n}") for n in range(1, 5)]
    too_many = await client.post("/api/events/batch", json={"events": notes}, headers=edge)
    assert too_many.status_code == 422
    assert field_errors(too_many) == {"events": "at most 3 events per batch"}
    assert count_rows(lab.context.db, StageEvent) == 0
    just_fits = await client.post("/api/events/batch", json={"events": notes[:3]}, headers=edge)
    assert just_fits.status_code == 200
    assert count_rows(lab.context.db, StageEvent) == 3


async def test_an_empty_batch_is_422(
    client: httpx.AsyncClient, lab: Lab, edge: dict[str, str]
) -> None:
    response = await client.post("/api/events/batch", json={"events": []}, headers=edge)
    assert response.status_code == 422
    assert "events" in field_errors(response)


async def test_twenty_racing_resends_store_one_event(
    client: httpx.AsyncClient, lab: Lab, edge: dict[str, str]
) -> None:
    event = event_body("J1", 1)
    responses = await asyncio.gather(
        *(client.post("/api/events", json=event, headers=edge) for _ in range(20))
    )
    statuses = sorted((r.status_code, r.json()["status"]) for r in responses)
    assert statuses == [(200, "duplicate")] * 19 + [(201, "stored")], statuses
    assert len({r.json()["event_id"] for r in responses}) == 1
    assert count_rows(lab.context.db, StageEvent) == 1
    assert count_rows(lab.context.db, RejectedEvent) == 0


async def test_a_resent_rejected_event_keeps_its_first_answer_though_the_job_moved(
    client: httpx.AsyncClient, lab: Lab, edge: dict[str, str]
) -> None:
    """A UUID's fate is final: refused once, refused on every resend, even when the job has
    since moved so that the same event would now apply."""
    complete = event_body("J1", 1, "complete")  # J1 is queued, not started: refused
    first = await client.post("/api/events", json=complete, headers=edge)
    assert first.status_code == 409, first.text
    started = await client.post("/api/events", json=event_body("J1", 2, "start"), headers=edge)
    assert started.status_code == 201, started.text
    again = await client.post("/api/events", json=complete, headers=edge)
    assert again.status_code == 409
    assert field_errors(again) == field_errors(first)
    batch = await client.post("/api/events/batch", json={"events": [complete]}, headers=edge)
    [result] = batch.json()["results"]
    assert result["status"] == "rejected"
    assert result["error"] == {"field": "action", "message": field_errors(first)["action"]}
    assert count_rows(lab.context.db, StageEvent) == 1
    assert count_rows(lab.context.db, RejectedEvent) == 1
    with lab.context.db.session() as session:
        job = session.query(Job).filter_by(job_number="J1").one()
        assert (job.current_stage.code, job.status) == ("edging", "in_progress")


async def test_racing_resends_of_a_rejected_event_keep_one_rejection(
    client: httpx.AsyncClient, lab: Lab, edge: dict[str, str]
) -> None:
    complete = event_body("J1", 1, "complete")
    responses = await asyncio.gather(
        *(
            client.post("/api/events/batch", json={"events": [complete]}, headers=edge)
            for _ in range(10)
        )
    )
    assert {r.json()["results"][0]["status"] for r in responses} == {"rejected"}
    assert count_rows(lab.context.db, RejectedEvent) == 1


async def test_a_batch_past_its_work_budget_answers_for_the_events_it_took(
    client: httpx.AsyncClient, lab: Lab, edge: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first event is always taken; the others wait for the station's next request."""
    monkeypatch.setattr(lab.context.settings, "ingest_budget_seconds", 1e-9)
    events = [event_body("J1", 1, "start"), event_body("J1", 2, "complete")]
    response = await client.post("/api/events/batch", json={"events": events}, headers=edge)
    assert [r["event_uuid"] for r in response.json()["results"]] == [events[0]["event_uuid"]]
    assert count_rows(lab.context.db, StageEvent) == 1
    rest = await client.post("/api/events/batch", json={"events": events[1:]}, headers=edge)
    assert [r["status"] for r in rest.json()["results"]] == ["stored"]


@pytest.mark.parametrize("path", ["/api/events", "/api/events/batch"])
async def test_a_request_past_its_deadline_stores_nothing_and_answers_503(
    client: httpx.AsyncClient,
    lab: Lab,
    edge: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    path: str,
) -> None:
    """Not done in time: rolled back, so the station's resend cannot race a late commit."""
    monkeypatch.setattr(lab.context.settings, "ingest_deadline_seconds", 1e-9)
    rejected = event_body("J1", 1, "complete")
    for event in (event_body("J1", 2, "start"), rejected):
        body = {"events": [event]} if path.endswith("batch") else event
        response = await client.post(path, json=body, headers=edge)
        assert response.status_code == 503, response.text
        assert list(field_errors(response)) == ["request"]
    assert count_rows(lab.context.db, StageEvent) == 0
    assert count_rows(lab.context.db, RejectedEvent) == 0


def _sign(sequence: int, action: str, badge: str = "B1001") -> dict[str, object]:
    body = event_body("J1", sequence, action, operator_badge=badge)
    del body["job"]  # a sign-in or sign-out names no job
    return body


@pytest.mark.usefixtures("nobody_signed_in")
async def test_an_event_from_an_operator_not_signed_in_here_is_refused_and_kept(
    client: httpx.AsyncClient, lab: Lab, edge: dict[str, str]
) -> None:
    response = await client.post("/api/events", json=event_body("J1", 1), headers=edge)
    assert response.status_code == 403, response.text
    assert field_errors(response) == {
        "operator_badge": "badge 'B1001' was not signed in at station EDGE-1 when this was scanned"
    }
    assert count_rows(lab.context.db, RejectedEvent) == 1
    me = (await client.get("/api/stations/me", headers=edge)).json()
    assert (me["last_sequence"], me["sequence_gaps"]) == (1, [])


@pytest.mark.usefixtures("nobody_signed_in")
async def test_sign_ins_and_outs_take_sequence_numbers_and_scope_the_events_after_them(
    client: httpx.AsyncClient, lab: Lab, edge: dict[str, str]
) -> None:
    """A night offline: the outbox sends what it recorded, in its order, in one batch."""
    events = [
        _sign(1, "sign_in"),
        event_body("J1", 2, "start"),
        _sign(3, "sign_out"),
        event_body("J1", 4, "complete"),
        _sign(5, "sign_in", badge="B1002"),
        event_body("J1", 6, "complete", operator_badge="B1002"),
    ]
    response = await client.post("/api/events/batch", json={"events": events}, headers=edge)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    statuses = ["stored", "stored", "stored", "rejected", "stored", "stored"]
    assert [result["status"] for result in results] == statuses
    assert results[3]["error"]["field"] == "operator_badge"
    assert results[5]["job"]["stage"] == "fitting"
    assert response.json()["sequence_gaps"] == []
    again = await client.post("/api/events/batch", json={"events": events[:1]}, headers=edge)
    assert again.json()["results"][0]["status"] == "duplicate"
    me = (await client.get("/api/stations/me", headers=edge)).json()
    assert (me["last_sequence"], me["sequence_gaps"]) == (6, [])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**event_body("J1", 1, "sign_in")}, "job"),  # a sign-in names no job
        (_sign(1, "start"), "job"),  # a job event names its job
        ({**_sign(1, "sign_in"), "operator_badge": None}, "operator_badge"),
        ({**_sign(1, "sign_out"), "note": "bye"}, "note"),
    ],
)
async def test_a_sign_in_names_a_badge_and_nothing_else(
    client: httpx.AsyncClient, edge: dict[str, str], body: dict[str, object], field: str
) -> None:
    response = await client.post("/api/events", json=body, headers=edge)
    assert response.status_code == 422, response.text
    assert list(field_errors(response)) == [field]


def _posted(path: str, event: dict[str, object]) -> dict[str, object]:
    return {"events": [event]} if path.endswith("batch") else event


@pytest.mark.parametrize("path", ["/api/events", "/api/events/batch"])
@pytest.mark.parametrize(
    ("withdraw", "message"),
    [
        (lambda session: auth.revoke_station_tokens(session, "EDGE-1"), "unknown or revoked"),
        (lambda session: _edge_1(session).__setattr__("active", False), "station EDGE-1 is"),
    ],
    ids=["revoked", "disabled"],
)
async def test_a_token_withdrawn_after_it_posted_stores_nothing_more(
    client: httpx.AsyncClient,
    lab: Lab,
    edge: dict[str, str],
    path: str,
    withdraw: Callable[[Session], object],
    message: str,
) -> None:
    """The writer checks the token of every request it takes, though the request path knew
    the token already (as a revocation from another process would go)."""
    first = await client.post(path, json=_posted(path, event_body("J1", 1)), headers=edge)
    assert first.status_code in (200, 201), first.text
    with lab.context.db.session() as session:
        withdraw(session)
    for _ in range(2):  # the first refusal forgets the token: the next one reads it afresh
        later = await client.post(
            path, json=_posted(path, event_body("J1", 2, "complete")), headers=edge
        )
        assert later.status_code == 401, later.text
        assert field_errors(later)["authorization"].startswith(message)
    assert count_rows(lab.context.db, StageEvent) == 1
    assert count_rows(lab.context.db, RejectedEvent) == 0


def _edge_1(session: Session) -> Station:
    return session.scalars(select(Station).where(Station.name == "EDGE-1")).one()


@pytest.mark.parametrize("path", ["/api/events", "/api/events/batch"])
async def test_a_station_moved_to_another_stage_posts_from_its_new_stage(
    client: httpx.AsyncClient, lab: Lab, edge: dict[str, str], path: str
) -> None:
    first = await client.post(path, json=_posted(path, event_body("J1", 1)), headers=edge)
    assert first.status_code in (200, 201), first.text
    with lab.context.db.session() as session:
        fitting = session.scalars(select(Stage).where(Stage.code == "fitting")).one()
        _edge_1(session).stage_id = fitting.id
    # J1 is at edging: the station, now at fitting, may not complete it there.
    later = await client.post(
        path, json=_posted(path, event_body("J1", 2, "complete")), headers=edge
    )
    refusal = {"field": "action", "message": "job J1 is not in progress at Fitting"}
    if path.endswith("batch"):
        assert later.json()["results"][0]["error"] == refusal, later.text
    else:
        assert field_errors(later) == {refusal["field"]: refusal["message"]}, later.text
    with lab.context.db.session() as session:
        job = session.scalars(select(Job).where(Job.job_number == "J1")).one()
        assert (job.current_stage.code, job.status) == ("edging", "in_progress")


def test_the_station_token_cache_keeps_the_latest_used() -> None:
    tokens = StationTokens()
    stations = [StationPrincipal(n, 1, 1, f"S-{n}") for n in range(StationTokens.SIZE + 1)]
    for station in stations[:-1]:
        tokens.put(station.name, station)
    assert tokens.get("S-0") == stations[0]  # used: now the latest
    tokens.put("S-new", stations[-1])
    assert tokens.get("S-1") is None and tokens.get("S-0") == stations[0]
    tokens.forget("S-0")
    assert tokens.get("S-0") is None


@pytest.mark.parametrize(
    ("method", "path", "status", "logged"),
    [
        ("POST", "/api/events", 201, False),
        ("POST", "/api/events/batch", 200, False),
        ("POST", "/api/events", 404, True),
        ("POST", "/api/events", 503, True),
        ("GET", "/api/jobs", 200, True),
    ],
)
def test_only_stored_station_events_leave_the_access_log(
    method: str, path: str, status: int, logged: bool
) -> None:
    args = ("127.0.0.1:5000", method, path, "1.1", status)
    record = logging.LogRecord("uvicorn.access", logging.INFO, "", 0, "%s %s %s %s %d", args, None)
    assert QuietStoredEvents().filter(record) is logged
