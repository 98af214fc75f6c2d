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
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from server.context import ServerContext
from server.live import Subscription
from server.models import DeliveryStatus, NotificationDelivery, Store, StoreWebhook, utcnow
from server.notify import outbound
from server.notify.email import send_email
from server.notify.enqueue import EMAIL, WEBHOOK, WEBHOOK_KINDS, enqueue
from server.notify.notice import Notice, load_notice
from server.notify.outbound import OutboundPolicy, RefusedDestination
from server.notify.outcome import Outcome
from server.notify.webhook import post
from server.schemas import JobUpdateOut
from server.settings import Settings

log = logging.getLogger(__name__)

BATCH = 20
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
    delivery_id: int
    channel: str
    destination_id: int
    address: str  # the webhook URL or the e-mail address
    secret: str  # the webhook secret; "" for e-mail
    notice: Notice


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
        if update.kind not in WEBHOOK_KINDS:
            return
        if await asyncio.to_thread(self.enqueue, update) and self._wake is not None:
            self._wake.set()

    def enqueue(self, update: JobUpdateOut) -> int:
        with self.context.db.session() as session:
            return enqueue(
                session, update, email_enabled=bool(self.settings.smtp_host), now=utcnow()
            )

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
                select(NotificationDelivery)
                .where(
                    NotificationDelivery.status == DeliveryStatus.pending,
                    NotificationDelivery.next_attempt_at <= now,
                )
                .order_by(NotificationDelivery.next_attempt_at, NotificationDelivery.id)
                .limit(BATCH)
                .with_for_update(skip_locked=True)
            ).all()
            claimed = []
            for delivery in due:
                item = self._destination(session, delivery)
                if isinstance(item, str):  # nowhere to send it any more
                    delivery.status = DeliveryStatus.failed
                    delivery.last_error = item
                    continue
                delivery.next_attempt_at = now + self.lease
                claimed.append(item)
            return claimed

    def _destination(self, session: Session, delivery: NotificationDelivery) -> Claimed | str:
        """What to send where, or why it can no longer be sent."""
        if delivery.channel == WEBHOOK:
            hook = session.get(StoreWebhook, delivery.destination_id)
            if hook is None or not hook.active:
                return "webhook removed or deactivated"
            address, secret = hook.url, hook.secret
        else:
            store = session.get_one(Store, delivery.destination_id)
            if not self.settings.smtp_host:
                return "e-mail is off (smtp_host is empty)"
            if not store.notify_email:
                return "the store has no notify_email any more"
            address, secret = store.notify_email, ""
        notice = load_notice(session, delivery.job_update_id)
        return Claimed(
            delivery.id, delivery.channel, delivery.destination_id, address, secret, notice
        )

    def _send(self, client: httpx.Client, item: Claimed, now: datetime) -> Outcome:
        if item.channel == EMAIL:
            return send_email(self.settings, item.address, item.notice)
        try:
            # Checked again now, and sent to the address checked (DNS may have changed).
            destination = outbound.check(item.address, OutboundPolicy.from_settings(self.settings))
        except RefusedDestination as error:
            log.warning("webhook %d refused: %s (%s)", item.delivery_id, error, item.address)
            return Outcome.undeliverable()
        return post(client, destination, item.secret, item.delivery_id, item.notice, now)

    def _record(self, item: Claimed, outcome: Outcome, now: datetime) -> None:
        with self.context.db.session() as session:
            delivery = session.get_one(NotificationDelivery, item.delivery_id)
            delivery.attempts += 1
            delivery.response_status = outcome.response_status
            if outcome.error is not None:
                delivery.last_error = outcome.error  # kept after a later success, for the log
            if outcome.delivered:
                delivery.status = DeliveryStatus.delivered
                delivery.delivered_at = now
            elif not outcome.retry or delivery.attempts >= self.settings.notify_max_attempts:
                delivery.status = DeliveryStatus.failed
            else:
                delivery.next_attempt_at = now + retry_delay(delivery.attempts, self.rng)
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
