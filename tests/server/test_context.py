"""The server context's transactions: a PostgreSQL deadlock victim runs again."""

import threading
from collections import Counter
from collections.abc import Callable

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.context import TRANSACTION_ATTEMPTS, ServerContext
from server.models import Job
from tests.server.conftest import Lab


def test_a_deadlock_victim_runs_again_and_both_transactions_commit(
    context: ServerContext, lab: Lab
) -> None:
    """Two transactions lock two jobs in opposite orders (as two stations' batches can):
    PostgreSQL aborts one; it runs again once the other has committed."""
    if context.db.dialect != "postgresql":
        pytest.skip("SQLite lets one writer in at a time: it cannot deadlock")
    first, second = lab.make_job("J1"), lab.make_job("J2")
    both_hold_one = threading.Barrier(2, timeout=10)
    attempts: Counter[str] = Counter()
    errors: list[BaseException] = []

    def lock_in_order(name: str, one: int, other: int) -> Callable[[Session], None]:
        def work(session: Session) -> None:
            attempts[name] += 1
            session.execute(select(Job.id).where(Job.id == one).with_for_update())
            if attempts[name] == 1:
                both_hold_one.wait()
            session.execute(select(Job.id).where(Job.id == other).with_for_update())
            session.get_one(Job, one).rework_count += 1

        return work

    def run(work: Callable[[Session], None]) -> None:
        try:
            context.run_in_transaction(work)
        except BaseException as error:  # reported by the test thread below
            errors.append(error)

    threads = [
        threading.Thread(target=run, args=(lock_in_order("ab", first, second),)),
        threading.Thread(target=run, args=(lock_in_order("ba", second, first),)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    # The winner ran once, the victim again: once, or (seen once in CI on a loaded machine,
    # cause not found) twice, within the attempts the context allows.
    winner, victim = sorted(attempts.values())
    assert winner == 1 and 2 <= victim <= TRANSACTION_ATTEMPTS, attempts
    assert (lab.job(first).rework_count, lab.job(second).rework_count) == (1, 1)
