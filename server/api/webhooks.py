"""Store webhooks and the delivery log: `me` is the caller's store, `{code}` any (lab-wide)."""

from typing import Annotated

from fastapi import APIRouter, Path, Query, status

from server.api.deps import Context, CurrentPerson, DbSession
from server.notify import manage, outbound
from server.notify.outbound import OutboundPolicy
from server.notify.schemas import DeliveryPage, WebhookCreated, WebhookIn, WebhookOut

router = APIRouter(prefix="/api/stores", tags=["notifications"])

StoreCode = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_.-]+$")]
WebhookId = Annotated[int, Path(ge=1, le=2**31 - 1)]
Limit = Annotated[int, Query(ge=1, le=200)]
Offset = Annotated[int, Query(ge=0, le=2**31 - 1)]


def _list(person: CurrentPerson, session: DbSession, code: str | None) -> list[WebhookOut]:
    store = manage.store_for(session, person, code)
    return [WebhookOut.model_validate(hook) for hook in manage.list_webhooks(session, store)]


def _add(
    context: Context,
    person: CurrentPerson,
    session: DbSession,
    code: str | None,
    webhook: WebhookIn,
) -> WebhookCreated:
    # DNS first: the transaction (SQLite's write lock) starts with the first query.
    outbound.check(str(webhook.url), OutboundPolicy.from_settings(context.settings))
    store = manage.store_for(session, person, code)
    hook, secret = manage.add_webhook(session, store, webhook)
    return WebhookCreated(**WebhookOut.model_validate(hook).model_dump(), secret=secret)


def _remove(person: CurrentPerson, session: DbSession, code: str | None, webhook_id: int) -> None:
    manage.remove_webhook(session, manage.store_for(session, person, code), webhook_id)


def _deliveries(
    person: CurrentPerson, session: DbSession, code: str | None, limit: int, offset: int
) -> DeliveryPage:
    store = manage.store_for(session, person, code)
    return manage.list_deliveries(session, store, limit, offset)


# `me` routes come first: they are matched before `{code}`.
@router.get("/me/webhooks")
def list_my_webhooks(person: CurrentPerson, session: DbSession) -> list[WebhookOut]:
    return _list(person, session, None)


@router.post("/me/webhooks", status_code=status.HTTP_201_CREATED)
def add_my_webhook(
    webhook: WebhookIn, context: Context, person: CurrentPerson, session: DbSession
) -> WebhookCreated:
    return _add(context, person, session, None, webhook)


@router.delete("/me/webhooks/{webhook_id}", status_code=status.HTTP_204_NO_CONTENT)
def remove_my_webhook(webhook_id: WebhookId, person: CurrentPerson, session: DbSession) -> None:
    _remove(person, session, None, webhook_id)


@router.get("/me/deliveries")
def my_deliveries(
    person: CurrentPerson, session: DbSession, limit: Limit = 50, offset: Offset = 0
) -> DeliveryPage:
    return _deliveries(person, session, None, limit, offset)


@router.get("/{code}/webhooks")
def list_store_webhooks(
    code: StoreCode, person: CurrentPerson, session: DbSession
) -> list[WebhookOut]:
    return _list(person, session, code)


@router.post("/{code}/webhooks", status_code=status.HTTP_201_CREATED)
def add_store_webhook(
    code: StoreCode,
    webhook: WebhookIn,
    context: Context,
    person: CurrentPerson,
    session: DbSession,
) -> WebhookCreated:
    return _add(context, person, session, code, webhook)


@router.delete("/{code}/webhooks/{webhook_id}", status_code=status.HTTP_204_NO_CONTENT)
def remove_store_webhook(
    code: StoreCode, webhook_id: WebhookId, person: CurrentPerson, session: DbSession
) -> None:
    _remove(person, session, code, webhook_id)


@router.get("/{code}/deliveries")
def store_deliveries(
    code: StoreCode,
    person: CurrentPerson,
    session: DbSession,
    limit: Limit = 50,
    offset: Offset = 0,
) -> DeliveryPage:
    return _deliveries(person, session, code, limit, offset)
