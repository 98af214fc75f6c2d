"""The job contract: the station reads every server answer it uses with its own models.

The real API answers in-process each request the station's uplink makes (`station/uplink.py`),
and each answer is read with `station.wire` exactly as the uplink reads it. The events are
built with the station's models and sent as the uplink sends them.
"""

import uuid
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
from pydantic import TypeAdapter

from core.contract import ReasonKind
from core.labels import StationLabels
from station.wire import (
    Action,
    BatchReply,
    BreakageDetail,
    EventIn,
    JobCard,
    JobPage,
    JobStatus,
    Operator,
    Reason,
    StationMe,
    TimelineEntry,
)
from tests.server import conftest as server_fixtures
from tests.server.conftest import Lab

# The server tests' fixtures: the configured demo lab, in this process's database.
cheap_password_hashing = server_fixtures.cheap_password_hashing
lab_config = server_fixtures.lab_config
seeded_rows = server_fixtures.seeded_rows
lab = server_fixtures.lab

T = TypeVar("T")


def _read(shape: type[T] | Any, response: httpx.Response) -> T:
    """The answer read as the station reads it; every value it kept is the server's, unchanged.

    The server may send more than the station declares (and does: the station ignores it).
    """
    assert response.status_code in (200, 201), response.text
    adapter = TypeAdapter(shape)
    value = adapter.validate_json(response.content)
    assert _kept_unchanged(adapter.dump_python(value, mode="json"), response.json())
    return value


def _kept_unchanged(read: object, sent: object) -> bool:
    if isinstance(read, dict):
        return isinstance(sent, dict) and all(
            key in sent and _kept_unchanged(value, sent[key]) for key, value in read.items()
        )
    if isinstance(read, list):
        return (
            isinstance(sent, list)
            and len(read) == len(sent)
            and all(map(_kept_unchanged, read, sent))
        )
    return read == sent


def _event(sequence: int, action: Action, **fields: Any) -> dict[str, Any]:
    """An event as the station's outbox builds it and its uplink posts it."""
    now = datetime.now(UTC)
    event = EventIn(
        event_uuid=uuid.uuid4(),
        sequence=sequence,
        job="0001",
        action=action,
        operator_badge="B1001",
        created_at=now,
        sent_at=now,
        **fields,
    )
    return event.model_dump(mode="json")


async def test_the_station_reads_every_answer_of_the_server(
    client: httpx.AsyncClient, lab: Lab
) -> None:
    lab.make_job("J1", tray="0001")
    client.headers.update(lab.station_headers("EDGE-1"))

    me = _read(StationMe, await client.get("/api/stations/me"))
    operators = _read(list[Operator], await client.get("/api/stations/me/operators"))
    reasons = _read(list[Reason], await client.get("/api/stations/me/reasons"))
    labels = _read(StationLabels, await client.get("/api/stations/me/labels"))
    assert (me.name, me.stage.code, me.last_sequence) == ("EDGE-1", "edging", 0)
    assert "B1001" in {operator.badge_code for operator in operators}
    assert {reason.kind for reason in reasons} == set(ReasonKind)
    assert labels.stages["edging"] == me.stage.name

    chip = next(reason for reason in reasons if reason.code == "B-CHIP")
    start = _event(1, Action.start)
    breakage = _event(
        2, Action.breakage, reason_code=chip.code, breakage=BreakageDetail(eyes=["R"])
    )
    sent = await client.post("/api/events/batch", json={"events": [start, breakage]})
    reply = _read(BatchReply, sent)
    assert [result.status for result in reply.results] == ["stored", "stored"]
    assert reply.results[0].job is not None
    assert (reply.results[0].job.job_number, reply.results[0].job.status) == (
        "J1",
        JobStatus.in_progress,
    )

    here = await client.get("/api/jobs", params={"stage": "edging", "active": "true", "limit": 50})
    page = _read(JobPage, here)
    card = _read(JobCard, await client.get("/api/jobs/lookup/0001"))
    timeline = _read(list[TimelineEntry], await client.get(f"/api/jobs/{card.id}/timeline"))
    assert [job.job_number for job in page.items] == ["J1"]
    assert (card.job_number, card.tray_number, card.store_code) == ("J1", "0001", "NORTH")
    assert [eye.eye for eye in card.prescription] == ["L", "R"]
    assert [entry.action for entry in timeline] == [Action.start, Action.breakage]
    assert timeline[1].reason_code == "B-CHIP"
    assert _read(StationMe, await client.get("/api/stations/me")).last_sequence == 2


async def test_the_server_answers_more_than_the_station_reads(
    client: httpx.AsyncClient, lab: Lab
) -> None:
    """Replies ignore what they do not declare, so the server adds fields without breaking
    stations: its job card carries, for instance, the patient and the flags."""
    job_id = lab.make_job("J2")
    answer = await client.get(f"/api/jobs/{job_id}", headers=lab.station_headers("EDGE-1"))
    card = _read(JobCard, answer)
    assert {"patient_ref", "flags"} <= set(answer.json()) - set(JobCard.model_fields)
    assert card.status == JobStatus.queued
