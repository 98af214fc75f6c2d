"""The KPIs' stage times (server.domain.kpis.KpiStageTime): what the event ingest, the bulk
seed and migration 0024's backfill record equals the definition worked out from the events
themselves, so the dashboards that read the table stay exact."""

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from server import migrate
from server.context import ServerContext
from server.db import Database
from server.domain import changes, kpis
from server.domain.bulk_seed import bulk_seed
from server.domain.events import ingest_event
from server.domain.kpis import Dimension, KpiQuery
from server.domain.lab_time import lab_zone
from server.domain.seed import seed_demo
from server.labconfig import LabConfig
from server.models import (
    EventAction,
    Job,
    KpiStageTime,
    Lab,
    Person,
    Stage,
    StageEvent,
    Station,
    utcnow,
)
from server.settings import Settings
from tests.server.conftest import Floor
from tests.server.conftest import Lab as LabFixture

ARRIVALS = {EventAction.complete, EventAction.rework, EventAction.breakage}


def _defined(session: Session) -> dict[int, tuple[Any, ...]]:
    """Per start or completion, by the definition (kpis module docstring), event by event:
    a start waited since its job's latest complete, rework or breakage before it (else the
    order); a completion took since the latest start at its stage before it (else None)."""
    ordered_at = {job_id: at for job_id, at in session.execute(select(Job.id, Job.ordered_at))}
    expected: dict[int, tuple[Any, ...]] = {}
    earlier: dict[int, list[StageEvent]] = {}
    for event in session.scalars(select(StageEvent).order_by(StageEvent.id)):
        before = earlier.setdefault(event.job_id, [])
        since: datetime | None = None
        if event.action == EventAction.start:
            arrivals = [e.corrected_at for e in before if e.action in ARRIVALS]
            since = max(arrivals, default=ordered_at[event.job_id])
        elif event.action == EventAction.complete:
            starts = [
                e.corrected_at
                for e in before
                if e.action == EventAction.start and e.stage_id == event.stage_id
            ]
            since = max(starts, default=None)
        if event.action in (EventAction.start, EventAction.complete):
            seconds = None if since is None else (event.corrected_at - since).total_seconds()
            expected[event.id] = (
                event.job_id,
                event.stage_id,
                event.station_id,
                event.operator_id,
                event.action,
                event.corrected_at,
                seconds,
            )
        before.append(event)
    return expected


def _recorded(session: Session) -> dict[int, tuple[Any, ...]]:
    return {
        row.event_id: (
            row.job_id,
            row.stage_id,
            row.station_id,
            row.operator_id,
            row.action,
            row.at,
            row.seconds,
        )
        for row in session.scalars(select(KpiStageTime))
    }


def _assert_same(
    recorded: dict[int, tuple[Any, ...]], expected: dict[int, tuple[Any, ...]]
) -> None:
    assert recorded.keys() == expected.keys()
    for event_id, row in expected.items():
        *fields, seconds = row
        *got, got_seconds = recorded[event_id]
        assert got == fields, event_id
        # SQLite's julianday keeps each time to the millisecond, as the KPIs always read it.
        assert got_seconds == (None if seconds is None else pytest.approx(seconds, abs=2e-3))


def _send_a_few(lab: LabFixture, floor: Floor, at: datetime) -> None:
    """Ingested events: a job along edging and fitting, one broken and restarted (its queue
    runs from the breakage), and one cancelled mid-route (still recorded, left out by the
    dashboards as they read)."""
    for number in ("K1", "K2", "K3"):
        lab.make_job(number)
    steps = [
        ("EDGE-1", "K1", EventAction.start),
        ("EDGE-1", "K1", EventAction.complete),
        ("FIT-1", "K1", EventAction.start),
        ("FIT-1", "K1", EventAction.complete),
        ("EDGE-1", "K2", EventAction.start),
        ("EDGE-1", "K2", EventAction.breakage),
        ("EDGE-1", "K2", EventAction.start),
        ("EDGE-1", "K2", EventAction.complete),
        ("EDGE-1", "K3", EventAction.start),
    ]
    for minutes, (station, number, action) in enumerate(steps):
        fields = {"reason_code": "B-CHIP"} if action == EventAction.breakage else {}
        sent = floor.send(station, number, action, at + timedelta(minutes=7 * minutes), **fields)
        assert sent == "stored"
    manager = lab.manager()
    with lab.context.db.session() as session:
        k3 = session.scalars(select(Job.id).where(Job.job_number == "K3")).one()
        changes.cancel_job(session, manager, k3, "patient moved away")


def test_bulk_history_and_ingested_events_record_their_defined_stage_times(
    lab: LabFixture, floor: Floor, db: Database
) -> None:
    now = utcnow()
    with db.session() as session:
        lab_id = session.scalars(select(Lab.id)).one()
        bulk_seed(session, lab_id, 120, as_of=now - timedelta(hours=2), history=timedelta(days=2))
    _send_a_few(lab, floor, now - timedelta(hours=1))
    with db.read_session() as session:
        recorded, expected = _recorded(session), _defined(session)
    assert len(expected) > 500  # the bulk history's, and the ingested ones
    assert any(row[-1] is not None and row[-1] > 0 for row in expected.values())
    _assert_same(recorded, expected)


def _nearest_rank(values: list[float], percent: int) -> float:
    return sorted(values)[(len(values) * percent + 99) // 100 - 1]


def test_medians_and_p90s_are_the_nearest_ranks_of_every_duration(
    lab: LabFixture, floor: Floor, db: Database
) -> None:
    """By stage, station and operator, over a bulk history's two days: the dashboards'
    figures, read from the table in buckets, are those of every duration ordered."""
    now = utcnow()
    with db.session() as session:
        lab_id = session.scalars(select(Lab.id)).one()
        bulk_seed(session, lab_id, 150, as_of=now - timedelta(hours=2), history=timedelta(days=2))
    _send_a_few(lab, floor, now - timedelta(hours=1))
    manager = lab.manager()
    with db.read_session() as session:
        zone = lab_zone(session, lab_id)
        today = now.astimezone(zone).date()
        query = KpiQuery(period="custom", start=today - timedelta(days=3), end=today)
        period = kpis.resolve_period(query, zone, now)
        scope = kpis.resolve_scope(session, manager, None)
        cancelled = set(session.scalars(select(Job.id).where(Job.status == "cancelled")))
        assert cancelled  # K3, whose start is left out
        durations: dict[tuple[str, Any], list[float]] = {}
        for job_id, stage_id, station_id, operator_id, action, _at, seconds in _defined(
            session
        ).values():
            if job_id in cancelled:
                continue
            if action == EventAction.start:
                durations.setdefault(("queue", stage_id), []).append(seconds)
            else:
                for key in (("cycle", stage_id), ("station", station_id), ("person", operator_id)):
                    durations.setdefault(key, []).append(seconds)
        stages = {row.stage_code: row for row in kpis.by_stage(session, scope, period)}
        stage_ids = dict(session.execute(select(Stage.code, Stage.id)).all())
        stations = kpis.by_floor(session, scope, period, Dimension.station)
        station_ids = dict(session.execute(select(Station.name, Station.id)).all())
        operators = kpis.by_floor(session, scope, period, Dimension.operator)
        person_ids = dict(session.execute(select(Person.name, Person.id)).all())

    def same(times: kpis.Percentiles, values: list[float]) -> None:
        assert times.samples == len(values)
        for percent, minutes in ((50, times.median_minutes), (90, times.p90_minutes)):
            assert minutes == pytest.approx(_nearest_rank(values, percent) / 60, abs=1e-4)

    checked = 0
    for code, row in stages.items():
        for kind, times in (("cycle", row.cycle), ("queue", row.queue)):
            if (kind, stage_ids[code]) in durations:
                same(times, durations[kind, stage_ids[code]])
                checked += 1
    for rows, kind, ids in ((stations, "station", station_ids), (operators, "person", person_ids)):
        for row in rows:
            same(row.cycle, durations[kind, ids[row.key]])
            checked += 1
    assert checked > 20


def test_a_resent_event_records_no_second_time(lab: LabFixture, floor: Floor, db: Database) -> None:
    lab.make_job("K1")
    event = floor.event("EDGE-1", "K1", EventAction.start)
    for status in ("stored", "duplicate"):
        with db.session() as session:
            assert ingest_event(session, floor.station("EDGE-1"), event).status == status
    with db.read_session() as session:
        assert len(_recorded(session)) == 1


def test_migration_0024_backfills_what_the_ingest_records(
    tmp_path: Path, lab_config: LabConfig
) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    migrate.upgrade(url)
    context = ServerContext(Settings(database_url=url, data_dir=tmp_path, secret_key="x"))
    try:
        with context.db.session() as session:
            seed_demo(session, lab_config, job_count=0)
        lab = LabFixture(context)
        _send_a_few(lab, Floor(lab), utcnow() - timedelta(hours=1))
        with context.db.read_session() as session:
            ingested = _recorded(session)
        context.db.dispose()
        migrate.downgrade(url, "0024-1")  # to the revision before 0024
        migrate.upgrade(url)
        with context.db.read_session() as session:
            assert _recorded(session) == ingested
            _assert_same(ingested, _defined(session))
    finally:
        context.db.dispose()
