"""The live bus: changes reach subscribers after commit, per store, and across processes."""

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import event, select, text

from server.background import SWEEP_LOCK, Sweeper
from server.context import ServerContext
from server.db import Database
from server.domain.events import ingest_event
from server.domain.jobs import create_job
from server.live import LiveBus
from server.models import EventAction, JobFlag, LensDesign, utcnow
from server.schemas import JobCreate, JobUpdateOut, PrescriptionEyeIn
from tests.server.conftest import Floor, Lab


class Inbox:
    def __init__(self) -> None:
        self.updates: list[JobUpdateOut] = []
        self._arrived = asyncio.Event()

    def __call__(self, update: JobUpdateOut) -> None:
        self.updates.append(update)
        self._arrived.set()

    async def wait_for(
        self, predicate: Callable[[JobUpdateOut], bool], timeout: float
    ) -> list[JobUpdateOut]:
        async with asyncio.timeout(timeout):
            while not any(predicate(update) for update in self.updates):
                self._arrived.clear()
                await self._arrived.wait()
        return self.updates


@pytest.fixture
async def bus(lab: Lab) -> AsyncIterator[LiveBus]:
    # Polling is slow here, so a delivery within the test's timeouts comes from a wake.
    lab.context.bus.poll_seconds = 60
    await lab.context.bus.start()
    yield lab.context.bus
    await lab.context.bus.stop()


async def test_a_committed_event_reaches_its_store_and_not_the_other(
    lab: Lab, floor: Floor, bus: LiveBus
) -> None:
    north, south, everyone = Inbox(), Inbox(), Inbox()
    bus.subscribe(north, store_id=1)
    bus.subscribe(south, store_id=2)
    bus.subscribe(everyone)
    await asyncio.to_thread(lab.make_job, "J1", store="NORTH")
    with lab.context.session() as session:  # as the API does: wakes the bus after commit
        ingest_event(
            session, floor.station("EDGE-1"), floor.event("EDGE-1", "J1", EventAction.start)
        )
    await north.wait_for(lambda u: u.detail.get("status") == "in_progress", timeout=5)
    await everyone.wait_for(lambda u: u.detail.get("status") == "in_progress", timeout=5)
    assert south.updates == []
    assert {u.store_id for u in north.updates} == {1}
    ids = [u.id for u in everyone.updates]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


async def test_a_change_committed_without_a_wake_is_caught_up_by_the_poll(
    lab: Lab, floor: Floor, bus: LiveBus
) -> None:
    inbox = Inbox()
    bus.subscribe(inbox)
    bus.poll_seconds = 0.2
    bus.wake()  # let the reader notice the shorter poll
    lab.make_job("J1")  # commits through db.session(): no wake
    updates = await inbox.wait_for(lambda u: u.kind == "job_changed", timeout=5)
    assert updates[0].detail["stage"] == "edging"


async def test_a_failing_subscriber_does_not_starve_the_others(lab: Lab, bus: LiveBus) -> None:
    def broken(update: JobUpdateOut) -> None:
        raise RuntimeError("page gone")

    inbox = Inbox()
    bus.subscribe(broken)
    bus.subscribe(inbox)
    with lab.context.session() as session:
        create_job(session, lab.manager(), _order("J1"))
    await inbox.wait_for(lambda u: u.kind == "job_changed", timeout=5)
    assert bus.subscriber_count == 2


def _order(job_number: str) -> JobCreate:
    now = utcnow()
    return JobCreate(
        job_number=job_number,
        store_code="NORTH",
        patient_ref="P-1",
        ordered_at=now,
        promised_at=now + timedelta(days=1),
        lens_design=LensDesign.SV,
        lens_material="CR-39",
        lens_index=1.5,
        surfaced=False,
        right=PrescriptionEyeIn(sph=-1.0),
    )


async def test_another_server_process_hears_of_changes_through_postgres(
    lab: Lab, floor: Floor
) -> None:
    if lab.context.db.dialect != "postgresql":
        pytest.skip("LISTEN/NOTIFY is the PostgreSQL path; SQLite runs one server process")
    other_process = ServerContext(lab.context.settings)
    other_process.bus.poll_seconds = 60  # only a NOTIFY can deliver within the timeout
    inbox = Inbox()
    other_process.bus.subscribe(inbox)
    await other_process.bus.start()
    try:
        await asyncio.sleep(0.3)  # LISTEN established
        await asyncio.to_thread(lab.make_job, "J1")
        updates = await inbox.wait_for(lambda u: u.kind == "job_changed", timeout=5)
        assert updates[0].detail["stage"] == "edging"
    finally:
        await other_process.bus.stop()
        other_process.db.dispose()


def test_the_sweep_raises_time_flags_and_learns(lab: Lab, floor: Floor) -> None:
    lab.make_job("J1", promised_in=timedelta(minutes=10))
    sweeper = Sweeper(lab.context)
    assert sweeper.sweep_once(utcnow() + timedelta(hours=1)) == 1
    with lab.context.db.session() as session:
        kinds = set(session.scalars(select(JobFlag.kind)))
    assert "late" in kinds


def test_the_sweep_commits_every_chunk_of_jobs(lab: Lab) -> None:
    # One transaction over all open jobs held SQLite's write lock for seconds.
    for number in range(5):
        lab.make_job(f"J{number}")
    commits: list[object] = []

    def count(connection: object) -> None:
        commits.append(connection)

    def commits_of_a_round(chunk: int) -> int:
        commits.clear()
        event.listen(lab.context.db.engine, "commit", count)
        try:
            assert Sweeper(lab.context, chunk=chunk).sweep_once() == 5
        finally:
            event.remove(lab.context.db.engine, "commit", count)
        return len(commits)

    # Jobs 1-2, 3-4 and 5 commit apart: two commits more than all five at once.
    assert commits_of_a_round(2) == commits_of_a_round(100) + 2


def test_only_one_process_sweeps_at_a_time_on_postgres(lab: Lab) -> None:
    if lab.context.db.dialect != "postgresql":
        pytest.skip("the advisory lock is the PostgreSQL path")
    lab.make_job("J1")
    with lab.context.db.session() as holder:
        holder.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SWEEP_LOCK})
        assert Sweeper(lab.context).sweep_once() == 0
    assert Sweeper(lab.context).sweep_once() == 1
    # The round let go of its lock: another process (its own engine) gets it.
    other_process = Database(lab.context.settings.resolved_database_url)
    try:
        with other_process.session() as session:
            lock = text("SELECT pg_try_advisory_xact_lock(:key)")
            assert session.scalar(lock, {"key": SWEEP_LOCK}) is True
    finally:
        other_process.dispose()


async def test_events_through_the_api_wake_the_bus(
    lab: Lab, floor: Floor, bus: LiveBus, client: httpx.AsyncClient
) -> None:
    inbox = Inbox()
    bus.subscribe(inbox)
    lab.make_job("J1")
    event = floor.event("EDGE-1", "J1", EventAction.start)
    response = await client.post(
        "/api/events",
        content=event.model_dump_json(),
        headers={**lab.station_headers("EDGE-1"), "content-type": "application/json"},
    )
    assert response.status_code == 201, response.text
    await inbox.wait_for(lambda u: u.detail.get("status") == "in_progress", timeout=5)
