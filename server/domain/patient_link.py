"""The patient's status link: a job's progress for its patient, reached by an unguessable
token and nothing else (no log-in).

It shows the stage, the expected date and whether the glasses wait at the store; never the
prescription, the patient's reference or the store's or lab's people. Only the token's
SHA-256 digest is stored (256 random bits: `security.new_token`), so the store sees the
link once, when it makes it; a new link replaces the old. The link expires when the job is
delivered (or cancelled): an unknown, replaced and expired token all answer the same 404.
"""

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import select, update
from sqlalchemy.orm import Session, joinedload

from server.domain.aftersales import person_in
from server.domain.auth import ORDER_ROLES, Principal
from server.domain.errors import Conflict, NotFound
from server.domain.flags import PRODUCTION_ONLY
from server.domain.jobs import get_job
from server.domain.lab_time import lab_zone
from server.domain.security import new_token, token_digest
from server.models import Job, JobStatus, PatientLink, utcnow

# What `new_token("")` makes: 43 URL-safe characters. Anything else is no link of ours.
TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{43}")

Progress = Literal["received", "in_production", "on_the_way", "ready"]
PROGRESS_TEXT: dict[Progress, str] = {
    "received": "Order received by the lab",
    "in_production": "Being made",
    "on_the_way": "On the way to your store",
    "ready": "Ready for pickup",
}


@dataclass(frozen=True)
class PatientStatus:
    progress: Progress
    stage: str | None  # the lab stage while being made, as the lab names it
    step: int  # the stage's place on the job's route, from 1
    steps: int
    expected: str  # the later of the store's promise and the lab's estimate, lab time
    ready_since: str | None

    @property
    def headline(self) -> str:
        return PROGRESS_TEXT[self.progress]


def _expired(job: Job) -> bool:
    return job.delivered_at is not None or job.status == JobStatus.cancelled


def create_patient_link(
    session: Session, principal: Principal, job_id: int, now: datetime | None = None
) -> str:
    """A new link's token for the job (the store for its own jobs, managers and admins for
    any); the job's earlier links stop working."""
    person = person_in(principal, ORDER_ROLES, "store staff, lab managers and admins make links")
    now = now or utcnow()
    job = get_job(session, person, job_id)
    if _expired(job):
        raise Conflict("job_id", f"job {job.job_number} is delivered or cancelled: no link")
    session.execute(
        update(PatientLink)
        .where(PatientLink.job_id == job.id, PatientLink.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    token = new_token("")
    session.add(
        PatientLink(
            job_id=job.id,
            token_hash=token_digest(token),
            created_by_id=person.person_id,
            created_at=now,
        )
    )
    session.flush()
    return token


def patient_status(session: Session, token: str, now: datetime | None = None) -> PatientStatus:
    """What the link shows; NotFound alike for a token unknown, replaced or expired."""
    now = now or utcnow()
    link = None
    if TOKEN_SHAPE.fullmatch(token):
        link = session.scalar(
            select(PatientLink)
            .where(PatientLink.token_hash == token_digest(token), PatientLink.revoked_at.is_(None))
            .options(joinedload(PatientLink.job).options(*PRODUCTION_ONLY))
        )
    if link is None or _expired(link.job):
        raise NotFound("token", "this link is not valid (any more)")
    job = link.job
    zone = lab_zone(session, job.lab_id)
    stages = [step.stage_id for step in job.route.steps]
    if job.ready_for_pickup_at is not None:
        progress: Progress = "ready"
    elif job.status == JobStatus.completed:
        progress = "on_the_way"
    elif job.status == JobStatus.queued:
        progress = "received"
    else:
        progress = "in_production"
    step = stages.index(job.current_stage_id) + 1 if job.current_stage_id in stages else 0
    expected = max(job.promised_at, job.eta) if job.eta else job.promised_at
    return PatientStatus(
        progress=progress,
        stage=job.current_stage.name if progress == "in_production" and job.current_stage else None,
        step=len(stages) if job.status == JobStatus.completed else step,
        steps=len(stages),
        expected=f"{expected.astimezone(zone):%a %d %b}",
        ready_since=(
            f"{job.ready_for_pickup_at.astimezone(zone):%a %d %b %H:%M}"
            if job.ready_for_pickup_at
            else None
        ),
    )
