"""Station events: one or a batch, idempotent by event UUID, each UUID's fate final.

Each request either finishes its work within the server's ingest deadline, counted from its
arrival, or stores nothing: a station that gave up waiting and resends never races its first
attempt. Requests commit in groups (server/writer.py): a group takes no new request after a
quarter second and a batch's work is bounded by the ingest budget, so a request's commit
follows its deadline check by at most those two, well inside the station's request timeout.
"""

from fastapi import APIRouter, Response, status
from sqlalchemy.orm import Session

from server.api.deps import Context, CurrentStation, Deadline
from server.domain import events
from server.domain.errors import DomainError, Invalid
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
    station: CurrentStation,
    context: Context,
    response: Response,
    deadline: Deadline,
) -> EventResult:
    """A rejected event answers 4xx with its reason, and so does every resend of it."""
    received_at = utcnow()

    def ingest(session: Session) -> EventResult | DomainError:
        deadline.check()  # it waited its time for the writer: no work for an answer no one reads
        try:
            result: EventResult | DomainError = events.ingest_event(
                session, station, event, received_at=received_at, rules=context.ingest_rules
            )
        except DomainError as error:
            # Kept for review (and so its sequence number is not reported as a gap).
            events.record_rejection(session, station, event, error, received_at)
            result = error
        deadline.check()
        return result

    outcome = await context.writer.run_async(ingest)
    if isinstance(outcome, DomainError):
        raise outcome
    if outcome.status == "duplicate":
        response.status_code = status.HTTP_200_OK
    return outcome


@router.post(
    "/batch",
    responses={503: {"description": "Not done within the ingest deadline: nothing stored."}},
)
async def post_batch(
    batch: EventBatchIn, station: CurrentStation, context: Context, deadline: Deadline
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
        deadline.check()
        budget = min(context.settings.ingest_budget_seconds, deadline.remaining() / 2)
        results = events.ingest_batch(
            session, station, batch.events, rules=context.ingest_rules, budget_seconds=budget
        )
        gaps = events.sequence_gaps(session, station.station_id)
        deadline.check()
        return EventBatchOut(results=results, sequence_gaps=gaps)

    return await context.writer.run_async(ingest)
