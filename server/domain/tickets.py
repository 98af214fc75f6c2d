"""Which tickets a caller may print, and recording that the lab printed them.

Each function reads (and marks) in the caller's transaction and returns plain `TicketJob`s;
the PDF is rendered after the commit (`server.tickets.render_tickets`), so a large batch never
holds the database while it draws.
"""

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.orm import Session

from server.domain.auth import LAB_ROLES, PersonPrincipal, Principal, StationPrincipal
from server.domain.errors import Conflict, Forbidden, Invalid, NotFound
from server.domain.jobs import get_job, visible_jobs
from server.models import Job, Lab
from server.tickets import TicketJob, ticket_job

MAX_TICKETS = 200  # one batch: a few seconds of drawing, a stack a label printer holds


def _prints_for_the_lab(principal: Principal) -> bool:
    """Lab people, stations and lab tokens print the ticket that travels with the tray; store
    staff only look at theirs, which must not keep it out of the lab's next batch."""
    return not isinstance(principal, PersonPrincipal) or principal.role in LAB_ROLES


def _tickets(session: Session, principal: Principal, jobs: Sequence[Job]) -> list[TicketJob]:
    lab = session.get_one(Lab, principal.lab_id)
    return [ticket_job(job, lab) for job in jobs]


def _mark_printed(principal: Principal, jobs: Sequence[Job], now: datetime) -> None:
    if _prints_for_the_lab(principal):
        for job in jobs:
            job.ticket_printed_at = now


def job_ticket(session: Session, principal: Principal, job_id: int, now: datetime) -> TicketJob:
    """One job's ticket; 404 for a job the caller may not see, exactly as for a missing one."""
    job = get_job(session, principal, job_id)
    _mark_printed(principal, [job], now)
    return _tickets(session, principal, [job])[0]


def selected_tickets(
    session: Session, principal: Principal, job_ids: Sequence[int], now: datetime
) -> list[TicketJob]:
    """The tickets of these jobs in the order given (a repeated id prints once); 404 naming
    the first id the caller may not see, and nothing printed."""
    if isinstance(principal, StationPrincipal):  # a batch of any jobs is a bulk read of Rx
        raise Forbidden("jobs", "a station prints the ticket of the job it scanned, one at a time")
    wanted = list(dict.fromkeys(job_ids))
    if len(wanted) > MAX_TICKETS:
        raise Invalid("jobs", f"at most {MAX_TICKETS} tickets at once, not {len(wanted)}")
    found = {
        job.id: job for job in session.scalars(visible_jobs(principal).where(Job.id.in_(wanted)))
    }
    if missing := [job_id for job_id in wanted if job_id not in found]:
        raise NotFound("jobs", f"no job {missing[0]}")
    jobs = [found[job_id] for job_id in wanted]
    _mark_printed(principal, jobs, now)
    return _tickets(session, principal, jobs)


def new_tickets(
    session: Session, principal: Principal, now: datetime, limit: int = MAX_TICKETS
) -> list[TicketJob]:
    """The lab's active jobs whose ticket was never printed, oldest first, at most `limit`,
    marked printed. 409 when there is none: an empty PDF would print a blank label."""
    if not isinstance(principal, PersonPrincipal) or principal.role not in LAB_ROLES:
        raise Forbidden("role", "lab people print the new tickets")
    statement = (
        visible_jobs(principal)
        .where(Job.is_active, Job.ticket_printed_at.is_(None))
        .order_by(Job.created_at, Job.id)
        .limit(limit)
        # Two people printing at once on PostgreSQL get different jobs, never the same twice
        # (SQLite runs writers one at a time). `of`: the eager joins' nullable sides can't lock.
        .with_for_update(of=Job, skip_locked=True)
    )
    jobs = list(session.scalars(statement))
    if not jobs:
        raise Conflict("jobs", "no new tickets: every active job's ticket is printed already")
    _mark_printed(principal, jobs, now)
    return _tickets(session, principal, jobs)
