"""Bulk history (server.domain.bulk_seed): rows as if every event had been ingested, which the
app's own reads and writes then work on."""

import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

import server.domain.bulk_seed as bulk_seed_module
from core.contract import SignAction
from core.lifecycle import Progress, Refusal, apply
from core.lifecycle import Route as LifecycleRoute
from server.crypto import FERNET_PREFIX
from server.db import Database
from server.domain import views
from server.domain.bulk_seed import bulk_seed
from server.domain.events import last_sequence, sequence_gaps
from server.domain.jobs import job_timeline, list_jobs
from server.models import (
    Base,
    Breakage,
    EventAction,
    Inspection,
    InspectionCheck,
    Job,
    JobStatus,
    Lab,
    Person,
    ReasonCode,
    StageEvent,
    Station,
    StationSignIn,
    utcnow,
)
from tests.server.conftest import Floor
from tests.server.conftest import Lab as LabFixture

JOBS = 300


@pytest.fixture
def seeded(lab: LabFixture) -> dict[str, int]:
    """300 jobs over three days: most shipped, a day's worth still on the floor."""
    with lab.context.db.session() as session:
        lab_id = session.scalar(select(Lab.id))
        assert lab_id is not None
        return bulk_seed(session, lab_id, JOBS, as_of=utcnow(), history=timedelta(days=3))


def _replayed(session: Session, job: Job, events: list[StageEvent]) -> tuple[Progress, int, int]:
    """The job's state and counts by the shared lifecycle, from its stored events."""
    returns = {
        reason.code: reason.return_stage.code if reason.return_stage else None
        for reason in session.scalars(select(ReasonCode))
    }
    inspected = set(session.scalars(select(Inspection.event_id)))
    stages = tuple(step.stage.code for step in job.route.steps)
    route = LifecycleRoute(
        job.job_number,
        stages,
        frozenset(step.stage.code for step in job.route.steps if step.stage.inspection),
    )
    progress, reworks, breakages = Progress(stages[0], JobStatus.queued), 0, 0
    for event in events:
        outcome = apply(
            progress,
            event.action,
            route=route,
            here=event.stage.code,
            reason=event.reason_code,
            reason_return_stage=returns.get(event.reason_code or ""),
            inspected=event.id in inspected,
        )
        assert not isinstance(outcome, Refusal), (job.job_number, event.action, outcome)
        progress = outcome.progress
        reworks += outcome.reworks
        breakages += outcome.breakages
    return progress, reworks, breakages


def test_every_job_is_where_its_events_left_it(db: Database, seeded: dict[str, int]) -> None:
    assert seeded["job"] == JOBS
    with db.read_session() as session:
        events_of: dict[int, list[StageEvent]] = defaultdict(list)
        for event in session.scalars(select(StageEvent).order_by(StageEvent.id)):
            events_of[event.job_id].append(event)
        jobs = session.scalars(select(Job)).all()
        statuses = {job.status for job in jobs}
        assert {JobStatus.completed, JobStatus.queued, JobStatus.in_progress} <= statuses
        assert sum(len(events) for events in events_of.values()) / JOBS > 8
        for job in jobs:
            events = events_of[job.id]
            progress, reworks, breakages = _replayed(session, job, events)
            stage = job.current_stage.code if job.current_stage else None
            assert (stage, job.status, job.status_before_hold, job.is_active) == (
                progress.stage,
                progress.status,
                progress.status_before_hold,
                progress.active,
            ), job.job_number
            assert (job.rework_count, job.breakage_count) == (reworks, breakages)
            if events:
                assert job.state_changed_at == events[-1].corrected_at
            assert all(event.corrected_at >= job.ordered_at for event in events)
        assert sum(job.rework_count for job in jobs) > 0


def test_numbers_uuids_and_sequences_are_as_stations_would_leave_them(
    db: Database, seeded: dict[str, int]
) -> None:
    with db.read_session() as session:
        count = session.scalar(select(func.count(StageEvent.id)))
        assert count == seeded["stage_event"]
        assert session.scalar(select(func.count(func.distinct(StageEvent.event_uuid)))) == count
        assert session.scalar(select(func.count(func.distinct(Job.job_number)))) == JOBS
        shared_trays = session.execute(
            select(Job.tray_number)
            .where(Job.is_active)
            .group_by(Job.tray_number)
            .having(func.count() > 1)
        ).all()
        assert shared_trays == []
        for station_id in session.scalars(select(Station.id)):
            assert sequence_gaps(session, station_id) == []
            times = session.scalars(
                select(StageEvent.corrected_at)
                .where(StageEvent.station_id == station_id)
                .order_by(StageEvent.station_sequence)
            ).all()
            assert times == sorted(times)  # numbered in the order they happened
        by_id = session.scalars(select(StageEvent.corrected_at).order_by(StageEvent.id)).all()
        assert by_id == sorted(by_id)


def test_qc_and_breakages_are_recorded_with_their_events(
    db: Database, seeded: dict[str, int]
) -> None:
    with db.read_session() as session:
        at_qc = session.scalar(
            text(
                "SELECT count(*) FROM stage_event JOIN stage ON stage.id = stage_event.stage_id "
                "WHERE stage.inspection AND stage_event.action IN ('complete', 'rework')"
            )
        )
        assert at_qc and session.scalar(select(func.count(Inspection.id))) == at_qc
        unchecked = session.scalar(
            select(func.count(Inspection.id)).where(
                ~select(InspectionCheck.id)
                .where(InspectionCheck.inspection_id == Inspection.id)
                .exists()
            )
        )
        assert unchecked == 0
        attempts = session.execute(
            select(Inspection.job_id, func.count(), func.max(Inspection.attempt)).group_by(
                Inspection.job_id
            )
        ).all()
        assert all(count == highest for _, count, highest in attempts)
        failed = session.scalar(select(func.count()).where(~Inspection.passed))
        reworks = session.scalar(select(func.sum(Job.rework_count)))
        assert failed == reworks
        breakages = session.scalar(
            select(func.count()).where(StageEvent.action == EventAction.breakage)
        )
        assert session.scalar(select(func.count(Breakage.id))) == breakages


def test_patient_data_is_encrypted_and_the_app_reads_it(
    lab: LabFixture, seeded: dict[str, int]
) -> None:
    manager = lab.manager()
    with lab.context.db.read_session() as session:
        stored = session.execute(text("SELECT patient_ref, id FROM job LIMIT 1")).one()
        assert stored.patient_ref.startswith(FERNET_PREFIX)
        job = session.get_one(Job, stored.id)
        assert job.patient_ref and job.patient_ref.startswith("P-")
        assert {eye.eye for eye in job.prescription} == {"R", "L"}
        shipped = session.scalar(select(Job).where(Job.status == JobStatus.completed).limit(1))
        assert shipped is not None
        detail = views.job_detail(session, manager, shipped.id, utcnow())
        assert detail is not None and detail.qc and detail.qc[-1].passed
        timeline = job_timeline(session, manager, shipped.id)
        assert timeline[-1].action == EventAction.complete
        page = list_jobs(session, manager, active=True, limit=5)
        assert page.total == session.scalar(select(func.count()).where(Job.is_active))
        assert len(page.jobs) == min(5, page.total)
        board = views.wip_board(session, manager, utcnow())
        assert sum(column.count for column in board.wip.values()) == page.total
        assert any(column.cards for column in board.wip.values())


def test_a_station_carries_on_with_an_active_job(
    lab: LabFixture, floor: Floor, seeded: dict[str, int]
) -> None:
    """A job queued at edging is scanned by its tray, started and completed through
    `ingest_event`, numbered after the bulk history without a gap."""
    with lab.context.db.read_session() as session:
        job = session.scalar(
            select(Job)
            .join(Job.current_stage)
            .where(Job.is_active, Job.status == JobStatus.queued)
            .where(text("stage.code = 'edging'"))
            .limit(1)
        )
        assert job is not None and job.tray_number
        station = session.scalar(select(Station).where(Station.stage_id == job.current_stage_id))
        assert station is not None
        sequence = last_sequence(session, station.id)
    for offset, action in enumerate((EventAction.start, EventAction.complete), start=1):
        status = floor.send(station.name, job.tray_number, action, sequence=sequence + offset)
        assert status == "stored"
    moved = lab.job(job.id)
    assert moved.current_stage and moved.current_stage.code == "fitting"
    assert moved.status == JobStatus.queued
    with lab.context.db.read_session() as session:
        assert sequence_gaps(session, station.id) == []


def _foreign_keys(session: Session) -> list[tuple[str, str, str]]:
    return [
        (str(table), str(name), str(definition))
        for table, name, definition in session.execute(
            text(
                "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) "
                "FROM pg_constraint WHERE contype = 'f' ORDER BY 1, 2"
            )
        )
    ]


def test_foreign_keys_are_back_as_they_were_and_hold(db: Database, lab: LabFixture) -> None:
    """PostgreSQL's foreign keys are dropped for the load and added again: the same ones,
    checked over what was written (an orphan row would have failed the seed)."""
    if db.dialect != "postgresql":
        pytest.skip("SQLite checks its foreign keys per row; nothing is dropped there")
    with db.session() as session:
        before = _foreign_keys(session)
    with db.session() as session:
        lab_id = session.scalar(select(Lab.id))
        assert lab_id is not None
        bulk_seed(session, lab_id, 40, as_of=utcnow(), history=timedelta(days=1))
    with db.session() as session:
        assert _foreign_keys(session) == before
        assert any(table == "stage_event" for table, _name, _definition in before)
        orphan = session.scalar(
            select(func.count())
            .select_from(StageEvent)
            .where(StageEvent.job_id.not_in(select(Job.id)))
        )
        assert orphan == 0


def test_a_failed_write_fails_the_seed_and_leaves_nothing(
    db: Database, lab: LabFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write fails on the writing thread: the seed raises it and its transaction stores
    nothing (nor, on PostgreSQL, loses a foreign key)."""
    real_write = bulk_seed_module._TableWriter.write

    def failing_write(writer: bulk_seed_module._TableWriter, rows: list[dict[str, Any]]) -> None:
        if writer.table.name == "inspection_check" and rows:
            raise RuntimeError("disk full")
        real_write(writer, rows)

    monkeypatch.setattr(bulk_seed_module._TableWriter, "write", failing_write)
    with db.session() as session:
        jobs_before = session.scalar(select(func.count()).select_from(Job))
        keys_before = _foreign_keys(session) if db.dialect == "postgresql" else []
    with pytest.raises(RuntimeError, match="disk full"), db.session() as session:
        lab_id = session.scalar(select(Lab.id))
        assert lab_id is not None
        bulk_seed(session, lab_id, 40, as_of=utcnow(), history=timedelta(days=1))
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Job)) == jobs_before
        assert session.scalar(select(func.count()).select_from(StageEvent)) == 0
        if db.dialect == "postgresql":
            assert _foreign_keys(session) == keys_before


def test_a_whole_second_is_stored_as_the_app_stores_it(db: Database, lab: LabFixture) -> None:
    """A time on the second is found by the app's own comparison with it: SQLite compares the
    stored text, and the driver's '…08:00:00' is not the app's '…08:00:00.000000'."""
    at = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    with db.session() as session:
        station_id = session.scalars(select(Station.id)).first()
        person_id = session.scalars(select(Person.id)).first()
        writer = bulk_seed_module._TableWriter(
            session.connection(), Base.metadata.tables[StationSignIn.__tablename__]
        )
        writer.add(
            {
                "id": (session.scalar(select(func.max(StationSignIn.id))) or 0) + 1,
                "event_uuid": uuid.uuid4(),
                "station_id": station_id,
                "station_sequence": 1,
                "person_id": person_id,
                "action": SignAction.sign_in,
                "device_created_at": at,
                "server_received_at": at,
            }
        )
        writer.write(writer.take())
        at_that_time = select(func.count()).where(StationSignIn.device_created_at == at)
        assert session.scalar(at_that_time) == 1
