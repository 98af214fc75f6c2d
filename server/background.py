"""Periodic work of a server process: the flag sweep and learning stage times.

With several server processes on PostgreSQL, an advisory lock lets one of them sweep at a
time; the others skip that round.
"""

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta

from sqlalchemy import select, text

from server.context import ServerContext
from server.domain.flags import learn_stage_times, sweep
from server.models import Lab, utcnow

log = logging.getLogger(__name__)

SWEEP_LOCK = 0x4C5453  # advisory lock key ("LTS")


class Sweeper:
    def __init__(
        self,
        context: ServerContext,
        interval: timedelta = timedelta(minutes=1),
        learn_every: timedelta = timedelta(minutes=10),
    ) -> None:
        self.context = context
        self.interval = interval
        self.learn_every = learn_every
        self._last_learned: datetime | None = None
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
        with self.context.session() as session:
            if self.context.db.dialect == "postgresql" and not session.scalar(
                text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": SWEEP_LOCK}
            ):
                return 0
            for lab_id in session.scalars(select(Lab.id)).all():
                if learn:
                    learn_stage_times(session, lab_id, now)
                visited += sweep(session, lab_id, now)
        if learn:
            self._last_learned = now
        return visited

    async def _run(self) -> None:
        while True:
            try:
                visited = await asyncio.to_thread(self.sweep_once)
                log.debug("swept %d open jobs", visited)
            except Exception:
                log.exception("flag sweep failed; next round in %s", self.interval)
            await asyncio.sleep(self.interval.total_seconds())
