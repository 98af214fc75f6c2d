"""Managing a store's webhooks and message settings and reading its delivery log, scoped to
the caller.

Store staff reach their own store only; another store answers like a missing one (404).
"""

import secrets

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from server.domain.auth import PersonPrincipal
from server.domain.errors import Forbidden, NotFound
from server.models import (
    DeliveryStatus,
    Job,
    JobUpdate,
    NotificationDelivery,
    Person,
    Role,
    Store,
    StoreNotificationSetting,
    StoreWebhook,
    utcnow,
)
from server.notify.enqueue import WEBHOOK
from server.notify.preferences import Milestone, Preferences, milestone_of, preferences_for
from server.notify.schemas import (
    DeliveryOut,
    DeliveryPage,
    StoreNotifications,
    StoreNotificationsOut,
    WebhookIn,
)
from server.schemas import JobUpdateOut

LAB_WIDE = frozenset({Role.lab_manager, Role.admin})


def store_for(session: Session, person: PersonPrincipal, code: str | None) -> Store:
    """The store a request concerns: `None` is the caller's own store."""
    if person.role != Role.store_staff and person.role not in LAB_WIDE:
        raise Forbidden("role", "store staff or a lab manager manage store notifications")
    if code is None:
        if person.store_id is None:
            raise NotFound("store", "you are not bound to a store; name one by its code")
        return session.get_one(Store, person.store_id)
    store = session.scalar(select(Store).where(Store.lab_id == person.lab_id, Store.code == code))
    if store is None or (person.role == Role.store_staff and store.id != person.store_id):
        raise NotFound("code", f"no store {code!r}")
    return store


def list_webhooks(session: Session, store: Store) -> list[StoreWebhook]:
    return list(
        session.scalars(
            select(StoreWebhook).where(StoreWebhook.store_id == store.id).order_by(StoreWebhook.id)
        )
    )


def add_webhook(session: Session, store: Store, webhook: WebhookIn) -> tuple[StoreWebhook, str]:
    """Returns the webhook and its secret (generated unless given), to show once."""
    secret = webhook.secret or secrets.token_urlsafe(32)
    hook = StoreWebhook(store_id=store.id, url=str(webhook.url), secret=secret, kinds=webhook.kinds)
    session.add(hook)
    session.flush()
    return hook, secret


def remove_webhook(session: Session, store: Store, webhook_id: int) -> None:
    """Deactivates it (the delivery log still refers to it) and fails what it had pending."""
    hook = session.get(StoreWebhook, webhook_id)
    if hook is None or hook.store_id != store.id or not hook.active:
        raise NotFound("webhook_id", f"no active webhook {webhook_id} for store {store.code}")
    hook.active = False
    session.execute(
        update(NotificationDelivery)
        .where(
            NotificationDelivery.channel == WEBHOOK,
            NotificationDelivery.destination_id == hook.id,
            NotificationDelivery.status == DeliveryStatus.pending,
        )
        .values(status=DeliveryStatus.failed, last_error="webhook removed")
    )


def list_deliveries(session: Session, store: Store, limit: int, offset: int) -> DeliveryPage:
    """The store's delivery log, newest first (scoped through the feed entry's store)."""
    scope = NotificationDelivery.job_update_id == JobUpdate.id
    total = session.scalar(
        select(func.count())
        .select_from(NotificationDelivery)
        .join(JobUpdate, scope)
        .where(JobUpdate.store_id == store.id)
    )
    rows = session.execute(
        select(NotificationDelivery, JobUpdate, Job.job_number)
        .join(JobUpdate, scope)
        .join(Job, Job.id == JobUpdate.job_id)
        .where(JobUpdate.store_id == store.id)
        .order_by(NotificationDelivery.id.desc())
        .limit(limit)
        .offset(offset)
    )
    items = [
        DeliveryOut(
            id=delivery.id,
            channel=delivery.channel,
            destination_id=delivery.destination_id,
            kind=feed.kind,
            milestone=milestone_of(session, JobUpdateOut.model_validate(feed)),
            job_number=job_number,
            status=delivery.status,
            attempts=delivery.attempts,
            response_status=delivery.response_status,
            last_error=delivery.last_error,
            next_attempt_at=(
                delivery.next_attempt_at if delivery.status == DeliveryStatus.pending else None
            ),
            created_at=delivery.created_at,
            delivered_at=delivery.delivered_at,
        )
        for delivery, feed, job_number in rows
    ]
    return DeliveryPage(total=total or 0, items=items)


def _may_edit(session: Session, person: PersonPrincipal) -> bool:
    if person.role in LAB_WIDE:
        return True
    return (
        person.role == Role.store_staff and session.get_one(Person, person.person_id).store_manager
    )


def read_settings(
    session: Session, person: PersonPrincipal, code: str | None
) -> StoreNotificationsOut:
    store = store_for(session, person, code)
    return _out(session, person, store, preferences_for(session, store.id))


def update_settings(
    session: Session, person: PersonPrincipal, code: str | None, wanted: StoreNotifications
) -> StoreNotificationsOut:
    """Store staff read their store's choices; only its manager (or a lab manager) changes
    them. Another store answers like a missing one (`store_for`)."""
    store = store_for(session, person, code)
    if not _may_edit(session, person):
        raise Forbidden("role", "only the store's manager or a lab manager changes its messages")
    setting = session.get(StoreNotificationSetting, store.id)
    if setting is None:
        setting = StoreNotificationSetting(store_id=store.id)
        session.add(setting)
    store.notify_email = wanted.notify_email
    setting.milestones = [milestone.value for milestone in wanted.milestones]
    setting.email_mode = wanted.email_mode
    setting.digest_hour = wanted.digest_hour
    setting.updated_at = utcnow()
    setting.updated_by_id = person.person_id
    session.flush()
    return _out(session, person, store, preferences_for(session, store.id))


def _out(
    session: Session, person: PersonPrincipal, store: Store, preferences: Preferences
) -> StoreNotificationsOut:
    return StoreNotificationsOut(
        store_code=store.code,
        notify_email=store.notify_email,
        # In the order a job reaches them.
        milestones=[milestone for milestone in Milestone if milestone in preferences.milestones],
        email_mode=preferences.email_mode,
        digest_hour=preferences.digest_hour,
        can_edit=_may_edit(session, person),
    )
