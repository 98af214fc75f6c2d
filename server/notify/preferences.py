"""What a store wants to hear: its milestones, where (e-mail, webhooks) and when (as each
happens, or an e-mail digest once a day). The store's manager sets them (server.notify.manage).

A milestone is read off the change feed, from what happens anyway: the job's first
`job_changed` (order received), its first start (`job_started`), a passed QC (`qc_passed`), its
shipment (`job_shipped`), ready for pickup (`job_ready`) and the late, at-risk, rework and
breakage flags (`flag_raised`).
"""

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from enum import StrEnum
from typing import Literal
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.models import FlagKind, JobUpdate, StoreNotificationSetting
from server.schemas import JobUpdateOut


class Milestone(StrEnum):
    order_received = "order_received"
    in_production = "in_production"
    qc_passed = "qc_passed"
    shipped = "shipped"
    ready_for_pickup = "ready_for_pickup"
    late_or_at_risk = "late_or_at_risk"
    rework_or_breakage = "rework_or_breakage"


MILESTONE_TEXT = {
    Milestone.order_received: "order received",
    Milestone.in_production: "in production",
    Milestone.qc_passed: "passed quality control",
    Milestone.shipped: "shipped",
    Milestone.ready_for_pickup: "ready for pickup",
    Milestone.late_or_at_risk: "late or at risk",
    Milestone.rework_or_breakage: "rework or breakage",
}

# Feed kinds that are a milestone by themselves; `job_changed` and `flag_raised` depend.
_MILESTONE_OF_KIND = {
    "job_started": Milestone.in_production,
    "qc_passed": Milestone.qc_passed,
    "job_shipped": Milestone.shipped,
    "job_ready": Milestone.ready_for_pickup,
}
_MILESTONE_OF_FLAG = {
    FlagKind.late.value: Milestone.late_or_at_risk,
    FlagKind.at_risk.value: Milestone.late_or_at_risk,
    FlagKind.rework.value: Milestone.rework_or_breakage,
    FlagKind.breakage.value: Milestone.rework_or_breakage,
}
EmailMode = Literal["immediate", "digest"]


@dataclass(frozen=True)
class Preferences:
    milestones: frozenset[Milestone]
    email_mode: EmailMode
    digest_hour: int


# A store that never chose: what it needs to act on, e-mailed as it happens.
DEFAULT_PREFERENCES = Preferences(
    milestones=frozenset(
        {
            Milestone.shipped,
            Milestone.ready_for_pickup,
            Milestone.late_or_at_risk,
            Milestone.rework_or_breakage,
        }
    ),
    email_mode="immediate",
    digest_hour=7,
)


def preferences_for(session: Session, store_id: int) -> Preferences:
    """The store's choices, or the defaults if it never made any."""
    row = session.get(StoreNotificationSetting, store_id)
    if row is None:
        return DEFAULT_PREFERENCES
    return Preferences(
        milestones=frozenset(Milestone(value) for value in row.milestones),
        email_mode="digest" if row.email_mode == "digest" else "immediate",
        digest_hour=row.digest_hour,
    )


def milestone_of(session: Session, update: JobUpdateOut) -> Milestone | None:
    if update.kind in _MILESTONE_OF_KIND:
        return _MILESTONE_OF_KIND[update.kind]
    if update.kind == "flag_raised":
        return _MILESTONE_OF_FLAG.get(str(update.detail.get("flag")))
    if update.kind == "job_changed" and update.detail.get("status") == "queued":
        # Creating a job writes its first `job_changed`; a later one is another change.
        earlier = session.scalar(
            select(JobUpdate.id)
            .where(
                JobUpdate.job_id == update.job_id,
                JobUpdate.kind == "job_changed",
                JobUpdate.id < update.id,
            )
            .limit(1)
        )
        return Milestone.order_received if earlier is None else None
    return None


def may_be_milestone(update: JobUpdateOut) -> bool:
    """A check on the update alone, before any query: most feed entries (a job moving on, an
    ETA) are no milestone."""
    if update.kind == "job_changed":
        return update.detail.get("status") == "queued"
    if update.kind == "flag_raised":
        return str(update.detail.get("flag")) in _MILESTONE_OF_FLAG
    return update.kind in _MILESTONE_OF_KIND


def wanted_milestone(
    session: Session, update: JobUpdateOut, preferences: Preferences
) -> Milestone | None:
    """The update's milestone if the store asked for it."""
    if not may_be_milestone(update):
        return None
    milestone = milestone_of(session, update)
    return milestone if milestone in preferences.milestones else None


def next_digest_at(now: datetime, zone: ZoneInfo, hour: int) -> datetime:
    """The next time the clock in the lab's zone reads `hour`:00, after `now`."""
    local = now.astimezone(zone)
    today = datetime.combine(local.date(), time(hour), tzinfo=zone)
    return (
        today
        if today > local
        else datetime.combine(local.date() + timedelta(days=1), time(hour), tzinfo=zone)
    )
