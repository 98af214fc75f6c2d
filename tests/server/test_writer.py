"""Group commit (server/writer.py): requests queued together commit together, each request's
work stands or falls alone, a failed commit fails the whole group, and nothing is lost."""

import contextvars
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from server.db import Database
from server.models import Lab
from server.writer import GroupLimits, GroupWriter


def _labs(db: Database) -> list[str]:
    with db.session() as session:
        return sorted(session.scalars(select(Lab.code)))


def _add_lab(code: str) -> Callable[[Session], str]:
    def work(session: Session) -> str:
        session.add(Lab(code=code, name=code))
        session.flush()
        return code

    return work


@pytest.fixture
def writer(db: Database) -> Iterator[GroupWriter]:
    group_writer = GroupWriter(db.session)
    yield group_writer
    group_writer.stop()


def _held(writer: GroupWriter) -> tuple[threading.Event, Future[str]]:
    """A first request that keeps the writer busy until the event is set."""
    release = threading.Event()

    def hold(session: Session) -> str:
        release.wait(timeout=10)
        return _add_lab("FIRST")(session)

    return release, writer.submit(hold)


def test_requests_queued_while_the_writer_works_commit_as_one_group(
    db: Database, writer: GroupWriter
) -> None:
    release, first = _held(writer)
    time.sleep(0.1)  # the writer is inside the first group
    queued = [writer.submit(_add_lab(f"L{index}")) for index in range(10)]
    release.set()
    assert first.result(timeout=10) == "FIRST"
    assert [future.result(timeout=10) for future in queued] == [f"L{i}" for i in range(10)]
    assert writer.groups_committed == 2
    assert _labs(db) == sorted(["FIRST", *(f"L{i}" for i in range(10))])


def test_a_failing_request_undoes_only_its_own_work(db: Database, writer: GroupWriter) -> None:
    def fails(session: Session) -> str:
        session.add(Lab(code="HALF", name="written, then refused"))
        session.flush()
        raise ValueError("refused")

    release, first = _held(writer)
    time.sleep(0.1)
    before, failing, after = (writer.submit(w) for w in (_add_lab("A"), fails, _add_lab("B")))
    release.set()
    assert (before.result(timeout=10), after.result(timeout=10)) == ("A", "B")
    with pytest.raises(ValueError, match="refused"):
        failing.result(timeout=10)
    assert first.result(timeout=10) == "FIRST"
    assert _labs(db) == ["A", "B", "FIRST"]


def test_a_failed_commit_fails_every_request_of_the_group_and_stores_none(db: Database) -> None:
    @contextmanager
    def commit_fails() -> Iterator[Session]:
        with db.session() as session:
            yield session
            raise OSError("disk full")  # before the commit: the session rolls back

    writer = GroupWriter(commit_fails)
    try:
        futures = [writer.submit(_add_lab(f"L{index}")) for index in range(5)]
        for future in futures:
            with pytest.raises(OSError, match="disk full"):
                future.result(timeout=10)
    finally:
        writer.stop()
    assert _labs(db) == []


def test_a_deadlock_victim_group_runs_again_and_stores_each_request_once(db: Database) -> None:
    attempts = []

    class Deadlock(Exception):
        sqlstate = "40P01"

    @contextmanager
    def first_attempt_deadlocks() -> Iterator[Session]:
        with db.session() as session:
            yield session
            attempts.append(1)
            if len(attempts) == 1:
                raise OperationalError("COMMIT", {}, Deadlock())

    writer = GroupWriter(first_attempt_deadlocks)
    try:
        assert writer.run(_add_lab("ONCE")) == "ONCE"
    finally:
        writer.stop()
    assert len(attempts) == 2
    assert _labs(db) == ["ONCE"]


def test_gathered_requests_share_one_call_and_run_alone_if_it_fails(
    db: Database, writer: GroupWriter
) -> None:
    calls: list[list[str]] = []

    def add_labs(session: Session, codes: list[str]) -> list[str | Exception]:
        """Refuses NO alone (its answer is the error); BAD breaks the whole call."""
        calls.append(codes)
        if "BAD" in codes:
            session.add(Lab(code="HALF", name="written, then the call failed"))
            session.flush()
            raise RuntimeError("broken")
        for code in codes:
            if code != "NO":
                session.add(Lab(code=code, name=code))
        session.flush()
        return [ValueError("refused") if code == "NO" else code for code in codes]

    release, first = _held(writer)
    time.sleep(0.1)  # the writer is inside the first group
    codes = ["G1", "NO", "G2", "BAD", "G3"]
    queued = [writer.submit_gathered(add_labs, code) for code in codes]
    release.set()
    assert first.result(timeout=10) == "FIRST"
    outcomes = [future.exception(timeout=10) or future.result() for future in queued]
    assert [str(outcome) for outcome in outcomes] == ["G1", "refused", "G2", "broken", "G3"]
    assert calls == [codes, *([code] for code in codes)]
    assert writer.groups_committed == 2
    assert _labs(db) == ["FIRST", "G1", "G2", "G3"]


def test_work_sees_the_context_of_the_request_that_submitted_it(writer: GroupWriter) -> None:
    caller: contextvars.ContextVar[str] = contextvars.ContextVar("caller", default="nobody")
    caller.set("station QC-1")
    assert writer.run(lambda _session: caller.get()) == "station QC-1"


def test_a_group_past_its_time_leaves_the_rest_to_the_next_group(db: Database) -> None:
    writer = GroupWriter(db.session, GroupLimits(max_requests=64, max_seconds=0.05))
    try:
        release, first = _held(writer)
        time.sleep(0.1)

        def slow(code: str) -> Callable[[Session], str]:
            def work(session: Session) -> str:
                time.sleep(0.03)
                return _add_lab(code)(session)

            return work

        queued = [writer.submit(slow(f"L{index}")) for index in range(6)]
        release.set()
        assert [future.result(timeout=10) for future in queued] == [f"L{i}" for i in range(6)]
        assert first.result(timeout=10) == "FIRST"
        assert writer.groups_committed >= 3  # 6 × 30 ms of work does not fit one 50 ms group
    finally:
        writer.stop()
    assert len(_labs(db)) == 7


def test_stop_answers_what_is_queued_and_refuses_what_comes_after(
    db: Database, writer: GroupWriter
) -> None:
    release, first = _held(writer)
    time.sleep(0.1)
    queued = writer.submit(_add_lab("QUEUED"))
    stopping = threading.Thread(target=writer.stop)
    stopping.start()
    time.sleep(0.1)
    release.set()
    stopping.join(timeout=10)
    assert (first.result(timeout=1), queued.result(timeout=1)) == ("FIRST", "QUEUED")
    with pytest.raises(RuntimeError, match="stopped"):
        writer.submit(_add_lab("LATE"))
    assert _labs(db) == ["FIRST", "QUEUED"]


def test_an_idle_writer_lets_its_thread_go_and_starts_another_when_needed(
    writer: GroupWriter,
) -> None:
    writer.IDLE_SECONDS = 0.05
    first = writer.run(lambda _session: threading.current_thread())
    first.join(timeout=5)
    assert not first.is_alive()
    second = writer.run(lambda _session: threading.current_thread())
    assert second is not first and second.name == "group-writer"
