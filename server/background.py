"""Periodic work of a server process: the flag sweep, learning stage times and, daily, the
purge of personal data past retention (server.domain.personal_data).

A round commits every `SWEEP_CHUNK` jobs: on SQLite a transaction holds the database's one
write lock, and a single transaction over a lab's open jobs (1.5-3 s for 1,750 jobs) kept
every station event waiting that long. With several server processes on PostgreSQL, an
advisory lock held for the round lets one of them sweep at a time; the others skip it.
"""

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from datetime import datetime, timedelta

from sqlalchemy import select, text

from server.context import ServerContext
from server.domain.flags import learn_stage_times, open_job_ids, sweep
from server.domain.personal_data import purge_expired
from server.models import Lab, utcnow

log = logging.getLogger(__name__)

SWEEP_LOCK = 0x4C5453  # advisory lock key ("LTS")
SWEEP_CHUNK = 100  # jobs per transaction


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
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="flag sweep")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def sweep_once(self, now: datetime | None = None) -> int:
        """One round over every lab; returns jobs visited (0 if another process holds it)."""
        now = now or utcnow()
        learn = self._last_learned is None or now - self._last_learned >= self.learn_every
        visited = 0
        with self._exclusive() as ours:
            if not ours:
                return 0
            with self.context.db.read_session() as session:
                labs = {
                    lab_id: open_job_ids(session, lab_id)
                    for lab_id in session.scalars(select(Lab.id))
                }
            for lab_id, job_ids in labs.items():
                if learn:
                    with self.context.session() as session:
                        learn_stage_times(session, lab_id, now)
                for start in range(0, len(job_ids), self.chunk):
                    with self.context.session() as session:
                        visited += sweep(session, lab_id, now, job_ids[start : start + self.chunk])
            if self._last_purged is None or now - self._last_purged >= self.purge_every:
                retention = self.context.settings.personal_data_retention_days
                if purged := purge_expired(self.context.session, now, retention):
                    log.info("purged the personal data of %d job(s) past retention", purged)
                self._last_purged = now
        if learn:
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
                visited = await asyncio.to_thread(self.sweep_once)
                log.debug("swept %d open jobs", visited)
            except Exception:
                log.exception("flag sweep failed; next round in %s", self.interval)
            await asyncio.sleep(self.interval.total_seconds())
