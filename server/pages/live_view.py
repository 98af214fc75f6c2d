"""How an open page follows the live bus without blocking it.

The bus calls `PageFeed._on_update` synchronously for every update; it only notes the job
and schedules one flush. The flush runs after the bus has handed out the whole batch, so a
burst of updates (an event raises a flag, moves the ETA and changes the job) costs one read
per job. Pages that see the same jobs share that read (`shared_read`), so fifty open store
pages of one store cost one database read per change, not fifty.
"""

import asyncio
from collections.abc import Callable, Hashable
from datetime import datetime
from typing import Any, TypeVar

from nicegui import background_tasks, ui
from sqlalchemy.orm import Session

from server.context import ServerContext
from server.domain.auth import PersonPrincipal
from server.domain.views import scope_key
from server.models import utcnow
from server.schemas import JobUpdateOut

T = TypeVar("T")
_in_flight: dict[Hashable, asyncio.Future[Any]] = {}


async def shared_read(key: Hashable, read: Callable[[], T]) -> T:
    """Run `read` in a worker thread; callers asking with an equal key meanwhile share it."""
    future = _in_flight.get(key)
    if future is None:
        future = asyncio.ensure_future(asyncio.to_thread(read))
        _in_flight[key] = future
        future.add_done_callback(lambda _: _in_flight.pop(key, None))
    return await future


JobRead = Callable[[Session, PersonPrincipal, int, datetime], Any]


class PageFeed:
    """Subscribes the current page to the bus until its client is deleted.

    `apply(job_id, value)` gets `read_job(session, principal, job_id, now)` for each job an
    update touched; `after_batch(kinds)` runs once per flush with the update kinds it saw.
    """

    def __init__(
        self,
        context: ServerContext,
        principal: PersonPrincipal,
        read_job: JobRead,
        apply: Callable[[int, Any], None],
        *,
        only_job: int | None = None,
        after_batch: Callable[[set[str]], Any] | None = None,
    ) -> None:
        self.context = context
        self.principal = principal
        self.read_job = read_job
        self.apply = apply
        self.only_job = only_job
        self.after_batch = after_batch
        self._dirty: set[int] = set()
        self._kinds: set[str] = set()
        self._flushing = False
        subscription = context.bus.subscribe(self._on_update, store_id=scope_key(principal)[1])
        ui.context.client.on_delete(lambda: context.bus.unsubscribe(subscription))

    def _on_update(self, update: JobUpdateOut) -> None:
        if self.only_job not in (None, update.job_id):
            return
        self._dirty.add(update.job_id)
        self._kinds.add(update.kind)
        if not self._flushing:
            self._flushing = True
            background_tasks.create(self._flush(), name="page feed flush")

    async def read(self, name: str, read: Callable[[Session], Any]) -> Any:
        """A scoped read shared with every page of the same scope at the same feed position."""

        def run() -> Any:
            with self.context.db.read_session() as session:
                return read(session)

        return await shared_read(
            (name, scope_key(self.principal), self.context.bus.last_seen_id), run
        )

    async def _flush(self) -> None:
        try:
            await asyncio.sleep(0)  # let the bus hand out the rest of its batch first
            while self._dirty:
                job_ids, self._dirty = sorted(self._dirty), set()
                kinds, self._kinds = self._kinds, set()
                for job_id in job_ids:
                    value = await self.read(
                        f"{self.read_job.__qualname__}:{job_id}",
                        lambda session, job_id=job_id: self.read_job(
                            session, self.principal, job_id, utcnow()
                        ),
                    )
                    self.apply(job_id, value)
                if self.after_batch is not None:
                    await self.after_batch(kinds)
        finally:
            self._flushing = False
