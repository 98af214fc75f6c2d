"""Edits, cancels, change requests and remakes of orders.

An edit or cancel answers 200 with the job when it applied at once, or 202 with the change
request the lab now decides (production had started).
"""

from fastapi import APIRouter, Response, status

from server.api.deps import CurrentPerson, DbSession, RowId
from server.domain import changes, remakes
from server.domain.changes import EditResult
from server.models import ChangeRequest, ChangeState
from server.schemas import (
    AcceptIn,
    CancelIn,
    ChangeRequestOut,
    DeclineIn,
    JobChangeOut,
    JobCreate,
    JobOut,
    RemakeIn,
)

router = APIRouter(tags=["changes"])


def _request_out(request: ChangeRequest) -> ChangeRequestOut:
    return ChangeRequestOut.model_validate(request)


def _answer(result: EditResult, response: Response) -> JobOut | ChangeRequestOut:
    if result.request is not None:
        response.status_code = status.HTTP_202_ACCEPTED
        return _request_out(result.request)
    return JobOut.model_validate(result.job)


@router.patch(
    "/api/jobs/{job_id}",
    responses={202: {"model": ChangeRequestOut, "description": "A change request was made"}},
)
def edit_job(
    job_id: RowId, order: JobCreate, person: CurrentPerson, session: DbSession, response: Response
) -> JobOut | ChangeRequestOut:
    """The whole order as edited: applied before production starts, else requested. Store
    staff leave the numbers out (the job keeps them); lab staff leave out a job number to
    keep it."""
    return _answer(changes.edit_order(session, person, job_id, order), response)


@router.post(
    "/api/jobs/{job_id}/cancel",
    responses={202: {"model": ChangeRequestOut, "description": "A change request was made"}},
)
def cancel_job(
    job_id: RowId, body: CancelIn, person: CurrentPerson, session: DbSession, response: Response
) -> JobOut | ChangeRequestOut:
    return _answer(changes.cancel_job(session, person, job_id, body.reason), response)


@router.get("/api/jobs/{job_id}/changes")
def job_changes(job_id: RowId, person: CurrentPerson, session: DbSession) -> list[JobChangeOut]:
    """Every changed value of the job, oldest first."""
    return [
        JobChangeOut.model_validate(change)
        for change in changes.job_changes(session, person, job_id)
    ]


@router.get("/api/jobs/{job_id}/change-requests")
def job_change_requests(
    job_id: RowId, person: CurrentPerson, session: DbSession
) -> list[ChangeRequestOut]:
    return [_request_out(r) for r in changes.job_change_requests(session, person, job_id)]


@router.post("/api/jobs/{job_id}/remakes", status_code=status.HTTP_201_CREATED)
def open_remake(job_id: RowId, body: RemakeIn, person: CurrentPerson, session: DbSession) -> JobOut:
    remake = remakes.open_remake(session, person, job_id, body.remake_class, body.reason)
    return JobOut.model_validate(remake)


@router.get("/api/change-requests")
def list_change_requests(
    person: CurrentPerson, session: DbSession, state: ChangeState | None = None
) -> list[ChangeRequestOut]:
    """The lab's queue (lab roles), oldest first."""
    return [_request_out(r) for r in changes.change_requests(session, person, state)]


@router.get("/api/change-requests/{request_id}")
def get_change_request(
    request_id: RowId, person: CurrentPerson, session: DbSession
) -> ChangeRequestOut:
    return _request_out(changes.get_change_request(session, person, request_id))


@router.post("/api/change-requests/{request_id}/accept")
def accept_change_request(
    request_id: RowId, body: AcceptIn, person: CurrentPerson, session: DbSession
) -> ChangeRequestOut:
    accepted = changes.accept_change(session, person, request_id, body.return_stage, body.stay)
    return _request_out(accepted)


@router.post("/api/change-requests/{request_id}/decline")
def decline_change_request(
    request_id: RowId, body: DeclineIn, person: CurrentPerson, session: DbSession
) -> ChangeRequestOut:
    return _request_out(changes.decline_change(session, person, request_id, body.reason))
