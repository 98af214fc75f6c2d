"""SPC charts of QC measurements and the lab alerts their rule violations raise (issue #16).

A chart is one measure's signed deviation (measured − ordered) per lens, for the lenses one
station handled: an inspecting station's own measurements, or, for a machine (generator,
edger …), the lenses whose last completed event at its stage before the inspection was
there — so a drifting edger shows in QC before breakage rises. Optionally narrowed to a shift
(the lab's, as breakages are booked) and a lens material.

The series comes from SQL (the same statement on SQLite and PostgreSQL), bounded: the
`POINTS` latest since the phase II start, and the `BASELINE_POINTS` before it whose limits
(core.spc) the later points are judged by.
"""

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from functools import cache, partial
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    case,
    cast,
    false,
    func,
    or_,
    select,
    text,
)
from sqlalchemy.orm import Session

from core import spc
from server.db import Database
from server.domain.auth import LAB_ROLES, MANAGER_ROLES, PersonPrincipal
from server.domain.breakage import shift_at
from server.domain.errors import Conflict, Forbidden, Invalid, NotFound
from server.domain.jobs import lab_catalogue
from server.domain.lab_time import utc_offset
from server.models import (
    EventAction,
    Inspection,
    InspectionCheck,
    Job,
    Lab,
    LabAlert,
    Stage,
    StageEvent,
    Station,
)
from server.notify.enqueue import enqueue_alert

Measure = Literal["sph", "cyl", "axis", "add", "prism", "pd"]
MEASURES: tuple[Measure, ...] = ("sph", "cyl", "axis", "add", "prism", "pd")
MEASURE_NAMES = {
    "sph": "Sphere (D)",
    "cyl": "Cylinder (D)",
    "axis": "Axis (°)",
    "add": "Addition (D)",
    "prism": "Prism error (Δ)",
    "pd": "PD (mm)",
}
POINTS = 300  # judged points a chart shows at most (the latest)
BASELINE_POINTS = 200  # phase I: the points before the phase II start the limits come from
MIN_BASELINE = 20  # fewer and a chart has no limits yet (too little history to trust)
PHASE_TWO = timedelta(days=14)  # the default phase II start: this long before now
# Alerts judge means of a job's two lenses and the next job's (X̄/R, n = 4): individuals under
# the four rules alarm about every 92 points of a process in control, several times a day
# per chart at a lab's volume; means also show a shift of the mean sooner.
ALERT_KIND: Literal["xbar_r"] = "xbar_r"
ALERT_SUBGROUP = 4
# Violations at points inspected this long before a scan raise alerts; older ones were the
# earlier scans' to raise (the chart still shows them).
ALERT_RECENT = timedelta(days=1)
AXIS_WRAP = 180.0
NAME_PATTERN = r"^[^\x00-\x1f\x7f]+$"  # a station's, shift's or material's: no control characters


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class ChartKey(_Strict):
    """Which chart: a measure at a station, optionally one shift's and one material's."""

    measure: Measure
    station: Annotated[str, Field(min_length=1, max_length=64, pattern=NAME_PATTERN)]
    shift: Annotated[str | None, Field(min_length=1, max_length=32, pattern=NAME_PATTERN)] = None
    material: Annotated[str | None, Field(min_length=1, max_length=64, pattern=NAME_PATTERN)] = None

    @property
    def text(self) -> str:
        """The chart's name in an alert: unique per chart, readable in a list."""
        return "|".join([self.measure, self.station, self.shift or "*", self.material or "*"])

    @classmethod
    def from_text(cls, text: str) -> "ChartKey":
        """The key an alert's `text` names ("*": every shift or material)."""
        measure, station, shift, material = text.split("|")
        return cls.model_validate(
            {
                "measure": measure,
                "station": station,
                "shift": None if shift == "*" else shift,
                "material": None if material == "*" else material,
            }
        )


class ChartQuery(ChartKey):
    """A chart and how to draw it: individuals (I-MR) or means of `subgroup` consecutive
    lenses (X̄/R), judged from `since` (default: `PHASE_TWO` before now)."""

    # Lax: a query string's numbers and times arrive as text.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)
    kind: Literal["imr", "xbar_r"] = "imr"
    subgroup: Annotated[int, Field(ge=2, le=10)] = ALERT_SUBGROUP
    since: AwareDatetime | None = None

    @field_validator("since")
    @classmethod
    def _storable(cls, since: datetime | None) -> datetime | None:
        """A time the database can compare with: in UTC within years 1..9999."""
        try:
            return None if since is None else since.astimezone(UTC)
        except OverflowError as error:
            raise ValueError("is out of range") from error


class ChartPoint(_Strict):
    """One lens (I-MR) or subgroup (X̄/R, named by its last lens)."""

    job_id: int
    job_number: str
    at: datetime
    eye: str | None
    value: float
    spread: float | None  # moving range or subgroup range; None for the first individual


class ViolationOut(_Strict):
    rule: int
    description: str
    index: int
    side: Literal["above", "below"]
    job_id: int
    job_number: str
    at: datetime


class LimitsOut(_Strict):
    centre: float
    sigma: float
    lower: float
    upper: float
    spread_centre: float
    spread_lower: float
    spread_upper: float


class ChartOut(_Strict):
    key: ChartKey
    kind: Literal["imr", "xbar_r"]
    subgroup: int | None  # X̄/R: lenses per point
    measure_name: str
    stage: str  # where the station works, e.g. "Edging"
    since: datetime
    points: list[ChartPoint]
    baseline: int  # the first `baseline` points are phase I (limits), the rest are judged
    limits: LimitsOut | None  # None: fewer than MIN_BASELINE baseline values
    violations: list[ViolationOut]


class StationOption(_Strict):
    name: str
    stage: str
    inspects: bool


class ChartOptions(_Strict):
    measures: dict[str, str]
    stations: list[StationOption]
    shifts: list[str]
    materials: list[str]


class AlertOut(_Strict):
    id: int
    chart: str
    measure: str
    station: str
    rule: int
    side: str
    job_id: int
    point_at: datetime
    message: str
    raised_at: datetime
    acknowledged_at: datetime | None


@dataclass(frozen=True)
class _Lens:
    job_id: int
    job_number: str
    at: datetime
    eye: str | None
    value: float


def _lab_only(principal: PersonPrincipal) -> None:
    if principal.role not in LAB_ROLES:
        raise Forbidden("role", "process control charts are for the lab")


def _deviation(measure: Measure) -> ColumnElement[float]:
    """Signed, so a drift shows its direction: measured − ordered; the axis wrapped to
    −90 … +90°; prism as the length of the error vector (its direction has no sign)."""
    if measure == "prism":
        return InspectionCheck.deviation
    difference = InspectionCheck.measured - InspectionCheck.ordered
    if measure != "axis":
        return difference
    half = AXIS_WRAP / 2
    return case(
        (difference > half, difference - AXIS_WRAP),
        (difference < -half, difference + AXIS_WRAP),
        else_=difference,
    )


def _series(
    session: Session,
    lab: Lab,
    station: Station,
    key: ChartKey,
    *,
    after: datetime | None = None,
    before: datetime | None = None,
    limit: int,
) -> list[_Lens]:
    """The latest `limit` lenses of the chart (oldest first) inspected in [after, before).

    The inspections are picked first, newest back, so a chart reads its own few hundred rows
    by the inspection time index (a measure's checks alone are millions at a year's volume).
    """
    # Never by the field index: a planner without fresh statistics takes it and reads every
    # check of the measure (millions); an inspection's few checks are found by its id.
    of_measure = InspectionCheck.field.concat("") == key.measure
    # A correlated scalar, not EXISTS: PostgreSQL would turn EXISTS into a join over every
    # check of the measure, before the newest-first walk and its LIMIT could stop early.
    measured = (
        select(InspectionCheck.id)
        .where(InspectionCheck.inspection_id == Inspection.id, of_measure)
        .limit(1)
        .scalar_subquery()
        .is_not(None)
    )
    # The job number read only for the inspections picked: joined to them, PostgreSQL took
    # the walk's cost (its whole index, for a chart of few lenses) for so much that a scan
    # of every job cost the same to it.
    job_number = select(Job.job_number).where(Job.id == Inspection.job_id).scalar_subquery()
    latest = select(
        Inspection.id, Inspection.job_id, job_number.label("job_number"), Inspection.inspected_at
    )
    # Each inspection walked is judged by its cheapest test first: the shift (its own time),
    # the material (its job), the station, then whether it measured the measure. The station
    # is the lab's, so its inspections or lenses are too.
    if key.shift is not None:
        latest = latest.where(_in_shift(session, lab, key.shift, Inspection.inspected_at))
    if key.material is not None:
        # A correlated scalar, not EXISTS: PostgreSQL turned EXISTS into a join from every
        # job of the material (a fifth of the lab's), reading their inspections (600 ms).
        of_material = select(Job.lens_material).where(Job.id == Inspection.job_id)
        latest = latest.where(of_material.scalar_subquery() == key.material)
    if station.stage.inspection:
        latest = latest.where(Inspection.station_id == station.id)
    else:
        processed_by = (
            select(StageEvent.station_id)
            .where(
                StageEvent.job_id == Inspection.job_id,
                StageEvent.stage_id == station.stage_id,
                StageEvent.action == EventAction.complete,
                StageEvent.id < Inspection.event_id,
            )
            .order_by(StageEvent.id.desc())
            .limit(1)
            .scalar_subquery()
        )
        latest = latest.where(processed_by == station.id)
    latest = latest.where(measured)
    if after is not None:
        latest = latest.where(Inspection.inspected_at >= after)
    if before is not None:
        latest = latest.where(Inspection.inspected_at < before)
    picked = (
        latest.order_by(Inspection.inspected_at.desc(), Inspection.id.desc())
        .limit(limit)
        .subquery()
    )
    if session.get_bind().dialect.name == "postgresql":
        # Planned for this chart's values every time: once psycopg prepares the statement
        # (after five runs on a connection), PostgreSQL may switch to a generic plan blind to
        # the material and time bounds (CR-39 on EDGE-2, 100k jobs: 35 -> 340 ms). Only this
        # transaction: engine-wide, it slowed KPI queries that gain from their cached plans.
        session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
    # The picked rows carry what is read of the inspection: joined back to the table, the
    # planner (taking them for a couple) walked every inspection against them.
    rows = session.execute(
        select(
            picked.c.job_id,
            picked.c.job_number,
            picked.c.inspected_at,
            InspectionCheck.eye,
            _deviation(key.measure),
        )
        .join(InspectionCheck, InspectionCheck.inspection_id == picked.c.id)
        .where(of_measure)
        .order_by(picked.c.inspected_at.desc(), picked.c.id.desc(), InspectionCheck.id.desc())
    ).all()
    # The shift judged again as breakages are (shift_at): `_in_shift` reads whole seconds.
    shift_of = cache(partial(shift_at, lab))  # both lenses of an inspection share its time
    lenses = [
        _Lens(job_id, job_number, at, eye, float(value))
        for job_id, job_number, at, eye, value in rows
        if key.shift is None or shift_of(at) == key.shift
    ]
    return lenses[:limit][::-1]


def _in_shift(session: Session, lab: Lab, shift: str, moment: Any) -> ColumnElement[bool]:
    """SQL: a UTC time is in the lab's shift, by its local time of day as `shift_at` judges
    (the shift whose start most recently passed, wrapping midnight; DST by the zone's UTC
    offsets over the lab's inspections), in whole seconds: a start within a second (never
    configured) takes that whole second into both shifts. Each run of the shift is one
    inequality, the seconds since its start modulo a day below its length: PostgreSQL takes a
    third of the rows to pass it (two bounds, it took almost none and sorted every inspection
    instead of walking them newest first to the chart's few)."""
    zone = ZoneInfo(lab.timezone)
    first, last = session.execute(
        select(
            select(func.min(Inspection.inspected_at)).scalar_subquery(),
            select(func.max(Inspection.inspected_at)).scalar_subquery(),
        )
    ).one()
    if first is None:
        return false()  # no inspection at all
    offset = utc_offset(moment, zone, first.date(), last.date())
    if session.get_bind().dialect.name == "sqlite":
        epoch = cast(func.strftime("%s", moment), Integer)
    else:
        epoch = cast(func.floor(func.date_part("epoch", moment)), BigInteger)
    day = 86400
    starts = sorted((time.fromisoformat(entry["starts"]), entry["name"]) for entry in lab.shifts)
    floors = [start.hour * 3600 + start.minute * 60 + start.second for start, _name in starts]
    ceilings = [floors[i] + (start.microsecond > 0) for i, (start, _name) in enumerate(starts)]
    # Each run of the shift: to the next start, the last over midnight to the first.
    ends = [*ceilings[1:], ceilings[0] + day]
    runs = [index for index, (_start, name) in enumerate(starts) if name == shift]
    return or_(false(), *((epoch + offset - floors[i]) % day < ends[i] - floors[i] for i in runs))


def _station(session: Session, lab_id: int, name: str) -> Station:
    station = session.scalar(select(Station).where(Station.lab_id == lab_id, Station.name == name))
    if station is None:
        raise Invalid("station", f"no station {name} in the lab")
    return station


def _check_key(session: Session, lab: Lab, key: ChartKey) -> Station:
    station = _station(session, lab.id, key.station)
    if key.shift is not None and key.shift not in _shifts(lab):
        raise Invalid("shift", f"no shift {key.shift} in the lab")
    materials = _materials(session, lab.id)
    if key.material is not None and key.material not in materials:
        raise Invalid("material", f"no material {key.material} in the catalogue")
    return station


def _shifts(lab: Lab) -> list[str]:
    return [shift["name"] for shift in lab.shifts]


def _materials(session: Session, lab_id: int) -> list[str]:
    return [material.code for material in lab_catalogue(session, lab_id).materials]


def chart_options(session: Session, principal: PersonPrincipal) -> ChartOptions:
    """What a chart may be drawn for: every measure, station, shift and material."""
    _lab_only(principal)
    lab = session.get_one(Lab, principal.lab_id)
    stations = session.scalars(
        select(Station)
        .join(Stage, Stage.id == Station.stage_id)
        .where(Station.lab_id == lab.id)
        .order_by(Stage.position, Station.name)
    )
    return ChartOptions(
        measures=dict(MEASURE_NAMES),
        stations=[
            StationOption(name=s.name, stage=s.stage.name, inspects=s.stage.inspection)
            for s in stations
        ],
        shifts=_shifts(lab),
        materials=_materials(session, lab.id),
    )


def chart(
    session: Session, principal: PersonPrincipal, query: ChartQuery, now: datetime
) -> ChartOut:
    _lab_only(principal)
    lab = session.get_one(Lab, principal.lab_id)
    station = _check_key(session, lab, query)
    return _chart(session, lab, station, query, query.since or now - PHASE_TWO)


def _chart(
    session: Session, lab: Lab, station: Station, query: ChartQuery, since: datetime
) -> ChartOut:
    key = ChartKey(
        measure=query.measure, station=query.station, shift=query.shift, material=query.material
    )
    baseline = _series(session, lab, station, key, before=since, limit=BASELINE_POINTS)
    recent = _series(session, lab, station, key, after=since, limit=POINTS)
    if query.kind == "xbar_r":
        groups = _subgroups(baseline, query.subgroup) + _subgroups(recent, query.subgroup)
        enough = len(baseline) // query.subgroup * query.subgroup >= MIN_BASELINE
        baseline_count = len(baseline) // query.subgroup
        drawn = [group[-1] for group in groups]
        judged = (
            spc.subgroup_chart([[lens.value for lens in g] for g in groups], baseline_count)
            if enough
            else None
        )
    else:
        drawn = baseline + recent
        baseline_count = len(baseline)
        enough = baseline_count >= MIN_BASELINE
        judged = (
            spc.individuals_chart([lens.value for lens in drawn], baseline_count)
            if enough
            else None
        )
    if judged is None:
        values = [lens.value for lens in drawn]
        spreads: Sequence[float | None] = [None] * len(drawn)
    else:
        values, spreads = list(judged.values), judged.ranges
    return ChartOut(
        key=key,
        kind=query.kind,
        subgroup=query.subgroup if query.kind == "xbar_r" else None,
        measure_name=MEASURE_NAMES[query.measure],
        stage=station.stage.name,
        since=since,
        points=[
            ChartPoint(
                job_id=lens.job_id,
                job_number=lens.job_number,
                at=lens.at,
                eye=lens.eye if query.kind == "imr" else None,
                value=value,
                spread=spread,
            )
            for lens, value, spread in zip(drawn, values, spreads, strict=True)
        ],
        baseline=baseline_count,
        limits=_limits_out(judged),
        violations=[
            ViolationOut(
                rule=violation.rule,
                description=violation.rule.description,
                index=violation.index,
                side=violation.side,
                job_id=drawn[violation.index].job_id,
                job_number=drawn[violation.index].job_number,
                at=drawn[violation.index].at,
            )
            for violation in (judged.violations if judged else ())
        ],
    )


def _subgroups(lenses: list[_Lens], size: int) -> list[tuple[_Lens, ...]]:
    """Consecutive lenses in groups of `size`; the oldest left over are dropped."""
    start = len(lenses) % size
    return [tuple(lenses[i : i + size]) for i in range(start, len(lenses), size)]


def _limits_out(judged: spc.Chart | None) -> LimitsOut | None:
    if judged is None:
        return None
    limits, spread = judged.limits, judged.range_limits
    return LimitsOut(
        centre=limits.centre,
        sigma=limits.sigma,
        lower=limits.lower,
        upper=limits.upper,
        spread_centre=spread.centre,
        spread_lower=spread.lower,
        spread_upper=spread.upper,
    )


# Alerts -------------------------------------------------------------------------------------


def _scanned_stations(session: Session, lab_id: int) -> list[Station]:
    """Stations whose work QC measures: every active one at or before the last inspection
    stage (coating, edging … and the inspecting stations themselves)."""
    last_inspection = select(func.max(Stage.position)).where(
        Stage.lab_id == lab_id, Stage.inspection
    )
    return list(
        session.scalars(
            select(Station)
            .join(Stage, Stage.id == Station.stage_id)
            .where(
                Station.lab_id == lab_id,
                Station.active,
                Stage.position <= last_inspection.scalar_subquery(),
            )
            .order_by(Stage.position, Station.name)
        )
    )


@dataclass(frozen=True)
class _Finding:
    """A chart's latest violation of one rule, to raise an alert for unless one covers it."""

    station_id: int
    chart: ChartOut
    violation: ViolationOut


def find_violations(session: Session, lab_id: int, now: datetime) -> list[_Finding]:
    """Each chart's (measure × station, `ALERT_KIND`) latest violation of each rule within
    `ALERT_RECENT`. Only reads: a scan draws some hundred charts."""
    lab = session.get_one(Lab, lab_id)
    found: list[_Finding] = []
    for station in _scanned_stations(session, lab_id):
        for measure in MEASURES:
            query = ChartQuery(
                measure=measure, station=station.name, kind=ALERT_KIND, subgroup=ALERT_SUBGROUP
            )
            drawn = _chart(session, lab, station, query, now - PHASE_TWO)
            latest: dict[int, ViolationOut] = {}
            for violation in drawn.violations:
                if violation.at >= now - ALERT_RECENT:
                    latest[violation.rule] = violation  # in point order: the last wins
            found += [_Finding(station.id, drawn, violation) for violation in latest.values()]
    return found


def raise_alerts(
    session: Session, lab_id: int, found: list[_Finding], now: datetime
) -> list[LabAlert]:
    """An alert per finding at a point later than its chart's last alert for the rule,
    unless one is still open; returns the new ones. Idempotent: the same findings again
    raise nothing, and an acknowledged alert comes back only with a new violation. Each new
    one is e-mailed to the lab managers, enqueued in this transaction: never one without
    the other."""
    raised = [_raise(session, lab_id, finding, now) for finding in found]
    alerts = [alert for alert in raised if alert is not None]
    for alert in alerts:
        enqueue_alert(session, alert, now)
    return alerts


def scan_for_violations(database: Database, lab_id: int, now: datetime) -> list[AlertOut]:
    """The periodic scan: the charts drawn in a read transaction, then the alerts written in
    a short one (on SQLite a write transaction holds every station event up)."""
    with database.read_session() as session:
        found = find_violations(session, lab_id, now)
    with database.session() as session:
        return [_alert_out(alert) for alert in raise_alerts(session, lab_id, found, now)]


def _raise(session: Session, lab_id: int, finding: _Finding, now: datetime) -> LabAlert | None:
    drawn, violation = finding.chart, finding.violation
    chart_text = drawn.key.text
    covered = session.scalar(
        select(func.count()).where(
            LabAlert.lab_id == lab_id,
            LabAlert.chart == chart_text,
            LabAlert.rule == violation.rule,
            # One open already, or one acknowledged that had seen this point.
            or_(LabAlert.acknowledged_at.is_(None), LabAlert.point_at >= violation.at),
        )
    )
    if covered:
        return None
    limits = drawn.limits
    assert limits is not None  # a chart without limits judges nothing
    alert = LabAlert(
        lab_id=lab_id,
        chart=chart_text,
        measure=drawn.key.measure,
        station_id=finding.station_id,
        rule=violation.rule,
        side=violation.side,
        job_id=violation.job_id,
        point_at=violation.at,
        message=(
            f"{drawn.measure_name} at {drawn.key.station} ({drawn.stage}): "
            f"{violation.description}, {violation.side} the centre line "
            f"(job {violation.job_number})"
        )[:300],
        value=drawn.points[violation.index].value,
        centre_line=limits.centre,
        lower_limit=limits.lower,
        upper_limit=limits.upper,
        raised_at=now,
    )
    session.add(alert)
    session.flush()
    return alert


def list_alerts(
    session: Session, principal: PersonPrincipal, *, include_acknowledged: bool = False
) -> list[AlertOut]:
    _lab_only(principal)
    statement = (
        select(LabAlert)
        .where(LabAlert.lab_id == principal.lab_id)
        .order_by(LabAlert.raised_at.desc(), LabAlert.id.desc())
    )
    if not include_acknowledged:
        statement = statement.where(LabAlert.acknowledged_at.is_(None))
    alerts = [_alert_out(alert) for alert in session.scalars(statement)]
    # Of those raised together, the chart breaking the most rules first: where to look.
    rules_broken = Counter(alert.chart for alert in alerts)
    return sorted(alerts, key=lambda a: (-a.raised_at.timestamp(), -rules_broken[a.chart]))


def _alert_out(alert: LabAlert) -> AlertOut:
    return AlertOut(
        id=alert.id,
        chart=alert.chart,
        measure=alert.measure,
        station=alert.station.name,
        rule=alert.rule,
        side=alert.side,
        job_id=alert.job_id,
        point_at=alert.point_at,
        message=alert.message,
        raised_at=alert.raised_at,
        acknowledged_at=alert.acknowledged_at,
    )


def acknowledge_alert(
    session: Session, principal: PersonPrincipal, alert_id: int, now: datetime
) -> AlertOut:
    """A lab manager has seen to it: it leaves the WIP board (the record stays)."""
    _lab_only(principal)
    if principal.role not in MANAGER_ROLES:
        raise Forbidden("role", "only a lab manager can acknowledge an alert")
    alert = session.scalar(
        select(LabAlert).where(LabAlert.id == alert_id, LabAlert.lab_id == principal.lab_id)
    )
    if alert is None:
        raise NotFound("alert_id", f"no alert {alert_id}")
    if alert.acknowledged_at is not None:
        raise Conflict("alert_id", f"alert {alert_id} was acknowledged already")
    alert.acknowledged_at = now
    alert.acknowledged_by_id = principal.person_id
    session.flush()
    return _alert_out(alert)
