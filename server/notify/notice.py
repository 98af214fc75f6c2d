"""What a notification says: the facts a store needs, never prescription or patient data."""

from datetime import datetime

from pydantic import BaseModel
from sqlalchemy.orm import Session

from server.models import Job, JobUpdate
from server.notify.preferences import MILESTONE_TEXT, Milestone, milestone_of
from server.schemas import JobUpdateOut

HEADLINES = {
    "flag_raised": "flagged",
    "flag_cleared": "flag cleared",
    "job_ready": "ready for pickup",
    "job_delivered": "delivered",
}


class Notice(BaseModel):
    """An allow-list of fields: this leaves the lab, so nothing is copied over wholesale."""

    kind: str
    milestone: Milestone | None = None  # the store's milestone this update is, if any
    occurred_at: datetime
    store_code: str
    job_number: str
    flag: str | None = None
    reason: str | None = None
    eta: datetime | None = None  # the job's current estimate when sent
    carrier: str | None = None  # shipped: how it travels
    tracking_number: str | None = None
    box: str | None = None

    @property
    def headline(self) -> str:
        if self.milestone is not None:
            return MILESTONE_TEXT[self.milestone]
        return HEADLINES.get(self.kind, self.kind)

    @property
    def subject(self) -> str:
        flag = f" ({self.flag})" if self.flag else ""
        return f"Job {self.job_number}: {self.headline}{flag}"


def _text(detail: dict[str, object], key: str) -> str | None:
    value = detail.get(key)
    return str(value) if value is not None else None


def load_notice(session: Session, job_update_id: int) -> Notice:
    update = session.get_one(JobUpdate, job_update_id)
    job = session.get_one(Job, update.job_id)
    return Notice(
        kind=update.kind,
        milestone=milestone_of(session, JobUpdateOut.model_validate(update)),
        occurred_at=update.created_at,
        store_code=job.store.code,
        job_number=job.job_number,
        flag=_text(update.detail, "flag"),
        reason=_text(update.detail, "reason"),
        eta=job.eta,
        carrier=_text(update.detail, "carrier"),
        tracking_number=_text(update.detail, "tracking_number"),
        box=_text(update.detail, "box"),
    )
