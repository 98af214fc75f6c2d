"""Station events: one or a batch, idempotent by event UUID."""

from fastapi import APIRouter, Response, status

from server.api.deps import Context, CurrentStation
from server.domain import events
from server.domain.errors import DomainError, Invalid
from server.models import utcnow
from server.schemas import EventBatchIn, EventBatchOut, EventIn, EventResult

router = APIRouter(prefix="/api/events", tags=["events"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={200: {"description": "Already stored (a resend): answered as a duplicate."}},
)
def post_event(
    event: EventIn, station: CurrentStation, context: Context, response: Response
) -> EventResult:
    received_at = utcnow()
    rejection: DomainError | None = None
    with context.session() as session:
        try:
            result = events.ingest_event(
                session,
                station,
                event,
                received_at=received_at,
                rules=context.ingest_rules,
            )
        except DomainError as error:
            # Kept for review (and so its sequence number is not reported as a gap).
            events.record_rejection(session, station, event, error, received_at)
            rejection = error
    if rejection is not None:
        raise rejection
    if result.status == "duplicate":
        response.status_code = status.HTTP_200_OK
    return result


@router.post("/batch")
def post_batch(batch: EventBatchIn, station: CurrentStation, context: Context) -> EventBatchOut:
    """Applies events in order; each is stored, a duplicate, or rejected with its reason."""
    if len(batch.events) > context.settings.max_batch_size:
        raise Invalid("events", f"at most {context.settings.max_batch_size} events per batch")
    with context.session() as session:
        results = events.ingest_batch(session, station, batch.events, rules=context.ingest_rules)
        gaps = events.sequence_gaps(session, station.station_id)
    return EventBatchOut(results=results, sequence_gaps=gaps)
