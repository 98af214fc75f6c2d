"""The live bus: one per server process, feeding every open page from the change feed.

Writers append to `job_update` inside their transaction. The bus reads rows after the last id
it saw and hands them to subscribers, so a page never misses a change and no page runs a
timer of its own. It wakes when this process commits (`wake`), when another process commits
(PostgreSQL LISTEN/NOTIFY carries no data, just the nudge), and every `poll_seconds` anyway.
"""

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import psycopg
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from server.db import Database
from server.feed import CHANNEL
from server.models import JobUpdate
from server.schemas import JobUpdateOut

log = logging.getLogger(__name__)

BATCH = 500
STOP_SECONDS = 5.0

Subscriber = Callable[[JobUpdateOut], Awaitable[None] | None]


@dataclass(frozen=True)
class Subscription:
    callback: Subscriber
    store_id: int | None  # None: every store (lab pages)


class LiveBus:
    def __init__(self, db: Database, poll_seconds: float = 5.0) -> None:
        self.db = db
        self.poll_seconds = poll_seconds
        self.last_seen_id = 0
        self._subscriptions: list[Subscription] = []
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def subscribe(self, callback: Subscriber, store_id: int | None = None) -> Subscription:
        subscription = Subscription(callback, store_id)
        self._subscriptions.append(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with contextlib.suppress(ValueError):
            self._subscriptions.remove(subscription)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscriptions)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self.last_seen_id = await asyncio.to_thread(self._latest_id)
        self._tasks.append(asyncio.create_task(self._read_forever(), name="live bus reader"))
        if self.db.dialect == "postgresql":
            self._tasks.append(asyncio.create_task(self._listen_forever(), name="live bus listen"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        # Bounded: a task caught in the database driver's cancellation must not hold up the
        # shutdown (awaiting each task in turn hung now and then on PostgreSQL).
        _, pending = await asyncio.wait(self._tasks, timeout=STOP_SECONDS)
        for task in pending:
            log.warning("%s did not stop within %s s", task.get_name(), STOP_SECONDS)
        self._tasks.clear()

    def wake(self) -> None:
        """Call after a commit that wrote to the feed; safe from any thread."""
        if self._loop is not None and self._wake is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    def _latest_id(self) -> int:
        with self.db.read_session() as session:
            return session.scalar(select(func.max(JobUpdate.id))) or 0

    def _fetch_after(self, last_id: int) -> list[JobUpdateOut]:
        with self.db.read_session() as session:
            rows = session.scalars(
                select(JobUpdate).where(JobUpdate.id > last_id).order_by(JobUpdate.id).limit(BATCH)
            )
            return [JobUpdateOut.model_validate(row) for row in rows]

    async def catch_up(self) -> int:
        """Deliver everything after the last seen id; returns how many updates."""
        delivered = 0
        while True:
            updates = await asyncio.to_thread(self._fetch_after, self.last_seen_id)
            for update in updates:
                self.last_seen_id = update.id
                await self._deliver(update)
            delivered += len(updates)
            if len(updates) < BATCH:
                return delivered

    async def _deliver(self, update: JobUpdateOut) -> None:
        for subscription in list(self._subscriptions):
            if subscription.store_id not in (None, update.store_id):
                continue
            try:
                result = subscription.callback(update)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("live bus subscriber failed; it stays subscribed")

    async def _read_forever(self) -> None:
        assert self._wake is not None
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
            self._wake.clear()
            try:
                await self.catch_up()
            except Exception:
                log.exception("reading the change feed failed; retrying")
                await asyncio.sleep(1)

    async def _listen_forever(self) -> None:
        conninfo = make_url(str(self.db.engine.url.render_as_string(hide_password=False)))
        dsn = conninfo.set(drivername="postgresql").render_as_string(hide_password=False)
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    if self._wake is not None:
                        self._wake.set()  # catch up on whatever came while not listening
                    async for _ in conn.notifies():
                        self.wake()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("LISTEN connection lost; reconnecting")
                await asyncio.sleep(1)
