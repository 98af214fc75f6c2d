"""Issue #11, short form: stations post while one kind of fault strikes a few times; then
everything drains and the checks of `tests/reliability/check.py` must find nothing — no scan
lost or duplicated, none both stored and rejected, outboxes agreeing with the server, each
station's order kept, every job's state equal to its replayed history.

`benchmarks/reliability.py` runs the same scenarios with more rounds and prints the figures.
"""

import pytest

from tests.reliability.harness import Backend, Plan, Report, RunScenario

pytestmark = pytest.mark.reliability


def _clean(report: Report) -> None:
    assert not report.violations, report.describe()


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def test_server_sigkilled_and_restarted(run: RunScenario, backend: Backend) -> None:
    _clean(run("server-kill", Plan(backend=backend, rounds=2)))


@pytest.mark.postgres
@pytest.mark.alone  # the other tests' PostgreSQL restarts too
def test_postgres_restarted(run: RunScenario) -> None:
    _clean(run("postgres-restart", Plan(backend="postgresql", rounds=2)))


def test_link_cut_by_proxy(run: RunScenario) -> None:
    # Four rounds: lost replies, reset, refused, black-holed.
    _clean(run("link-cut", Plan(rounds=4, round_seconds=2.0)))


def test_station_sigkilled_mid_commit(run: RunScenario) -> None:
    _clean(run("station-kill", Plan(rounds=3, round_seconds=2.0)))


def test_outbox_disk_full(run: RunScenario) -> None:
    # The checks include: scans were refused while the disk was full, and the station that
    # had them drained in its first process, after the space was freed.
    _clean(run("disk-full", Plan(rounds=1)))
