"""After-sales tickets: a store opens one on its job, both sides write, the lab owns and
resolves it; SLA clocks on every answer. Another store's ticket answers 404."""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, status
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StringConstraints

from core.contract import Inbound
from server.api.deps import CurrentPerson, DbSession, RowId
from server.domain import aftersales
from server.domain.aftersales import MAX_MESSAGE, MAX_NOTE, MAX_SUBJECT, ClockState, SlaClock
from server.models import (
    AftersalesTicket,
    RemakeClass,
    TicketClass,
    TicketResolution,
    TicketStatus,
    utcnow,
)
from server.schemas import JobRef, Reason

router = APIRouter(tags=["after-sales"])

Subject = Annotated[str, StringConstraints(min_length=1, max_length=MAX_SUBJECT)]
Message = Annotated[str, StringConstraints(min_length=1, max_length=MAX_MESSAGE)]


class TicketIn(Inbound):
    ticket_class: TicketClass
    subject: Subject = Field(description="A short title; no patient name or prescription")
    message: Message


class MessageIn(Inbound):
    body: Message


class OwnerIn(Inbound):
    owner_id: StrictInt = Field(ge=1, le=2**31 - 1, description="A lab person's id")


class TicketRemakeIn(Inbound):
    remake_class: RemakeClass
    reason: Reason


class ResolveIn(Inbound):
    resolution: TicketResolution
    note: str = Field(default="", max_length=MAX_NOTE)


class ReopenIn(Inbound):
    reason: Reason


class ClockOut(BaseModel):
    due_at: datetime
    done_at: datetime | None
    state: ClockState = Field(description="running, overdue (still running past due), met, missed")


class MessageOut(BaseModel):
    author: str | None = Field(description="None: the system's note of what happened")
    from_lab: bool
    body: str
    written_at: datetime


class TicketSummaryOut(BaseModel):
    id: int
    job: JobRef
    ticket_class: TicketClass
    subject: str
    status: TicketStatus
    owner_id: int | None
    owner: str | None
    opened_at: datetime
    first_response: ClockOut
    resolution_clock: ClockOut
    overdue: bool


class TicketOut(TicketSummaryOut):
    opened_by: str
    resolution: TicketResolution | None
    resolution_note: str | None
    reopened_count: int
    remake: JobRef | None
    messages: list[MessageOut]


class FixRateOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    ticket_class: TicketClass
    resolved: int
    fixed_first_time: int
    rate: float | None = Field(description="fixed_first_time / resolved; None with none resolved")


def _clock(clock: SlaClock) -> ClockOut:
    return ClockOut(due_at=clock.due_at, done_at=clock.done_at, state=clock.state)


def ticket_summary(ticket: AftersalesTicket, now: datetime) -> TicketSummaryOut:
    return TicketSummaryOut(
        id=ticket.id,
        job=JobRef.model_validate(ticket.job),
        ticket_class=ticket.ticket_class,
        subject=ticket.subject,
        status=ticket.status,
        owner_id=ticket.owner_id,
        owner=ticket.owner.name if ticket.owner else None,
        opened_at=ticket.opened_at,
        first_response=_clock(aftersales.first_response_clock(ticket, now)),
        resolution_clock=_clock(aftersales.resolution_clock(ticket, now)),
        overdue=aftersales.is_overdue(ticket, now),
    )


def ticket_out(ticket: AftersalesTicket, now: datetime) -> TicketOut:
    """The ticket with its conversation (read while the session is open)."""
    return TicketOut(
        **dict(ticket_summary(ticket, now)),
        opened_by=ticket.opened_by.name,
        resolution=ticket.resolution,
        resolution_note=ticket.resolution_note,
        reopened_count=ticket.reopened_count,
        remake=JobRef.model_validate(ticket.remake) if ticket.remake else None,
        messages=[
            MessageOut(
                author=message.author.name if message.author else None,
                from_lab=message.from_lab,
                body=message.body,
                written_at=message.written_at,
            )
            for message in ticket.messages
        ],
    )


@router.post("/api/jobs/{job_id}/aftersales-tickets", status_code=status.HTTP_201_CREATED)
def open_ticket(
    job_id: RowId, body: TicketIn, person: CurrentPerson, session: DbSession
) -> TicketOut:
    """A ticket on a job that left the lab; its first-response and resolution clocks start."""
    now = utcnow()
    ticket = aftersales.open_ticket(
        session, person, job_id, body.ticket_class, body.subject, body.message, now
    )
    return ticket_out(ticket, now)


@router.get("/api/aftersales-tickets")
def list_tickets(
    person: CurrentPerson, session: DbSession, resolved: bool = False
) -> list[TicketSummaryOut]:
    """Unresolved tickets, overdue first (or the resolved ones, latest first)."""
    now = utcnow()
    tickets = aftersales.list_tickets(session, person, now, resolved=resolved)
    return [ticket_summary(ticket, now) for ticket in tickets]


@router.get("/api/aftersales-tickets/{ticket_id}")
def get_ticket(ticket_id: RowId, person: CurrentPerson, session: DbSession) -> TicketOut:
    return ticket_out(aftersales.get_ticket(session, person, ticket_id), utcnow())


@router.post("/api/aftersales-tickets/{ticket_id}/messages")
def post_message(
    ticket_id: RowId, body: MessageIn, person: CurrentPerson, session: DbSession
) -> TicketOut:
    now = utcnow()
    return ticket_out(aftersales.post_message(session, person, ticket_id, body.body, now), now)


@router.post("/api/aftersales-tickets/{ticket_id}/owner")
def assign_owner(
    ticket_id: RowId, body: OwnerIn, person: CurrentPerson, session: DbSession
) -> TicketOut:
    now = utcnow()
    ticket = aftersales.assign_owner(session, person, ticket_id, body.owner_id, now)
    return ticket_out(ticket, now)


@router.post("/api/aftersales-tickets/{ticket_id}/remake", status_code=status.HTTP_201_CREATED)
def open_remake(
    ticket_id: RowId, body: TicketRemakeIn, person: CurrentPerson, session: DbSession
) -> TicketOut:
    """The ticket's job remade (as `POST /api/jobs/{job_id}/remakes`), linked to the ticket."""
    now = utcnow()
    ticket = aftersales.open_ticket_remake(
        session, person, ticket_id, body.remake_class, body.reason, now
    )
    return ticket_out(ticket, now)


@router.post("/api/aftersales-tickets/{ticket_id}/resolve")
def resolve(
    ticket_id: RowId, body: ResolveIn, person: CurrentPerson, session: DbSession
) -> TicketOut:
    now = utcnow()
    ticket = aftersales.resolve_ticket(session, person, ticket_id, body.resolution, body.note, now)
    return ticket_out(ticket, now)


@router.post("/api/aftersales-tickets/{ticket_id}/reopen")
def reopen(
    ticket_id: RowId, body: ReopenIn, person: CurrentPerson, session: DbSession
) -> TicketOut:
    now = utcnow()
    return ticket_out(aftersales.reopen_ticket(session, person, ticket_id, body.reason, now), now)


@router.get("/api/aftersales/first-time-fix")
def first_time_fix(person: CurrentPerson, session: DbSession) -> list[FixRateOut]:
    """Per ticket class: resolved tickets, those never reopened and alone on their job."""
    return [FixRateOut.model_validate(rate) for rate in aftersales.first_time_fix(session, person)]
