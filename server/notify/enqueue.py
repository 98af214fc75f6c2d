"""Turn a change-feed entry into deliveries: one per matching webhook, one for e-mail; and a
lab alert into one e-mail per lab manager with an address.

A webhook gets the feed kinds it lists and the milestones its store asked for; e-mail gets
the milestones only, at once or held for the store's daily digest.
"""

from collections.abc import Sequence
from datetime import datetime
from typing import Literal, get_args

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.db import conflict_insert
from server.domain.auth import MANAGER_ROLES
from server.domain.lab_time import lab_zone
from server.models import (
    DeliveryStatus,
    LabAlert,
    NotificationDelivery,
    Person,
    Store,
    StoreWebhook,
)
from server.notify.preferences import (
    may_be_milestone,
    next_digest_at,
    preferences_for,
    wanted_milestone,
)
from server.schemas import JobUpdateOut

WebhookKind = Literal["flag_raised", "flag_cleared", "job_ready", "job_delivered"]
WEBHOOK_KINDS: frozenset[str] = frozenset(get_args(WebhookKind))
DEFAULT_WEBHOOK_KINDS: tuple[WebhookKind, ...] = ("flag_raised", "flag_cleared", "job_ready")

WEBHOOK = "webhook"  # destination_id: store_webhook.id
EMAIL = "email"  # destination_id: store.id (its notify_email, read when sending)
DIGEST = "digest"  # destination_id: store.id; due at its digest hour, sent as one e-mail
LAB_ALERT = "lab_alert"  # destination_id: person.id (a lab manager's email, read when sending)


def notified(update: JobUpdateOut) -> bool:
    """Whether a webhook or a store's milestones may want the update (no query)."""
    return update.kind in WEBHOOK_KINDS or may_be_milestone(update)


Destination = tuple[str, int, datetime]  # channel, destination id, when it is due


def destinations(
    session: Session, update: JobUpdateOut, *, email_enabled: bool, now: datetime
) -> list[Destination]:
    """Where this update goes: its store's webhooks and e-mail, by their kinds and the store's
    milestones. Reads only, so it runs in a read session: on SQLite a write transaction for
    every feed entry would queue behind, and hold up, the event writer."""
    if not notified(update):
        return []
    preferences = preferences_for(session, update.store_id)
    milestone = wanted_milestone(session, update, preferences)
    if milestone is None and update.kind not in WEBHOOK_KINDS:
        return []
    webhooks = session.scalars(
        select(StoreWebhook).where(
            StoreWebhook.store_id == update.store_id,
            StoreWebhook.active,
            # A webhook added later is not sent what happened before it (feed replays).
            StoreWebhook.created_at <= update.created_at,
        )
    )
    found: list[Destination] = [
        (WEBHOOK, hook.id, now)
        for hook in webhooks
        if milestone is not None or update.kind in hook.kinds
    ]
    if email_enabled and milestone is not None:
        store = session.get_one(Store, update.store_id)
        if store.notify_email and preferences.email_mode == "digest":
            due = next_digest_at(now, lab_zone(session, store.lab_id), preferences.digest_hour)
            found.append((DIGEST, store.id, due))
        elif store.notify_email:
            found.append((EMAIL, store.id, now))
    return found


def enqueue_update(
    session: Session, update_id: int, found: Sequence[Destination], now: datetime
) -> int:
    """Adds the update's deliveries to `found` destinations; returns how many were new.

    Insert-or-ignore on (channel, destination, update): every server process reads the feed
    and may call this for the same update, and it is still sent once.
    """
    return _insert(session, "job_update_id", update_id, found, now) if found else 0


def alert_recipients(session: Session, lab_id: int) -> list[Person]:
    """Who a lab alert is e-mailed to: the lab's active managers (those who acknowledge it)
    with an address. Store staff never: MANAGER_ROLES are the lab's."""
    return list(
        session.scalars(
            select(Person)
            .where(
                Person.lab_id == lab_id,
                Person.active,
                Person.role.in_(MANAGER_ROLES),
                Person.email.is_not(None),
            )
            .order_by(Person.id)
        )
    )


def enqueue_alert(session: Session, alert: LabAlert, now: datetime) -> int:
    """Adds an e-mail of the alert for each recipient, in the transaction that raises it;
    returns how many were new. Insert-or-ignore on (channel, person, alert): once each."""
    recipients = alert_recipients(session, alert.lab_id)
    if not recipients:
        return 0
    return _insert(
        session,
        "lab_alert_id",
        alert.id,
        [(LAB_ALERT, person.id, now) for person in recipients],
        now,
    )


def _insert(
    session: Session,
    key: Literal["job_update_id", "lab_alert_id"],
    key_id: int,
    found: Sequence[Destination],
    now: datetime,
) -> int:
    """The deliveries of one feed entry or alert (`key`), each (channel, destination, due)
    unless it is there already; returns how many were new."""
    statement = (
        conflict_insert(session.get_bind().dialect.name, NotificationDelivery)
        .values(
            [
                {
                    "channel": channel,
                    "destination_id": destination_id,
                    key: key_id,
                    "status": DeliveryStatus.pending,
                    "attempts": 0,
                    "next_attempt_at": due,
                    "created_at": now,
                }
                for channel, destination_id, due in found
            ]
        )
        .on_conflict_do_nothing(index_elements=["channel", "destination_id", key])
        # rowcount of a multi-row insert is -1 on psycopg: count what RETURNING gives back.
        .returning(NotificationDelivery.id)
    )
    return len(session.execute(statement).all())
