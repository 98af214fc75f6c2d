"""Station events: one or a batch, idempotent by event UUID, each UUID's fate final.

Each request either finishes its work within the server's ingest deadline, counted from its
arrival, or stores nothing: a station that gave up waiting and resends never races its first
attempt. Requests commit in groups (server/writer.py): a group takes no new request after a
quarter second and a batch's work is bounded by the ingest budget, so a request's commit
follows its deadline check by at most those two, well inside the station's request timeout.
Single events queued together are ingested together, as one batch would be.
"""

from dataclasses import dataclass, replace

from fastapi import APIRouter, Response, status
from sqlalchemy.orm import Session

from server.api.deps import (
    Context,
    CurrentWritingStation,
    Deadline,
    RequestDeadline,
    WritingStation,
)
from server.domain import events
from server.domain.auth import check_station_tokens
from server.domain.errors import DomainError, Invalid, Unauthorized, Unavailable
from server.models import utcnow
from server.schemas import EventBatchIn, EventBatchOut, EventIn, EventResult

router = APIRouter(prefix="/api/events", tags=["events"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"description": "Already stored (a resend): answered as a duplicate."},
        503: {"description": "Not done within the ingest deadline: nothing stored; retry."},
    },
)
async def post_event(
    event: EventIn,
    station: CurrentWritingStation,
    context: Context,
    response: Response,
    deadline: Deadline,
) -> EventResult:
    """A rejected event answers 4xx with its reason, and so does every resend of it."""
    arrival = events.Arrival(station.principal, event, utcnow())
    posted = _Posted(arrival, station, deadline, context.ingest_rules)
    outcome = await context.writer.run_gathered_async(_ingest_posted, posted)
    if outcome.status == "duplicate":
        response.status_code = status.HTTP_200_OK
    return outcome


@dataclass(frozen=True)
class _Posted:
    arrival: events.Arrival
    station: WritingStation
    deadline: RequestDeadline
    rules: events.IngestRules


def _ingest_posted(session: Session, posted: list[_Posted]) -> list[EventResult | Exception]:
    """The single events the writer gathered, ingested as one group; each answers alone.

    One whose station token is no longer live, or that waited its time for the writer, is
    not looked at (no work for an answer no one reads). One whose deadline passes while the
    group works stores nothing: the group is undone and ingested again without it.
    """
    arrivals, late = _checked_stations(session, posted)
    late |= _past_deadline(posted)
    while True:
        taken = [item for item in posted if id(item) not in late]
        with session.begin_nested() as savepoint:
            outcomes = events.ingest_events(
                session, [arrivals[id(item)] for item in taken], rules=posted[0].rules
            )
            rejected = [
                (arrivals[id(item)], outcome)
                for item, outcome in zip(taken, outcomes, strict=True)
                if isinstance(outcome, DomainError)
            ]
            # Kept for review (and so their sequence numbers are not reported as gaps).
            events.record_rejections(session, rejected)
            newly_late = _past_deadline(taken)
            if newly_late:
                savepoint.rollback()
        if not newly_late:
            break
        late |= newly_late
    answers = late | dict(zip(map(id, taken), outcomes, strict=True))
    return [answers[id(item)] for item in posted]


def _checked_stations(
    session: Session, posted: list[_Posted]
) -> tuple[dict[int, events.Arrival], dict[int, Exception]]:
    """Every token checked in this transaction, in one query: the arrivals of those live (as
    their stations are now) and the answers (401) of the others, by id."""
    found = check_station_tokens(session, {item.station.token_digest for item in posted})
    arrivals: dict[int, events.Arrival] = {}
    refused: dict[int, Exception] = {}
    for item in posted:
        try:
            station = item.station.checked(found[item.station.token_digest])
        except Unauthorized as error:
            refused[id(item)] = error
        else:
            arrivals[id(item)] = replace(item.arrival, station=station)
    return arrivals, refused


def _past_deadline(posted: list[_Posted]) -> dict[int, Exception]:
    """Those of `posted` past their deadline (by id), each with its answer (503)."""
    late: dict[int, Exception] = {}
    for item in posted:
        try:
            item.deadline.check()
        except Unavailable as error:
            late[id(item)] = error
    return late


@router.post(
    "/batch",
    responses={503: {"description": "Not done within the ingest deadline: nothing stored."}},
)
async def post_batch(
    batch: EventBatchIn, writing: CurrentWritingStation, context: Context, deadline: Deadline
) -> EventBatchOut:
    """Applies events in order; each is stored, a duplicate, or rejected with its reason.

    The results may cover only the first events of the batch (the server's work per request
    is bounded): the others were not looked at and are to be sent again.
    """
    if len(batch.events) > context.settings.max_batch_size:
        raise Invalid("events", f"at most {context.settings.max_batch_size} events per batch")

    def ingest(session: Session) -> EventBatchOut:
        # A batch that waited for the writer gets what is left of its time: half of it for
        # events, the rest for the group's commit; one that waited it all does no work.
        digest = writing.token_digest
        station = writing.checked(check_station_tokens(session, [digest])[digest])
        deadline.check()
        budget = min(context.settings.ingest_budget_seconds, deadline.remaining() / 2)
        results = events.ingest_batch(
            session, station, batch.events, rules=context.ingest_rules, budget_seconds=budget
        )
        gaps = events.sequence_gaps(session, station.station_id, move_mark=True)
        deadline.check()
        return EventBatchOut(results=results, sequence_gaps=gaps)

    return await context.writer.run_async(ingest)
