"""Shipments: the carrier, tracking number and box a shipping station records when a job
leaves the lab, stored with that completion and told to the store (feed `job_shipped`)."""

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.contract import ShipmentIn
from server.domain.auth import Principal
from server.domain.errors import Invalid
from server.domain.jobs import get_job
from server.domain.lab_time import local_text
from server.feed import append_update
from server.models import EventAction, Job, Shipment, Stage, StageEvent


def record_shipment(
    session: Session, job: Job, event: StageEvent, shipment: ShipmentIn
) -> Shipment:
    """Stores the shipment of a completion at a shipping stage; Invalid naming the field if
    the stage ships nothing or does not offer the carrier."""
    stage = session.get_one(Stage, event.stage_id)
    if not stage.carriers:
        raise Invalid("shipment", f"{stage.name} is not a shipping stage")
    if shipment.carrier not in stage.carriers:
        offered = ", ".join(stage.carriers)
        raise Invalid("shipment.carrier", f"{shipment.carrier!r} is not one of {offered}")
    row = Shipment(
        event_id=event.id,
        job_id=job.id,
        carrier=shipment.carrier,
        tracking_number=shipment.tracking_number,
        box=shipment.box,
        shipped_at=event.corrected_at,
    )
    session.add(row)
    append_update(
        session,
        job,
        "job_shipped",
        {"carrier": row.carrier, "tracking_number": row.tracking_number, "box": row.box},
    )
    return row


def latest_shipment(session: Session, job_id: int) -> Shipment | None:
    """The job's most recent shipment (a remade pair may ship again)."""
    return session.scalars(
        select(Shipment).where(Shipment.job_id == job_id).order_by(Shipment.id.desc()).limit(1)
    ).first()


@dataclass(frozen=True)
class ShipmentView:
    carrier: str
    tracking_number: str
    box: str | None
    at: str  # when it shipped, in the lab's time zone

    @property
    def text(self) -> str:
        box = f" · box {self.box}" if self.box else ""
        return f"Shipped {self.at} with {self.carrier} · tracking {self.tracking_number}{box}"


def shipment_view(
    session: Session, job_id: int, zone: ZoneInfo, now: datetime
) -> ShipmentView | None:
    shipment = latest_shipment(session, job_id)
    if shipment is None:
        return None
    return ShipmentView(
        shipment.carrier,
        shipment.tracking_number,
        shipment.box,
        local_text(shipment.shipped_at, zone, now),
    )


def job_shipment(session: Session, principal: Principal, job_id: int) -> Shipment | None:
    """The shipment of a job the caller may see (another store's job answers NotFound)."""
    return latest_shipment(session, get_job(session, principal, job_id).id)


def record_milestones(
    session: Session, job: Job, event: StageEvent, shipment: ShipmentIn | None
) -> None:
    """The store's milestones an event reaches, to the feed (server.notify sends them): the
    job's first start (in production), a passed QC inspection, and its shipment. Called as
    the event is stored, before the job moves."""
    here = session.get_one(Stage, event.stage_id)
    if event.action == EventAction.start and not _started_before(session, event):
        append_update(session, job, "job_started", {"stage": here.code})
    if event.action == EventAction.complete and here.inspection:
        append_update(session, job, "qc_passed", {"stage": here.code})
    if shipment is not None:
        record_shipment(session, job, event, shipment)
    elif event.action == EventAction.complete and here.carriers:
        # Shipped all the same (a station that asks no carrier): the store hears it, untracked.
        append_update(session, job, "job_shipped", {})


def _started_before(session: Session, event: StageEvent) -> bool:
    return (
        session.scalar(
            select(StageEvent.id)
            .where(
                StageEvent.job_id == event.job_id,
                StageEvent.action == EventAction.start,
                StageEvent.id < event.id,
            )
            .limit(1)
        )
        is not None
    )
