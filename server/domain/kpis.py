"""Lab and store KPIs, aggregated in SQL over indexed columns, identical on SQLite and
PostgreSQL. Every figure is read from what LensTrack already stores, except the queue and cycle
time of each start and completion: worked out once where events are written (KpiStageTime,
`record_stage_times`), since each depends only on its job's earlier events, and counted there
per value bucket and lab-local day, ISO week and month (KpiStageBucket), so a period's medians
and p90s read its counts and the few durations of the buckets their ranks fall in, not all of
them; and the job figures (finished, on time, reworked, late by cause, first QC inspections),
counted per store and lab-local day, week and month (KpiJobDay) and kept exact as jobs change
(`install`).

A period is a day, an ISO week (Monday first), a calendar month or a custom run of days, in
the lab's time zone, `[start, end)`; each figure is also given for the period before it (the
same length, ending where it starts). Scope: store staff see their own store only; lab people
(and lab tokens) the whole lab or one store they name.

Definitions (a cancelled job counts in no figure; "finished" means the job completed its
route, shipped, and the moment is the event that completed it, `job.state_changed_at`):
- finished: jobs that finished in the period (throughput; per day in the trend).
- on-time delivery: finished jobs whose finishing time is at or before `promised_at` /
  finished jobs.
- first-pass QC yield: jobs whose first final-QC inspection (attempt 1 at a stage with
  `inspection = true`) passed / jobs whose first final-QC inspection was in the period.
- rework rate: finished jobs reworked at least once / finished jobs (a job reworked twice
  counts once). The defects behind it: every rework event in the period by its reason code
  (that job counts twice there).
- breakages: breakage records in the period that were not reversed (a reversed breakage
  counts nowhere), by department (stage) and shift, with their cost; the breakage rate of a
  department is its breakages / the completions there in the period, the lab's breakages /
  finished jobs.
- remakes: remake jobs ordered in the period, by class; rate = remakes / finished jobs.
- cycle time per stage: from a job's start at the stage to its completion there (the latest
  start before that complete), for completions in the period; median and p90 by nearest rank.
- queue time per stage: from the job's arrival (its latest complete, rework or breakage event
  before the start, or its order if none) to its start there, for starts in the period.
- WIP: active jobs now, by current stage and status (not period-bound).
- late jobs by cause: late finished jobs by their first cause of breakage (a breakage not
  reversed), rework, hold (a hold event), else flow (queues and waits).
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from functools import cache, lru_cache
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import (
    CTE,
    BigInteger,
    ColumnElement,
    Connection,
    Date,
    Integer,
    Interval,
    Result,
    Select,
    String,
    bindparam,
    case,
    cast,
    delete,
    event,
    exists,
    func,
    insert,
    inspect,
    literal,
    literal_column,
    null,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import (
    ORMExecuteState,
    Session,
    SessionTransaction,
    UOWTransaction,
    aliased,
    attributes,
    sessionmaker,
)
from sqlalchemy.sql.functions import FunctionElement

from server.domain.audit import rolled_back_savepoint
from server.domain.auth import Principal, StationPrincipal
from server.domain.errors import Forbidden, Invalid, NotFound
from server.domain.jobs import sees_one_store
from server.domain.lab_time import lab_zone, local_text, utc_offset_at, utc_offsets
from server.labconfig import KpiTargets
from server.models import (
    Breakage,
    EventAction,
    Inspection,
    Job,
    JobStatus,
    KpiDimension,
    KpiJobDay,
    KpiJobDimension,
    KpiSpan,
    KpiStageBucket,
    KpiStageTime,
    Lab,
    Person,
    RemakeClass,
    Stage,
    StageEvent,
    Station,
    Store,
)

MAX_CUSTOM_DAYS = 366
DAILY_TREND_DAYS = 62  # longer periods are charted per week
DRILL_LIMIT = 1000
CODE_PATTERN = r"^[A-Za-z0-9_.+/-]+$"


class PeriodKind(StrEnum):
    day = "day"
    week = "week"
    month = "month"
    custom = "custom"


class KpiQuery(BaseModel):
    """What a dashboard or the API asks for: a period and, for lab people, one store."""

    model_config = ConfigDict(extra="forbid")

    period: PeriodKind = PeriodKind.week
    start: date | None = None  # a day in the period (custom: its first day); default today
    end: date | None = None  # custom only: the period's last day
    store: str | None = Field(default=None, min_length=1, max_length=32, pattern=CODE_PATTERN)


class DrillKind(StrEnum):
    finished = "finished"
    late = "late"
    reworked = "reworked"
    first_inspected = "first_inspected"
    first_pass_failed = "first_pass_failed"
    broken = "broken"
    remade = "remade"
    wip = "wip"


class Dimension(StrEnum):
    store = "store"
    design = "design"
    material = "material"
    stage = "stage"
    station = "station"
    operator = "operator"
    shift = "shift"
    cause = "cause"
    remake_class = "remake_class"


class DrillQuery(KpiQuery):
    kind: DrillKind
    dimension: Dimension | None = None
    value: str | None = Field(default=None, min_length=1, max_length=64)


@dataclass(frozen=True)
class Period:
    kind: PeriodKind
    start: datetime  # UTC, inclusive
    end: datetime  # UTC, exclusive
    first_day: date
    last_day: date
    zone: ZoneInfo

    @property
    def label(self) -> str:
        if self.first_day == self.last_day:
            return f"{self.first_day:%a %d %b %Y}"
        return f"{self.first_day:%d %b %Y} – {self.last_day:%d %b %Y}"

    def previous(self) -> "Period":
        if self.kind == PeriodKind.month:
            last = self.first_day - timedelta(days=1)
            return _period(self.kind, last.replace(day=1), last, self.zone)
        days = (self.last_day - self.first_day).days + 1
        first = self.first_day - timedelta(days=days)
        return _period(self.kind, first, self.first_day - timedelta(days=1), self.zone)

    def buckets(self) -> list[tuple[date, datetime]]:
        """The trend's buckets: (first day, start in UTC), per day or, if long, per week."""
        days = (self.last_day - self.first_day).days + 1
        step = 1 if days <= DAILY_TREND_DAYS else 7
        firsts = [self.first_day + timedelta(days=n) for n in range(0, days, step)]
        return [(day, _midnight(day, self.zone)) for day in firsts]


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(), zone).astimezone(UTC)


def _period(kind: PeriodKind, first: date, last: date, zone: ZoneInfo) -> Period:
    end = _midnight(last + timedelta(days=1), zone)
    return Period(kind, _midnight(first, zone), end, first, last, zone)


def resolve_period(query: KpiQuery, zone: ZoneInfo, now: datetime) -> Period:
    """The period asked for, in the lab's zone; Invalid names the field that is wrong."""
    if query.end is not None and query.period != PeriodKind.custom:
        raise Invalid("end", "only a custom period has an end")
    day = query.start or now.astimezone(zone).date()
    match query.period:
        case PeriodKind.day:
            return _period(query.period, day, day, zone)
        case PeriodKind.week:
            monday = day - timedelta(days=day.weekday())
            return _period(query.period, monday, monday + timedelta(days=6), zone)
        case PeriodKind.month:
            first = day.replace(day=1)
            following = _next_month(first)
            return _period(query.period, first, following - timedelta(days=1), zone)
        case PeriodKind.custom:
            if query.start is None:
                raise Invalid("start", "a custom period needs its first day")
            if query.end is None:
                raise Invalid("end", "a custom period needs its last day")
            if query.end < query.start:
                raise Invalid("end", "is before start")
            if (query.end - query.start).days + 1 > MAX_CUSTOM_DAYS:
                raise Invalid("end", f"a custom period is at most {MAX_CUSTOM_DAYS} days")
            return _period(query.period, query.start, query.end, zone)


@dataclass(frozen=True)
class Scope:
    """Whose figures: the lab, and one store (the person's own, or the one a lab role named)."""

    lab_id: int
    store_id: int | None
    store_code: str | None

    def jobs(self, *, joined: bool = False) -> list[ColumnElement[bool]]:
        """The job conditions every figure shares: in scope, and not cancelled. `joined`: the
        job is joined to rows of a period (events, inspections, breakages), which are what an
        index should find, so the job's columns are given as no index answers them
        (`_Unindexed`)."""
        column = _unindexed if joined else _as_is
        conditions = [column(Job.lab_id) == self.lab_id, Job.status != JobStatus.cancelled]
        if self.store_id is not None:
            conditions.append(column(Job.store_id) == self.store_id)
        return conditions


def _as_is(column: Any) -> Any:
    return column


class _Unindexed(FunctionElement[Any]):
    """A column as an expression no SQLite index answers (`+column`). SQLite plans without
    statistics (the app runs no ANALYZE) and would drive a join or a correlated subquery from
    an index on an equality — a lab's every job, every start event — instead of the period's
    few rows. PostgreSQL plans from statistics and is given the column as it is."""

    inherit_cache = True
    name = "unindexed"

    def __init__(self, column: Any) -> None:
        super().__init__(column)
        self.type = column.type  # compared values bind as the column's own (enums, times)


@compiles(_Unindexed)
def _column_as_is(element: _Unindexed, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.clauses, **kw))


@compiles(_Unindexed, "sqlite")
def _column_unindexed(element: _Unindexed, compiler: Any, **kw: Any) -> str:
    return "+" + str(compiler.process(element.clauses, **kw))


def _unindexed(column: Any) -> Any:
    return _Unindexed(column)


def resolve_scope(session: Session, principal: Principal, store_code: str | None) -> Scope:
    """Store staff are held to their store: another store's code is NotFound like a missing
    one, so no store learns which others exist. A station reads no KPIs."""
    if isinstance(principal, StationPrincipal):
        raise Forbidden("authorization", "KPIs are for people and lab tokens, not stations")
    own = principal.store_id if sees_one_store(principal) else None
    if store_code is None:
        if sees_one_store(principal):
            own_code = session.scalar(select(Store.code).where(Store.id == (own or -1)))
            return Scope(principal.lab_id, own or -1, own_code)
        return Scope(principal.lab_id, None, None)
    store = session.scalar(
        select(Store).where(Store.lab_id == principal.lab_id, Store.code == store_code)
    )
    if store is None or (sees_one_store(principal) and store.id != own):
        raise NotFound("store", f"no store {store_code}")
    return Scope(principal.lab_id, store.id, store.code)


@dataclass(frozen=True)
class Ratio:
    numerator: int
    denominator: int

    @property
    def rate(self) -> float | None:
        return self.numerator / self.denominator if self.denominator else None


@dataclass(frozen=True)
class Headline:
    """The period's headline figures (the same shape for the previous period)."""

    finished: int
    on_time: Ratio
    first_pass: Ratio
    rework: Ratio
    breakages: Ratio  # not reversed / finished jobs
    breakage_cost: float
    remakes: Ratio  # remakes ordered / finished jobs


def _finished_in(period: Period) -> list[ColumnElement[bool]]:
    return [
        Job.status == JobStatus.completed,
        Job.state_changed_at >= period.start,
        Job.state_changed_at < period.end,
    ]


def _is_late() -> ColumnElement[bool]:
    return Job.state_changed_at > Job.promised_at


def _first_inspections(scope: Scope, period: Period) -> Select[Any]:
    return (
        select(Inspection.passed)
        .join(Job, Job.id == Inspection.job_id)
        .where(
            Inspection.attempt == 1,
            Inspection.inspected_at >= period.start,
            Inspection.inspected_at < period.end,
            *scope.jobs(joined=True),
        )
    )


def _breakages(scope: Scope, period: Period) -> Select[Any]:
    return (
        select(Breakage.id)
        .join(Job, Job.id == Breakage.job_id)
        .where(
            Breakage.reversed_at.is_(None),
            Breakage.occurred_at >= period.start,
            Breakage.occurred_at < period.end,
            *scope.jobs(joined=True),
        )
    )


def _remakes(scope: Scope, period: Period) -> list[ColumnElement[bool]]:
    return [
        Job.remake_of_id.is_not(None),
        Job.ordered_at >= period.start,
        Job.ordered_at < period.end,
        *scope.jobs(),
    ]


def headline(session: Session, scope: Scope, period: Period) -> Headline:
    counts = _job_counts(session, scope, _spans(period.first_day, period.last_day))
    total = counts[0] if counts else _NO_JOBS
    finished, inspected, passed = total.finished, total.inspected, total.passed
    broken = _breakages(scope, period).add_columns(Breakage.cost).subquery()
    breakage_count, cost = session.execute(
        select(func.count(), func.coalesce(func.sum(broken.c.cost), 0.0))
    ).one()
    remakes = session.scalar(select(func.count()).where(*_remakes(scope, period))) or 0
    return Headline(
        finished=finished,
        on_time=Ratio(total.on_time, finished),
        first_pass=Ratio(passed, inspected),
        rework=Ratio(total.reworked, finished),
        breakages=Ratio(breakage_count, finished),
        breakage_cost=float(cost),
        remakes=Ratio(remakes, finished),
    )


@dataclass(frozen=True)
class TrendPoint:
    first_day: date
    finished: int
    on_time: Ratio
    first_pass: Ratio


def trend(session: Session, scope: Scope, period: Period) -> list[TrendPoint]:
    """Per bucket (a day, or a week if long): read from the day rows of KpiJobDay."""
    days = [(KpiSpan.day, period.first_day, period.last_day + timedelta(days=1))]
    buckets = period.buckets()
    step = (buckets[1][0] - buckets[0][0]).days if len(buckets) > 1 else 1
    sums: dict[int, list[int]] = {}
    for row in _job_counts(session, scope, days, "day"):
        point = sums.setdefault((row.day - period.first_day).days // step, [0, 0, 0, 0])
        for index, count in enumerate((row.finished, row.on_time, row.inspected, row.passed)):
            point[index] += count
    points = []
    for index, (day, _start) in enumerate(buckets):
        finished, on_time, inspected, passed = sums.get(index, (0, 0, 0, 0))
        points.append(TrendPoint(day, finished, Ratio(on_time, finished), Ratio(passed, inspected)))
    return points


@dataclass(frozen=True)
class GroupRow:
    """One store, lens design or material: its jobs' figures in the period."""

    key: str
    finished: int
    on_time: Ratio
    rework: Ratio
    first_pass: Ratio


# The dashboards' job dimensions in KpiJobDay: a store is its store's rows of no key.
JOB_DIMENSIONS = {
    Dimension.store: KpiJobDimension.job,
    Dimension.design: KpiJobDimension.design,
    Dimension.material: KpiJobDimension.material,
}


def by_job_dimension(
    session: Session, scope: Scope, period: Period, dimension: Dimension
) -> list[GroupRow]:
    spans = _spans(period.first_day, period.last_day)
    if dimension == Dimension.store:
        counts = _job_counts(session, scope, spans, "store_id")
        codes = dict(
            session.execute(select(Store.id, Store.code).where(Store.lab_id == scope.lab_id)).all()
        )
        keyed = [(codes[row.store_id], row) for row in counts]
    else:
        counts = _job_counts(session, scope, spans, "key", JOB_DIMENSIONS[dimension])
        keyed = [(row.key, row) for row in counts]
    return [
        GroupRow(
            key,
            row.finished,
            Ratio(row.on_time, row.finished),
            Ratio(row.reworked, row.finished),
            Ratio(row.passed, row.inspected),
        )
        for key, row in sorted(keyed, key=lambda pair: pair[0])
    ]


def _seconds(later: Any, earlier: Any, dialect: str) -> Any:
    if dialect == "sqlite":
        return (func.julianday(later) - func.julianday(earlier)) * 86400.0
    return func.extract("epoch", later - earlier)


@dataclass(frozen=True)
class Percentiles:
    samples: int
    median_minutes: float | None
    p90_minutes: float | None


def _minutes(seconds: float | None) -> float | None:
    return None if seconds is None else float(seconds) / 60


# Value buckets of a duration (KpiStageTime.bucket): counted per day, week and month by
# KpiStageBucket, so a percentile's rank is placed in its bucket from a few thousand counts and
# only that bucket's durations are read. 64 per doubling: a bucket is 1/64 to 1/128 of its
# values wide, which keeps both the counts (a few hundred buckets per key) and a bucket's
# durations (under 1 % of a key's) small.
UNKNOWN_BUCKET = -1  # a duration unknown (None): a sample, never ranked
NEGATIVE_BUCKET = -2  # a negative duration (clocks corrected): ranked below every other
SUB_BUCKETS = 64
TOP_OCTAVE = 32  # 2**32 s (136 years) and longer share the last bucket


def _floor(value: Any, dialect: str) -> Any:
    """An integer no greater than a value ≥ 0 (PostgreSQL's cast rounds, SQLite's truncates)."""
    return cast(value if dialect == "sqlite" else func.floor(value), Integer)


def value_bucket(seconds: Any, dialect: str) -> Any:
    """A duration's bucket, never decreasing as it grows: the whole second below 64 s, then
    `SUB_BUCKETS` per doubling."""
    # Floats: an integer 2**32 overflows PostgreSQL's integer, and a division by an integer
    # is cast to numeric.
    octaves = [
        (
            seconds < float(2 ** (octave + 1)),
            SUB_BUCKETS * (octave - 6) + _floor(seconds / float(2 ** (octave - 6)), dialect),
        )
        for octave in range(6, TOP_OCTAVE)
    ]
    return case(
        (seconds.is_(None), UNKNOWN_BUCKET),
        (seconds < 0, NEGATIVE_BUCKET),
        (seconds < SUB_BUCKETS, _floor(seconds, dialect)),
        *octaves,
        else_=SUB_BUCKETS * (TOP_OCTAVE - 5),
    )


# What a key of the dashboards is in KpiStageTime: a stage, a station or an operator.
KEY_COLUMNS = {
    KpiDimension.stage: KpiStageTime.stage_id,
    KpiDimension.station: KpiStageTime.station_id,
    KpiDimension.operator: KpiStageTime.operator_id,
}


PERCENTS = (50, 90)


def _percentiles(
    session: Session, scope: Scope, period: Period, action: EventAction, dimension: KpiDimension
) -> dict[int, Percentiles]:
    """Median and p90 by nearest rank of the durations of the period's starts (queue) or
    completions (cycle) in scope, per key but None, exact. The samples are every row; a
    duration unknown (a completion without a start, which the lifecycle never lets happen) is
    not ranked. The buckets the ranks fall in are found from KpiStageBucket's counts (less
    the cancelled jobs' rows) in two steps: summed per `COARSE_BUCKETS` buckets in SQL, then
    the buckets of the groups the ranks fall in; the durations at the ranks are picked from
    those buckets."""
    spans = _spans(period.first_day, period.last_day)
    by_store = scope.store_id is not None
    params: dict[str, Any] = {
        "lab_id": scope.lab_id,
        "store_id": scope.store_id or 0,
        "action": action,
        "start": period.start,
        "end": period.end,
    }
    kinds, bounds = _span_bounds(spans)
    params |= bounds
    samples: dict[int, int] = {}
    found: dict[tuple[int, int], float | None] = {}
    groups: dict[int, list[tuple[int, int]]] = {}  # key -> (group, count) in group order
    for key, group, count in session.execute(_bucket_counts(dimension, by_store, kinds), params):
        groups.setdefault(key, []).append((group, count))
    in_group: dict[tuple[int, int], list[tuple[int, int]]] = {}  # -> (rank in it, percent)
    for key, counts in groups.items():
        samples[key] = sum(count for _group, count in counts)
        for percent in PERCENTS:
            found[key, percent] = None  # nothing ranked
        # (A bucket of a cancelled job's durations only counts none.)
        for group, rank, percent in _ranks_in(
            [item for item in counts if item[0] != UNKNOWN_BUCKET and item[1]]
        ):
            in_group.setdefault((key, group), []).append((rank, percent))
    if not in_group:
        return _found(samples, found)
    buckets: dict[tuple[int, int], list[tuple[int, int]]] = {}  # (key, group) -> its buckets
    statement = _bucket_counts(dimension, by_store, kinds, groups=True)
    wanted_groups = [_pair(key, group) for key, group in in_group]
    for key, value_bucket, count in session.execute(statement, params | {"groups": wanted_groups}):
        buckets.setdefault((key, _group(value_bucket)), []).append((value_bucket, count))
    wanted: dict[tuple[int, int], list[tuple[int, int]]] = {}  # (key, bucket) -> ranks in it
    for (key, group), ranks in in_group.items():
        counts = [item for item in buckets[key, group] if item[1]]
        for rank, percent in ranks:
            for value_bucket, rank_in_bucket in _place(counts, rank):
                wanted.setdefault((key, value_bucket), []).append((rank_in_bucket, percent))
    # Each rank's duration is picked in SQL from its bucket's, ordered there: a month's rank
    # buckets hold ~15k durations at 1 M jobs, which took most of the read to send and sort
    # here (and numbered all at once by a window, one big sort, longer still).
    picks = [(*pair, rank) for pair, ranks in wanted.items() for rank, _ in ranks]
    count: int | None = None  # PostgreSQL: bound as three arrays
    if session.get_bind().dialect.name == "postgresql":
        keys, value_buckets, ranks = zip(*picks, strict=True)
        params |= {"keys": list(keys), "buckets": list(value_buckets), "ranks": list(ranks)}
    else:
        count = len(picks)
        for index, (key, value_bucket, rank) in enumerate(picks):
            params |= {f"key_{index}": key, f"bucket_{index}": value_bucket, f"rank_{index}": rank}
    statement = _ranked_durations(dimension, by_store, count)
    picked = {
        (key, value_bucket, rank): seconds
        for key, value_bucket, rank, seconds in session.execute(statement, params)
    }
    for (key, value_bucket), ranks_in_bucket in wanted.items():
        for rank, percent in ranks_in_bucket:
            found[key, percent] = picked[key, value_bucket, rank]
    return _found(samples, found)


def _ranks_in(counts: list[tuple[int, int]]) -> list[tuple[int, int, int]]:
    """(value, rank among that value's, percent) of each percentile's nearest rank among the
    counted samples, `counts` (value, count) in value order."""
    total = sum(count for _value, count in counts)
    return [
        (value, rank, percent)
        for percent in PERCENTS
        for value, rank in _place(counts, (total * percent + 99) // 100)
    ]


def _place(counts: list[tuple[int, int]], rank: int) -> list[tuple[int, int]]:
    """[(value, rank among that value's)] of the sample at `rank` (1-based) among `counts`
    (value, count) in value order; [] if there are fewer samples."""
    before = 0
    for value, count in counts:
        if rank <= before + count:
            return [(value, rank - before)]
        before += count
    return []


def _found(
    samples: dict[int, int], found: dict[tuple[int, int], float | None]
) -> dict[int, Percentiles]:
    return {
        key: Percentiles(total, _minutes(found[key, 50]), _minutes(found[key, 90]))
        for key, total in samples.items()
        if total  # not every duration a cancelled job's
    }


# A value bucket's group (`_group`): the counts are read summed per this many buckets first,
# a month's ~1,000 buckets per key ~60 groups, then only the buckets of the groups a rank
# falls in (sending and walking every bucket's count took most of a month's read).
COARSE_BUCKETS = 16


def _group(value_bucket: int) -> int:
    """A value bucket's group: its `COARSE_BUCKETS`, in value order; the special buckets
    (unknown, negative) each their own."""
    return value_bucket if value_bucket < 0 else value_bucket // COARSE_BUCKETS


# Above every group and below what a key id times it overflows (a bigint): (key, group) as
# one number (`_pair`), the special groups' negative values included.
GROUP_STRIDE = 4096
assert _group(SUB_BUCKETS * (TOP_OCTAVE - 5)) < GROUP_STRIDE + NEGATIVE_BUCKET


def _pair(key_id: Any, group: Any) -> Any:
    """(key, group) as one number, here or in SQL (a key id cast to a bigint there)."""
    return key_id * GROUP_STRIDE + group


def _group_in_sql(value_bucket: ColumnElement[int]) -> ColumnElement[int]:
    """`_group` in SQL: an integer division of the buckets ≥ 0 on both."""
    return case((value_bucket < 0, value_bucket), else_=value_bucket // COARSE_BUCKETS)


# `_percentiles`' statements, built once per shape (building took longer than running them),
# their values bound by name: lab_id, store_id (0: the lab), action, the period's start and
# end, and its spans' (`_spans`) first_N and following_N days.


@lru_cache(maxsize=64)
def _bucket_counts(
    dimension: KpiDimension, by_store: bool, spans: tuple[KpiSpan, ...], groups: bool = False
) -> Select[Any]:
    """The period's counts in scope, from KpiStageBucket's rows of its spans (`_spans`;
    `spans` tells which rows each reads), less the rows of jobs cancelled since: (key, group,
    count) per group (`_group`) in key and group order, or with `groups`, (key, bucket, count)
    per bucket of the bound `groups` (`_pair`s) in key and bucket order. (Ranked
    here: SQLite's window functions took longer than reading a month's counts.)"""
    key = KEY_COLUMNS[dimension]

    def of_groups(key_id: Any, value_bucket: ColumnElement[int]) -> list[ColumnElement[bool]]:
        # One number per pair: PostgreSQL tests it in a hash of the list, where a pair of
        # columns turned into an OR per pair (and a bitmap scan per key).
        pair = _pair(cast(key_id, BigInteger), _group_in_sql(value_bucket))
        return [pair.in_(bindparam("groups", expanding=True))] if groups else []

    counted: list[Select[Any]] = [
        select(KpiStageBucket.key_id, KpiStageBucket.bucket, KpiStageBucket.count).where(
            KpiStageBucket.lab_id == bindparam("lab_id"),
            KpiStageBucket.store_id == bindparam("store_id"),
            KpiStageBucket.action == bindparam("action"),
            KpiStageBucket.dimension == dimension,
            KpiStageBucket.span == span,
            KpiStageBucket.day >= bindparam(f"first_{index}"),
            KpiStageBucket.day < bindparam(f"following_{index}"),
            *of_groups(KpiStageBucket.key_id, KpiStageBucket.bucket),
        )
        for index, span in enumerate(spans)
    ]
    counted.append(
        select(key, KpiStageTime.bucket, -func.count())
        .where(
            KpiStageTime.job_id.in_(_cancelled_jobs(by_store)),
            *_stage_times_in_period(),
            key.is_not(None),
            *of_groups(key, KpiStageTime.bucket),
        )
        .group_by(key, KpiStageTime.bucket)
    )
    rows = union_all(*counted).subquery()
    value = rows.c.bucket if groups else _group_in_sql(rows.c.bucket)
    return (
        # PostgreSQL sums bigints (count(*)) to numeric.
        select(rows.c.key_id, value, cast(func.sum(rows.c.count), Integer))
        .group_by(rows.c.key_id, value)
        .order_by(rows.c.key_id, value)
    )


@lru_cache(maxsize=256)
def _ranked_durations(dimension: KpiDimension, by_store: bool, count: int | None) -> Select[Any]:
    """(key, bucket, rank, seconds) for each wanted pick: the duration at that rank in value
    order among the period's durations in scope of that (key, bucket), but cancelled jobs'.
    Each pick reads a range of an index on (scope, action, key, bucket, at) covering the read
    and sorts that bucket alone. PostgreSQL (`count` None): the bound arrays `keys`, `buckets`
    and `ranks` unnested, each row's pick a LATERAL subquery, one statement for any number (a
    VALUES list is compiled anew at every read). SQLite, which takes no outer column in an
    OFFSET: `count` subqueries of the bound key_N, bucket_N and rank_N."""
    key = KEY_COLUMNS[dimension]
    in_scope = KpiStageTime.store_id if by_store else KpiStageTime.lab_id

    def pick(key_id: Any, value_bucket: Any, skip: Any) -> Select[Any]:
        return (
            select(KpiStageTime.seconds)
            .where(
                in_scope == bindparam("store_id" if by_store else "lab_id"),
                key == key_id,
                KpiStageTime.bucket == value_bucket,
                *_stage_times_in_period(),
                KpiStageTime.job_id.not_in(_cancelled_jobs(by_store)),
            )
            .order_by(KpiStageTime.seconds)
            .offset(skip)
            .limit(1)
        )

    if count is None:
        arrays = [bindparam(name, type_=ARRAY(Integer)) for name in ("keys", "buckets", "ranks")]
        wanted = func.unnest(*arrays).table_valued("key_id", "bucket", "rank").render_derived()
        picked = pick(wanted.c.key_id, wanted.c.bucket, wanted.c.rank - 1).lateral()
        return select(wanted.c.key_id, wanted.c.bucket, wanted.c.rank, picked.c.seconds).join(
            picked, true()
        )
    selects = []
    for index in range(count):
        key_id, value_bucket, rank = (
            bindparam(f"{name}_{index}", type_=Integer) for name in ("key", "bucket", "rank")
        )
        selects.append(
            select(
                key_id, value_bucket, rank, pick(key_id, value_bucket, rank - 1).scalar_subquery()
            )
        )
    return union_all(*selects)


# The rows of that span whose first day is in [first, following).
Span = tuple[KpiSpan, date, date]


def _spans(first: date, last: date) -> list[Span]:
    """The count rows (KpiStageBucket's, KpiJobDay's) that count the days first..last once
    each, fewest first: the whole calendar months' month rows; of the days before and after
    them, the whole ISO weeks' week rows; the day rows of the days left (at most six at
    either end of each part)."""
    following = last + timedelta(days=1)
    months_from = first if first.day == 1 else _next_month(first)
    months_to = following.replace(day=1)  # the first day after the whole months
    if months_from >= months_to:
        return _week_spans(first, following)
    return [
        (KpiSpan.month, months_from, months_to),
        *_week_spans(first, months_from),
        *_week_spans(months_to, following),
    ]


def _span_bounds(spans: list[Span]) -> tuple[tuple[KpiSpan, ...], dict[str, date]]:
    """The spans' kinds, which shape a count statement, and their days bound by name as it
    reads them: first_N and following_N."""
    kinds = tuple(span for span, _first, _following in spans)
    bounds: dict[str, date] = {}
    for index, (_span, first, following) in enumerate(spans):
        bounds |= {f"first_{index}": first, f"following_{index}": following}
    return kinds, bounds


def _week_spans(first: date, following: date) -> list[Span]:
    """The days [first, following) as whole weeks' week rows and the days' rows around them."""
    weeks_from = first + timedelta(days=-first.weekday() % 7)  # the first Monday
    weeks_to = following - timedelta(days=following.weekday())
    if weeks_from >= weeks_to:
        return [(KpiSpan.day, first, following)] if first < following else []
    spans = [(KpiSpan.week, weeks_from, weeks_to)]
    for day_from, day_to in ((first, weeks_from), (weeks_to, following)):
        if day_from < day_to:
            spans.append((KpiSpan.day, day_from, day_to))
    return spans


def _next_month(day: date) -> date:
    return (day.replace(day=1) + timedelta(days=32)).replace(day=1)


def _cancelled_jobs(by_store: bool) -> Select[Any]:
    """The scope's jobs cancelled since the period started: the only cancelled jobs that can
    have stage times in it (the lifecycle takes no event of a cancelled job), and few."""
    jobs = select(Job.id).where(
        Job.status == JobStatus.cancelled, Job.state_changed_at >= bindparam("start")
    )
    if by_store:
        return jobs.where(Job.store_id == bindparam("store_id"))
    return jobs.where(Job.lab_id == bindparam("lab_id"))


def _stage_times_in_period() -> list[ColumnElement[bool]]:
    return [
        KpiStageTime.action == bindparam("action"),
        KpiStageTime.at >= bindparam("start"),
        KpiStageTime.at < bindparam("end"),
    ]


def _events_in(action: EventAction, period: Period) -> list[ColumnElement[bool]]:
    return [
        StageEvent.action == action,
        StageEvent.corrected_at >= period.start,
        StageEvent.corrected_at < period.end,
    ]


def record_stage_times(
    session: Session, event_ids: Sequence[int] | None = None, *, counted: bool = True
) -> None:
    """Ingest hook: the queue time of each start and the cycle time of each completion among
    the events `event_ids` (written, as is every earlier event of their jobs), or among every
    event after the last recorded (None: the bulk seed, the migrations' backfill), into
    KpiStageTime, where the dashboards read them, and unless not `counted` (migration 0025,
    whose counts 0030 makes) counted into KpiStageBucket. Statements built once.

    A start waited since the job's arrival: its latest complete, rework or breakage event
    before it, or its order if none. A completion took since the latest start at its stage
    before it (None without one)."""
    # On the connection: the session would take the parameters for rows of an ORM insert.
    connection = session.connection()
    if event_ids is None:
        # Every start and completion is recorded with it (the ingest's transaction), and the
        # bulk seed's events come after every other: the missing ones are those after the
        # last recorded. (Not NOT EXISTS: PostgreSQL rescanned the table it was filling.)
        recorded = connection.scalar(select(func.coalesce(func.max(KpiStageTime.event_id), 0)))
        which: dict[str, Any] = {"recorded": recorded}
    else:
        which = {"ids": list(event_ids)}
    connection.execute(_stage_times_insert(connection.dialect.name, "ids" in which), which)
    if counted:
        _count_stage_times(connection, which)


def count_every_stage_time(session: Session) -> None:
    """Migration 0030's backfill: every KpiStageTime row counted into KpiStageBucket."""
    _count_stage_times(session.connection(), {"recorded": 0})


def _recorded(which: dict[str, Any]) -> ColumnElement[bool]:
    """The KpiStageTime rows recorded: those of the bound `ids`, or after `recorded`."""
    if "ids" in which:
        return KpiStageTime.event_id.in_(bindparam("ids", expanding=True))
    return KpiStageTime.event_id > bindparam("recorded")


def _count_stage_times(connection: Connection, which: dict[str, Any]) -> None:
    """Adds the KpiStageTime rows `which` to KpiStageBucket's counts, a statement per lab:
    its zone decides their days."""
    by_ids = "ids" in which
    for lab_id, timezone, first, last in connection.execute(_labs_recorded(by_ids), which).all():
        offsets = utc_offsets(ZoneInfo(timezone), first.date(), last.date())
        statement = _bucket_upsert(connection.dialect.name, by_ids, offsets)
        connection.execute(statement, {**which, "lab_id": lab_id})


@cache
def _labs_recorded(by_ids: bool) -> Select[Any]:
    """Each lab of the recorded rows (`_recorded`): its zone, and their first and last time."""
    at = KpiStageTime.at
    return (
        select(Lab.id, Lab.timezone, func.min(at), func.max(at))
        .join(Lab, Lab.id == KpiStageTime.lab_id)
        .where(_recorded({"ids": ()} if by_ids else {"recorded": 0}))
        .group_by(Lab.id, Lab.timezone)
    )


@lru_cache(maxsize=64)
def _bucket_upsert(dialect: str, by_ids: bool, offsets: tuple[tuple[datetime, int], ...]) -> Any:
    """The counts of the recorded rows (`_recorded`) of the bound `lab_id`, per day and month
    (the lab's, by its UTC `offsets`), added to KpiStageBucket's. Built once per lab and
    offsets: building it took longer than running it for an ingest's few events."""
    recorded = _recorded({"ids": ()} if by_ids else {"recorded": 0})
    offset = utc_offset_at(KpiStageTime.at, offsets)
    counted = []
    for store, dimension in (
        (None, KpiDimension.stage),
        (None, KpiDimension.station),
        (None, KpiDimension.operator),
        (KpiStageTime.store_id, KpiDimension.stage),
    ):
        key = KEY_COLUMNS[dimension]
        conditions = [recorded, KpiStageTime.lab_id == bindparam("lab_id")]
        if dimension != KpiDimension.stage:  # the dashboards' stations and operators: cycles
            conditions += [KpiStageTime.action == EventAction.complete, key.is_not(None)]
        for span in KpiSpan:
            day = _local_day(KpiStageTime.at, offset, dialect, span)
            grouped = [KpiStageTime.action, day, key, KpiStageTime.bucket]
            counted.append(
                select(
                    KpiStageTime.lab_id,
                    literal(0) if store is None else store,
                    KpiStageTime.action,
                    literal(dimension.value),
                    literal(span.value),
                    day,
                    key,
                    KpiStageTime.bucket,
                    func.count(),
                )
                .where(*conditions)
                .group_by(KpiStageTime.lab_id, *([] if store is None else [store]), *grouped)
            )
    rows = union_all(*counted).subquery()
    columns = ["lab_id", "store_id", "action", "dimension", "span", "day", "key_id"]
    upsert = (sqlite_insert if dialect == "sqlite" else postgresql_insert)(KpiStageBucket)
    # Ordered by the key: concurrent writers (PostgreSQL) lock the rows they add to in one
    # order, never each waiting for the other's. WHERE: SQLite reads ON CONFLICT after a bare
    # FROM as a join's.
    source = select(*rows.c).where(true()).order_by(*list(rows.c)[:-1])
    statement = upsert.from_select([*columns, "bucket", "count"], source)
    return statement.on_conflict_do_update(
        index_elements=[*columns, "bucket"],
        set_={"count": KpiStageBucket.count + statement.excluded["count"]},
    )


def _local_day(moment: Any, offset: Any, dialect: str, span: KpiSpan) -> Any:
    """The first day of the lab-local span (day, ISO week, month) of a UTC time, `offset`
    seconds from UTC."""
    if dialect == "sqlite":
        to_first = {
            KpiSpan.day: [],
            KpiSpan.week: ["-6 days", "weekday 1"],  # 'weekday 1': on to a Monday, unless on one
            KpiSpan.month: ["start of month"],
        }
        shifted = [moment, func.printf("%+d seconds", offset)]
        return func.date(*shifted, *to_first[span])
    local = moment + offset * literal_column("INTERVAL '1 second'", Interval)
    return cast(local if span == KpiSpan.day else func.date_trunc(span.value, local), Date)


@cache
def _stage_times_insert(dialect: str, by_ids: bool) -> Any:
    """`record_stage_times`' statement: of the events in the bound list `ids` (`by_ids`),
    else of those after the bound `recorded`. Built once: building it took longer
    than running it."""
    earlier = aliased(StageEvent)

    def latest(*conditions: ColumnElement[bool]) -> Any:
        return (
            select(func.max(earlier.corrected_at))
            .where(earlier.job_id == StageEvent.job_id, earlier.id < StageEvent.id, *conditions)
            .scalar_subquery()
        )

    # _unindexed: the events are found by their ids, each job's few earlier ones by
    # (job_id, id), never by the action index (every start of the lab).
    arrived = latest(
        _unindexed(earlier.action).in_(
            [EventAction.complete, EventAction.rework, EventAction.breakage]
        )
    )
    started = latest(
        earlier.stage_id == StageEvent.stage_id, _unindexed(earlier.action) == EventAction.start
    )
    since = case(
        (StageEvent.action == EventAction.start, func.coalesce(arrived, Job.ordered_at)),
        else_=started,
    )
    events = (
        StageEvent.id.in_(bindparam("ids", expanding=True))
        if by_ids
        else StageEvent.id > bindparam("recorded")
    )
    # Materialized: the bucket reads `seconds` some thirty times, and a subquery merged into
    # the insert would work it out (two correlated subqueries) as often.
    rows = (
        select(
            StageEvent.id.label("event_id"),
            Job.lab_id,
            Job.store_id,
            StageEvent.job_id,
            StageEvent.stage_id,
            StageEvent.station_id,
            StageEvent.operator_id,
            StageEvent.action,
            StageEvent.corrected_at.label("at"),
            _seconds(StageEvent.corrected_at, since, dialect).label("seconds"),
        )
        .join(Job, Job.id == StageEvent.job_id)
        .where(_unindexed(StageEvent.action).in_([EventAction.start, EventAction.complete]), events)
        .cte("recorded")
        .prefix_with("MATERIALIZED")
    )
    return insert(KpiStageTime).from_select(
        [*rows.c.keys(), "bucket"], select(*rows.c, value_bucket(rows.c.seconds, dialect))
    )


@dataclass(frozen=True)
class StageRow:
    stage_code: str
    stage: str
    completions: int
    cycle: Percentiles
    queue: Percentiles
    breakages: int
    breakage_cost: float
    wip_queued: int
    wip_in_progress: int
    wip_on_hold: int

    @property
    def breakage_rate(self) -> Ratio:
        return Ratio(self.breakages, self.completions)


def by_stage(session: Session, scope: Scope, period: Period) -> list[StageRow]:
    """Per stage: completions (throughput), cycle and queue times, breakages and WIP now."""
    stage = KpiDimension.stage
    cycle = _percentiles(session, scope, period, EventAction.complete, stage)
    queue = _percentiles(session, scope, period, EventAction.start, stage)
    broken = {
        stage_id: (count, float(cost))
        for stage_id, count, cost in session.execute(
            _breakages(scope, period)
            .with_only_columns(Breakage.stage_id, func.count(), func.sum(Breakage.cost))
            .group_by(Breakage.stage_id)
        )
    }
    wip: dict[tuple[int | None, JobStatus], int] = {
        (stage_id, status): count
        for stage_id, status, count in session.execute(
            select(Job.current_stage_id, Job.status, func.count())
            .where(Job.is_active, *scope.jobs())
            .group_by(Job.current_stage_id, Job.status)
        )
    }
    none = Percentiles(0, None, None)
    stages = session.scalars(
        select(Stage).where(Stage.lab_id == scope.lab_id).order_by(Stage.position)
    )
    return [
        StageRow(
            stage_code=stage.code,
            stage=stage.name,
            completions=cycle.get(stage.id, none).samples,
            cycle=cycle.get(stage.id, none),
            queue=queue.get(stage.id, none),
            breakages=broken.get(stage.id, (0, 0.0))[0],
            breakage_cost=broken.get(stage.id, (0, 0.0))[1],
            wip_queued=wip.get((stage.id, JobStatus.queued), 0),
            wip_in_progress=wip.get((stage.id, JobStatus.in_progress), 0),
            wip_on_hold=wip.get((stage.id, JobStatus.on_hold), 0),
        )
        for stage in stages
    ]


@dataclass(frozen=True)
class FloorRow:
    """One station or operator: completions, cycle time and first-pass yield there."""

    key: str
    completions: int
    cycle: Percentiles
    first_pass: Ratio


FLOOR_DIMENSIONS = {Dimension.station: Station.name, Dimension.operator: Person.name}


def by_floor(
    session: Session, scope: Scope, period: Period, dimension: Dimension
) -> list[FloorRow]:
    key = KpiDimension.station if dimension == Dimension.station else KpiDimension.operator
    cycle = _percentiles(session, scope, period, EventAction.complete, key)
    spans = _spans(period.first_day, period.last_day)
    inspected = {
        int(row.key): Ratio(row.passed, row.inspected)
        for row in _job_counts(session, scope, spans, "key", KpiJobDimension(key.value))
    }
    ids = {key for key in cycle.keys() | inspected.keys() if key is not None}
    model = Station if dimension == Dimension.station else Person
    names = {
        key: str(name)
        for key, name in session.execute(select(model.id, model.name).where(model.id.in_(ids)))
    }
    none = Percentiles(0, None, None)
    rows = [
        FloorRow(
            names[key],
            cycle.get(key, none).samples,
            cycle.get(key, none),
            inspected.get(key, Ratio(0, 0)),
        )
        for key in ids
    ]
    return sorted(rows, key=lambda row: row.key)


@dataclass(frozen=True)
class CountRow:
    key: str
    count: int
    cost: float = 0.0


def breakages_by_shift(session: Session, scope: Scope, period: Period) -> list[CountRow]:
    shift = func.coalesce(Breakage.shift, "")
    rows = session.execute(
        _breakages(scope, period)
        .with_only_columns(shift, func.count(), func.sum(Breakage.cost))
        .group_by(shift)
        .order_by(shift)
    )
    return [CountRow(key or "(no shift)", count, float(cost)) for key, count, cost in rows]


def rework_defects(session: Session, scope: Scope, period: Period) -> list[CountRow]:
    """Every rework event in the period by its reason (defect) code, most frequent first."""
    code = func.coalesce(StageEvent.reason_code, "")
    rows = session.execute(
        select(code, func.count())
        .join(Job, Job.id == StageEvent.job_id)
        .where(*_events_in(EventAction.rework, period), *scope.jobs(joined=True))
        .group_by(code)
        .order_by(func.count().desc(), code)
    )
    return [CountRow(key or "(no code)", count) for key, count in rows]


def remakes_by_class(session: Session, scope: Scope, period: Period) -> list[CountRow]:
    counts = dict(
        session.execute(
            select(Job.remake_class, func.count())
            .where(*_remakes(scope, period))
            .group_by(Job.remake_class)
        ).all()
    )
    return [CountRow(kind.value, counts.get(kind, 0)) for kind in RemakeClass]


class LateCause(StrEnum):
    breakage = "breakage"
    rework = "rework"
    hold = "hold"
    flow = "flow"


def _late_cause() -> Any:
    held = exists().where(
        StageEvent.job_id == Job.id, _unindexed(StageEvent.action) == EventAction.hold
    )
    return case(
        (Job.breakage_count > 0, LateCause.breakage.value),
        (Job.rework_count > 0, LateCause.rework.value),
        (held, LateCause.hold.value),
        else_=LateCause.flow.value,
    )


def late_by_cause(session: Session, scope: Scope, period: Period) -> list[CountRow]:
    counts = _job_counts(session, scope, _spans(period.first_day, period.last_day))
    total = counts[0] if counts else _NO_JOBS
    return [CountRow(cause.value, getattr(total, f"late_{cause.value}")) for cause in LateCause]


# The job-level figures (finished, on time, reworked, late by cause, first QC inspections)
# are counted per store, lab-local day and month in KpiJobDay, so a period reads a few rows
# per store and key instead of its every job. A job's counts depend only on its own row, its
# first inspection and whether it was ever held, so they are kept exact where those change:
# before an ORM flush or UPDATE/DELETE statement of a write session (`install`) may change a
# job's counts, they are taken out as the database has them, once per transaction (the
# first such write); its commit adds the counts of every job taken out (and of every new
# job) as the database has them then, in one statement. Exact: a job not taken out has had
# no write that could change its counts since they were counted, and one taken out counts
# nowhere until the commit counts it whole. A savepoint rolled back undoes its take-outs and
# add-backs in the database, and the set of jobs taken out goes back to what it was as the
# savepoint began; a read of the counts in the transaction adds them back first. Per
# transaction rather than per flush: a group of events flushes ~20 times (each inspection in
# a savepoint of its own). Hooked to the session rather than to each caller: the ingest,
# edits, cancel, reopen and breakage reversal all write the job through it, and no later
# caller can forget.


class JobCounts(NamedTuple):
    """KpiJobDay's counts, as `_job_counts` sums them."""

    finished: int
    on_time: int
    reworked: int
    late_breakage: int  # late, by `_late_cause`
    late_rework: int
    late_hold: int
    late_flow: int
    inspected: int  # first QC inspections
    passed: int


JOB_COUNTS = JobCounts._fields
_NO_JOBS = JobCounts(0, 0, 0, 0, 0, 0, 0, 0, 0)


def _job_counts(
    session: Session,
    scope: Scope,
    spans: list[Span],
    group: str | None = None,
    dimension: KpiJobDimension = KpiJobDimension.job,
) -> list[Any]:
    """KpiJobDay's counts summed over the rows of `spans` (`_spans`) in scope, per `group` (a
    column of it: day, store_id or key) or in all; groups that counted nothing (rows gone
    back to 0) are left out. The lab's figures are its stores' rows added up."""
    _add_back(session)  # a write session's own changes read as counted
    kinds, bounds = _span_bounds(spans)
    params = {"lab_id": scope.lab_id, "store_id": scope.store_id or 0} | bounds
    statement = _job_counts_select(dimension, scope.store_id is not None, kinds, group)
    return list(session.execute(statement, params).all())


@lru_cache(maxsize=128)
def _job_counts_select(
    dimension: KpiJobDimension, by_store: bool, spans: tuple[KpiSpan, ...], group: str | None
) -> Select[Any]:
    """`_job_counts`' statement, built once per shape (as `_bucket_counts`), its values bound
    by name: lab_id, store_id, and the spans' first_N and following_N days."""
    conditions = [KpiJobDay.lab_id == bindparam("lab_id"), KpiJobDay.dimension == dimension]
    if by_store:
        conditions.append(KpiJobDay.store_id == bindparam("store_id"))
    rows = union_all(
        *(
            select(KpiJobDay).where(
                *conditions,
                KpiJobDay.span == span,
                KpiJobDay.day >= bindparam(f"first_{index}"),
                KpiJobDay.day < bindparam(f"following_{index}"),
            )
            for index, span in enumerate(spans)
        )
    ).subquery()
    groups = [] if group is None else [rows.c[group]]
    # Cast: PostgreSQL sums integers to bigint.
    sums = [cast(func.sum(rows.c[name]), Integer).label(name) for name in JOB_COUNTS]
    counted = or_(func.sum(rows.c.finished) > 0, func.sum(rows.c.inspected) > 0)
    return select(*groups, *sums).group_by(*groups).having(counted)


OPEN_STATUSES = frozenset(JobStatus) - {JobStatus.completed, JobStatus.cancelled}
# The job's columns its counts read; those of the keys count even for a job not finished
# (its first inspection's).
JOB_FIELDS = frozenset(
    {
        "status",
        "state_changed_at",
        "promised_at",
        "rework_count",
        "breakage_count",
        "lab_id",
        "store_id",
        "lens_design",
        "lens_material",
    }
)
KEY_FIELDS = frozenset({"lab_id", "store_id", "lens_design", "lens_material"})
# session.info: the jobs whose counts this transaction took out (or, new, never had) and adds
# at its commit; that set as each savepoint began; the new jobs of the flush under way.
UNCOUNTED = "lenstrack.kpi_uncounted_jobs"
AT_SAVEPOINTS = "lenstrack.kpi_uncounted_at_savepoints"
CREATED = "lenstrack.kpi_created_jobs"


def _counts_change(job: Job) -> bool:
    """Whether a flush of this persistent job may change its counts: a column they read was
    set (perhaps to its old value: taken out for nothing, never missed), and either it is a
    key's or the job is or was finished or cancelled (an open job's status and times count
    nowhere)."""
    state = inspect(job)
    changed = JOB_FIELDS.intersection(state.committed_state)
    if changed & KEY_FIELDS:
        return True
    status = state.dict.get("status")
    statuses = {state.committed_state.get("status", status), status}
    return bool(changed) and not statuses <= OPEN_STATUSES  # unloaded: it may be counted


def _old_and_new(row: Inspection | StageEvent, name: str) -> set[Any]:
    history = attributes.get_history(row, name)
    return {*history.added, *history.unchanged, *history.deleted}


def _changing_jobs(session: Session) -> tuple[set[int], list[Job]]:
    """Before a flush: the jobs in the database whose counts it may change, and the new jobs.
    A new inspection changes them only as the job's first (attempt 1), an event only as a
    hold (a late job's cause)."""
    jobs: set[int | None] = set()  # None: a new job's (the job is new too)
    created: list[Job] = []
    new, deleted = session.new, session.deleted  # (each read builds a set)
    for row in (*new, *session.dirty, *deleted):
        if isinstance(row, Job):
            if row in new:
                created.append(row)
            elif row in deleted or _counts_change(row):
                jobs.add(row.id)
        elif isinstance(row, Inspection):
            if row not in new:
                jobs.update(_old_and_new(row, "job_id"))
            elif row.attempt == 1:
                jobs.add(row.job_id)
        elif isinstance(row, StageEvent) and EventAction.hold in (
            {row.action} if row in new else _old_and_new(row, "action")
        ):
            jobs.update(_old_and_new(row, "job_id"))
    return {job_id for job_id in jobs if job_id is not None}, created


def _take_out(session: Session, jobs: set[int]) -> None:
    """The counts of those of `jobs` this transaction has not taken out yet, as the database
    has them now, taken out until its commit."""
    uncounted: set[int] = session.info.setdefault(UNCOUNTED, set())
    if jobs - uncounted:
        _count_jobs(session.connection(), {"ids": sorted(jobs - uncounted)}, -1)
        uncounted |= jobs


def _add_back(session: Session) -> None:
    """The counts of the jobs taken out (after a flush of what is pending), as the database
    has them now, added back: KpiJobDay is exact again."""
    session.flush()
    uncounted: set[int] | None = session.info.get(UNCOUNTED)
    if uncounted:
        _count_jobs(session.connection(), {"ids": sorted(uncounted)}, 1)
        uncounted.clear()


def _before_flush(session: Session, _context: UOWTransaction, _instances: Any) -> None:
    jobs, created = _changing_jobs(session)
    session.info[CREATED] = created
    if jobs:
        _take_out(session, jobs)


def _after_flush(session: Session, _context: UOWTransaction) -> None:
    # New jobs have their ids now; they had no counts to take out.
    created: list[Job] = session.info.pop(CREATED, [])
    if created:
        session.info.setdefault(UNCOUNTED, set()).update(job.id for job in created)


def _before_commit(session: Session) -> None:
    if not session.in_nested_transaction():  # a savepoint released: its jobs wait for the commit
        _add_back(session)


def _savepoint_began(session: Session, transaction: SessionTransaction) -> None:
    if transaction.nested:
        uncounted = frozenset(session.info.get(UNCOUNTED, ()))
        session.info.setdefault(AT_SAVEPOINTS, {})[transaction] = uncounted


def _after_soft_rollback(session: Session, previous: SessionTransaction) -> None:
    """A savepoint rolled back undid what it took out and added back: the jobs taken out are
    those as it began."""
    savepoint = rolled_back_savepoint(previous)
    if savepoint is not None:
        session.info[UNCOUNTED] = set(session.info[AT_SAVEPOINTS][savepoint])


def _transaction_ended(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # committed with its jobs added back, or rolled back
        for key in (UNCOUNTED, AT_SAVEPOINTS, CREATED):
            session.info.pop(key, None)


def _statement_write(state: ORMExecuteState) -> Result[Any] | None:
    """An UPDATE or DELETE statement of jobs, inspections or events (which no flush sees):
    its jobs' counts taken out before it. (The session has flushed first.)"""
    if not (state.is_update or state.is_delete) or state.bind_mapper is None:
        return None
    job_id = {Job: Job.id, Inspection: Inspection.job_id, StageEvent: StageEvent.job_id}.get(
        state.bind_mapper.class_
    )
    if job_id is None:
        return None
    where = state.statement.whereclause  # type: ignore[attr-defined]
    found = select(job_id).distinct()
    connection = state.session.connection()
    jobs = set(connection.scalars(found if where is None else found.where(where)))
    if jobs:
        _take_out(state.session, jobs)
    return state.invoke_statement()


def install(session_factory: sessionmaker[Session]) -> None:
    """Keep KpiJobDay's counts with every write session this factory makes."""
    for name, hook in (
        ("before_flush", _before_flush),
        ("after_flush", _after_flush),
        ("do_orm_execute", _statement_write),
        ("before_commit", _before_commit),
        ("after_transaction_create", _savepoint_began),
        ("after_soft_rollback", _after_soft_rollback),
        ("after_transaction_end", _transaction_ended),
    ):
        event.listen(session_factory, name, hook)


def recount_jobs(session: Session, lab_id: int) -> None:
    """The lab's KpiJobDay rows counted again from its jobs (the bulk seed, which writes jobs
    past the session's hooks, and migration 0030's backfill), set-based."""
    _add_back(session)  # else the jobs taken out would count twice at the commit
    connection = session.connection()
    connection.execute(delete(KpiJobDay).where(KpiJobDay.lab_id == lab_id))
    _count_jobs(connection, {"lab_id": lab_id}, 1)


def _count_jobs(connection: Connection, which: dict[str, Any], sign: int) -> None:
    """Adds (`sign` 1) or takes out (-1) the counts of the jobs `which` (bound `ids`, or a
    lab's every job), a statement per lab: its zone decides their days."""
    by_ids = "ids" in which
    for lab_id, timezone, first, last in connection.execute(_labs_counted(by_ids), which).all():
        # Whole years: the statement is built again only when a year is new to it (a job's
        # times are any days, not only today's), and a year has a few offsets to test.
        years = (date(first.year, 1, 1), date(last.year, 12, 31))
        offsets = utc_offsets(ZoneInfo(timezone), *years)
        statement = _job_day_upsert(connection.dialect.name, by_ids, offsets)
        connection.execute(statement, {**which, "lab_id": lab_id, "sign": sign})


@cache
def _job_facts(by_ids: bool) -> CTE:
    """What each job of the bound `ids` (`by_ids`), else of the bound `lab_id`, counts: its
    finish if it finished (late: with its cause), and its first QC inspection unless it was
    cancelled, with the time each counts at."""
    jobs = (
        Job.id.in_(bindparam("ids", expanding=True))
        if by_ids
        else Job.lab_id == bindparam("lab_id")
    )
    no_id = cast(null(), Integer)
    finishes = select(
        Job.lab_id,
        Job.store_id,
        Job.state_changed_at.label("at"),
        Job.lens_design.label("design"),
        Job.lens_material.label("material"),
        no_id.label("station_id"),
        no_id.label("operator_id"),
        literal(1, Integer).label("finished"),
        case((_is_late(), _late_cause())).label("late_cause"),
        case((Job.rework_count > 0, 1), else_=0).label("reworked"),
        literal(0, Integer).label("inspected"),
        literal(0, Integer).label("passed"),
    ).where(jobs, Job.status == JobStatus.completed)
    firsts = (
        select(
            Job.lab_id,
            Job.store_id,
            Inspection.inspected_at,
            Job.lens_design,
            Job.lens_material,
            Inspection.station_id,
            Inspection.operator_id,
            literal(0, Integer),
            cast(null(), String),
            literal(0, Integer),
            literal(1, Integer),
            case((Inspection.passed, 1), else_=0),
        )
        .join(Job, Job.id == Inspection.job_id)
        .where(jobs, Inspection.attempt == 1, Job.status != JobStatus.cancelled)
    )
    return union_all(finishes, firsts).cte("facts").prefix_with("MATERIALIZED")


@cache
def _labs_counted(by_ids: bool) -> Select[Any]:
    """Each lab of the jobs counted (`_job_facts`): its zone, and their first and last time."""
    facts = _job_facts(by_ids)
    return (
        select(Lab.id, Lab.timezone, func.min(facts.c.at), func.max(facts.c.at))
        .join(Lab, Lab.id == facts.c.lab_id)
        .group_by(Lab.id, Lab.timezone)
    )


@lru_cache(maxsize=64)
def _job_day_upsert(dialect: str, by_ids: bool, offsets: tuple[tuple[datetime, int], ...]) -> Any:
    """The counts of the jobs counted (`_job_facts`) of the bound `lab_id`, times the bound
    `sign`, per store, key and day and month (the lab's, by its UTC `offsets`), added to
    KpiJobDay's. Built once per lab and offsets, as `_bucket_upsert`."""
    facts = _job_facts(by_ids)
    offset = utc_offset_at(facts.c.at, offsets)
    sign = bindparam("sign", type_=Integer)
    late = [func.sum(case((facts.c.late_cause == cause.value, 1), else_=0)) for cause in LateCause]
    sums = [
        func.sum(facts.c.finished),
        func.sum(facts.c.finished) - func.count(facts.c.late_cause),
        func.sum(facts.c.reworked),
        *late,
        func.sum(facts.c.inspected),
        func.sum(facts.c.passed),
    ]
    keys: dict[KpiJobDimension, tuple[Any, list[ColumnElement[bool]]]] = {
        KpiJobDimension.job: (literal_column("''"), []),
        KpiJobDimension.design: (facts.c.design, []),
        KpiJobDimension.material: (facts.c.material, []),
        KpiJobDimension.station: (
            cast(facts.c.station_id, String),
            [facts.c.station_id.is_not(None)],
        ),
        KpiJobDimension.operator: (
            cast(facts.c.operator_id, String),
            [facts.c.operator_id.is_not(None)],
        ),
    }
    counted = []
    for dimension, (key, conditions) in keys.items():
        for span in KpiSpan:
            day = _local_day(facts.c.at, offset, dialect, span)
            grouped = [day, facts.c.store_id] + ([] if dimension == KpiJobDimension.job else [key])
            counted.append(
                select(
                    facts.c.lab_id,
                    literal(dimension.value).label("dimension"),
                    literal(span.value).label("span"),
                    day.label("day"),
                    facts.c.store_id,
                    key.label("key"),
                    *(
                        (total * sign).label(name)
                        for name, total in zip(JOB_COUNTS, sums, strict=True)
                    ),
                )
                .where(facts.c.lab_id == bindparam("lab_id"), *conditions)
                .group_by(facts.c.lab_id, *grouped)
            )
    rows = union_all(*counted).subquery()
    columns = ["lab_id", "dimension", "span", "day", "store_id", "key"]
    upsert = (sqlite_insert if dialect == "sqlite" else postgresql_insert)(KpiJobDay)
    # Ordered by the key, WHERE after a bare FROM: as `_bucket_upsert`.
    source = select(*rows.c).where(true()).order_by(*list(rows.c)[: len(columns)])
    statement = upsert.from_select([*columns, *JOB_COUNTS], source)
    return statement.on_conflict_do_update(
        index_elements=columns,
        set_={name: getattr(KpiJobDay, name) + statement.excluded[name] for name in JOB_COUNTS},
    )


def targets(session: Session, lab_id: int) -> KpiTargets:
    """The lab's configured targets (the defaults before `config load` set any)."""
    return KpiTargets.model_validate(session.get_one(Lab, lab_id).kpi_targets or {})


@dataclass(frozen=True)
class Dashboard:
    scope: Scope
    period: Period
    previous_period: Period
    targets: KpiTargets
    current: Headline
    previous: Headline
    trend: list[TrendPoint]
    stages: list[StageRow]
    stores: list[GroupRow]
    designs: list[GroupRow]
    materials: list[GroupRow]
    stations: list[FloorRow]
    operators: list[FloorRow]
    shifts: list[CountRow]
    defects: list[CountRow]
    remakes: list[CountRow]
    late_causes: list[CountRow]


def dashboard(session: Session, principal: Principal, query: KpiQuery, now: datetime) -> Dashboard:
    """Every figure of a dashboard for the period and scope asked for."""
    scope = resolve_scope(session, principal, query.store)
    period = resolve_period(query, lab_zone(session, principal.lab_id), now)
    previous = period.previous()
    one_store = scope.store_id is not None
    return Dashboard(
        scope=scope,
        period=period,
        previous_period=previous,
        targets=targets(session, principal.lab_id),
        current=headline(session, scope, period),
        previous=headline(session, scope, previous),
        trend=trend(session, scope, period),
        stages=by_stage(session, scope, period),
        stores=[] if one_store else by_job_dimension(session, scope, period, Dimension.store),
        designs=by_job_dimension(session, scope, period, Dimension.design),
        materials=by_job_dimension(session, scope, period, Dimension.material),
        # The floor's people and stations are the lab's business, not a store's.
        stations=[] if one_store else by_floor(session, scope, period, Dimension.station),
        operators=[] if one_store else by_floor(session, scope, period, Dimension.operator),
        shifts=breakages_by_shift(session, scope, period),
        defects=rework_defects(session, scope, period),
        remakes=remakes_by_class(session, scope, period),
        late_causes=late_by_cause(session, scope, period),
    )


# Drill-down: the jobs behind a number.


@dataclass(frozen=True)
class DrillRow:
    job_id: int
    job_number: str
    store_code: str
    lens_design: str
    lens_material: str
    status: JobStatus
    promised: str
    finished: str | None
    late: bool


def _drill_conditions(
    kind: DrillKind, scope: Scope, period: Period
) -> tuple[list[ColumnElement[bool]], dict[Dimension, Any]]:
    """The jobs behind one figure, and the dimensions that figure may be narrowed by (each a
    condition on a value)."""
    job_dims: dict[Dimension, Any] = {
        Dimension.store: lambda value: Store.code == value,
        Dimension.design: lambda value: Job.lens_design == value,
        Dimension.material: lambda value: Job.lens_material == value,
    }
    finished = [*scope.jobs(), *_finished_in(period)]
    match kind:
        case DrillKind.finished:
            return finished, job_dims
        case DrillKind.late | DrillKind.reworked:
            condition = _is_late() if kind == DrillKind.late else Job.rework_count > 0
            return [*finished, condition], {
                **job_dims,
                Dimension.cause: lambda value: _late_cause() == value,
            }
        case DrillKind.first_inspected | DrillKind.first_pass_failed:
            inspections = _first_inspections(scope, period).with_only_columns(Inspection.job_id)
            if kind == DrillKind.first_pass_failed:
                inspections = inspections.where(~Inspection.passed)

            def at(column: Any, model: Any) -> Callable[[str], ColumnElement[bool]]:
                return lambda value: Job.id.in_(
                    inspections.join(model, model.id == column).where(model.name == value)
                )

            return [*scope.jobs(), Job.id.in_(inspections)], {
                **job_dims,
                Dimension.station: at(Inspection.station_id, Station),
                Dimension.operator: at(Inspection.operator_id, Person),
            }
        case DrillKind.broken:
            broken = _breakages(scope, period).with_only_columns(Breakage.job_id)
            return [*scope.jobs(), Job.id.in_(broken)], {
                **job_dims,
                Dimension.stage: lambda value: Job.id.in_(
                    broken.join(Stage, Stage.id == Breakage.stage_id).where(Stage.code == value)
                ),
                Dimension.shift: lambda value: Job.id.in_(
                    broken.where(func.coalesce(Breakage.shift, "(no shift)") == value)
                ),
            }
        case DrillKind.remade:
            return _remakes(scope, period), {
                **job_dims,
                Dimension.remake_class: lambda value: Job.remake_class == value,
            }
        case DrillKind.wip:
            current = aliased(Stage)
            return [*scope.jobs(), Job.is_active], {
                **job_dims,
                Dimension.stage: lambda value: Job.current_stage_id.in_(
                    select(current.id).where(current.code == value)
                ),
            }


def drill(
    session: Session, principal: Principal, query: DrillQuery, now: datetime
) -> tuple[Period, list[DrillRow]]:
    """The jobs behind a figure (at most DRILL_LIMIT, latest finished or promised first)."""
    scope = resolve_scope(session, principal, query.store)
    zone = lab_zone(session, principal.lab_id)
    period = resolve_period(query, zone, now)
    conditions, dimensions = _drill_conditions(query.kind, scope, period)
    if (query.dimension is None) != (query.value is None):
        field = "value" if query.value is None else "dimension"
        raise Invalid(field, "dimension and value go together")
    if query.dimension is not None:
        narrow = dimensions.get(query.dimension)
        if narrow is None:
            raise Invalid("dimension", f"{query.kind} jobs are not counted by {query.dimension}")
        conditions = [*conditions, narrow(query.value)]
    completed = Job.status == JobStatus.completed
    rows = session.execute(
        select(
            Job.id,
            Job.job_number,
            Store.code,
            Job.lens_design,
            Job.lens_material,
            Job.status,
            Job.promised_at,
            Job.state_changed_at,
        )
        .join(Store, Store.id == Job.store_id)
        .where(*conditions)
        .order_by(case((completed, Job.state_changed_at)).desc(), Job.promised_at.desc(), Job.id)
        .limit(DRILL_LIMIT)
    )
    return period, [
        DrillRow(
            job_id=job_id,
            job_number=number,
            store_code=store_code,
            lens_design=design.value,
            lens_material=material,
            status=status,
            promised=local_text(promised_at, zone),
            finished=local_text(changed_at, zone) if status == JobStatus.completed else None,
            late=(changed_at if status == JobStatus.completed else now) > promised_at,
        )
        for job_id, number, store_code, design, material, status, promised_at, changed_at in rows
    ]


def percent(ratio: Ratio) -> str:
    """'96.4 %' or '–' when nothing was counted."""
    rate = ratio.rate
    return "–" if rate is None else f"{100 * rate:.1f} %"
