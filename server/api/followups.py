"""Follow-ups after delivery: the store's due list and the outcome of each call. Another
store's follow-up answers 404."""

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, Field, StrictInt

from core.contract import Inbound
from server.api.deps import CurrentPerson, DbSession, RowId
from server.domain import followups
from server.domain.followups import MAX_NOTE
from server.models import FollowUp, FollowUpOutcome, TicketClass, utcnow
from server.schemas import JobRef

router = APIRouter(prefix="/api/follow-ups", tags=["after-sales"])


class OutcomeIn(Inbound):
    outcome: FollowUpOutcome
    score: StrictInt | None = Field(default=None, ge=0, le=10)
    note: str = Field(default="", max_length=MAX_NOTE)
    ticket_class: TicketClass | None = Field(
        default=None, description="With a problem only: the class of the ticket it opens"
    )


class FollowUpOut(BaseModel):
    id: int
    job: JobRef
    days_after: int
    due_at: datetime
    overdue: bool = Field(description="Due on an earlier day than today (the lab's)")
    done_at: datetime | None
    outcome: FollowUpOutcome | None
    score: int | None
    ticket_id: int | None


def _out(follow_up: FollowUp, today: datetime) -> FollowUpOut:
    return FollowUpOut(
        id=follow_up.id,
        job=JobRef.model_validate(follow_up.job),
        days_after=follow_up.days_after,
        due_at=follow_up.due_at,
        overdue=followups.is_overdue(follow_up, today),
        done_at=follow_up.done_at,
        outcome=follow_up.outcome,
        score=follow_up.score,
        ticket_id=follow_up.ticket_id,
    )


@router.get("")
def due_follow_ups(person: CurrentPerson, session: DbSession) -> list[FollowUpOut]:
    """Due today or overdue, oldest first."""
    now = utcnow()
    today = followups.start_of_day(session, person.lab_id, now)
    return [_out(f, today) for f in followups.due_follow_ups(session, person, now)]


@router.post("/{follow_up_id}/outcome")
def record_outcome(
    follow_up_id: RowId, body: OutcomeIn, person: CurrentPerson, session: DbSession
) -> FollowUpOut:
    """The call's outcome; `problem` opens a ticket of `ticket_class` with the note."""
    now = utcnow()
    follow_up = followups.record_outcome(
        session,
        person,
        follow_up_id,
        body.outcome,
        body.score,
        body.note,
        body.ticket_class,
        now,
    )
    return _out(follow_up, followups.start_of_day(session, person.lab_id, now))
