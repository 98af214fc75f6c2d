"""A store's message settings (`me`: the caller's store; `{code}`: any, for lab managers)
and a job's shipment, as the store sees it."""

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict

from server.api.deps import CurrentPerson, CurrentPrincipal, DbSession, RowId
from server.api.webhooks import StoreCode
from server.domain import shipping
from server.notify import manage
from server.notify.schemas import StoreNotifications, StoreNotificationsOut

router = APIRouter(tags=["notifications"])


class ShipmentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    carrier: str
    tracking_number: str
    box: str | None
    shipped_at: datetime


@router.get("/api/stores/me/notifications")
def my_notifications(person: CurrentPerson, session: DbSession) -> StoreNotificationsOut:
    return manage.read_settings(session, person, None)


@router.put("/api/stores/me/notifications")
def set_my_notifications(
    wanted: StoreNotifications, person: CurrentPerson, session: DbSession
) -> StoreNotificationsOut:
    """The store manager's choice of milestones, e-mail address and timing."""
    return manage.update_settings(session, person, None, wanted)


@router.get("/api/stores/{code}/notifications")
def store_notifications(
    code: StoreCode, person: CurrentPerson, session: DbSession
) -> StoreNotificationsOut:
    return manage.read_settings(session, person, code)


@router.put("/api/stores/{code}/notifications")
def set_store_notifications(
    code: StoreCode, wanted: StoreNotifications, person: CurrentPerson, session: DbSession
) -> StoreNotificationsOut:
    return manage.update_settings(session, person, code, wanted)


@router.get("/api/jobs/{job_id}/shipment")
def job_shipment(
    job_id: RowId, principal: CurrentPrincipal, session: DbSession
) -> ShipmentOut | None:
    """How the job left the lab (carrier, tracking number, box); null before it shipped."""
    shipment = shipping.job_shipment(session, principal, job_id)
    return ShipmentOut.model_validate(shipment) if shipment is not None else None
