"""Breakage records: what broke, where, in which shift, and what it cost; reversible."""

from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.domain.auth import MANAGER_ROLES, PersonPrincipal
from server.domain.errors import Conflict, Forbidden, Invalid, NotFound
from server.domain.flags import refresh_job
from server.feed import append_update
from server.models import (
    Breakage,
    BreakagePart,
    Eye,
    Job,
    Lab,
    LensDesign,
    Role,
    StageEvent,
)
from server.schemas import BreakageDetail


def shift_at(lab: Lab, moment: datetime) -> str | None:
    """The shift whose start most recently passed, in the lab's zone (wrapping midnight)."""
    if not lab.shifts:
        return None
    local = moment.astimezone(ZoneInfo(lab.timezone)).time()
    starts = sorted((time.fromisoformat(shift["starts"]), shift["name"]) for shift in lab.shifts)
    started = [name for start, name in starts if start <= local]
    return started[-1] if started else starts[-1][1]


def breakage_cost(
    costs: dict[str, Any], part: BreakagePart, design: LensDesign, eyes: str
) -> tuple[float, str]:
    """What a breakage costs and in which currency, from the lab's `breakage_costs`: each
    broken lens at its design's price, or the frame's."""
    if part == BreakagePart.lens:
        cost = costs.get("lens", {}).get(design, 0.0) * len(eyes)
    else:
        cost = costs.get("frame", 0.0)
    return cost, costs.get("currency", "EUR")


def record_breakage(
    session: Session, job: Job, event: StageEvent, detail: BreakageDetail | None
) -> Breakage:
    detail = detail or BreakageDetail()
    lab = session.get_one(Lab, job.lab_id)
    if detail.part == BreakagePart.lens:
        ordered_eyes = {eye.eye for eye in job.prescription}
        missing = [eye for eye in detail.eyes if eye not in ordered_eyes]
        if missing:
            raise Invalid("breakage.eyes", f"job {job.job_number} has no {missing[0]} lens")
        eyes = "".join(eye for eye in (Eye.R, Eye.L) if eye in detail.eyes)
    else:
        eyes = ""
    cost, currency = breakage_cost(lab.breakage_costs, detail.part, job.lens_design, eyes)
    breakage = Breakage(
        event_id=event.id,
        job_id=job.id,
        stage_id=event.stage_id,
        station_id=event.station_id,
        reason_code=event.reason_code or "",
        part=detail.part,
        eyes=eyes,
        shift=shift_at(lab, event.corrected_at),
        cost=cost,
        currency=currency,
        replacement_blanks=detail.replacement_blanks,
        occurred_at=event.corrected_at,
    )
    session.add(breakage)
    return breakage


def reverse_breakage(
    session: Session, person: PersonPrincipal, breakage_id: int, reason: str, now: datetime
) -> Breakage:
    if person.role not in MANAGER_ROLES:
        raise Forbidden("role", "only a lab manager can reverse a breakage")
    breakage = session.scalar(
        select(Breakage)
        .join(Job, Breakage.job_id == Job.id)
        .where(Breakage.id == breakage_id, Job.lab_id == person.lab_id)
    )
    if breakage is None:
        raise NotFound("breakage_id", f"no breakage {breakage_id}")
    if breakage.reversed_at is not None:
        raise Conflict("breakage_id", f"breakage {breakage_id} was reversed already")
    breakage.reversed_at = now
    breakage.reversed_by_id = person.person_id
    breakage.reversal_reason = reason
    # The job stays where it is now (it may have moved on); the count, its flags and ETA are
    # corrected, and the store's pages hear of it through the feed.
    job = breakage.job
    job.breakage_count = max(0, job.breakage_count - 1)
    append_update(session, job, "breakage_reversed", {"breakage_id": breakage.id, "reason": reason})
    refresh_job(session, job, now)
    return breakage


def reversal_reasons(session: Session, job: Job) -> dict[int, str | None]:
    """Why each of the job's reversed breakages was reversed, by the breakage's event id."""
    reversed_ones = select(Breakage.event_id, Breakage.reversal_reason).where(
        Breakage.job_id == job.id, Breakage.reversed_at.is_not(None)
    )
    return {event_id: why for event_id, why in session.execute(reversed_ones)}


def list_breakages(
    session: Session, person: PersonPrincipal, *, include_reversed: bool = False
) -> list[Breakage]:
    if person.role == Role.store_staff:
        raise Forbidden("role", "breakage records are for the lab")
    statement = (
        select(Breakage)
        .join(Job, Breakage.job_id == Job.id)
        .where(Job.lab_id == person.lab_id)
        .order_by(Breakage.occurred_at.desc())
    )
    if not include_reversed:
        statement = statement.where(Breakage.reversed_at.is_(None))
    return list(session.scalars(statement))
