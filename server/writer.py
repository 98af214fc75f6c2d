"""Group commit: one thread writes the work that concurrent requests have queued, together.

A commit costs an fsync (SQLite WAL with synchronous=FULL, PostgreSQL's WAL flush) and, on
SQLite, the database's only write lock. Taken one request at a time, concurrent stations
queue on that lock and each pays its own fsync. The writer instead takes every request
waiting when it is free, runs each one's work in a savepoint of its own (one request's
refusal or failure undoes its work alone), commits once and then answers them all: each
request is answered only when its group is durable, and a failed commit fails every request
of the group, which stored nothing.
"""

import asyncio
import contextvars
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from server.db import is_retryable

log = logging.getLogger(__name__)
T = TypeVar("T")
GROUP_ATTEMPTS = 3  # a PostgreSQL deadlock victim runs again whole (it stored nothing)


@dataclass
class _Request(Generic[T]):
    work: Callable[[Session], T]
    context: contextvars.Context  # the request's: who acts, from where (the audit trail)
    future: Future[T] = field(default_factory=Future)


@dataclass(frozen=True)
class GroupLimits:
    """How much one group may take: `max_requests` requests, and no new one after
    `max_seconds` of work, so a group's commit follows its first work closely."""

    max_requests: int = 64
    max_seconds: float = 0.25


class GroupWriter:
    """Runs `work(session)` for many requests in one transaction per group.

    `transaction` makes the session of a group and commits it when its block ends (rolling
    back if it raises). Work must be repeatable: a group aborted as a deadlock victim runs
    again from its first request. The thread starts with the first request and ends after
    IDLE_SECONDS without one, so a server context that never writes holds no thread.
    """

    IDLE_SECONDS = 30.0

    def __init__(
        self,
        transaction: Callable[[], AbstractContextManager[Session]],
        limits: GroupLimits | None = None,
    ) -> None:
        self._transaction = transaction
        self._limits = limits or GroupLimits()
        self._queue: queue.SimpleQueue[_Request[Any] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()  # guards _thread and _stopped against submit and idling
        self._thread: threading.Thread | None = None
        self._stopped = False
        self.groups_committed = 0  # for tests and benchmarks: commits that served requests

    def submit(self, work: Callable[[Session], T]) -> Future[T]:
        request: _Request[T] = _Request(work, contextvars.copy_context())
        with self._lock:
            if self._stopped:
                raise RuntimeError("the writer is stopped")
            self._queue.put(request)
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name="group-writer")
                self._thread.daemon = True
                self._thread.start()
        return request.future

    def run(self, work: Callable[[Session], T]) -> T:
        """`work` in the next group; its result or its exception, once the group committed."""
        return self.submit(work).result()

    async def run_async(self, work: Callable[[Session], T]) -> T:
        return await asyncio.wrap_future(self.submit(work))

    def stop(self) -> None:
        """Answers what is queued, then ends the thread; later submissions are refused."""
        with self._lock:
            self._stopped = True
            thread = self._thread
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout=30)

    def _serve(self) -> None:
        stopping = False  # after stop(): answer what is queued, then end
        while True:
            try:
                first = self._queue.get(block=not stopping, timeout=self.IDLE_SECONDS)
            except queue.Empty:
                if stopping or self._retire():
                    return
                continue
            if first is None:
                stopping = True
                continue
            group = [first]
            while len(group) < self._limits.max_requests:
                try:
                    request = self._queue.get_nowait()
                except queue.Empty:
                    break
                if request is None:
                    stopping = True
                else:
                    group.append(request)
            self._write(group)

    def _retire(self) -> bool:
        """Ends the idle thread, unless a request came in meanwhile."""
        with self._lock:
            if self._queue.empty():
                self._thread = None
                return True
        return False

    def _write(self, group: list[_Request[Any]]) -> None:
        for attempt in range(1, GROUP_ATTEMPTS + 1):
            try:
                outcomes = self._run_group(group)
            except DBAPIError as error:
                if attempt < GROUP_ATTEMPTS and is_retryable(error):
                    log.info("group aborted (%s); attempt %d", error.orig, attempt + 1)
                    continue
                self._fail(group, error)
                return
            except BaseException as error:  # the commit failed: nothing of the group is stored
                self._fail(group, error)
                return
            self.groups_committed += 1
            for request, (ok, value) in zip(group, outcomes, strict=False):
                if ok:
                    request.future.set_result(value)
                else:
                    request.future.set_exception(value)
            # Those left out when the group ran out of time rejoin the queue at the back, in
            # their order (SimpleQueue has no "put first"): they waited one group, and every
            # group takes one request at least, so none starves.
            for request in group[len(outcomes) :]:
                self._queue.put(request)
            return

    def _run_group(self, group: list[_Request[Any]]) -> list[tuple[bool, Any]]:
        """(ok, result or error) for the requests taken, a prefix of `group`."""
        outcomes: list[tuple[bool, Any]] = []
        stop_at = time.monotonic() + self._limits.max_seconds
        with self._transaction() as session:
            for request in group:
                if outcomes and time.monotonic() >= stop_at:
                    break
                try:
                    with session.begin_nested():
                        outcomes.append((True, request.context.run(request.work, session)))
                except DBAPIError as error:
                    if is_retryable(error):
                        raise  # PostgreSQL aborted the whole transaction
                    outcomes.append((False, error))
                except Exception as error:
                    outcomes.append((False, error))
        return outcomes

    @staticmethod
    def _fail(group: list[_Request[Any]], error: BaseException) -> None:
        for request in group:
            if not request.future.done():
                request.future.set_exception(error)
