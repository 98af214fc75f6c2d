"""Jobs: create, list, read, look up a scanned code, timeline — always scoped to the caller."""

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Path, Query, status

from server.api.deps import Context, CurrentPerson, CurrentPrincipal, DbSession, RowId
from server.context import ServerContext
from server.domain import audit, inspection, jobs, orders
from server.domain.auth import Principal
from server.domain.errors import Invalid
from server.models import Job, JobStatus, utcnow
from server.schemas import (
    FieldError,
    InspectionOut,
    JobCreate,
    JobOut,
    JobPage,
    JobSummary,
    OrderCheck,
    TimelineEntry,
)

router = APIRouter(prefix="/api/jobs", tags=["jobs"])

# What a scanner can produce (schemas.ScanCode); anything else, e.g. a NUL, is a 422.
ScannedCode = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9-]+$")]
StageCode = Annotated[str, Query(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_.-]+$")]
# A page's `next_cursor` (jobs.JobCursor): microseconds since 1970, a dot, a job id.
PageCursor = Annotated[str, Query(max_length=32, pattern=r"^-?[0-9]{1,19}\.[0-9]{1,10}$")]


@router.post("", status_code=status.HTTP_201_CREATED)
def create_job(order: JobCreate, person: CurrentPerson, session: DbSession) -> JobOut:
    """A new order. Store staff give no job or tray number (422 naming it): the lab assigns
    the job number, answered here. Lab staff and systems may give their own (409 when an
    active job holds it) or leave it out too."""
    job = jobs.create_job(session, person, order)
    session.flush()
    session.refresh(job)
    return JobOut.model_validate(job)


@router.post("/check")
def check_order(order: JobCreate, person: CurrentPerson, session: DbSession) -> OrderCheck:
    """A dry run of `POST /api/jobs`: the same 4xx naming every problem, or what the order
    page shows before creating: warnings (unusual but possible values, never refused) and the
    promised date the lab proposes from its current load. Creates nothing."""
    jobs.check_new_order(session, person, order)
    proposal = orders.propose_promise(
        session,
        person.lab_id,
        order.job_type,
        order.lens_design,
        order.surfaced,
        order.priority,
        utcnow(),
    )
    return OrderCheck(
        warnings=[FieldError(field=f, message=m) for f, m in orders.order_warnings(order)],
        proposed_promised_at=proposal,
    )


@router.get("")
def list_jobs(
    principal: CurrentPrincipal,
    session: DbSession,
    stage: StageCode | None = None,
    status: JobStatus | None = None,
    active: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
    after: PageCursor | None = None,
) -> JobPage:
    """Soonest promised first. The next page: the same query with `after` set to this page's
    `next_cursor` (null on the last page); `total` is counted on the first page only, up to
    10,000 (`total_capped`: more match). `offset` is at most 1,000 (422: page by `after`)."""
    if after is not None and offset:
        raise Invalid("offset", "page by the cursor (after) or by offset, not both")
    page = jobs.list_jobs(
        session,
        principal,
        stage=stage,
        status=status,
        active=active,
        limit=limit,
        offset=offset,
        after=jobs.JobCursor.parse(after) if after is not None else None,
        with_flags=True,
    )
    return JobPage(
        total=page.total,
        total_capped=page.total_capped,
        items=[JobSummary.model_validate(job) for job in page.jobs],
        next_cursor=str(page.next_cursor) if page.next_cursor else None,
    )


def _viewed(
    job: Job, principal: Principal, context: ServerContext, background: BackgroundTasks
) -> JobOut:
    """The job as answered, its prescription's view by store staff logged once the read
    transaction has ended (after the answer: logging never delays or fails the read)."""
    background.add_task(audit.log_prescription_view, context.db.session_factory, principal, job.id)
    return JobOut.model_validate(job)


@router.get("/lookup/{code}")
def lookup_job(
    code: ScannedCode,
    principal: CurrentPrincipal,
    session: DbSession,
    context: Context,
    background: BackgroundTasks,
) -> JobOut:
    return _viewed(jobs.lookup_job(session, principal, code), principal, context, background)


@router.get("/{job_id}")
def get_job(
    job_id: RowId,
    principal: CurrentPrincipal,
    session: DbSession,
    context: Context,
    background: BackgroundTasks,
) -> JobOut:
    return _viewed(jobs.get_job(session, principal, job_id), principal, context, background)


@router.get("/{job_id}/timeline")
def job_timeline(
    job_id: RowId, principal: CurrentPrincipal, session: DbSession
) -> list[TimelineEntry]:
    events = jobs.job_timeline(session, principal, job_id)
    return [TimelineEntry.model_validate(event) for event in events]


@router.post("/{job_id}/ready-for-pickup")
def ready_for_pickup(job_id: RowId, person: CurrentPerson, session: DbSession) -> JobOut:
    return JobOut.model_validate(jobs.mark_ready_for_pickup(session, person, job_id))


@router.post("/{job_id}/delivered")
def delivered(job_id: RowId, person: CurrentPerson, session: DbSession) -> JobOut:
    """The patient has the glasses."""
    return JobOut.model_validate(jobs.mark_delivered(session, person, job_id))


@router.get("/{job_id}/inspections")
def job_inspections(
    job_id: RowId, principal: CurrentPrincipal, session: DbSession
) -> list[InspectionOut]:
    """QC attempts, first to last, with every judged value and the defects found."""
    return inspection.job_inspections(session, jobs.get_job(session, principal, job_id))
