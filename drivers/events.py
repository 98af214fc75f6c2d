"""A minimal event primitive that devices emit (code read, reading received, connected, lost)."""

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, ParamSpec

P = ParamSpec("P")
log = logging.getLogger(__name__)


class Event(Generic[P]):
    """Subscribers register callables; `emit` calls each, awaiting coroutines on the running loop.

    A failing subscriber is logged and does not stop the others: one broken UI handler must
    not make a scanner drop a code for the outbox.
    """

    def __init__(self) -> None:
        self._callbacks: list[Callable[P, Awaitable[None] | None]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def register(self, callback: Callable[P, Awaitable[None] | None]) -> None:
        if callback not in self._callbacks:
            self._callbacks.append(callback)

    def unregister(self, callback: Callable[P, Awaitable[None] | None]) -> None:
        if callback in self._callbacks:
            self._callbacks.remove(callback)

    def emit(self, *args: P.args, **kwargs: P.kwargs) -> None:
        for callback in list(self._callbacks):
            try:
                result = callback(*args, **kwargs)
            except Exception:
                log.exception("event subscriber %r failed", callback)
                continue
            if inspect.isawaitable(result):
                task = asyncio.ensure_future(result)
                self._tasks.add(task)
                task.add_done_callback(self._finish)

    def _finish(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("event subscriber failed", exc_info=task.exception())
