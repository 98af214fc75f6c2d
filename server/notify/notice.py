"""What a notification says: the facts a store needs, never prescription or patient data."""

from datetime import datetime

from pydantic import BaseModel
from sqlalchemy.orm import Session

from server.models import Job, JobUpdate

HEADLINES = {
    "flag_raised": "flagged",
    "flag_cleared": "flag cleared",
    "job_ready": "ready for pickup",
    "job_delivered": "delivered",
}


class Notice(BaseModel):
    """An allow-list of fields: this leaves the lab, so nothing is copied over wholesale."""

    kind: str
    occurred_at: datetime
    store_code: str
    job_number: str
    flag: str | None = None
    reason: str | None = None
    eta: datetime | None = None  # the job's current estimate when sent

    @property
    def subject(self) -> str:
        headline = HEADLINES.get(self.kind, self.kind)
        flag = f" ({self.flag})" if self.flag else ""
        return f"Job {self.job_number}: {headline}{flag}"


def load_notice(session: Session, job_update_id: int) -> Notice:
    update = session.get_one(JobUpdate, job_update_id)
    job = session.get_one(Job, update.job_id)
    flag, reason = update.detail.get("flag"), update.detail.get("reason")
    return Notice(
        kind=update.kind,
        occurred_at=update.created_at,
        store_code=job.store.code,
        job_number=job.job_number,
        flag=str(flag) if flag is not None else None,
        reason=str(reason) if reason is not None else None,
        eta=job.eta,
    )
