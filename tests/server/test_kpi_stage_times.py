"""The KPIs' stage times (server.domain.kpis.KpiStageTime) and their counts per value
bucket and lab-local day, ISO week and month (KpiStageBucket): what the event ingest, the bulk
seed and the backfills of migrations 0025 and 0030 record equals the definition worked out
from the events themselves, and the counts those of the times recorded, so the dashboards that
read them stay exact — over whole months, weeks and days, across a DST change of the lab's
zone, less a cancelled job."""

import math
import sqlite3
from collections import Counter
from contextlib import closing
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.db import Database
from server.domain import changes, kpis
from server.domain.bulk_seed import bulk_seed
from server.domain.events import ingest_event
from server.domain.kpis import Dimension, KpiQuery
from server.domain.lab_time import lab_zone
from server.models import (
    EventAction,
    Job,
    KpiDimension,
    KpiJobDay,
    KpiSpan,
    KpiStageBucket,
    KpiStageTime,
    Lab,
    Person,
    Stage,
    StageEvent,
    Station,
    utcnow,
)
from tests.server.conftest import Floor, MigratedLab, span_firsts
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


def _bucket(seconds: float | None) -> int:
    """The value bucket of a duration by its definition (kpis.value_bucket): the whole second
    below 64 s, then 64 per doubling."""
    if seconds is None:
        return kpis.UNKNOWN_BUCKET
    if seconds < 0:
        return kpis.NEGATIVE_BUCKET
    if seconds < 64:
        return int(seconds)
    octave = math.frexp(seconds)[1] - 1  # 2**octave <= seconds < 2**(octave + 1)
    return 64 * (octave - 6) + int(seconds / 2 ** (octave - 6))


def _counted(session: Session) -> Counter[tuple[Any, ...]]:
    """KpiStageBucket's rows by their definition, from the recorded times: per lab-local day
    and month, the lab's stages, stations and operators (cycles) and each store's stages."""
    zone = ZoneInfo(session.scalars(select(Lab.timezone)).one())
    expected: Counter[tuple[Any, ...]] = Counter()
    for row in session.scalars(select(KpiStageTime)):
        assert row.bucket == _bucket(row.seconds), row.event_id
        keys = [
            (0, KpiDimension.stage, row.stage_id),
            (row.store_id, KpiDimension.stage, row.stage_id),
        ]
        if row.action == EventAction.complete:
            keys.append((0, KpiDimension.station, row.station_id))
            if row.operator_id is not None:
                keys.append((0, KpiDimension.operator, row.operator_id))
        day = row.at.astimezone(zone).date()
        for store, dimension, key in keys:
            for span, first in span_firsts(day):
                expected[
                    row.lab_id, store, row.action, dimension, span, first, key, row.bucket
                ] += 1
    return expected


def _buckets(session: Session) -> Counter[tuple[Any, ...]]:
    return Counter(
        {
            (
                row.lab_id,
                row.store_id,
                row.action,
                row.dimension,
                row.span,
                row.day,
                row.key_id,
                row.bucket,
            ): row.count
            for row in session.scalars(select(KpiStageBucket))
        }
    )


def _offset(moment: datetime, zone: ZoneInfo) -> timedelta | None:
    return moment.astimezone(zone).utcoffset()


def after_a_dst_change(zone: ZoneInfo, now: datetime) -> datetime:
    """Ten days after the zone's latest change of UTC offset at least ten days before now: a
    history up to then crosses it (the SPC tests' too)."""
    day = now - timedelta(days=10)
    while (
        day.astimezone(zone).utcoffset() == (day - timedelta(days=1)).astimezone(zone).utcoffset()
    ):
        day -= timedelta(days=1)
    return day + timedelta(days=10)


def _history(session: Session, lab_id: int, jobs: int) -> tuple[datetime, date]:
    """Bulk history of 65 days (a whole calendar month at least) ending ten days after a DST
    change of the lab's zone; its end, and its first local day."""
    zone = lab_zone(session, lab_id)
    assert zone.key != "UTC"  # the example lab's, with DST
    as_of = after_a_dst_change(zone, utcnow())
    history = timedelta(days=65)
    bulk_seed(session, lab_id, jobs, as_of=as_of, history=history)
    return as_of, (as_of - history).astimezone(zone).date()


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


def test_the_bucket_counts_are_those_of_the_recorded_times(
    lab: LabFixture, floor: Floor, db: Database
) -> None:
    """Bulk history across a DST change and over whole months (the bulk path's counts), then
    ingested events (the ingest's), one of them sent again, and a job cancelled (still
    counted: the dashboards take its times back out as they read)."""
    with db.session() as session:
        lab_id = session.scalars(select(Lab.id)).one()
        _history(session, lab_id, 120)
    with db.read_session() as session:
        assert _buckets(session) == _counted(session)
    _send_a_few(lab, floor, utcnow() - timedelta(hours=1))
    lab.make_job("K4")
    resent = floor.event("EDGE-1", "K4", EventAction.start)
    for status in ("stored", "duplicate"):
        with db.session() as session:
            assert ingest_event(session, floor.station("EDGE-1"), resent).status == status
    with db.read_session() as session:
        counted = _counted(session)
        assert _buckets(session) == counted
    assert {key[4] for key in counted} == set(KpiSpan)  # days, weeks and months
    assert {key[3] for key in counted} == set(KpiDimension)


def _nearest_rank(values: list[float], percent: int) -> float:
    return sorted(values)[(len(values) * percent + 99) // 100 - 1]


def test_medians_and_p90s_are_the_nearest_ranks_of_every_duration(
    lab: LabFixture, floor: Floor, db: Database
) -> None:
    """By stage, station and operator, over a bulk history's 65 days across a DST change (and
    today's ingested events, a cancelled job's left out): the dashboards' figures, counted in
    buckets, are those of every duration ordered, in periods read from month, week and day
    rows."""
    now = utcnow()
    with db.session() as session:
        lab_id = session.scalars(select(Lab.id)).one()
        _as_of, first_day = _history(session, lab_id, 150)
    _send_a_few(lab, floor, now - timedelta(hours=1))
    manager = lab.manager()
    with db.read_session() as session:
        zone = lab_zone(session, lab_id)
        today = now.astimezone(zone).date()
        queries = [
            # From the history's second day: its whole months, and weeks and days around.
            KpiQuery(period="custom", start=first_day + timedelta(days=1), end=today),
            KpiQuery(
                period="custom",
                start=first_day + timedelta(days=3),
                end=first_day + timedelta(days=22),
            ),
            KpiQuery(period="week", start=first_day + timedelta(days=30)),
        ]
        periods = [kpis.resolve_period(query, zone, now) for query in queries]
        spans = [kpis._spans(period.first_day, period.last_day) for period in periods]
        assert {span for rows in spans for span, _first, _following in rows} == set(KpiSpan)
        assert [span for span, _first, _following in spans[-1]] == [KpiSpan.week]
        scope = kpis.resolve_scope(session, manager, None)
        cancelled = set(session.scalars(select(Job.id).where(Job.status == "cancelled")))
        assert cancelled  # K3, whose start is left out
        defined = _defined(session).values()
        stage_ids = dict(session.execute(select(Stage.code, Stage.id)).all())
        station_ids = dict(session.execute(select(Station.name, Station.id)).all())
        person_ids = dict(session.execute(select(Person.name, Person.id)).all())
        for period in periods:
            durations: dict[tuple[str, Any], list[float]] = {}
            for job_id, stage_id, station_id, operator_id, action, at, seconds in defined:
                if job_id in cancelled or not period.start <= at < period.end:
                    continue
                if action == EventAction.start:
                    durations.setdefault(("queue", stage_id), []).append(seconds)
                else:
                    for key in (
                        ("cycle", stage_id),
                        ("station", station_id),
                        ("person", operator_id),
                    ):
                        durations.setdefault(key, []).append(seconds)
            checked = 0
            for row in kpis.by_stage(session, scope, period):
                for kind, times in (("cycle", row.cycle), ("queue", row.queue)):
                    if (kind, stage_ids[row.stage_code]) in durations:
                        _same(times, durations[kind, stage_ids[row.stage_code]])
                        checked += 1
            for dimension, kind, ids in (
                (Dimension.station, "station", station_ids),
                (Dimension.operator, "person", person_ids),
            ):
                for floor_row in kpis.by_floor(session, scope, period, dimension):
                    _same(floor_row.cycle, durations[kind, ids[floor_row.key]])
                    checked += 1
            assert checked > 20, period


def _same(times: kpis.Percentiles, values: list[float]) -> None:
    assert times.samples == len(values)
    for percent, minutes in ((50, times.median_minutes), (90, times.p90_minutes)):
        assert minutes == pytest.approx(_nearest_rank(values, percent) / 60, abs=1e-4)


def test_a_resent_event_records_no_second_time(lab: LabFixture, floor: Floor, db: Database) -> None:
    lab.make_job("K1")
    event = floor.event("EDGE-1", "K1", EventAction.start)
    for status in ("stored", "duplicate"):
        with db.session() as session:
            assert ingest_event(session, floor.station("EDGE-1"), event).status == status
    with db.read_session() as session:
        assert len(_recorded(session)) == 1
        # The lab's and the store's stage, each a day, a week and a month: counted once.
        assert _buckets(session) == _counted(session)
        assert sum(_buckets(session).values()) == 6


def test_medians_sharing_a_bucket_with_another_key_are_each_keys_own(
    lab: LabFixture, floor: Floor, db: Database
) -> None:
    """Two edgers' cycle times in the same buckets (8 s wide at 10 minutes): each one's
    median and p90 is its own duration, not the other's of the same rank in the bucket. Jobs
    cancelled since count nowhere: one edged in that bucket too, one the only fitted."""
    cycles = {"EDGE-1": [600.0, 605.0, 610.0], "EDGE-2": [603.0, 607.0, 2000.0]}
    assert _bucket(600.0) == _bucket(603.0) == _bucket(605.0) == _bucket(606.0)
    at = utcnow() - timedelta(hours=3)
    jobs = [
        (f"J{station[-1]}{index}", [(station, cycle)])
        for station in cycles
        for index, cycle in enumerate(cycles[station])
    ]
    jobs.append(("C1", [("EDGE-1", 606.0), ("FIT-1", 300.0)]))  # cancelled after
    for offset, (number, steps) in enumerate(jobs):
        lab.make_job(number)
        started = at + timedelta(minutes=offset)
        for station, cycle in steps:
            assert floor.send(station, number, EventAction.start, started) == "stored"
            started += timedelta(seconds=cycle)
            assert floor.send(station, number, EventAction.complete, started) == "stored"
    manager = lab.manager()
    with db.session() as session:
        c1 = session.scalars(select(Job.id).where(Job.job_number == "C1")).one()
        changes.cancel_job(session, manager, c1, "not wanted")
    with db.read_session() as session:
        zone = lab_zone(session, session.scalars(select(Lab.id)).one())
        today = utcnow().astimezone(zone).date()
        query = KpiQuery(period="custom", start=today - timedelta(days=1), end=today)
        period = kpis.resolve_period(query, zone, utcnow())
        scope = kpis.resolve_scope(session, manager, None)
        rows = {row.key: row for row in kpis.by_floor(session, scope, period, Dimension.station)}
    assert rows.keys() == cycles.keys()
    for station, seconds in cycles.items():
        assert rows[station].completions == 3
        assert rows[station].cycle.median_minutes == pytest.approx(seconds[1] / 60, abs=1e-4)
        assert rows[station].cycle.p90_minutes == pytest.approx(seconds[2] / 60, abs=1e-4)


@pytest.mark.parametrize("before", ["0024-1", "0024"])
def test_migrations_0025_and_0030_backfill_what_the_ingest_records_and_counts(
    migrated_lab: MigratedLab, before: str
) -> None:
    """From a database before 0024 (no times recorded) or at it (times, no buckets): 0025
    records, 0030 counts."""
    lab = LabFixture(migrated_lab.context)
    _send_a_few(lab, Floor(lab), utcnow() - timedelta(hours=1))
    with lab.context.db.read_session() as session:
        ingested, counted = _recorded(session), _buckets(session)
        assert counted == _counted(session)
    migrated_lab.downgrade_and_upgrade(before)
    with lab.context.db.read_session() as session:
        assert _recorded(session) == ingested
        _assert_same(ingested, _defined(session))
        assert _buckets(session) == counted


def test_migration_0030_goes_down_to_the_day_and_month_rows(migrated_lab: MigratedLab) -> None:
    """Both count tables back as 0029 wrote them: day and month rows, the week rows dropped."""
    lab = LabFixture(migrated_lab.context)
    with lab.context.db.session() as session:
        bulk_seed(session, migrated_lab.lab_id, 40, as_of=utcnow(), history=timedelta(days=10))
    _send_a_few(lab, Floor(lab), utcnow() - timedelta(hours=1))
    with lab.context.db.read_session() as session:
        counted = _buckets(session)
        job_counts = session.execute(select(KpiJobDay)).scalars().all()
        kept_jobs = {
            (row.dimension, row.span == KpiSpan.month, row.day, row.store_id, row.key): (
                row.finished,
                row.inspected,
            )
            for row in job_counts
            if row.span != KpiSpan.week
        }
    assert {key[4] for key in counted} == set(KpiSpan)
    assert kept_jobs
    migrated_lab.downgrade("0029")
    with closing(sqlite3.connect(migrated_lab.url.removeprefix("sqlite:///"))) as connection:
        buckets = connection.execute(
            "SELECT lab_id, store_id, action, dimension, whole_month, day, key_id, bucket, count"
            " FROM kpi_stage_bucket"
        ).fetchall()
        job_days = connection.execute(
            "SELECT dimension, whole_month, day, store_id, key, finished, inspected"
            " FROM kpi_job_day"
        ).fetchall()
    spans = {False: KpiSpan.day, True: KpiSpan.month}
    assert {
        (
            lab_id,
            store,
            action,
            dimension,
            spans[bool(month)],
            date.fromisoformat(day),
            key,
            bucket,
        ): count
        for lab_id, store, action, dimension, month, day, key, bucket, count in buckets
    } == {key: count for key, count in counted.items() if key[4] != KpiSpan.week}
    assert {
        (dimension, bool(month), date.fromisoformat(day), store, key): (finished, inspected)
        for dimension, month, day, store, key, finished, inspected in job_days
    } == kept_jobs
