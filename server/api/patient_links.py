"""Patient status links: the store makes one for its job and prints it or passes it on."""

from fastapi import APIRouter, status
from pydantic import BaseModel, Field

from server.api.deps import CurrentPerson, DbSession, RowId
from server.domain import patient_link

router = APIRouter(tags=["after-sales"])


class PatientLinkOut(BaseModel):
    token: str = Field(description="Shown this once: only its digest is stored")
    path: str = Field(description="The patient's page, on this server: /p/{token}")


def patient_path(token: str) -> str:
    return f"/p/{token}"


@router.post("/api/jobs/{job_id}/patient-link", status_code=status.HTTP_201_CREATED)
def create_patient_link(job_id: RowId, person: CurrentPerson, session: DbSession) -> PatientLinkOut:
    """A new link to the job's status page (the job's earlier link stops working). It shows
    stage, expected date and pickup state only, and expires when the job is delivered."""
    token = patient_link.create_patient_link(session, person, job_id)
    return PatientLinkOut(token=token, path=patient_path(token))
