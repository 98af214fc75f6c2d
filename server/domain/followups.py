"""Follow-ups: the store calls the patient on set days after delivery (scheduled by
`aftersales_policy.schedule_follow_ups` when the job is delivered).

The store works the ones due today and the overdue ones (due on an earlier day, in the
lab's time zone), recording the outcome and an optional 0–10 score; a problem opens an
after-sales ticket on the job. Scoped as the jobs are: another store's follow-up answers 404.
"""

from datetime import datetime, time, timedelta

from sqlalchemy import Select, select
from sqlalchemy.orm import Session, joinedload

from server.domain.aftersales import open_ticket, person_in
from server.domain.auth import LAB_ROLES, ORDER_ROLES, Principal
from server.domain.errors import Conflict, Invalid, NotFound
from server.domain.flags import PRODUCTION_ONLY
from server.domain.jobs import visible_jobs
from server.domain.lab_time import lab_zone
from server.models import FollowUp, FollowUpOutcome, Job, TicketClass, utcnow

MAX_NOTE = 500


def visible_follow_ups(principal: Principal) -> Select[tuple[FollowUp]]:
    return (
        select(FollowUp)
        .join(Job, FollowUp.job_id == Job.id)
        .where(visible_jobs(principal).whereclause)
        .options(joinedload(FollowUp.job).options(*PRODUCTION_ONLY))
    )


def start_of_day(session: Session, lab_id: int, now: datetime, days: int = 0) -> datetime:
    """Midnight starting the lab's day `days` after today's."""
    zone = lab_zone(session, lab_id)
    return datetime.combine(now.astimezone(zone).date() + timedelta(days=days), time(), zone)


def is_overdue(follow_up: FollowUp, today: datetime) -> bool:
    """Not done, and due before `today` (`start_of_day`) began."""
    return follow_up.done_at is None and follow_up.due_at < today


def due_follow_ups(session: Session, principal: Principal, now: datetime) -> list[FollowUp]:
    """Not yet done and due by the end of the lab's today: the overdue first, oldest first."""
    person = person_in(principal, ORDER_ROLES | LAB_ROLES, "follow-ups are for people (log in)")
    tomorrow = start_of_day(session, person.lab_id, now, days=1)
    query = visible_follow_ups(person).where(FollowUp.done_at.is_(None), FollowUp.due_at < tomorrow)
    return list(session.scalars(query.order_by(FollowUp.due_at, FollowUp.id).limit(500)))


def record_outcome(
    session: Session,
    principal: Principal,
    follow_up_id: int,
    outcome: FollowUpOutcome,
    score: int | None = None,
    note: str = "",
    ticket_class: TicketClass | None = None,
    now: datetime | None = None,
) -> FollowUp:
    """The call made: its outcome and score. A problem opens a ticket of `ticket_class`
    with the note as its first message."""
    person = person_in(principal, ORDER_ROLES, "the store records follow-ups")
    note = note.strip()
    if len(note) > MAX_NOTE:
        raise Invalid("note", f"at most {MAX_NOTE} characters")
    if score is not None and not 0 <= score <= 10:
        raise Invalid("score", "a score is 0 to 10")
    if (outcome == FollowUpOutcome.problem) != (ticket_class is not None):
        raise Invalid("ticket_class", "give the ticket's class with a problem, and only then")
    if outcome == FollowUpOutcome.problem and not note:
        raise Invalid("note", "say what the problem is: it opens the ticket")
    now = now or utcnow()
    follow_up = session.scalar(visible_follow_ups(person).where(FollowUp.id == follow_up_id))
    if follow_up is None:  # another store's follow-up answers like a missing one
        raise NotFound("follow_up_id", f"no follow-up {follow_up_id}")
    if follow_up.done_at is not None:
        raise Conflict("follow_up_id", f"follow-up {follow_up.id} was recorded already")
    if ticket_class is not None:
        subject = f"Follow-up day {follow_up.days_after}: {ticket_class.replace('_', ' ')}"
        ticket = open_ticket(session, person, follow_up.job_id, ticket_class, subject, note, now)
        follow_up.ticket_id = ticket.id
    follow_up.done_at = now
    follow_up.done_by_id = person.person_id
    follow_up.outcome = outcome
    follow_up.score = score
    follow_up.note = note or None
    session.flush()
    return follow_up
