"""The change feed (`job_update`): append a change in the transaction that makes it."""

from sqlalchemy import text
from sqlalchemy.orm import Session

from server.models import Job, JobUpdate

CHANNEL = "lenstrack_job_update"
WROTE_FEED = "lenstrack.wrote_feed"  # session.info key: this transaction appended to the feed


def append_update(session: Session, job: Job, kind: str, detail: dict[str, object]) -> None:
    session.add(JobUpdate(job_id=job.id, store_id=job.store_id, kind=kind, detail=detail))
    if not session.info.get(WROTE_FEED):
        session.info[WROTE_FEED] = True
        # Nudges other server processes once this commits (identical ones are merged).
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CHANNEL})
