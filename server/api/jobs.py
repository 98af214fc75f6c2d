"""Jobs: create, list, read, look up a scanned code, timeline — always scoped to the caller."""

from typing import Annotated

from fastapi import APIRouter, Path, Query, status

from server.api.deps import CurrentPerson, CurrentPrincipal, DbSession, RowId
from server.domain import inspection, jobs
from server.models import JobStatus
from server.schemas import (
    InspectionOut,
    JobCreate,
    JobOut,
    JobPage,
    JobSummary,
    TimelineEntry,
)

router = APIRouter(prefix="/api/jobs", tags=["jobs"])

# What a scanner can produce (schemas.ScanCode); anything else, e.g. a NUL, is a 422.
ScannedCode = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9-]+$")]
StageCode = Annotated[str, Query(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_.-]+$")]


@router.post("", status_code=status.HTTP_201_CREATED)
def create_job(order: JobCreate, person: CurrentPerson, session: DbSession) -> JobOut:
    job = jobs.create_job(session, person, order)
    session.flush()
    session.refresh(job)
    return JobOut.model_validate(job)


@router.get("")
def list_jobs(
    principal: CurrentPrincipal,
    session: DbSession,
    stage: StageCode | None = None,
    status: JobStatus | None = None,
    active: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> JobPage:
    total, page = jobs.list_jobs(
        session, principal, stage=stage, status=status, active=active, limit=limit, offset=offset
    )
    return JobPage(total=total, items=[JobSummary.model_validate(job) for job in page])


@router.get("/lookup/{code}")
def lookup_job(code: ScannedCode, principal: CurrentPrincipal, session: DbSession) -> JobOut:
    return JobOut.model_validate(jobs.lookup_job(session, principal, code))


@router.get("/{job_id}")
def get_job(job_id: RowId, principal: CurrentPrincipal, session: DbSession) -> JobOut:
    return JobOut.model_validate(jobs.get_job(session, principal, job_id))


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
