"""Job tickets as PDF: one job's, a selection, and the lab's batch of new jobs.

Whoever may see a job may have its ticket (store staff their own store's jobs; another
store's answers 404 like a missing one). What lab people, stations and lab tokens print is
recorded (`Job.ticket_printed_at`); the PDF is drawn after that transaction commits.
"""

from typing import Annotated

from fastapi import APIRouter, Query, Response

from server.api.deps import Context, CurrentPerson, CurrentPrincipal, RowId
from server.domain import tickets
from server.domain.errors import Invalid
from server.models import utcnow
from server.tickets import TicketJob, render_tickets

router = APIRouter(tags=["tickets"])
MAX_ROW_ID = 2**31 - 1

PDF = {200: {"content": {"application/pdf": {}}, "description": "One ticket per page (4 × 6 in)"}}
# "1,2,3": up to MAX_TICKETS row ids (at most 10 digits each).
JobIds = Annotated[
    str,
    Query(
        pattern=r"^\d{1,10}(,\d{1,10})*$",
        max_length=11 * tickets.MAX_TICKETS,
        description=f"Job ids, comma separated (at most {tickets.MAX_TICKETS})",
    ),
]


def _pdf(ticket_jobs: list[TicketJob], filename: str) -> Response:
    return Response(
        render_tickets(ticket_jobs),
        media_type="application/pdf",
        headers={
            "Content-Disposition": f'inline; filename="{filename}"',
            "Cache-Control": "no-store",  # a ticket carries a prescription
        },
    )


@router.get("/api/jobs/{job_id}/ticket.pdf", response_class=Response, responses=PDF)
def job_ticket(job_id: RowId, principal: CurrentPrincipal, context: Context) -> Response:
    ticket = context.run_in_transaction(
        lambda session: tickets.job_ticket(session, principal, job_id, utcnow())
    )
    return _pdf([ticket], f"ticket-{ticket.job_number}.pdf")


@router.get("/api/tickets.pdf", response_class=Response, responses=PDF)
def selected_tickets(jobs: JobIds, principal: CurrentPrincipal, context: Context) -> Response:
    """The tickets of the listed jobs, in that order; 404 naming a job the caller cannot see."""
    job_ids = [int(job_id) for job_id in jobs.split(",")]
    if not all(1 <= job_id <= MAX_ROW_ID for job_id in job_ids):  # as RowId bounds a path id
        raise Invalid("jobs", f"job ids run from 1 to {MAX_ROW_ID}")
    selected = context.run_in_transaction(
        lambda session: tickets.selected_tickets(session, principal, job_ids, utcnow())
    )
    return _pdf(selected, "tickets.pdf")


@router.post("/api/tickets/print-new", response_class=Response, responses=PDF)
def print_new(person: CurrentPerson, context: Context) -> Response:
    """Lab people: every active job whose ticket was never printed, oldest first (at most
    200), now marked printed; a second call does not print them again. 409 when none is new."""
    new = context.run_in_transaction(lambda session: tickets.new_tickets(session, person, utcnow()))
    return _pdf(new, "tickets-new.pdf")
