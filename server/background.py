"""Periodic work of a server process: the flag sweep, learning stage times and, daily, the
purge of personal data past retention (server.domain.personal_data).

A round commits every `SWEEP_CHUNK` jobs: on SQLite a transaction holds the database's one
write lock, and a single transaction over a lab's open jobs (1.5-3 s for 1,750 jobs) kept
every station event waiting that long. What a round only reads (the open jobs, the floor
load, weeks of events to learn stage times from) is read before, outside the writes. With
several server processes on PostgreSQL one of them, the leader, runs the rounds
(`Leadership`), and an advisory lock held for each round keeps two rounds from overlapping
while leadership changes hands.
"""

import asyncio
import contextlib
import logging
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta

from sqlalchemy import Connection, select, text
from sqlalchemy.exc import DBAPIError

from server.context import ServerContext
from server.db import Database
from server.domain.flags import (
    floor_load,
    measure_stage_times,
    open_job_ids,
    store_stage_times,
    sweep,
)
from server.domain.personal_data import purge_expired
from server.domain.spc import scan_for_violations
from server.models import Lab, utcnow

log = logging.getLogger(__name__)

SWEEP_LOCK = 0x4C5453  # advisory lock key ("LTS")
SWEEPER_LEADER = 0x4C544C  # advisory lock key ("LTL")
# Jobs per transaction: some 100 ms of writes at most (benchmarks/scale.py times each chunk).
SWEEP_CHUNK = 20


class Leadership:
    """Whether this process is the one of a group to run a lab-wide service.

    On PostgreSQL: a session advisory lock, taken on a connection kept for it alone. PostgreSQL
    frees it when that session ends, so when the leading process dies (or its connection
    does), the next process that asks becomes the leader. SQLite has one server process.
    """

    def __init__(self, db: Database, key: int) -> None:
        self.db = db
        self.key = key
        self._connection: Connection | None = None
        # A service stopping releases while its last `held` may still run in a worker thread:
        # one at a time, and none after the release.
        self._turn = threading.Lock()
        self._released = False

    def held(self) -> bool:
        """Asks again: keeps the lock while its session lives, else tries to take it."""
        if self.db.dialect != "postgresql":
            return True
        with self._turn:
            return not self._released and (self._still_held() or self._taken())

    def release(self) -> None:
        """Lets another process lead; this one never asks again."""
        with self._turn:
            self._released = True
            if self._connection is None:
                return
            with contextlib.suppress(DBAPIError):  # else the session is gone, and its lock too
                unlock = text("SELECT pg_advisory_unlock(:key)")
                self._connection.execute(unlock, {"key": self.key})
                self._connection.commit()
            self._close()

    def _still_held(self) -> bool:
        if self._connection is None:
            return False
        try:
            self._connection.execute(text("SELECT 1"))  # the same session: still ours
            self._connection.commit()
            return True
        except DBAPIError:
            log.warning("lost the connection holding advisory lock %#x", self.key)
            self._close()
            return False

    def _taken(self) -> bool:
        connection = self.db.engine.connect()
        try:
            lock = text("SELECT pg_try_advisory_lock(:key)")
            taken = bool(connection.scalar(lock, {"key": self.key}))
            connection.commit()  # the lock outlives the transaction; no snapshot is kept open
        except BaseException:
            connection.close()
            raise
        if not taken:
            connection.close()
            return False
        self._connection = connection
        log.info("leading: took advisory lock %#x", self.key)
        return True

    def _close(self) -> None:
        assert self._connection is not None
        # Invalidated, not pooled: a pooled session would keep holding the lock.
        self._connection.invalidate()
        self._connection.close()
        self._connection = None


class Sweeper:
    def __init__(
        self,
        context: ServerContext,
        interval: timedelta = timedelta(minutes=1),
        learn_every: timedelta = timedelta(minutes=10),
        chunk: int = SWEEP_CHUNK,
        purge_every: timedelta = timedelta(days=1),
    ) -> None:
        self.context = context
        self.chunk = chunk
        self.interval = interval
        self.learn_every = learn_every
        self._last_learned: datetime | None = None
        self.purge_every = purge_every
        self._last_purged: datetime | None = None
        self.leadership = Leadership(context.db, SWEEPER_LEADER)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="flag sweep")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await asyncio.to_thread(self.leadership.release)

    def sweep_once(self, now: datetime | None = None) -> int:
        """One round over every lab; returns jobs visited (0 if another process holds it)."""
        now = now or utcnow()
        learn = self._last_learned is None or now - self._last_learned >= self.learn_every
        visited = 0
        with self._exclusive() as ours:
            if not ours:
                return 0
            with self.context.db.read_session() as session:
                lab_ids = list(session.scalars(select(Lab.id)))
            for lab_id in lab_ids:
                if learn:
                    with self.context.db.read_session() as session:
                        durations = measure_stage_times(session, lab_id, now)
                    with self.context.session() as session:
                        store_stage_times(session, lab_id, durations, now)
                    scan_for_violations(self.context.db, lab_id, now)  # SPC alerts
                with self.context.db.read_session() as session:
                    job_ids = open_job_ids(session, lab_id)
                    load = floor_load(session, lab_id)
                for start in range(0, len(job_ids), self.chunk):
                    chunk = job_ids[start : start + self.chunk]
                    with self.context.session() as session:
                        visited += sweep(session, lab_id, now, chunk, load)
            if self._last_purged is None or now - self._last_purged >= self.purge_every:
                retention = self.context.settings.personal_data_retention_days
                if purged := purge_expired(
                    self.context.session, self.context.db.read_session, now, retention
                ):
                    log.info("purged the personal data of %d job(s) past retention", purged)
                self._last_purged = now
        if learn:
            self.context.db.optimize()  # as often as stage times are learned
            self._last_learned = now
        return visited

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[bool]:
        """Whether this process sweeps this round. On PostgreSQL a session advisory lock on a
        connection of its own, held across the round's transactions; SQLite has one process.
        """
        if self.context.db.dialect != "postgresql":
            yield True
            return
        with self.context.db.engine.connect() as connection:
            lock = {"key": SWEEP_LOCK}
            ours = bool(connection.scalar(text("SELECT pg_try_advisory_lock(:key)"), lock))
            connection.commit()  # the lock outlives the transaction; no snapshot is kept open
            try:
                yield ours
            finally:
                if ours:
                    connection.execute(text("SELECT pg_advisory_unlock(:key)"), lock)
                    connection.commit()

    async def _run(self) -> None:
        while True:
            try:
                if await asyncio.to_thread(self.leadership.held):
                    visited = await asyncio.to_thread(self.sweep_once)
                    log.debug("swept %d open jobs", visited)
            except Exception:
                log.exception("flag sweep failed; next round in %s", self.interval)
            await asyncio.sleep(self.interval.total_seconds())
