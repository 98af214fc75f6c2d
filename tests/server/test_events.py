"""Event ingestion as plain domain calls: the state machine, idempotency, gaps, clock skew;
and the station's offline card agreeing with what the server stores."""

import contextlib
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from core.contract import SignAction
from server.domain.errors import (
    AlreadyRejected,
    Conflict,
    DomainError,
    Forbidden,
    Invalid,
    NotFound,
)
from server.domain.events import (
    Arrival,
    ingest_batch,
    ingest_event,
    ingest_events,
    last_sequence,
    sequence_gaps,
)
from server.models import (
    EventAction,
    Job,
    JobStatus,
    JobUpdate,
    LensDesign,
    Person,
    RejectedEvent,
    Stage,
    StageEvent,
    StationSequenceMark,
    StationSignIn,
    utcnow,
)
from server.schemas import EventIn, EventResult
from station.flow import Projected, project
from station.outbox import OutboxEvent
from station.wire import JobCard, Reason
from tests.server.conftest import Floor, Lab


def test_a_stock_job_travels_its_route_to_completion(lab: Lab, floor: Floor) -> None:
    job_id = lab.make_job("J1", tray="0001")
    assert floor.state(job_id) == ("edging", JobStatus.queued)
    for station, next_stage in (
        ("EDGE-1", "fitting"),
        ("FIT-1", "final_qc"),
        ("QC-1", "shipping"),
    ):
        assert floor.send(station, "J1", EventAction.start) == "stored"
        assert floor.state(job_id)[1] == JobStatus.in_progress
        assert floor.complete(station, "0001") == "stored"  # by tray
        assert floor.state(job_id) == (next_stage, JobStatus.queued)
    floor.send("SHIP-1", "J1", EventAction.start)
    floor.send("SHIP-1", "J1", EventAction.complete)
    job = lab.job(job_id)
    assert (job.status, job.is_active) == (JobStatus.completed, False)
    # The tray is free again for a new job once the old one shipped.
    lab.make_job("J2", tray="0001")


def test_the_same_event_sent_twice_is_stored_once(lab: Lab, floor: Floor) -> None:
    lab.make_job("J1")
    event = floor.event("EDGE-1", "J1", EventAction.start)
    station = floor.station("EDGE-1")
    with lab.context.db.session() as session:
        first = ingest_event(session, station, event)
    with lab.context.db.session() as session:
        again = ingest_event(session, station, event)
        count = session.scalar(select(func.count()).select_from(StageEvent))
    assert (first.status, again.status) == ("stored", "duplicate")
    assert again.event_id == first.event_id
    assert count == 1


def test_concurrent_resends_store_one_event(lab: Lab, floor: Floor) -> None:
    lab.make_job("J1")
    event = floor.event("EDGE-1", "J1", EventAction.start)
    station = floor.station("EDGE-1")

    def send() -> str:
        with lab.context.db.session() as session:
            return ingest_event(session, station, event).status

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(lambda _: send(), range(16)))
    with lab.context.db.session() as session:
        count = session.scalar(select(func.count()).select_from(StageEvent))
    assert statuses.count("stored") == 1
    assert statuses.count("duplicate") == 15
    assert count == 1


def test_starting_at_a_stage_the_job_is_not_at_needs_an_override(lab: Lab, floor: Floor) -> None:
    job_id = lab.make_job("J1")  # stock SV: starts at edging
    with pytest.raises(Conflict) as refused:
        floor.send("FIT-1", "J1", EventAction.start)
    assert refused.value.field == "override_reason"
    assert "skips" in refused.value.message
    with pytest.raises(Conflict, match="not routed"):
        floor.send("GEN-1", "J1", EventAction.start)
    assert floor.state(job_id) == ("edging", JobStatus.queued)
    floor.send("FIT-1", "J1", EventAction.start, override_reason="edged by hand at bench 2")
    assert floor.state(job_id) == ("fitting", JobStatus.in_progress)


def test_complete_needs_the_job_in_progress_here(lab: Lab, floor: Floor) -> None:
    lab.make_job("J1")
    with pytest.raises(Conflict, match="not in progress"):
        floor.send("EDGE-1", "J1", EventAction.complete)
    floor.send("EDGE-1", "J1", EventAction.start)
    with pytest.raises(Conflict, match="already started"):
        floor.send("EDGE-1", "J1", EventAction.start)


def test_hold_and_release_return_to_the_previous_status(lab: Lab, floor: Floor) -> None:
    job_id = lab.make_job("J1")
    floor.send("EDGE-1", "J1", EventAction.start)
    with pytest.raises(Invalid) as missing:
        floor.send("EDGE-1", "J1", EventAction.hold)
    assert missing.value.field == "reason_code"
    with pytest.raises(Invalid, match="not a hold reason"):
        floor.send("EDGE-1", "J1", EventAction.hold, reason_code="B-CHIP")
    floor.send("EDGE-1", "J1", EventAction.hold, reason_code="H-FRAME")
    assert floor.state(job_id) == ("edging", JobStatus.on_hold)
    with pytest.raises(Conflict, match="on hold"):
        floor.send("EDGE-1", "J1", EventAction.complete)
    floor.send("EDGE-1", "J1", EventAction.release)
    assert floor.state(job_id) == ("edging", JobStatus.in_progress)


def test_breakage_sends_the_job_back_per_reason_code(lab: Lab, floor: Floor) -> None:
    job_id = lab.make_job("J1", design=LensDesign.PAL, surfaced=True)
    for station in ("GEN-1", "POL-1", "HC-1", "AR-1"):
        floor.send(station, "J1", EventAction.start)
        floor.send(station, "J1", EventAction.complete)
    floor.send("EDGE-1", "J1", EventAction.start)
    # B-CHIP has no return stage configured: back to the first stage of the route.
    floor.send("EDGE-1", "J1", EventAction.breakage, reason_code="B-CHIP")
    job = lab.job(job_id)
    assert (job.current_stage and job.current_stage.code, job.status) == (
        "generating",
        JobStatus.queued,
    )
    assert job.breakage_count == 1


def test_rework_goes_to_the_defects_stage_or_an_explicit_one(lab: Lab, floor: Floor) -> None:
    job_id = lab.make_job("J1", design=LensDesign.PAL, surfaced=True)
    floor.send("QC-1", "J1", EventAction.start, override_reason="test: skip to QC")
    floor.send("QC-1", "J1", EventAction.rework, reason_code="D-PD")
    assert floor.state(job_id) == ("edging", JobStatus.queued)
    floor.send("EDGE-1", "J1", EventAction.rework, to_stage="polishing")
    assert floor.state(job_id) == ("polishing", JobStatus.queued)
    assert lab.job(job_id).rework_count == 2
    lab.make_job("J2")  # stock route: no polishing stage
    with pytest.raises(Invalid, match="route has no such stage"):
        floor.send("EDGE-1", "J2", EventAction.rework, to_stage="polishing")


def test_unknown_job_and_badge_are_refused_with_the_field(lab: Lab, floor: Floor) -> None:
    lab.make_job("J1")
    with pytest.raises(NotFound) as unknown_job:
        floor.send("EDGE-1", "J404", EventAction.start)
    assert unknown_job.value.field == "job"
    with pytest.raises(Invalid) as unknown_badge:
        floor.send("EDGE-1", "J1", EventAction.start, operator_badge="B0000")
    assert unknown_badge.value.field == "operator_badge"


def test_only_a_station_operators_badge_names_the_operator(lab: Lab, floor: Floor) -> None:
    """A station cannot act as the lab manager: a badge outside the station roles is refused
    exactly like an unknown one, so the answer tells no one's role."""
    lab.make_job("J1")
    answers = {}
    for badge in ("B9001", "B0000"):  # the lab manager's; nobody's
        with pytest.raises(Invalid) as refused:
            floor.send("EDGE-1", "J1", EventAction.start, operator_badge=badge)
        answers[badge] = (refused.value.field, refused.value.message.replace(badge, "BADGE"))
    assert answers["B9001"] == answers["B0000"]
    assert answers["B9001"][0] == "operator_badge"
    # The QC inspector and the technicians sign in at stations.
    assert floor.send("EDGE-1", "J1", EventAction.start, operator_badge="B2001") == "stored"
    assert floor.send("EDGE-1", "J1", EventAction.note, operator_badge="B1002") == "stored"


def test_events_from_far_in_the_future_are_refused(lab: Lab, floor: Floor) -> None:
    lab.make_job("J1")
    later = utcnow() + timedelta(hours=3)
    with pytest.raises(Invalid) as refused:
        floor.send("EDGE-1", "J1", EventAction.start, created_at=later, sent_at=later)
    assert refused.value.field in {"created_at", "sent_at"}


def test_device_time_is_corrected_onto_the_server_clock(lab: Lab, floor: Floor) -> None:
    lab.make_job("J1")
    # The station clock runs 10 minutes slow; the scan waited 5 minutes in its outbox.
    received = utcnow()
    created = received - timedelta(minutes=15)
    sent = received - timedelta(minutes=10)
    event = floor.event("EDGE-1", "J1", EventAction.start, created_at=created, sent_at=sent)
    with lab.context.db.session() as session:
        ingest_event(session, floor.station("EDGE-1"), event, received_at=received)
        stored = session.scalar(select(StageEvent))
        assert stored is not None
        assert stored.corrected_at == received - timedelta(minutes=5)
        assert stored.device_created_at == created


def test_a_batch_rejects_one_event_alone_and_keeps_it(lab: Lab, floor: Floor) -> None:
    job_id = lab.make_job("J1")
    events = [
        floor.event("EDGE-1", "J1", EventAction.start),
        floor.event("EDGE-1", "NOPE", EventAction.note, note="unknown job"),
        floor.event("EDGE-1", "J1", EventAction.complete),
    ]
    station = floor.station("EDGE-1")
    with lab.context.db.session() as session:
        results = ingest_batch(session, station, events)
    assert [r.status for r in results] == ["stored", "rejected", "stored"]
    assert results[1].error is not None and results[1].error.field == "job"
    assert floor.state(job_id) == ("fitting", JobStatus.queued)
    with lab.context.db.session() as session:
        kept = session.scalars(select(RejectedEvent)).all()
        station_id = station.station_id
        assert [(r.station_sequence, r.field) for r in kept] == [(2, "job")]
        # A rejected event reached the server: it is not a gap.
        assert sequence_gaps(session, station_id) == []
        assert last_sequence(session, station_id) == 3


def test_a_failed_event_leaves_no_trace_of_half_a_change(lab: Lab, floor: Floor) -> None:
    job_id = lab.make_job("J1")
    with pytest.raises(DomainError):
        floor.send("EDGE-1", "J1", EventAction.complete)
    with lab.context.db.session() as session:
        assert session.scalar(select(func.count()).select_from(StageEvent)) == 0
        job = session.get_one(Job, job_id)
        assert job.status == JobStatus.queued


def test_sequence_gaps_are_reported_as_runs(lab: Lab, floor: Floor) -> None:
    lab.make_job("J1")
    station = floor.station("EDGE-1")
    with lab.context.db.session() as session:
        for sequence in (1, 2, 5, 9):
            event = floor.event("EDGE-1", "J1", EventAction.note, sequence=sequence)
            ingest_event(session, station, event)
        gaps = sequence_gaps(session, station.station_id)
    assert [(g.first_missing, g.last_missing) for g in gaps] == [(3, 4), (6, 8)]


def test_gap_reports_read_on_from_the_marked_contiguous_numbers(lab: Lab, floor: Floor) -> None:
    lab.make_job("J1")
    station = floor.station("EDGE-1")

    def send(*sequences: int) -> list[tuple[int, int]]:
        with lab.context.db.session() as session:
            for sequence in sequences:
                event = floor.event("EDGE-1", "J1", EventAction.note, sequence=sequence)
                ingest_event(session, station, event)
            gaps = sequence_gaps(session, station.station_id, move_mark=True)
            mark = session.get_one(StationSequenceMark, station.station_id).received_through
        return [(gap.first_missing, gap.last_missing) for gap in gaps] + [(mark, mark)]

    assert send(1, 2, 3) == [(3, 3)]  # no gap: marked through the highest
    assert send(5, 9) == [(4, 4), (6, 8), (3, 3)]  # stops before the first gap
    assert send(4, 6) == [(7, 8), (6, 6)]
    assert send(7, 8) == [(9, 9)]
    with lab.context.db.session() as session:
        assert last_sequence(session, station.station_id) == 9


def test_note_on_a_shipped_job_is_still_recorded(lab: Lab, floor: Floor) -> None:
    lab.make_job("J1")
    floor.ship("J1")
    assert floor.send("SHIP-1", "J1", EventAction.note, note="left in the van") == "stored"
    with pytest.raises(Conflict, match="completed"):
        floor.send("SHIP-1", "J1", EventAction.start)


def test_timestamps_are_timezone_aware_on_read(lab: Lab) -> None:
    job = lab.job(lab.make_job("J1"))
    assert isinstance(job.promised_at, datetime)
    assert job.promised_at.tzinfo is not None


def test_an_inspection_stage_passes_a_job_only_with_a_judged_inspection(
    lab: Lab, floor: Floor
) -> None:
    """Force QA: the lab config marks final QC `inspection = true`."""
    with lab.context.db.session() as session:
        flagged = session.scalars(select(Stage.code).where(Stage.inspection)).all()
    assert flagged == ["final_qc"]
    job_id = lab.make_job("J1")
    for station in ("EDGE-1", "FIT-1"):
        floor.send(station, "J1", EventAction.start)
        assert floor.send(station, "J1", EventAction.complete) == "stored"  # by scan
    floor.send("QC-1", "J1", EventAction.start)
    with pytest.raises(Invalid) as refused:
        floor.send("QC-1", "J1", EventAction.complete)
    assert refused.value.field == "inspection"
    assert "Final QC is an inspection stage" in refused.value.message
    assert floor.state(job_id) == ("final_qc", JobStatus.in_progress)
    inspection = floor.passing_inspection("QC-1", "J1")
    assert floor.send("QC-1", "J1", EventAction.complete, inspection=inspection) == "stored"
    assert floor.state(job_id) == ("shipping", JobStatus.queued)


Step = tuple[EventAction, dict[str, Any]]


async def _card(client: httpx.AsyncClient, headers: dict[str, str], job: str) -> JobCard:
    response = await client.get(f"/api/jobs/lookup/{job}", headers=headers)
    assert response.status_code == 200, response.text
    return JobCard.model_validate(response.json())


async def _agree(
    client: httpx.AsyncClient, lab: Lab, floor: Floor, station: str, job: str, steps: list[Step]
) -> None:
    """Sends the steps as `station`, refused ones too. After each, the station's projection
    from every card it could have fetched before, plus its own events since, is what the server
    stored."""
    headers = lab.station_headers(station)
    reasons = (await client.get("/api/stations/me/reasons", headers=headers)).json()
    by_code = {reason["code"]: Reason.model_validate(reason) for reason in reasons}
    with lab.context.db.session() as session:
        here = session.get_one(Stage, floor.station(station).stage_id).code
    cards: list[JobCard] = []
    events: list[OutboxEvent] = []
    for action, fields in steps:
        cards.append(await _card(client, headers, job))
        # A refused event: the station, not knowing yet, must project no change either.
        with contextlib.suppress(DomainError):
            floor.send(station, job, action, **fields)
        events.append(
            OutboxEvent(
                len(events) + 1, uuid.uuid4(), job, action, fields, utcnow(), "queued", None
            )
        )
        stored = await _card(client, headers, job)
        server = Projected(
            stored.current_stage.code if stored.current_stage else None, stored.status
        )
        for since, card in enumerate(cards):
            assert project(card, events[since:], by_code, here) == server, (action, since)


async def test_the_station_card_projects_what_the_server_stores(
    client: httpx.AsyncClient, lab: Lab, floor: Floor
) -> None:
    hold, frame_hold = EventAction.hold, {"reason_code": "H-FRAME"}
    lab.make_job("J1")
    await _agree(
        client,
        lab,
        floor,
        "EDGE-1",
        "J1",
        [
            (hold, frame_hold),  # held while queued: a release queues it again
            (EventAction.release, {}),
            (EventAction.start, {}),
            (EventAction.start, {}),  # refused: already started
            (hold, {"reason_code": "H-RX"}),
            (EventAction.complete, {}),  # refused: on hold
            (EventAction.release, {}),  # back in progress
            (EventAction.complete, {}),
            (EventAction.breakage, {"reason_code": "B-CHIP"}),  # from fitting, back to edging
            (EventAction.rework, {"reason_code": "D-FIT"}),
        ],
    )
    lab.make_job("J2")
    for station in ("EDGE-1", "FIT-1"):
        floor.send(station, "J2", EventAction.start)
        floor.send(station, "J2", EventAction.complete)
    passing = {"inspection": floor.passing_inspection("QC-1", "J2")}
    await _agree(
        client,
        lab,
        floor,
        "QC-1",
        "J2",
        [
            (EventAction.start, {}),
            (EventAction.complete, {}),  # refused: final QC passes only with an inspection
            (EventAction.complete, passing),
            (EventAction.start, {}),  # refused: already past QC
            (EventAction.note, {"note": "checked twice"}),
        ],
    )
    lab.make_job("J3")
    await _agree(
        client,
        lab,
        floor,
        "FIT-1",
        "J3",
        [
            (EventAction.start, {}),  # refused: skips edging
            (EventAction.start, {"override_reason": "edged by hand"}),
            (hold, frame_hold),
            (EventAction.rework, {"to_stage": "edging"}),
            (EventAction.complete, {}),  # refused: not in progress here
        ],
    )
    lab.make_job("J4")
    floor.ship("J4")
    await _agree(client, lab, floor, "SHIP-1", "J4", [(EventAction.start, {}), (hold, frame_hold)])


# -- operators signed in at the station --


def _sign(
    lab: Lab, floor: Floor, station: str, action: SignAction, badge: str, at: datetime
) -> str:
    """Sends a sign-in or sign-out (it names no job) as the station would."""
    event = floor.event(station, None, action, operator_badge=badge, created_at=at, sent_at=at)
    with lab.context.db.session() as session:
        return ingest_event(session, floor.station(station), event, received_at=at).status


def _refusal(floor: Floor, station: str, at: datetime) -> tuple[str, str]:
    with pytest.raises(Forbidden) as refused:
        floor.send(station, "J1", EventAction.start, at, operator_badge="B1001")
    return refused.value.field, refused.value.message


@pytest.mark.usefixtures("nobody_signed_in")
def test_a_job_event_counts_only_from_an_operator_signed_in_at_its_station(
    lab: Lab, floor: Floor
) -> None:
    lab.make_job("J1")
    now = utcnow()
    assert _refusal(floor, "EDGE-1", now) == (
        "operator_badge",
        "badge 'B1001' was not signed in at station EDGE-1 when this was scanned",
    )
    assert _sign(lab, floor, "FIT-1", SignAction.sign_in, "B1001", now) == "stored"
    assert _refusal(floor, "EDGE-1", now)[0] == "operator_badge"  # signed in elsewhere
    assert _sign(lab, floor, "EDGE-1", SignAction.sign_in, "B1001", now) == "stored"
    assert _refusal(floor, "EDGE-1", now - timedelta(seconds=1))[0] == "operator_badge"
    assert floor.send("EDGE-1", "J1", EventAction.start, now, operator_badge="B1001") == "stored"


@pytest.mark.usefixtures("nobody_signed_in")
def test_after_a_sign_out_only_events_made_before_it_count(lab: Lab, floor: Floor) -> None:
    """The event's scan time decides: one made while signed in that arrives after the
    sign-out (its station was offline) is stored; one made after it is rejected."""
    lab.make_job("J1")
    signed_in = utcnow() - timedelta(minutes=10)
    _sign(lab, floor, "EDGE-1", SignAction.sign_in, "B1001", signed_in)
    _sign(lab, floor, "EDGE-1", SignAction.sign_out, "B1001", signed_in + timedelta(minutes=5))
    assert _refusal(floor, "EDGE-1", signed_in + timedelta(minutes=6))[0] == "operator_badge"
    made_while_signed_in = signed_in + timedelta(minutes=4)
    assert floor.send("EDGE-1", "J1", EventAction.start, made_while_signed_in) == "stored"


@pytest.mark.usefixtures("nobody_signed_in")
def test_a_sign_in_is_stored_once_and_only_for_a_station_operator(lab: Lab, floor: Floor) -> None:
    now = utcnow()
    sign_in = floor.event("EDGE-1", None, SignAction.sign_in)
    station = floor.station("EDGE-1")
    with lab.context.db.session() as session:
        first = ingest_event(session, station, sign_in, received_at=now)
        again = ingest_event(session, station, sign_in, received_at=now)
        stored = session.scalar(select(func.count()).select_from(StationSignIn))
    assert (first.status, again.status, stored) == ("stored", "duplicate", 1)
    with pytest.raises(Invalid) as manager:
        _sign(lab, floor, "EDGE-1", SignAction.sign_in, "B9001", now)  # the lab manager's
    assert manager.value.field == "operator_badge"


# A group of events (a batch, or the single events the writer gathered) is read, planned and
# written as one: each event still answers as if it came alone, in its order.


def _arrive(floor: Floor, station: str, event: EventIn) -> Arrival:
    return Arrival(floor.station(station), event, event.sent_at)


def _job_changes(lab: Lab, job_id: int) -> int:
    with lab.context.db.session() as session:
        return (
            session.scalar(
                select(func.count())
                .select_from(JobUpdate)
                .where(JobUpdate.job_id == job_id, JobUpdate.kind == "job_changed")
            )
            or 0
        )


def test_a_group_answers_each_event_in_order_and_tells_each_job_once(
    lab: Lab, floor: Floor
) -> None:
    first, second = lab.make_job("J1"), lab.make_job("J2")
    changes_before = _job_changes(lab, first), _job_changes(lab, second)
    start = floor.event("EDGE-1", "J1", EventAction.start)
    too_early = floor.event("FIT-1", "J1", EventAction.start)  # J1 is not at fitting yet
    arrivals = [
        _arrive(floor, "EDGE-1", start),
        _arrive(floor, "FIT-1", too_early),
        _arrive(floor, "EDGE-1", start),  # a resend of a stored event within the group
        _arrive(floor, "FIT-1", too_early),  # and of a rejected one
        _arrive(floor, "EDGE-1", floor.event("EDGE-1", "J1", EventAction.complete)),
        _arrive(floor, "EDGE-1", floor.event("EDGE-1", "J2", EventAction.start)),
    ]
    with lab.context.db.session() as session:
        outcomes = ingest_events(session, arrivals)
    stored, refused, again, refused_again, completed, other = outcomes
    assert isinstance(stored, EventResult) and stored.job is not None
    assert (stored.status, stored.job.stage, stored.job.status) == (
        "stored",
        "edging",
        JobStatus.in_progress,
    )
    assert isinstance(refused, Conflict) and refused.field == "override_reason"
    assert isinstance(again, EventResult)
    assert (again.status, again.event_id) == ("duplicate", stored.event_id)
    assert isinstance(refused_again, AlreadyRejected)
    assert (refused_again.message, refused_again.status_code) == (refused.message, 409)
    assert isinstance(completed, EventResult) and completed.job is not None
    assert (completed.job.stage, completed.job.status) == ("fitting", JobStatus.queued)
    assert isinstance(other, EventResult) and other.status == "stored"
    assert floor.state(first) == ("fitting", JobStatus.queued)
    assert floor.state(second) == ("edging", JobStatus.in_progress)
    with lab.context.db.session() as session:
        rows = session.execute(select(StageEvent.id, StageEvent.event_uuid).order_by(StageEvent.id))
        assert [event_uuid for _, event_uuid in rows] == [
            arrivals[index].event.event_uuid for index in (0, 4, 5)
        ]
    # Moved twice, told once: the job's final state, its ETA and flags computed once.
    assert (_job_changes(lab, first), _job_changes(lab, second)) == tuple(
        count + 1 for count in changes_before
    )


def test_a_group_answers_resends_of_every_earlier_fate_and_each_badge_alone(
    lab: Lab, floor: Floor
) -> None:
    """Earlier groups stored an event, rejected one and stored a sign-in: resent together,
    each answers as the first time (read in one query for the group), beside new events
    whose badges (one nobody has) are looked up together."""
    lab.make_job("J1")
    lab.make_job("J2")
    stored = floor.event("EDGE-1", "J1", EventAction.start)
    refused = floor.event("FIT-1", "J1", EventAction.start)  # J1 is not at fitting
    signed = floor.event("EDGE-2", None, SignAction.sign_in, operator_badge="B1002")
    for station, event in (("FIT-1", refused), ("EDGE-2", signed), ("EDGE-1", stored)):
        principal = floor.station(station)
        with lab.context.db.session() as session:
            [first] = ingest_batch(session, principal, [event])
    arrivals = [
        _arrive(floor, "EDGE-1", stored),
        _arrive(floor, "FIT-1", refused),
        _arrive(floor, "EDGE-2", signed),
        _arrive(floor, "EDGE-2", floor.event("EDGE-2", "J2", EventAction.start)),
        _arrive(
            floor,
            "EDGE-1",
            floor.event("EDGE-1", "J1", EventAction.note, note="x", operator_badge="B1002"),
        ),
        _arrive(
            floor,
            "EDGE-1",
            floor.event("EDGE-1", "J1", EventAction.complete, operator_badge="B0000"),
        ),
    ]
    with lab.context.db.session() as session:
        again, refused_again, signed_again, other, noted, unknown = ingest_events(session, arrivals)
    assert isinstance(again, EventResult) and again.job is not None
    assert (again.status, again.event_id) == ("duplicate", first.event_id)
    assert (again.job.stage, again.job.status) == ("edging", JobStatus.in_progress)
    assert isinstance(refused_again, AlreadyRejected) and refused_again.status_code == 409
    assert refused_again.field == "override_reason"
    assert isinstance(signed_again, EventResult) and signed_again.status == "duplicate"
    assert isinstance(other, EventResult) and other.status == "stored"
    assert isinstance(noted, EventResult) and noted.status == "stored"
    assert isinstance(unknown, Invalid) and unknown.field == "operator_badge"
    with lab.context.db.session() as session:
        assert session.scalar(select(func.count()).select_from(StageEvent)) == 3
        assert session.scalar(select(func.count()).select_from(RejectedEvent)) == 1
        badges = session.scalars(
            select(Person.badge_code)
            .join(StageEvent, StageEvent.operator_id == Person.id)
            .order_by(StageEvent.id)
        ).all()
    assert badges == ["B1001", "B1001", "B1002"]  # J1's start, J2's start, J1's note


@pytest.mark.usefixtures("nobody_signed_in")
def test_a_group_of_stations_checks_each_event_against_the_sign_ins_before_it(
    lab: Lab, floor: Floor
) -> None:
    lab.make_job("J1")
    lab.make_job("J2", design=LensDesign.PAL, surfaced=True)
    now = utcnow()

    def scan(station: str, job: str | None, action: Any, at: datetime) -> Arrival:
        event = floor.event(station, job, action, created_at=at, sent_at=at)
        return Arrival(floor.station(station), event, now)

    later = now + timedelta(seconds=2)
    arrivals = [
        scan("EDGE-1", "J1", EventAction.start, now),  # before B1001 signed in
        scan("EDGE-1", None, SignAction.sign_in, now),
        scan("GEN-1", "J2", EventAction.start, now),  # B1001 is signed in at EDGE-1 only
        scan("EDGE-1", "J1", EventAction.start, now),
        scan("EDGE-1", None, SignAction.sign_out, now + timedelta(seconds=1)),
        scan("EDGE-1", "J1", EventAction.complete, later),  # after the sign-out
        scan("EDGE-1", "J1", EventAction.complete, now),  # made before it, arriving after
    ]
    with lab.context.db.session() as session:
        outcomes = ingest_events(session, arrivals)
    answers = [
        outcome.field if isinstance(outcome, DomainError) else outcome.status
        for outcome in outcomes
    ]
    assert answers == [
        "operator_badge",
        "stored",
        "operator_badge",
        "stored",
        "stored",
        "operator_badge",
        "stored",
    ]
