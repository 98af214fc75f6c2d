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
ItemT = TypeVar("ItemT")
# Work shared by requests: their items in, one result (or the exception to raise) per item out.
Gathered = Callable[[Session, list[ItemT]], list[T | Exception]]
GROUP_ATTEMPTS = 3  # a PostgreSQL deadlock victim runs again whole (it stored nothing)


@dataclass
class _Request(Generic[T]):
    work: Callable[[Session], T] | None  # None: a gathered request
    context: contextvars.Context  # the request's: who acts, from where (the audit trail)
    future: Future[T] = field(default_factory=Future)
    gathered: Gathered[Any, T] | None = None
    item: Any = None


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
        return self._enqueue(_Request(work, contextvars.copy_context()))

    def submit_gathered(self, gathered: Gathered[ItemT, T], item: ItemT) -> Future[T]:
        """`item` joins the requests of the same `gathered` work queued next to it: one call
        over all their items (it runs in the first one's context: such work must not depend
        on who asked, e.g. for the audit trail)."""
        return self._enqueue(
            _Request(None, contextvars.copy_context(), gathered=gathered, item=item)
        )

    def _enqueue(self, request: _Request[T]) -> Future[T]:
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

    async def run_gathered_async(self, gathered: Gathered[ItemT, T], item: ItemT) -> T:
        return await asyncio.wrap_future(self.submit_gathered(gathered, item))

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
            while len(outcomes) < len(group):
                if outcomes and time.monotonic() >= stop_at:
                    break
                outcomes += self._run_together(session, self._next_run(group, len(outcomes)))
        return outcomes

    @staticmethod
    def _next_run(group: list[_Request[Any]], start: int) -> list[_Request[Any]]:
        """The request at `start` and, if gathered, those of the same work right after it."""
        run = [group[start]]
        gathered = group[start].gathered
        while gathered is not None and start + len(run) < len(group):
            if group[start + len(run)].gathered is not gathered:
                break
            run.append(group[start + len(run)])
        return run

    def _run_together(self, session: Session, run: list[_Request[Any]]) -> list[tuple[bool, Any]]:
        """The run's work in one savepoint; if it fails, each request again alone."""
        first = run[0]
        try:
            with session.begin_nested():
                if first.work is not None:
                    return [(True, first.context.run(first.work, session))]
                assert first.gathered is not None
                results = first.context.run(first.gathered, session, [r.item for r in run])
            assert len(results) == len(run)
            return [(not isinstance(result, Exception), result) for result in results]
        except DBAPIError as error:
            if is_retryable(error):
                raise  # PostgreSQL aborted the whole transaction
            failure: Exception = error
        except Exception as error:
            failure = error
        if len(run) == 1:
            return [(False, failure)]
        log.warning("gathered work of %d requests failed (%s); each alone", len(run), failure)
        return [outcome for request in run for outcome in self._run_together(session, [request])]

    @staticmethod
    def _fail(group: list[_Request[Any]], error: BaseException) -> None:
        for request in group:
            if not request.future.done():
                request.future.set_exception(error)
