"""After-sales tickets: a store complains about a job that left the lab, the lab answers.

Each ticket runs two SLA clocks set when it opens (`aftersales_policy.ticket_due_times`):
the lab's first answer and the resolution. A clock still running past its due time is
overdue, on the store's list and the lab's queue alike. A ticket may open a remake of its
job (`remakes.open_remake`) and records how it was resolved; a resolved ticket the store
reopens, or a second ticket on the same job, is not a first-time fix.

Scoping is the jobs': a store sees the tickets of its own jobs only, and another store's
ticket answers 404 like a missing one.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import ColumnElement, Select, and_, case, exists, func, or_, select
from sqlalchemy.orm import Session, aliased, joinedload

from server.domain.aftersales_policy import aftersales_config, ticket_due_times
from server.domain.auth import LAB_ROLES, ORDER_ROLES, PersonPrincipal, Principal
from server.domain.changes import checked_reason
from server.domain.errors import Conflict, Forbidden, Invalid, NotFound
from server.domain.flags import PRODUCTION_ONLY
from server.domain.jobs import get_job, visible_jobs
from server.domain.remakes import open_remake
from server.models import (
    AftersalesTicket,
    Job,
    JobStatus,
    Person,
    RemakeClass,
    Role,
    TicketClass,
    TicketMessage,
    TicketResolution,
    TicketStatus,
    utcnow,
)

MAX_SUBJECT = 120
MAX_MESSAGE = 2000
MAX_NOTE = 500

ClockState = Literal["running", "overdue", "met", "missed"]


@dataclass(frozen=True)
class SlaClock:
    due_at: datetime
    done_at: datetime | None
    state: ClockState


@dataclass(frozen=True)
class FixRate:
    ticket_class: TicketClass
    resolved: int
    fixed_first_time: int

    @property
    def rate(self) -> float | None:
        return self.fixed_first_time / self.resolved if self.resolved else None


def sla_clock(due_at: datetime, done_at: datetime | None, now: datetime) -> SlaClock:
    if done_at is None:
        return SlaClock(due_at, None, "overdue" if now > due_at else "running")
    return SlaClock(due_at, done_at, "missed" if done_at > due_at else "met")


def first_response_clock(ticket: AftersalesTicket, now: datetime) -> SlaClock:
    return sla_clock(ticket.first_response_due_at, ticket.first_response_at, now)


def resolution_clock(ticket: AftersalesTicket, now: datetime) -> SlaClock:
    return sla_clock(ticket.resolution_due_at, ticket.resolved_at, now)


def is_overdue(ticket: AftersalesTicket, now: datetime) -> bool:
    clocks = (first_response_clock(ticket, now), resolution_clock(ticket, now))
    return any(clock.state == "overdue" for clock in clocks)


def _overdue_in_sql(now: datetime) -> ColumnElement[bool]:
    """`is_overdue` as the database evaluates it, to list overdue tickets first."""
    return or_(
        and_(
            AftersalesTicket.first_response_at.is_(None),
            AftersalesTicket.first_response_due_at < now,
        ),
        and_(AftersalesTicket.resolved_at.is_(None), AftersalesTicket.resolution_due_at < now),
    )


def visible_tickets(principal: Principal) -> Select[tuple[AftersalesTicket]]:
    """The tickets of the jobs this principal may see; their jobs loaded without patient data."""
    return (
        select(AftersalesTicket)
        .join(Job, AftersalesTicket.job_id == Job.id)
        .where(visible_jobs(principal).whereclause)
        .options(joinedload(AftersalesTicket.job).options(*PRODUCTION_ONLY))
    )


def person_in(principal: Principal, roles: frozenset[Role], what: str) -> PersonPrincipal:
    """The person, if their role is one of `roles`; else Forbidden saying `what`."""
    if not isinstance(principal, PersonPrincipal) or principal.role not in roles:
        raise Forbidden("role", what)
    return principal


def _from_lab(person: PersonPrincipal) -> bool:
    return person.role in LAB_ROLES


def _text(value: str, field: str, longest: int) -> str:
    value = value.strip()
    if not value or len(value) > longest:
        raise Invalid(field, f"write 1 to {longest} characters")
    return value


def get_ticket(session: Session, principal: Principal, ticket_id: int) -> AftersalesTicket:
    person_in(principal, ORDER_ROLES | LAB_ROLES, "after-sales tickets are for people (log in)")
    ticket = session.scalar(visible_tickets(principal).where(AftersalesTicket.id == ticket_id))
    if ticket is None:  # another store's ticket answers like a missing one
        raise NotFound("ticket_id", f"no ticket {ticket_id}")
    return ticket


def _note(ticket: AftersalesTicket, text: str, now: datetime) -> None:
    """The system's line in the conversation: what happened to the ticket, and when."""
    ticket.messages.append(TicketMessage(author_id=None, from_lab=True, body=text, written_at=now))


def open_ticket(
    session: Session,
    principal: Principal,
    job_id: int,
    ticket_class: TicketClass,
    subject: str,
    message: str,
    now: datetime | None = None,
) -> AftersalesTicket:
    """A store's ticket on its job that has left the lab (managers and admins for any store),
    its SLA clocks started now."""
    person = person_in(principal, ORDER_ROLES, "store staff, lab managers and admins open tickets")
    subject = _text(subject, "subject", MAX_SUBJECT)
    message = _text(message, "message", MAX_MESSAGE)
    now = now or utcnow()
    job = get_job(session, person, job_id)
    if job.status != JobStatus.completed:
        raise Conflict("job_id", f"job {job.job_number} has not left the lab yet")
    first_due, resolution_due = ticket_due_times(
        aftersales_config(session, job.lab_id), ticket_class, now
    )
    ticket = AftersalesTicket(
        job_id=job.id,
        ticket_class=ticket_class,
        subject=subject,
        status=TicketStatus.open,
        opened_by_id=person.person_id,
        opened_at=now,
        first_response_due_at=first_due,
        resolution_due_at=resolution_due,
        reopened_count=0,
    )
    ticket.messages.append(
        TicketMessage(author_id=person.person_id, from_lab=False, body=message, written_at=now)
    )
    session.add(ticket)
    session.flush()
    return ticket


def _answered(ticket: AftersalesTicket, person: PersonPrincipal, now: datetime) -> None:
    """The lab has responded: the first-response clock stops; whoever answers an unowned
    ticket first owns it."""
    if ticket.first_response_at is None:
        ticket.first_response_at = now
    if ticket.owner_id is None:
        ticket.owner_id = person.person_id


def post_message(
    session: Session,
    principal: Principal,
    ticket_id: int,
    body: str,
    now: datetime | None = None,
) -> AftersalesTicket:
    """A message from the store or the lab. The lab's stops the first-response clock and
    marks the ticket answered; the store's puts it back to the lab."""
    person = person_in(principal, ORDER_ROLES | LAB_ROLES, "people write on tickets (log in)")
    body = _text(body, "body", MAX_MESSAGE)
    now = now or utcnow()
    ticket = get_ticket(session, person, ticket_id)
    if ticket.status == TicketStatus.resolved:
        raise Conflict("ticket_id", f"ticket {ticket.id} is resolved; reopen it to write")
    from_lab = _from_lab(person)
    ticket.messages.append(
        TicketMessage(author_id=person.person_id, from_lab=from_lab, body=body, written_at=now)
    )
    if from_lab:
        _answered(ticket, person, now)
    ticket.status = TicketStatus.answered if from_lab else TicketStatus.open
    session.flush()
    return ticket


def assign_owner(
    session: Session,
    principal: Principal,
    ticket_id: int,
    owner_id: int,
    now: datetime | None = None,
) -> AftersalesTicket:
    """The lab person who sees the ticket through (lab staff only)."""
    person = person_in(principal, LAB_ROLES, "the lab assigns its tickets")
    ticket = get_ticket(session, person, ticket_id)
    owner = session.scalar(
        select(Person).where(
            Person.id == owner_id,
            Person.lab_id == person.lab_id,
            Person.active,
            Person.role.in_(LAB_ROLES),
        )
    )
    if owner is None:
        raise Invalid("owner_id", f"no active lab person {owner_id}")
    if ticket.owner_id != owner.id:
        ticket.owner_id = owner.id
        _note(ticket, f"Owner: {owner.name}", now or utcnow())
    session.flush()
    return ticket


def open_ticket_remake(
    session: Session,
    principal: Principal,
    ticket_id: int,
    remake_class: RemakeClass,
    reason: str,
    now: datetime | None = None,
) -> AftersalesTicket:
    """The ticket's job made again (`remakes.open_remake`: the store for its own jobs,
    managers and admins for any), the remake linked to the ticket."""
    now = now or utcnow()
    ticket = get_ticket(session, principal, ticket_id)
    if ticket.remake_id is not None:
        raise Conflict("ticket_id", f"ticket {ticket.id} has opened a remake already")
    if ticket.status == TicketStatus.resolved:
        raise Conflict("ticket_id", f"ticket {ticket.id} is resolved; reopen it first")
    remake = open_remake(session, principal, ticket.job_id, remake_class, reason, now)
    ticket.remake_id = remake.id
    _note(ticket, f"Remake {remake.job_number} opened ({remake_class.replace('_', ' ')})", now)
    session.flush()
    return ticket


def resolve_ticket(
    session: Session,
    principal: Principal,
    ticket_id: int,
    resolution: TicketResolution,
    note: str,
    now: datetime | None = None,
) -> AftersalesTicket:
    """The lab closes the ticket, saying how it was resolved; a resolution is a response."""
    person = person_in(principal, LAB_ROLES, "the lab resolves tickets")
    note = note.strip()
    if len(note) > MAX_NOTE:
        raise Invalid("note", f"at most {MAX_NOTE} characters")
    now = now or utcnow()
    ticket = get_ticket(session, person, ticket_id)
    if ticket.status == TicketStatus.resolved:
        raise Conflict("ticket_id", f"ticket {ticket.id} is resolved already")
    if resolution == TicketResolution.remade and ticket.remake_id is None:
        raise Invalid("resolution", "open the remake from the ticket first")
    _answered(ticket, person, now)
    ticket.status = TicketStatus.resolved
    ticket.resolved_at = now
    ticket.resolution = resolution
    ticket.resolution_note = note or None
    _note(ticket, f"Resolved: {resolution.replace('_', ' ')}" + (f" · {note}" if note else ""), now)
    session.flush()
    return ticket


def reopen_ticket(
    session: Session,
    principal: Principal,
    ticket_id: int,
    reason: str,
    now: datetime | None = None,
) -> AftersalesTicket:
    """The store says the problem is not solved: the ticket goes back to the lab, its
    resolution clock started again, and it no longer counts as fixed the first time."""
    person = person_in(principal, ORDER_ROLES, "the store reopens its tickets")
    reason = checked_reason(reason)
    now = now or utcnow()
    ticket = get_ticket(session, person, ticket_id)
    if ticket.status != TicketStatus.resolved:
        raise Conflict("ticket_id", f"ticket {ticket.id} is not resolved")
    config = aftersales_config(session, ticket.job.lab_id)
    _first_due, ticket.resolution_due_at = ticket_due_times(config, ticket.ticket_class, now)
    ticket.status = TicketStatus.open
    ticket.resolved_at = None
    ticket.resolution = None
    ticket.resolution_note = None
    ticket.reopened_count += 1
    ticket.messages.append(
        TicketMessage(
            author_id=person.person_id, from_lab=False, body=f"Reopened: {reason}", written_at=now
        )
    )
    session.flush()
    return ticket


def list_tickets(
    session: Session,
    principal: Principal,
    now: datetime,
    *,
    resolved: bool = False,
    limit: int = 200,
) -> list[AftersalesTicket]:
    """Unresolved tickets (or the resolved ones, latest first): overdue first, then the
    soonest due."""
    person_in(principal, ORDER_ROLES | LAB_ROLES, "after-sales tickets are for people (log in)")
    query = visible_tickets(principal)
    if resolved:
        query = query.where(AftersalesTicket.status == TicketStatus.resolved).order_by(
            AftersalesTicket.resolved_at.desc(), AftersalesTicket.id.desc()
        )
    else:
        query = query.where(AftersalesTicket.status != TicketStatus.resolved).order_by(
            case((_overdue_in_sql(now), 0), else_=1),
            AftersalesTicket.resolution_due_at,
            AftersalesTicket.id,
        )
    return list(session.scalars(query.limit(limit)).unique())


def first_time_fix(session: Session, principal: Principal) -> list[FixRate]:
    """Per class, of the resolved tickets: how many were fixed the first time (never
    reopened, and the only ticket on their job)."""
    person_in(principal, ORDER_ROLES | LAB_ROLES, "after-sales figures are for people (log in)")
    other = aliased(AftersalesTicket)
    second_ticket = exists().where(
        other.job_id == AftersalesTicket.job_id, other.id != AftersalesTicket.id
    )
    first_time = and_(AftersalesTicket.reopened_count == 0, ~second_ticket)
    rows = session.execute(
        select(
            AftersalesTicket.ticket_class,
            func.count(),
            func.coalesce(func.sum(case((first_time, 1), else_=0)), 0),
        )
        .join(Job, AftersalesTicket.job_id == Job.id)
        .where(visible_jobs(principal).whereclause)
        .where(AftersalesTicket.status == TicketStatus.resolved)
        .group_by(AftersalesTicket.ticket_class)
    )
    counts = {ticket_class: (resolved, fixed) for ticket_class, resolved, fixed in rows}
    return [FixRate(c, *counts.get(c, (0, 0))) for c in TicketClass]
