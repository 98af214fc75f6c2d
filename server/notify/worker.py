"""The delivery worker: sends due deliveries, records each attempt, schedules retries.

A round claims a batch in one short transaction by pushing its rows' `next_attempt_at` out
by a lease (on PostgreSQL `FOR UPDATE SKIP LOCKED`, so processes claiming at once take
different rows; SQLite has a single writer anyway), sends outside any transaction (a slow
receiver must not hold SQLite's write lock), then records each result. A process that dies
mid-send leaves its rows due again once the lease ends: at-least-once, and receivers
de-duplicate by delivery id.
"""

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from sqlalchemy import Select, select, update
from sqlalchemy.orm import Session

from server.context import ServerContext
from server.domain.auth import MANAGER_ROLES
from server.live import Subscription
from server.models import (
    DeliveryStatus,
    LabAlert,
    NotificationDelivery,
    Person,
    Store,
    StoreWebhook,
    utcnow,
)
from server.notify import outbound
from server.notify.email import send_email, store_mail
from server.notify.enqueue import (
    DIGEST,
    LAB_ALERT,
    WEBHOOK,
    destinations,
    enqueue_update,
    notified,
)
from server.notify.lab_alert import AlertNotice, alert_mail, load_alert_notice
from server.notify.notice import Notice, load_notice
from server.notify.outbound import OutboundPolicy, RefusedDestination
from server.notify.outcome import Outcome
from server.notify.webhook import post
from server.schemas import JobUpdateOut
from server.settings import Settings

log = logging.getLogger(__name__)

BATCH = 20
DIGEST_MOST = 200  # notices in one digest e-mail; more go in another
FIRST_RETRY = timedelta(seconds=30)
MAX_RETRY = timedelta(hours=1)


def retry_delay(attempts: int, rng: random.Random) -> timedelta:
    """30 s, 1 min, 2, 4 … doubling after each failed attempt, capped at 1 h, ±20 % jitter.

    Jitter spreads the retries of many deliveries that failed together (a receiver outage).
    """
    base = min(FIRST_RETRY.total_seconds() * 2.0 ** (attempts - 1), MAX_RETRY.total_seconds())
    return timedelta(seconds=min(base * rng.uniform(0.8, 1.2), MAX_RETRY.total_seconds()))


@dataclass(frozen=True)
class Claimed:
    """What one send carries: one delivery, or a store's due digest entries as one e-mail."""

    delivery_ids: tuple[int, ...]
    channel: str
    destination_id: int
    address: str  # the webhook URL or the e-mail address
    secret: str  # the webhook secret; "" for e-mail
    notices: tuple[Notice, ...]  # a store's; none for a lab alert
    alert: AlertNotice | None = None  # a lab alert's e-mail to a lab manager


class DeliveryWorker:
    def __init__(
        self,
        context: ServerContext,
        interval: timedelta = timedelta(seconds=5),
        rng: random.Random | None = None,
    ) -> None:
        self.context = context
        self.interval = interval
        self.rng = rng or random.Random()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._subscription: Subscription | None = None

    @property
    def settings(self) -> Settings:
        return self.context.settings

    @property
    def lease(self) -> timedelta:
        """Long enough to send a whole claimed batch at the worst timeout."""
        return timedelta(seconds=self.settings.webhook_timeout_seconds * (BATCH + 1))

    async def start(self) -> None:
        self._wake = asyncio.Event()
        self._subscription = self.context.bus.subscribe(self.on_update)
        self._task = asyncio.create_task(self._run(), name="notification deliveries")

    async def stop(self) -> None:
        if self._subscription is not None:
            self.context.bus.unsubscribe(self._subscription)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def on_update(self, update: JobUpdateOut) -> None:
        """Live bus subscriber: enqueue, then send at once rather than at the next round."""
        if not notified(update):
            return
        if await asyncio.to_thread(self.enqueue, update) and self._wake is not None:
            self._wake.set()

    def enqueue(self, update: JobUpdateOut) -> int:
        """The update's deliveries, decided in a read session; a write only if there are any
        (most feed entries go nowhere, and SQLite has one writer: the station events')."""
        now = utcnow()
        email_enabled = bool(self.settings.smtp_host)
        with self.context.db.read_session() as session:
            found = destinations(session, update, email_enabled=email_enabled, now=now)
        if not found:
            return 0
        with self.context.db.session() as session:
            return enqueue_update(session, update.id, found, now)

    def run_once(self, now: datetime | None = None) -> int:
        """Claims and sends one batch of due deliveries; returns how many were attempted."""
        now = now or utcnow()
        claimed = self._claim(now)
        if not claimed:
            return 0
        timeout = self.settings.webhook_timeout_seconds
        with httpx.Client(timeout=timeout, follow_redirects=False) as client:
            for item in claimed:
                self._record(item, self._send(client, item, now), now)
        return len(claimed)

    def _claim(self, now: datetime) -> list[Claimed]:
        with self.context.db.session() as session:
            due = session.scalars(
                self._due(now)
                .order_by(NotificationDelivery.next_attempt_at, NotificationDelivery.id)
                .limit(BATCH)
            ).all()
            groups: dict[tuple[str, int], list[NotificationDelivery]] = {}
            for delivery in due:
                if delivery.channel == DIGEST:
                    groups.setdefault((DIGEST, delivery.destination_id), []).append(delivery)
                else:
                    groups[(delivery.channel, delivery.id)] = [delivery]
            claimed = []
            for (channel, store_id), deliveries in groups.items():
                if channel == DIGEST:  # the store's other due entries join the same e-mail
                    deliveries += self._more_digest(session, store_id, deliveries, now)
                item = self._destination(session, deliveries)
                for delivery in deliveries:
                    if isinstance(item, str):  # nowhere to send it any more
                        delivery.status = DeliveryStatus.failed
                        delivery.last_error = item
                    else:
                        delivery.next_attempt_at = now + self.lease
                if not isinstance(item, str):
                    claimed.append(item)
            return claimed

    @staticmethod
    def _due(now: datetime) -> Select[tuple[NotificationDelivery]]:
        return (
            select(NotificationDelivery)
            .where(
                NotificationDelivery.status == DeliveryStatus.pending,
                NotificationDelivery.next_attempt_at <= now,
            )
            .with_for_update(skip_locked=True)
        )

    def _more_digest(
        self,
        session: Session,
        store_id: int,
        claimed: list[NotificationDelivery],
        now: datetime,
    ) -> list[NotificationDelivery]:
        return list(
            session.scalars(
                self._due(now)
                .where(
                    NotificationDelivery.channel == DIGEST,
                    NotificationDelivery.destination_id == store_id,
                    NotificationDelivery.id.not_in([delivery.id for delivery in claimed]),
                )
                .order_by(NotificationDelivery.id)
                .limit(max(DIGEST_MOST - len(claimed), 0))
            )
        )

    def _destination(
        self, session: Session, deliveries: list[NotificationDelivery]
    ) -> Claimed | str:
        """What to send where (deliveries of one channel and destination), or why it can no
        longer be sent."""
        first = deliveries[0]
        if first.channel == LAB_ALERT:
            return self._alert_destination(session, first)
        if first.channel == WEBHOOK:
            hook = session.get(StoreWebhook, first.destination_id)
            if hook is None or not hook.active:
                return "webhook removed or deactivated"
            address, secret = hook.url, hook.secret
        else:
            store = session.get_one(Store, first.destination_id)
            if not self.settings.smtp_host:
                return "e-mail is off (smtp_host is empty)"
            if not store.notify_email:
                return "the store has no notify_email any more"
            address, secret = store.notify_email, ""
        ordered = sorted(deliveries, key=lambda delivery: delivery.job_update_id)
        return Claimed(
            tuple(delivery.id for delivery in ordered),
            first.channel,
            first.destination_id,
            address,
            secret,
            tuple(load_notice(session, delivery.job_update_id) for delivery in ordered),
        )

    def _alert_destination(self, session: Session, delivery: NotificationDelivery) -> Claimed | str:
        """A lab alert to a lab manager, checked again now: the person may have left, lost
        the role or the address, or a manager seen to the alert, since it was enqueued."""
        assert delivery.lab_alert_id is not None
        if not self.settings.smtp_host:
            return "e-mail is off (smtp_host is empty)"
        person = session.get_one(Person, delivery.destination_id)
        if not person.active or person.role not in MANAGER_ROLES or not person.email:
            return "the person is no active lab manager with an e-mail address any more"
        if session.get_one(LabAlert, delivery.lab_alert_id).acknowledged_at is not None:
            return "the alert was acknowledged before it was sent"
        return Claimed(
            delivery_ids=(delivery.id,),
            channel=LAB_ALERT,
            destination_id=person.id,
            address=person.email,
            secret="",
            notices=(),
            alert=load_alert_notice(session, delivery.lab_alert_id, self.settings),
        )

    def _send(self, client: httpx.Client, item: Claimed, now: datetime) -> Outcome:
        if item.alert is not None:
            return send_email(self.settings, item.address, alert_mail(item.alert))
        if item.channel != WEBHOOK:  # e-mail, one notice or a digest
            return send_email(self.settings, item.address, store_mail(list(item.notices)))
        (delivery_id,), (notice,) = item.delivery_ids, item.notices
        try:
            # Checked again now, and sent to the address checked (DNS may have changed).
            destination = outbound.check(item.address, OutboundPolicy.from_settings(self.settings))
        except RefusedDestination as error:
            log.warning("webhook %d refused: %s (%s)", delivery_id, error, item.address)
            return Outcome.undeliverable()
        return post(client, destination, item.secret, delivery_id, notice, now)

    def _record(self, item: Claimed, outcome: Outcome, now: datetime) -> None:
        with self.context.db.session() as session:
            # A digest's entries were sent together: they share the outcome and the retry.
            delay = None
            for delivery_id in item.delivery_ids:
                delivery = session.get_one(NotificationDelivery, delivery_id)
                delivery.attempts += 1
                delivery.response_status = outcome.response_status
                if outcome.error is not None:
                    delivery.last_error = outcome.error  # kept after a later success (log)
                if outcome.delivered:
                    delivery.status = DeliveryStatus.delivered
                    delivery.delivered_at = now
                elif not outcome.retry or delivery.attempts >= self.settings.notify_max_attempts:
                    delivery.status = DeliveryStatus.failed
                else:
                    delay = delay or retry_delay(delivery.attempts, self.rng)
                    delivery.next_attempt_at = now + delay
            if item.channel == WEBHOOK and outcome.response_status == 410:
                # Gone: the store retired the endpoint; stop sending to it (it stays listed,
                # inactive, so the store sees why).
                session.execute(
                    update(StoreWebhook)
                    .where(StoreWebhook.id == item.destination_id)
                    .values(active=False)
                )

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            try:
                sent = await asyncio.to_thread(self.run_once)
                log.debug("attempted %d notification deliveries", sent)
                if sent == BATCH:
                    continue  # more may be due: no waiting
            except Exception:
                log.exception("sending notifications failed; next round in %s", self.interval)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval.total_seconds())
            self._wake.clear()
