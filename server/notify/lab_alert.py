"""What a lab alert's e-mail to a lab manager says: the chart, the rule broken, the value and
the limits, when, and where to look (issue #16). The WIP board shows the same alert."""

from zoneinfo import ZoneInfo

from pydantic import BaseModel
from sqlalchemy.orm import Session

from core.spc import Rule
from server.domain import spc
from server.domain.lab_time import local_text
from server.models import Lab, LabAlert
from server.notify.email import Mail
from server.pages.spc import alert_chart_path
from server.settings import Settings

BOARD_PAGE = "/wip"
KIND_TEXT = f"means of {spc.ALERT_SUBGROUP} lenses (X̄/R)"
FIGURES = ("value", "centre_line", "lower_limit", "upper_limit")


class Figures(BaseModel):
    """The violating point's value (a subgroup mean) and the limits it was judged by."""

    value: float
    centre_line: float
    lower_limit: float
    upper_limit: float


class AlertNotice(BaseModel):
    """An allow-list, as a store's notice is: the chart and its figures, never the job,
    the patient or the prescription (the chart's link leads a manager on to the jobs)."""

    lab_code: str
    measure: str  # its name with its unit, "Sphere (D)"
    station: str
    stage: str
    shift: str | None  # None: every shift
    material: str | None  # None: every material
    rule: int
    side: str
    figures: Figures | None  # None: the alert was raised before they were kept
    point_at: str  # in the lab's time zone, as its pages write times
    raised_at: str
    chart_url: str
    board_url: str


def load_alert_notice(session: Session, alert_id: int, settings: Settings) -> AlertNotice:
    alert = session.get_one(LabAlert, alert_id)
    lab = session.get_one(Lab, alert.lab_id)
    zone = ZoneInfo(lab.timezone)
    figures = (alert.value, alert.centre_line, alert.lower_limit, alert.upper_limit)
    chart = spc.ChartKey.from_text(alert.chart)
    base = settings.public_url or f"http://{settings.host}:{settings.port}"
    return AlertNotice(
        lab_code=lab.code,
        measure=spc.MEASURE_NAMES.get(alert.measure, alert.measure),
        station=alert.station.name,
        stage=alert.station.stage.name,
        shift=chart.shift,
        material=chart.material,
        rule=alert.rule,
        side=alert.side,
        figures=None if None in figures else Figures(**dict(zip(FIGURES, figures, strict=True))),
        point_at=f"{local_text(alert.point_at, zone)} ({lab.timezone})",
        raised_at=f"{local_text(alert.raised_at, zone)} ({lab.timezone})",
        chart_url=base + alert_chart_path(alert.chart),
        board_url=base + BOARD_PAGE,
    )


def _figure(value: float) -> str:
    return f"{value:+.4f}"


def alert_mail(notice: AlertNotice) -> Mail:
    subject = (
        f"[LensTrack {notice.lab_code}] SPC alert: {notice.measure} at {notice.station}, "
        f"rule {notice.rule} ({notice.side})"
    )
    lines = [
        f"Chart: {notice.measure} at {notice.station} ({notice.stage}), {KIND_TEXT}",
        f"Shift: {notice.shift or 'all'}",
        f"Material: {notice.material or 'all'}",
        f"Rule {notice.rule}: {Rule(notice.rule).description}, {notice.side} the centre line",
    ]
    if (figures := notice.figures) is not None:
        lines += [
            f"Value: {_figure(figures.value)}",
            f"Limits: {_figure(figures.lower_limit)} to {_figure(figures.upper_limit)}, "
            f"centre line {_figure(figures.centre_line)}",
        ]
    lines += [
        f"Point inspected: {notice.point_at}",
        f"Alert raised: {notice.raised_at}",
        f"Control chart: {notice.chart_url}",
        f"WIP board (acknowledge it there): {notice.board_url}",
    ]
    return Mail(subject, "\n".join(lines) + "\n")
