"""Turn a change-feed entry into deliveries: one per matching webhook, one for e-mail."""

from datetime import datetime
from typing import Literal, get_args

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.db import conflict_insert
from server.models import DeliveryStatus, NotificationDelivery, Store, StoreWebhook
from server.schemas import JobUpdateOut

WebhookKind = Literal["flag_raised", "flag_cleared", "job_ready", "job_delivered"]
WEBHOOK_KINDS: frozenset[str] = frozenset(get_args(WebhookKind))
DEFAULT_WEBHOOK_KINDS: tuple[WebhookKind, ...] = ("flag_raised", "flag_cleared", "job_ready")
EMAIL_KINDS: frozenset[str] = frozenset(DEFAULT_WEBHOOK_KINDS)

WEBHOOK = "webhook"  # destination_id: store_webhook.id
EMAIL = "email"  # destination_id: store.id (its notify_email, read when sending)


def enqueue(session: Session, update: JobUpdateOut, *, email_enabled: bool, now: datetime) -> int:
    """Adds the deliveries this update calls for; returns how many were new.

    Insert-or-ignore on (channel, destination, update): every server process reads the feed
    and may call this for the same update, and it is still sent once.
    """
    if update.kind not in WEBHOOK_KINDS:
        return 0
    webhooks = session.scalars(
        select(StoreWebhook).where(
            StoreWebhook.store_id == update.store_id,
            StoreWebhook.active,
            # A webhook added later is not sent what happened before it (feed replays).
            StoreWebhook.created_at <= update.created_at,
        )
    )
    destinations = [(WEBHOOK, hook.id) for hook in webhooks if update.kind in hook.kinds]
    if email_enabled and update.kind in EMAIL_KINDS:
        store = session.get_one(Store, update.store_id)
        if store.notify_email:
            destinations.append((EMAIL, store.id))
    if not destinations:
        return 0
    statement = (
        conflict_insert(session.get_bind().dialect.name, NotificationDelivery)
        .values(
            [
                {
                    "channel": channel,
                    "destination_id": destination_id,
                    "job_update_id": update.id,
                    "status": DeliveryStatus.pending,
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                }
                for channel, destination_id in destinations
            ]
        )
        .on_conflict_do_nothing(index_elements=["channel", "destination_id", "job_update_id"])
        # rowcount of a multi-row insert is -1 on psycopg: count what RETURNING gives back.
        .returning(NotificationDelivery.id)
    )
    return len(session.execute(statement).all())
