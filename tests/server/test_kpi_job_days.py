"""The KPIs' job counts per store, lab-local day, week and month (server.domain.kpis, KpiJobDay):
kept by the write sessions' hooks through a seeded random run of changes to a bulk history
across a DST change — jobs finished, reopened and finished again, cancelled, their promise,
design, material and store edited after they finished or were first inspected, holds,
breakages and their reversal, an UPDATE statement, savepoints rolled back (after a read of
the counts in them, or a failed flush), reads in the transaction — they stay what the jobs
define, and the dashboards read from them what the direct queries over the jobs give;
migration 0030's backfill counts what the hooks kept."""

import random
import uuid
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import case, func, literal, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from server.db import Database
from server.domain import kpis
from server.domain.bulk_seed import bulk_seed
from server.domain.kpis import Dimension, KpiQuery, Ratio
from server.domain.lab_time import lab_zone
from server.models import (
    EventAction,
    Inspection,
    Job,
    JobStatus,
    KpiJobDay,
    KpiJobDimension,
    Lab,
    LensDesign,
    StageEvent,
    Store,
    utcnow,
)
from tests.server.conftest import Lab as LabFixture
from tests.server.conftest import MigratedLab, span_firsts
from tests.server.test_kpi_stage_times import _history

Key = tuple[Any, ...]


JOB_COLUMNS = (
    Job.id,
    Job.lab_id,
    Job.store_id,
    Job.lens_design,
    Job.lens_material,
    Job.state_changed_at,
    Job.promised_at,
    Job.rework_count,
    Job.breakage_count,
)


def _defined(session: Session) -> dict[Key, list[int]]:
    """KpiJobDay's rows by their definition (kpis module docstring), job by job."""
    zone = ZoneInfo(session.scalars(select(Lab.timezone)).one())
    held = set(session.scalars(select(StageEvent.job_id).where(StageEvent.action == "hold")))
    expected: dict[Key, list[int]] = {}

    def add(job: Any, at: datetime, more: list[tuple[str, str]], counts: list[int]) -> None:
        day = at.astimezone(zone).date()
        keys = [("job", ""), ("design", job.lens_design.value), ("material", job.lens_material)]
        for dimension, key in keys + more:
            for span, first in span_firsts(day):
                row = (job.lab_id, dimension, span, first, job.store_id, key)
                total = expected.setdefault(row, [0] * len(kpis.JOB_COUNTS))
                for index, count in enumerate(counts):
                    total[index] += count

    for job in session.execute(select(*JOB_COLUMNS).where(Job.status == JobStatus.completed)):
        late = job.state_changed_at > job.promised_at
        cause = (
            "breakage"
            if job.breakage_count
            else "rework"
            if job.rework_count
            else "hold"
            if job.id in held
            else "flow"
        )
        by_cause = [int(late and cause == name) for name in ("breakage", "rework", "hold", "flow")]
        counts = [1, int(not late), int(job.rework_count > 0), *by_cause, 0, 0]
        add(job, job.state_changed_at, [], counts)
    firsts = session.execute(
        select(
            *JOB_COLUMNS,
            Inspection.station_id,
            Inspection.operator_id,
            Inspection.inspected_at,
            Inspection.passed,
        )
        .join(Job, Job.id == Inspection.job_id)
        .where(Inspection.attempt == 1, Job.status != JobStatus.cancelled)
    )
    for first in firsts:
        keys = [("station", str(first.station_id))]
        if first.operator_id is not None:
            keys.append(("operator", str(first.operator_id)))
        add(first, first.inspected_at, keys, [0] * 7 + [1, int(first.passed)])
    return expected


def _kept(session: Session) -> dict[Key, list[int]]:
    """KpiJobDay's rows that count something (rows gone back to 0 stay, counting nothing)."""
    kept = {}
    key = (
        KpiJobDay.lab_id,
        KpiJobDay.dimension,
        KpiJobDay.span,
        KpiJobDay.day,
        KpiJobDay.store_id,
        KpiJobDay.key,
    )
    counted = [getattr(KpiJobDay, name) for name in kpis.JOB_COUNTS]
    for row in session.execute(select(*key, *counted)):
        counts = list(row[len(key) :])
        assert min(counts) >= 0
        if any(counts):
            kept[tuple(row[: len(key)])] = counts
    return kept


# The figures as the dashboards worked them out before KpiJobDay, straight from the jobs.


def _direct_jobs(scope: kpis.Scope, period: kpis.Period, column: Any) -> Any:
    return (
        select(
            column,
            func.count(),
            func.sum(case((~kpis._is_late(), 1), else_=0)),
            func.sum(case((Job.rework_count > 0, 1), else_=0)),
        )
        .join(Store, Store.id == Job.store_id)
        .where(*scope.jobs(), *kpis._finished_in(period))
        .group_by(column)
    )


def _direct_inspections(scope: kpis.Scope, period: kpis.Period, column: Any) -> Any:
    return (
        kpis._first_inspections(scope, period)
        .with_only_columns(column, func.count(), func.sum(case((Inspection.passed, 1), else_=0)))
        .join(Store, Store.id == Job.store_id)
        .group_by(column)
    )


def _direct_groups(
    session: Session, scope: kpis.Scope, period: kpis.Period, column: Any
) -> dict[str, tuple[int, Ratio, Ratio, Ratio]]:
    finished = {
        str(key): (count, on_time, reworked)
        for key, count, on_time, reworked in session.execute(_direct_jobs(scope, period, column))
    }
    inspected = {
        str(key): (count, passed)
        for key, count, passed in session.execute(_direct_inspections(scope, period, column))
    }
    groups = {}
    for key in finished.keys() | inspected.keys():
        count, on_time, reworked = finished.get(key, (0, 0, 0))
        first, passed = inspected.get(key, (0, 0))
        groups[key] = (
            count,
            Ratio(on_time, count),
            Ratio(reworked, count),
            Ratio(passed, first),
        )
    return groups


def _direct_headline(
    session: Session, scope: kpis.Scope, period: kpis.Period
) -> tuple[int, Ratio, Ratio, Ratio]:
    """Finished, on time, reworked and first pass, as the dashboards' headline gives them."""
    return _direct_groups(session, scope, period, literal("")).get(
        "", (0, Ratio(0, 0), Ratio(0, 0), Ratio(0, 0))
    )


def _direct_late(session: Session, scope: kpis.Scope, period: kpis.Period) -> dict[str, int]:
    late = (
        select(kpis._late_cause().label("cause"))
        .where(*scope.jobs(), *kpis._finished_in(period), kpis._is_late())
        .subquery()
    )
    counts = dict(session.execute(select(late.c.cause, func.count()).group_by(late.c.cause)).all())
    return {cause.value: counts.get(cause.value, 0) for cause in kpis.LateCause}


def _check_figures(session: Session, periods: list[kpis.Period]) -> int:
    """Every period in the lab's and a store's scope: the dashboards' job figures equal the
    direct queries'. How many figures were not 0."""
    lab_id = session.scalars(select(Lab.id)).one()
    store_id, code = session.execute(select(Store.id, Store.code).order_by(Store.id).limit(1)).one()
    scopes = [kpis.Scope(lab_id, None, None), kpis.Scope(lab_id, store_id, code)]
    counted = 0
    for period in periods:
        for scope in scopes:
            direct = _direct_headline(session, scope, period)
            headline = kpis.headline(session, scope, period)
            assert (headline.finished, headline.on_time) == direct[:2]
            assert (headline.rework, headline.first_pass) == direct[2:]
            counted += direct[0] + direct[3].denominator
            late = {row.key: row.count for row in kpis.late_by_cause(session, scope, period)}
            assert late == _direct_late(session, scope, period)
            for dimension, column in (
                (Dimension.store, Store.code),
                (Dimension.design, Job.lens_design),
                (Dimension.material, Job.lens_material),
            ):
                rows = kpis.by_job_dimension(session, scope, period, dimension)
                groups = {
                    row.key: (row.finished, row.on_time, row.rework, row.first_pass) for row in rows
                }
                assert groups == _direct_groups(session, scope, period, column), dimension
            if scope.store_id is None:  # (a store's trend is its rows as the lab's are)
                _check_trend(session, scope, period)
                for dimension, key in (
                    (Dimension.station, Inspection.station_id),
                    (Dimension.operator, Inspection.operator_id),
                ):
                    floor = {
                        row.key: row.first_pass
                        for row in kpis.by_floor(session, scope, period, dimension)
                        if row.first_pass.denominator
                    }
                    names = kpis.FLOOR_DIMENSIONS[dimension]
                    model = names.class_
                    direct = {
                        name: Ratio(passed, count)
                        for name, count, passed in session.execute(
                            _direct_inspections(scope, period, names)
                            .join(model, model.id == key)
                            .group_by(names)
                        )
                    }
                    assert floor == direct, dimension
    return counted


def _check_trend(session: Session, scope: kpis.Scope, period: kpis.Period) -> None:
    trend = kpis.trend(session, scope, period)
    firsts = [first for first, _start in period.buckets()]
    lasts = [first - timedelta(days=1) for first in firsts[1:]] + [period.last_day]
    for point, first, last in zip(trend, firsts, lasts, strict=True):
        bucket = kpis._period(period.kind, first, last, period.zone)
        finished, on_time, _reworked, first_pass = _direct_headline(session, scope, bucket)
        assert point.first_day == first
        assert (point.finished, point.on_time, point.first_pass) == (
            finished,
            on_time,
            first_pass,
        )


def _periods(zone: ZoneInfo, first_day: date, dst: date, now: datetime) -> list[kpis.Period]:
    """A whole month (month rows), a custom run over months (month rows and day rows; charted
    per week if long), the week and the days around the DST change."""
    month = _next_month(first_day)
    queries = [
        KpiQuery(period="month", start=month),
        KpiQuery(period="custom", start=first_day + timedelta(days=3), end=now.date()),
        KpiQuery(period="week", start=dst),
        *(KpiQuery(period="day", start=dst + timedelta(days=n)) for n in range(-1, 1)),
    ]
    return [kpis.resolve_period(query, zone, now) for query in queries]


def _next_month(day: date) -> date:
    return (day.replace(day=1) + timedelta(days=32)).replace(day=1)


Change = Callable[[Session, Job, random.Random, datetime], None]


def _finish(session: Session, job: Job, rng: random.Random, at: datetime) -> None:
    job.status, job.is_active, job.state_changed_at = JobStatus.completed, False, at


def _late_for_the_flow(session: Session, job: Job, rng: random.Random, at: datetime) -> None:
    _finish(session, job, rng, at)
    job.promised_at, job.rework_count, job.breakage_count = at - timedelta(hours=1), 0, 0


def _reopen(session: Session, job: Job, rng: random.Random, at: datetime) -> None:
    job.status, job.is_active, job.state_changed_at = JobStatus.queued, True, at


def _cancel(session: Session, job: Job, rng: random.Random, at: datetime) -> None:
    job.status, job.is_active, job.state_changed_at = JobStatus.cancelled, False, at


def _promise(session: Session, job: Job, rng: random.Random, at: datetime) -> None:
    job.promised_at = job.state_changed_at + timedelta(hours=rng.choice([-30, -1, 1, 30]))


def _rework(session: Session, job: Job, rng: random.Random, at: datetime) -> None:
    job.rework_count += 1


def _breakage(session: Session, job: Job, rng: random.Random, at: datetime) -> None:
    job.breakage_count = max(0, job.breakage_count + rng.choice([-1, 1]))  # or reversed


def _design(session: Session, job: Job, rng: random.Random, at: datetime) -> None:
    job.lens_design = rng.choice(list(LensDesign))


def _material(session: Session, job: Job, rng: random.Random, at: datetime) -> None:
    job.lens_material = rng.choice(["CR-39", "Polycarbonate", "Trivex"])


def _store(session: Session, job: Job, rng: random.Random, at: datetime) -> None:
    job.store_id = rng.choice(list(session.scalars(select(Store.id))))


def _hold(session: Session, job: Job, rng: random.Random, at: datetime) -> None:
    """A hold event (a late job's cause), as the ingest stores one."""
    event = session.scalars(select(StageEvent).where(StageEvent.job_id == job.id)).first()
    if event is None:
        return
    session.add(
        StageEvent(
            event_uuid=uuid.uuid4(),
            station_id=event.station_id,
            station_sequence=10**9 + rng.randrange(10**6),
            operator_id=event.operator_id,
            job_id=job.id,
            stage_id=event.stage_id,
            action=EventAction.hold,
            device_created_at=event.corrected_at,
            device_sent_at=event.corrected_at,
            server_received_at=event.corrected_at,
            corrected_at=event.corrected_at,
        )
    )


def _inspection(session: Session, job: Job, rng: random.Random, at: datetime) -> None:
    first = session.scalars(
        select(Inspection).where(Inspection.job_id == job.id, Inspection.attempt == 1)
    ).first()
    if first is not None:
        first.passed, first.inspected_at = not first.passed, at


def _statement(session: Session, job: Job, rng: random.Random, at: datetime) -> None:
    """An UPDATE statement of several jobs (no flush sees it)."""
    session.execute(
        update(Job)
        .where(Job.id.in_([job.id, job.id + 1, job.id + 2]))
        .values(promised_at=at, lens_material="Statement")
    )


CHANGES: list[Change] = [
    _finish,
    _reopen,
    _cancel,
    _promise,
    _rework,
    _breakage,
    _design,
    _material,
    _store,
    _hold,
    _inspection,
    _statement,
]


def test_the_counts_stay_those_of_the_jobs_through_a_random_run_of_changes(
    lab: LabFixture, db: Database
) -> None:
    """(The ingest's, a breakage reversal's and a cancel's changes: test_kpis' hand count.)"""
    with db.session() as session:
        lab_id = session.scalars(select(Lab.id)).one()
        as_of, first_day = _history(session, lab_id, 60)  # counted by the bulk seed
    dst = (as_of - timedelta(days=10)).date()
    with db.read_session() as session:
        zone = lab_zone(session, lab_id)
        assert _kept(session) == _defined(session)
        job_ids = list(session.scalars(select(Job.id).order_by(Job.id)))
        held = session.scalars(select(StageEvent.job_id).order_by(StageEvent.id).limit(1)).one()
    rng = random.Random(16)
    scope = kpis.Scope(lab_id, None, None)
    period = kpis.resolve_period(KpiQuery(period="month", start=as_of.date()), zone, as_of)
    # A job finished late for no cause but the flow, then held: late for a hold.
    for edit in (_late_for_the_flow, _hold):
        with db.session() as session:
            edit(session, session.get_one(Job, held), rng, as_of)
        with db.read_session() as session:
            kept = _kept(session)
            assert kept == _defined(session)
    assert any(counts[kpis.JOB_COUNTS.index("late_hold")] for counts in kept.values())
    # Times around the DST change (its local days' edges) and anywhere in the history.
    change = datetime.combine(dst, datetime.min.time(), zone)
    for step in range(16):
        at = rng.choice(
            [
                change + timedelta(minutes=rng.randrange(-36 * 60, 36 * 60)),
                as_of - timedelta(minutes=rng.randrange(65 * 24 * 60)),
            ]
        )
        with db.session() as session:
            # Every kind of change, and a few more at random, in one transaction.
            kinds = [CHANGES[step % len(CHANGES)], *rng.choices(CHANGES, k=rng.randrange(3))]
            for kind in kinds:
                kind(session, session.get_one(Job, rng.choice(job_ids)), rng, at)
                if rng.random() < 0.5:
                    session.flush()
            if step % 4 == 1:  # the transaction reads its own changes counted
                kpis.headline(session, scope, period)
                assert _kept(session) == _defined(session), step
            if step % 4 == 3:  # a savepoint rolled back changes nothing, a read in it neither
                session.flush()  # (jobs taken out before it)
                with session.begin_nested() as savepoint:
                    _finish(session, session.get_one(Job, rng.choice(job_ids)), rng, at)
                    kpis.headline(session, scope, period)  # adds back what was taken out
                    _promise(session, session.get_one(Job, rng.choice(job_ids)), rng, at)
                    session.flush()
                    savepoint.rollback()
                with pytest.raises(IntegrityError), session.begin_nested():  # a flush fails
                    _finish(session, session.get_one(Job, rng.choice(job_ids)), rng, at)
                    session.flush()
                    session.get_one(Job, rng.choice(job_ids)).store_id = None  # type: ignore[assignment]
                    session.flush()
        with db.read_session() as session:
            assert _kept(session) == _defined(session), step
    with db.read_session() as session:
        assert _check_figures(session, _periods(zone, first_day, dst, utcnow())) > 100


def test_migration_0030_backfills_what_the_hooks_keep(migrated_lab: MigratedLab) -> None:
    db = migrated_lab.context.db
    with db.session() as session:
        bulk_seed(session, migrated_lab.lab_id, 40, as_of=utcnow(), history=timedelta(days=3))
    rng = random.Random(26)
    for change in CHANGES:  # each kept by the hooks
        with db.session() as session:
            job = session.get_one(Job, rng.choice(list(session.scalars(select(Job.id)))))
            change(session, job, rng, utcnow() - timedelta(hours=rng.randrange(72)))
    with db.read_session() as session:
        kept = _kept(session)
        assert kept == _defined(session)
    assert {key[1] for key in kept} == {dimension.value for dimension in KpiJobDimension}
    migrated_lab.downgrade_and_upgrade("0025")
    with db.read_session() as session:
        assert _kept(session) == kept
