"""`/lab/spc`: control charts of QC measurements per station, shift and material, and the
lab alerts their rule violations raise; the WIP board's alert banner (server.domain.spc).

The picker reloads the page with the chart in its address, so a chart (an alert's too) is a
link. Each violating point names its rule and opens its job.
"""

import asyncio
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import ui
from nicegui.events import EChartPointClickEventArguments
from pydantic import ValidationError

from server.context import ServerContext
from server.domain import spc
from server.domain.auth import LAB_ROLES, MANAGER_ROLES, PersonPrincipal
from server.domain.errors import DomainError
from server.domain.lab_time import lab_zone, local_text
from server.models import utcnow
from server.pages.access import admit, page_header

SPC_PAGE = "/lab/spc"
KINDS = {"imr": "Individuals (I-MR)", "xbar_r": "Subgroup means (X̄/R)"}
ALL = "_all"  # the shift and material selects' "all of them"
SIDE_WORDS = {"above": "↑", "below": "↓"}
VIOLATIONS = "Rule violation"  # the chart's series of violating points
BANNER_ALERTS = 5  # alerts the WIP board lists; the rest are counted, on the SPC page


def job_path(job_id: int) -> str:
    return f"/store/jobs/{job_id}"


def chart_path(key: spc.ChartKey, kind: str = "imr") -> str:
    query = {"kind": kind, **key.model_dump(exclude_none=True)}
    return f"{SPC_PAGE}?{urlencode(query)}"


def alert_chart_path(chart: str) -> str:
    """The page of an alert's chart (`chart`: its ChartKey.text), drawn as alerts judge it."""
    return chart_path(spc.ChartKey.from_text(chart), spc.ALERT_KIND)


def _echart_options(chart: spc.ChartOut, zone: ZoneInfo) -> dict[str, Any]:
    """The location chart above its spread chart, limits as lines, phase I shaded, each
    violating point red and labelled with its rule."""
    points = chart.points
    labels = [f"{p.job_number}{' ' + p.eye if p.eye else ''}" for p in points]
    times = [local_text(p.at, zone) for p in points]
    spread_name = "Moving range" if chart.kind == "imr" else "Range"
    location_lines, spread_lines = [], []
    if chart.limits is not None:
        limits = chart.limits
        location_lines = [
            {"yAxis": limits.centre, "name": "CL", "lineStyle": {"color": "#15803d"}},
            {"yAxis": limits.upper, "name": "UCL", "lineStyle": {"color": "#b91c1c"}},
            {"yAxis": limits.lower, "name": "LCL", "lineStyle": {"color": "#b91c1c"}},
        ]
        spread_lines = [
            {"yAxis": limits.spread_centre, "name": "R̄", "lineStyle": {"color": "#15803d"}},
            {"yAxis": limits.spread_upper, "name": "UCL", "lineStyle": {"color": "#b91c1c"}},
        ]
    rules_at: dict[int, list[str]] = {}
    for violation in chart.violations:
        rules_at.setdefault(violation.index, []).append(str(violation.rule))
    mark_line = {
        "symbol": "none",
        "silent": True,
        "label": {"formatter": "{b} {c}", "position": "insideEndTop"},
        "lineStyle": {"type": "dashed"},
    }
    return {
        "animation": False,
        "tooltip": {"trigger": "axis"},
        "legend": {"top": 0},
        "grid": [
            {"left": 70, "right": 30, "top": 40, "height": "52%"},
            {"left": 70, "right": 30, "top": "70%", "height": "20%"},
        ],
        "xAxis": [
            {"type": "category", "data": labels, "gridIndex": 0, "axisLabel": {"show": False}},
            {"type": "category", "data": times, "gridIndex": 1, "axisLabel": {"show": False}},
        ],
        "yAxis": [
            {"type": "value", "gridIndex": 0, "scale": True, "name": chart.measure_name},
            {"type": "value", "gridIndex": 1, "scale": True, "name": spread_name},
        ],
        "series": [
            {
                "name": chart.measure_name,
                "type": "line",
                "data": [p.value for p in points],
                "symbolSize": 4,
                "lineStyle": {"width": 1},
                "markLine": {**mark_line, "data": location_lines},
                "markArea": {
                    "silent": True,
                    "itemStyle": {"color": "rgba(100,116,139,0.10)"},
                    "label": {"position": "insideTopLeft", "color": "#475569"},
                    "data": [
                        [
                            {"name": "Phase I (baseline)", "xAxis": 0},
                            {"xAxis": max(chart.baseline - 1, 0)},
                        ]
                    ]
                    if chart.baseline
                    else [],
                },
            },
            {
                "name": VIOLATIONS,
                "type": "scatter",
                "data": [  # in point order, as the click handler reads them
                    [index, points[index].value, "R" + ",".join(rules_at[index])]
                    for index in sorted(rules_at)
                ],
                "symbolSize": 9,
                "itemStyle": {"color": "#dc2626"},
                "label": {"show": True, "position": "top", "color": "#b91c1c", "fontSize": 10},
                "labelLayout": {"hideOverlap": True},
                "encode": {"label": 2},
                "z": 5,
            },
            {
                "name": spread_name,
                "type": "line",
                "xAxisIndex": 1,
                "yAxisIndex": 1,
                "data": [p.spread for p in points],
                "symbol": "none",
                "lineStyle": {"width": 1, "color": "#64748b"},
                "markLine": {**mark_line, "data": spread_lines},
            },
        ],
    }


def _violation_list(chart: spc.ChartOut, zone: ZoneInfo) -> None:
    latest_first = sorted(chart.violations, key=lambda v: (v.index, v.rule), reverse=True)
    with ui.column().classes("gap-1 w-full").mark("violations"):
        ui.label(f"Rule violations among the judged points: {len(latest_first)}").classes(
            "font-semibold"
        )
        for violation in latest_first[:50]:
            with ui.row().classes("items-center gap-2 text-sm"):
                ui.badge(f"Rule {violation.rule}", color="red-8")
                ui.label(f"{violation.description} {SIDE_WORDS[violation.side]}")
                ui.link(violation.job_number, job_path(violation.job_id)).classes("font-bold")
                ui.label(local_text(violation.at, zone)).classes("text-slate-600")


class AlertList:
    """Open alerts, newest first; a lab manager acknowledges each (it then leaves the list)."""

    def __init__(
        self, context: ServerContext, principal: PersonPrincipal, limit: int | None = None
    ) -> None:
        self.context = context
        self.principal = principal
        self.limit = limit
        self.container = ui.column().classes("w-full gap-1").mark("spc-alerts")

    async def refresh(self) -> None:
        alerts, zone = await asyncio.to_thread(_open_alerts, self.context, self.principal)
        self.show(alerts, zone)

    def show(self, alerts: list[spc.AlertOut], zone: ZoneInfo) -> None:
        self.container.clear()
        with self.container:
            if not alerts:
                ui.label("No open process alerts.").classes("text-slate-600")
                return
            shown = alerts if self.limit is None else alerts[: self.limit]
            for alert in shown:
                with ui.row().classes("items-center gap-2 no-wrap"):
                    ui.icon("warning", color="red-8")
                    ui.link(alert.message, alert_chart_path(alert.chart)).classes("text-red-900")
                    ui.label(local_text(alert.raised_at, zone)).classes("text-xs text-slate-600")
                    if self.principal.role in MANAGER_ROLES:
                        ui.button(
                            "Acknowledge", on_click=lambda a=alert: self.acknowledge(a.id)
                        ).props("dense outline size=sm color=red-9").mark("acknowledge")
            if len(alerts) > len(shown):
                ui.link(f"+ {len(alerts) - len(shown)} more on the SPC page", SPC_PAGE)

    async def acknowledge(self, alert_id: int) -> None:
        def work() -> None:
            with self.context.session() as session:
                spc.acknowledge_alert(session, self.principal, alert_id, utcnow())

        try:
            await asyncio.to_thread(work)
        except DomainError as error:
            ui.notify(error.message, type="negative")
        await self.refresh()


def _open_alerts(
    context: ServerContext, principal: PersonPrincipal
) -> tuple[list[spc.AlertOut], ZoneInfo]:
    with context.db.read_session() as session:
        return spc.list_alerts(session, principal), lab_zone(session, principal.lab_id)


async def alert_banner(context: ServerContext, principal: PersonPrincipal) -> None:
    """The WIP board's process alerts, when any is open."""
    alerts, zone = await asyncio.to_thread(_open_alerts, context, principal)
    if not alerts:
        return
    with ui.card().classes("mx-4 mt-3 w-auto bg-red-50 border border-red-300 gap-1"):
        with ui.row().classes("items-center gap-3"):
            ui.label("Process alerts (SPC)").classes("font-semibold text-red-900")
            ui.link("Control charts →", SPC_PAGE).classes("text-sm")
        AlertList(context, principal, BANNER_ALERTS).show(alerts, zone)


def register_spc_pages(context: ServerContext) -> None:
    @ui.page(SPC_PAGE, title="LensTrack · SPC")
    async def spc_page(request: Request) -> RedirectResponse | None:
        principal = admit(context, request, LAB_ROLES)
        if not isinstance(principal, PersonPrincipal):
            return principal
        options, zone = await asyncio.to_thread(_options, context, principal)
        params = dict(request.query_params)
        params.setdefault("measure", "sph")
        if "station" not in params and options.stations:
            params["station"] = options.stations[0].name
        page_header(principal, "Process control")
        chart: spc.ChartOut | str
        try:
            query = spc.ChartQuery.model_validate(params)
            chart = await asyncio.to_thread(_chart, context, principal, query)
        except ValidationError as error:
            chart = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        except DomainError as error:
            chart = f"{error.field}: {error.message}"
        with ui.column().classes("w-full p-4 gap-3"):
            _picker(options, params)
            if isinstance(chart, str):
                ui.label(f"Cannot draw that chart ({chart})").classes("text-red-800")
            else:
                _chart_view(chart, zone)
            ui.label("Open process alerts").classes("text-lg font-semibold pt-2")
            alerts = AlertList(context, principal)
        await alerts.refresh()
        return None


def _options(
    context: ServerContext, principal: PersonPrincipal
) -> tuple[spc.ChartOptions, ZoneInfo]:
    with context.db.read_session() as session:
        return spc.chart_options(session, principal), lab_zone(session, principal.lab_id)


def _chart(
    context: ServerContext, principal: PersonPrincipal, query: spc.ChartQuery
) -> spc.ChartOut:
    with context.db.read_session() as session:
        return spc.chart(session, principal, query, utcnow())


def _picker(options: spc.ChartOptions, params: dict[str, str]) -> None:
    chosen = dict(params)

    def pick(name: str, value: str | None) -> None:
        if value == ALL or value is None:
            chosen.pop(name, None)
        else:
            chosen[name] = value
        ui.navigate.to(f"{SPC_PAGE}?{urlencode(chosen)}")

    stations = {s.name: f"{s.name} · {s.stage}" for s in options.stations}
    with ui.row().classes("items-end gap-3 flex-wrap").mark("chart-picker"):
        ui.select(
            options.measures,
            value=params.get("measure"),
            label="Measure",
            on_change=lambda e: pick("measure", e.value),
        ).classes("w-44").mark("measure")
        ui.select(
            stations,
            value=params.get("station"),
            label="Station / machine",
            on_change=lambda e: pick("station", e.value),
        ).classes("w-60").mark("station")
        ui.select(
            {ALL: "All shifts"} | {name: name for name in options.shifts},
            value=params.get("shift", ALL),
            label="Shift",
            on_change=lambda e: pick("shift", e.value),
        ).classes("w-36").mark("shift")
        ui.select(
            {ALL: "All materials"} | {code: code for code in options.materials},
            value=params.get("material", ALL),
            label="Material",
            on_change=lambda e: pick("material", e.value),
        ).classes("w-44").mark("material")
        ui.select(
            KINDS,
            value=params.get("kind", "imr"),
            label="Chart",
            on_change=lambda e: pick("kind", e.value),
        ).classes("w-56").mark("kind")


def _chart_view(chart: spc.ChartOut, zone: ZoneInfo) -> None:
    baseline, judged = chart.points[: chart.baseline], chart.points[chart.baseline :]
    summary = f"{chart.key.station} ({chart.stage}) · {chart.measure_name}"
    if chart.subgroup is not None:
        summary += f" · each point the mean of {chart.subgroup} lenses"
    if baseline:
        summary += (
            f" · limits from {len(baseline)} points up to {local_text(baseline[-1].at, zone)}"
        )
    if judged:
        summary += f" · {len(judged)} judged from {local_text(judged[0].at, zone)}"
    ui.label(summary).classes("text-slate-700")
    if chart.limits is None:
        ui.label(
            f"Fewer than {spc.MIN_BASELINE} points before {local_text(chart.since, zone)}: "
            "no limits yet."
        ).classes("text-amber-800")
    elif chart.limits.sigma == 0:
        ui.label("No spread in the baseline (every lens as ordered): no zones to judge by.")
    points = chart.points
    violating = sorted({v.index for v in chart.violations})  # the violation series' data

    def open_job(event: EChartPointClickEventArguments) -> None:
        """A click on a lens, subgroup or violation opens its job (not on a limit line)."""
        if event.component_type != "series":
            return
        index = event.data_index
        if event.series_name == VIOLATIONS:
            index = violating[index]
        ui.navigate.to(job_path(points[index].job_id))

    ui.echart(_echart_options(chart, zone), on_point_click=open_job).classes(
        "w-full h-[460px]"
    ).mark("spc-chart")
    _violation_list(chart, zone)
