"""Remakes: a job that left the lab made again, as a new job linked both ways to it.

The remake copies the original's order (Rx, lens, frame, trace, store, patient) and is an
ordinary new job from then on: editable and cancellable until production starts
(`server.domain.changes`). Its number is the first job's number with "-R1", "-R2", … — a
remake of a remake counts on from the same first job, so numbers never nest.
It is ordered now and promised as the order page would propose for a new order of its
route and priority (`orders.propose_promise`: the route under today's load).
"""

import re
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.domain.auth import ORDER_ROLES, PersonPrincipal, Principal
from server.domain.changes import checked_reason, order_of
from server.domain.errors import Conflict, Forbidden, Invalid
from server.domain.jobs import create_job, get_job
from server.domain.orders import propose_promise
from server.feed import append_update
from server.models import Job, JobChange, JobStatus, JobType, RemakeClass, utcnow

MAX_JOB_NUMBER = 32  # ScanCode


def remake_number(session: Session, original: Job) -> str:
    first = original
    while first.remake_of is not None:
        first = first.remake_of
    pattern = re.compile(re.escape(first.job_number) + r"-R(\d+)")
    taken = session.scalars(
        select(Job.job_number).where(
            Job.lab_id == first.lab_id, Job.job_number.startswith(f"{first.job_number}-R")
        )
    )
    last = max((int(m[1]) for number in taken if (m := pattern.fullmatch(number))), default=0)
    number = f"{first.job_number}-R{last + 1}"
    if len(number) > MAX_JOB_NUMBER:
        raise Invalid("job_number", f"{number} is longer than {MAX_JOB_NUMBER} characters")
    return number


def open_remake(
    session: Session,
    principal: Principal,
    original_id: int,
    remake_class: RemakeClass,
    reason: str,
    now: datetime | None = None,
) -> Job:
    """A new job remaking one that was shipped (or delivered): store staff for their own
    store's jobs, lab managers and admins for any. A warranty remake is a warranty job,
    every other class a redo."""
    if not isinstance(principal, PersonPrincipal) or principal.role not in ORDER_ROLES:
        raise Forbidden("role", "store staff, lab managers and admins open remakes")
    reason = checked_reason(reason)
    now = now or utcnow()
    original = get_job(session, principal, original_id)
    if original.status != JobStatus.completed:
        raise Conflict(
            "job_id",
            f"job {original.job_number} has not been shipped; only a shipped job is remade",
        )
    job_type = JobType.warranty if remake_class == RemakeClass.warranty else JobType.redo
    promise = propose_promise(
        session,
        original.lab_id,
        job_type,
        original.lens_design,
        original.surfaced,
        original.priority,
        now,
    )
    order = order_of(original).model_copy(
        update={
            "job_number": None,  # the server's: the store gives none (`create_job`'s `number`)
            "tray_number": None,  # the floor puts the remake in a tray of its own
            "job_type": job_type,
            "ordered_at": now,
            "promised_at": promise,
        }
    )
    remake = create_job(session, principal, order, now, number=remake_number(session, original))
    remake.remake_of = original
    remake.remake_class = remake_class
    remake.remake_reason = reason
    earlier = [job.job_number for job in original.remakes if job is not remake]
    session.add_all(
        [
            JobChange(
                job_id=remake.id,
                field="remake_of",
                old_value=None,
                new_value=original.job_number,
                person_id=principal.person_id,
                changed_at=now,
            ),
            JobChange(
                job_id=original.id,
                field="remakes",
                old_value=earlier,
                new_value=[*earlier, remake.job_number],
                person_id=principal.person_id,
                changed_at=now,
            ),
        ]
    )
    append_update(session, original, "remake_opened", {"remake": remake.id})
    session.flush()
    return remake
