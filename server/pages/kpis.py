"""The KPI dashboards (lab and store) and their drill-down: every number links to the jobs
behind it, every table exports as CSV or XLSX (through /api/kpis, the same figures)."""

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import ui
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.context import ServerContext
from server.domain import kpis
from server.domain.auth import LAB_ROLES, PersonPrincipal
from server.domain.errors import DomainError
from server.domain.kpi_export import TABLES
from server.domain.kpis import Dashboard, DrillKind, DrillQuery, KpiQuery, PeriodKind, Ratio
from server.models import Store, utcnow
from server.pages.access import STORE_PORTAL_ROLES, admit, page_header
from server.pages.spc import SPC_PAGE

LAB_PAGE = "/lab/kpis"
STORE_PAGE = "/store/kpis"
JOBS_PAGE = "/kpis/jobs"
TARGET_COLOUR = "#dc2626"


def _query_params(query: KpiQuery) -> dict[str, str]:
    return {key: str(value) for key, value in query.model_dump(exclude_none=True).items()}


def _link(path: str, query: KpiQuery, **extra: str) -> str:
    return f"{path}?{urlencode({**_query_params(query), **extra})}"


def _problem(error: ValidationError | DomainError) -> str:
    if isinstance(error, DomainError):
        return f"{error.field}: {error.message}"
    first = error.errors()[0]
    return f"{'.'.join(str(part) for part in first['loc'])}: {first['msg']}"


async def _read(context: ServerContext, read: Callable[[Session], Any]) -> Any:
    """In a worker thread: a month's aggregates must not hold the page's event loop."""

    def in_session() -> Any:
        with context.db.read_session() as session:
            return read(session)

    return await asyncio.to_thread(in_session)


def _headline_card(
    title: str, now: str, before: str, href: str, target: tuple[Ratio, float] | None = None
) -> None:
    """One figure, linking to its jobs; a rate with a target is green when it meets it."""
    colour = "text-slate-900"
    detail = f"before: {before}"
    if target is not None:
        ratio, goal = target
        if ratio.rate is not None:
            colour = "text-green-700" if ratio.rate >= goal else "text-red-700"
        detail += f" · target ≥ {100 * goal:.0f} %"
    with ui.card().classes("min-w-[9rem] flex-1 gap-1").props("flat bordered"):
        ui.label(title).classes("text-sm text-slate-500")
        ui.link(now, href).classes(f"text-3xl font-bold no-underline {colour}")
        ui.label(detail).classes("text-xs text-slate-500")


def _headlines(board: Dashboard, query: KpiQuery) -> None:
    now, before, targets = board.current, board.previous, board.targets

    def drill(kind: DrillKind) -> str:
        return _link(JOBS_PAGE, query, kind=kind.value)

    with ui.row().classes("w-full gap-3"):
        _headline_card(
            "Finished jobs", str(now.finished), str(before.finished), drill(DrillKind.finished)
        )
        _headline_card(
            "On-time delivery",
            kpis.percent(now.on_time),
            kpis.percent(before.on_time),
            drill(DrillKind.late),
            (now.on_time, targets.on_time),
        )
        _headline_card(
            "First-pass QC yield",
            kpis.percent(now.first_pass),
            kpis.percent(before.first_pass),
            drill(DrillKind.first_pass_failed),
            (now.first_pass, targets.first_pass),
        )
        _headline_card(
            "Rework rate",
            kpis.percent(now.rework),
            kpis.percent(before.rework),
            drill(DrillKind.reworked),
        )
        _headline_card(
            "Breakages · cost",
            f"{now.breakages.numerator} · {now.breakage_cost:.0f}",
            f"{before.breakages.numerator} · {before.breakage_cost:.0f}",
            drill(DrillKind.broken),
        )
        _headline_card(
            "Remake rate",
            kpis.percent(now.remakes),
            kpis.percent(before.remakes),
            drill(DrillKind.remade),
        )


def _percent_or_none(ratio: Ratio) -> float | None:
    return None if ratio.rate is None else round(100 * ratio.rate, 1)


def _trend_chart(board: Dashboard) -> None:
    days = [point.first_day.strftime("%d %b") for point in board.trend]
    rates = [
        rate
        for point in board.trend
        for rate in (_percent_or_none(point.on_time), _percent_or_none(point.first_pass))
        if rate is not None
    ]
    # From 80 %, where a lab's rates live, lower only when a rate is lower.
    floor = min([80.0, *rates]) // 10 * 10
    target_line = {
        "silent": True,
        "symbol": "none",
        "lineStyle": {"color": TARGET_COLOUR},
        # Inside the plot: at its end the label sat on the jobs axis' numbers.
        "label": {"position": "insideEndTop", "formatter": "target {c} %"},
    }
    ui.echart(
        {
            "title": {
                "text": "On-time and first-pass yield (%), finished jobs",
                "textStyle": {"fontSize": 14},
            },
            "tooltip": {"trigger": "axis"},
            "legend": {"top": 30},  # below the title, not on it
            "grid": {"top": 66, "left": 40, "right": 40, "bottom": 30},
            "xAxis": {"type": "category", "data": days},
            "yAxis": [
                {"type": "value", "min": floor, "max": 100, "name": "%"},
                {"type": "value", "name": "jobs", "splitLine": {"show": False}},
            ],
            "series": [
                {
                    "name": "finished",
                    "type": "bar",
                    "yAxisIndex": 1,
                    "data": [point.finished for point in board.trend],
                    "itemStyle": {"color": "#cbd5e1"},
                },
                {
                    "name": "on-time",
                    "type": "line",
                    "data": [_percent_or_none(point.on_time) for point in board.trend],
                    "markLine": {
                        **target_line,
                        "data": [{"yAxis": 100 * board.targets.on_time, "name": "target"}],
                    },
                },
                {
                    "name": "first-pass",
                    "type": "line",
                    "data": [_percent_or_none(point.first_pass) for point in board.trend],
                    "markLine": {
                        **target_line,
                        "lineStyle": {"color": TARGET_COLOUR, "type": "dotted"},
                        "data": [{"yAxis": 100 * board.targets.first_pass, "name": "target"}],
                    },
                },
            ],
        }
    ).classes("w-full h-80").mark("trend-chart")


def _bar_chart(
    title: str, labels: list[str], series: dict[str, list[Any]], stack: bool = False
) -> None:
    ui.echart(
        {
            "title": {"text": title, "textStyle": {"fontSize": 14}},
            "tooltip": {"trigger": "axis"},
            "legend": {"top": 30},  # below the title, not on it
            "grid": {"top": 66, "left": 50, "right": 20, "bottom": 60},
            "xAxis": {"type": "category", "data": labels, "axisLabel": {"rotate": 30}},
            "yAxis": {"type": "value"},
            "series": [
                {"name": name, "type": "bar", "data": data, **({"stack": "all"} if stack else {})}
                for name, data in series.items()
            ],
        }
    ).classes("w-full h-72")


def _pie_chart(title: str, rows: list[kpis.CountRow]) -> None:
    ui.echart(
        {
            "title": {"text": title, "textStyle": {"fontSize": 14}},
            "tooltip": {"trigger": "item"},
            "series": [
                {
                    "type": "pie",
                    "radius": ["35%", "65%"],
                    "top": 20,
                    # Causes of no job left out: their labels piled up on one spot (the
                    # table beside lists every cause).
                    "data": [{"name": row.key, "value": row.count} for row in rows if row.count],
                }
            ],
        }
    ).classes("w-full h-72")


def _charts(board: Dashboard) -> None:
    stages = [row.stage for row in board.stages]
    with ui.element("div").classes("w-full grid gap-4 grid-cols-1 lg:grid-cols-2"):
        with ui.card().props("flat bordered").classes("w-full"):
            _trend_chart(board)
        with ui.card().props("flat bordered").classes("w-full"):
            _bar_chart(
                "Cycle time per stage (minutes)",
                stages,
                {
                    "median": [_round(row.cycle.median_minutes) for row in board.stages],
                    "p90": [_round(row.cycle.p90_minutes) for row in board.stages],
                },
            )
        with ui.card().props("flat bordered").classes("w-full"):
            _bar_chart(
                "WIP now per stage",
                stages,
                {
                    "queued": [row.wip_queued for row in board.stages],
                    "in progress": [row.wip_in_progress for row in board.stages],
                    "on hold": [row.wip_on_hold for row in board.stages],
                },
                stack=True,
            )
        with ui.card().props("flat bordered").classes("w-full"):
            _bar_chart(
                "Breakages and throughput per stage",
                stages,
                {
                    "breakages": [row.breakages for row in board.stages],
                    "completions / 100": [round(row.completions / 100, 1) for row in board.stages],
                },
            )
        with ui.card().props("flat bordered").classes("w-full"):
            _pie_chart("Late jobs by cause", board.late_causes)
        with ui.card().props("flat bordered").classes("w-full"):
            _bar_chart(
                "Rework defects and remakes by class",
                [row.key for row in board.defects] + [row.key for row in board.remakes],
                {
                    "reworks": [row.count for row in board.defects] + [None] * len(board.remakes),
                    "remakes": [None] * len(board.defects) + [row.count for row in board.remakes],
                },
                stack=True,
            )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


# Which drill-down each table's first column narrows, by table name.
TABLE_DRILLS: dict[str, tuple[DrillKind, kpis.Dimension]] = {
    "stores": (DrillKind.finished, kpis.Dimension.store),
    "designs": (DrillKind.finished, kpis.Dimension.design),
    "materials": (DrillKind.finished, kpis.Dimension.material),
    "stations": (DrillKind.first_inspected, kpis.Dimension.station),
    "operators": (DrillKind.first_inspected, kpis.Dimension.operator),
    "shifts": (DrillKind.broken, kpis.Dimension.shift),
    "late_causes": (DrillKind.late, kpis.Dimension.cause),
    "remakes": (DrillKind.remade, kpis.Dimension.remake_class),
}


def _table(board: Dashboard, query: KpiQuery, name: str) -> None:
    table = TABLES[name](board)
    if not table.rows:
        return
    drill = TABLE_DRILLS.get(name)
    wide = "xl:col-span-2" if len(table.headers) > 6 else ""
    with (
        ui.card()
        .props("flat bordered")
        .classes(f"w-full overflow-x-auto {wide}")
        .mark(f"table-{name}")
    ):
        with ui.row().classes("w-full items-center"):
            ui.label(table.title).classes("text-lg font-semibold")
            ui.space()
            for file_format in ("csv", "xlsx"):
                ui.link(
                    file_format.upper(), _link(f"/api/kpis/export/{name}.{file_format}", query)
                ).classes("text-sm").mark(f"export-{name}-{file_format}")
        with ui.element("table").classes("w-full text-sm"):
            with ui.element("tr").classes("text-left text-slate-500 border-b"):
                for header in table.headers:
                    ui.label(header).classes("px-2 py-1 font-medium table-cell")
            for row in table.rows:
                with ui.element("tr").classes("border-b border-slate-100"):
                    for index, (header, cell) in enumerate(zip(table.headers, row, strict=True)):
                        with ui.element("td").classes("px-2 py-1"):
                            # The headline table names each rate in its first column.
                            by_row = name == "headline" and index > 0
                            text = _cell_text(str(row[0]) if by_row else header, cell)
                            if index == 0 and drill and cell not in (None, ""):
                                kind, dimension = drill
                                ui.link(
                                    text,
                                    _link(
                                        JOBS_PAGE,
                                        query,
                                        kind=kind.value,
                                        dimension=dimension.value,
                                        value=str(cell),
                                    ),
                                )
                            else:
                                ui.label(text)


def _cell_text(header: str, cell: Any) -> str:
    if cell is None:
        return "–"
    if header.endswith(" rate") and isinstance(cell, float):
        return f"{100 * cell:.1f} %"
    if isinstance(cell, float):
        return f"{cell:.1f}"
    return str(cell)


def _period_bar(board: Dashboard, query: KpiQuery, path: str, stores: list[str]) -> None:
    period = board.period
    with ui.row().classes("w-full items-center gap-3"):
        for kind in (PeriodKind.day, PeriodKind.week, PeriodKind.month):
            chosen = kind == period.kind
            ui.link(
                kind.value.capitalize(),
                _link(path, KpiQuery(period=kind, start=period.first_day, store=query.store)),
            ).classes("text-base " + ("font-bold no-underline" if chosen else ""))
        earlier = period.previous()
        later_start = period.last_day + timedelta(days=1)
        later_end = later_start + (period.last_day - period.first_day)
        custom = period.kind == PeriodKind.custom
        ui.link(
            "◀",
            _link(
                path,
                query,
                start=earlier.first_day.isoformat(),
                **({"end": earlier.last_day.isoformat()} if custom else {}),
            ),
        ).classes("text-lg no-underline")
        ui.label(period.label).classes("text-lg font-semibold").mark("period-label")
        ui.link(
            "▶",
            _link(
                path,
                query,
                start=later_start.isoformat(),
                **({"end": later_end.isoformat()} if custom else {}),
            ),
        ).classes("text-lg no-underline")
        ui.label(f"compared with {board.previous_period.label}").classes("text-sm text-slate-500")
        ui.space()
        if stores:
            options = {"": "All stores", **{code: code for code in stores}}

            def choose(event: Any) -> None:
                params = _query_params(query)
                params.pop("store", None)
                if event.value:
                    params["store"] = event.value
                ui.navigate.to(f"{path}?{urlencode(params)}")

            ui.select(options, value=query.store or "", on_change=choose).props(
                "dense outlined"
            ).classes("w-40").mark("store-select")


async def _render_dashboard(
    context: ServerContext, principal: PersonPrincipal, request: Request, path: str, lab: bool
) -> None:
    try:
        query = KpiQuery.model_validate(dict(request.query_params))
        board = await _read(context, lambda s: kpis.dashboard(s, principal, query, utcnow()))
    except (ValidationError, DomainError) as error:
        ui.label(f"Cannot show these figures · {_problem(error)}").classes("text-xl p-6")
        return
    stores = (
        await _read(
            context,
            lambda s: list(
                s.scalars(
                    select(Store.code).where(Store.lab_id == principal.lab_id).order_by(Store.code)
                )
            ),
        )
        if principal.role in LAB_ROLES
        else []
    )
    with ui.column().classes("w-full p-4 gap-4"):
        if lab:
            with ui.row().classes("gap-6"):
                ui.link("Statistical process control →", SPC_PAGE).classes("text-lg")
                ui.link("WIP board →", "/wip").classes("text-lg")
        _period_bar(board, query, path, stores)
        _headlines(board, query)
        _charts(board)
        names = [
            "headline",
            "stages",
            "stores",
            "designs",
            "materials",
            "late_causes",
            "defects",
            "remakes",
            "shifts",
        ]
        if lab:
            names += ["stations", "operators"]
        with ui.element("div").classes("w-full grid gap-4 grid-cols-1 xl:grid-cols-2"):
            for name in names:
                _table(board, query, name)


async def _render_jobs(
    context: ServerContext, principal: PersonPrincipal, request: Request
) -> None:
    try:
        query = DrillQuery.model_validate(dict(request.query_params))
        period, rows = await _read(context, lambda s: kpis.drill(s, principal, query, utcnow()))
    except (ValidationError, DomainError) as error:
        ui.label(f"Cannot list these jobs · {_problem(error)}").classes("text-xl p-6")
        return
    back = LAB_PAGE if principal.role in LAB_ROLES else STORE_PAGE
    dashboard_query = KpiQuery.model_validate(
        query.model_dump(include={"period", "start", "end", "store"}, exclude_none=True)
    )
    opens_jobs = principal.role in STORE_PORTAL_ROLES
    with ui.column().classes("w-full p-4 gap-3"):
        ui.link("← Dashboard", _link(back, dashboard_query)).classes("text-lg")
        narrowed = f" · {query.dimension} {query.value}" if query.dimension else ""
        with ui.row().classes("w-full items-center"):
            ui.label(
                f"{query.kind.value.replace('_', ' ').capitalize()} jobs{narrowed}"
                f" · {period.label} ({len(rows)})"
            ).classes("text-xl font-semibold").mark("drill-title")
            ui.space()
            for file_format in ("csv", "xlsx"):
                ui.link(
                    file_format.upper(),
                    f"/api/kpis/jobs/export.{file_format}?{urlencode(_query_params(query))}",
                ).classes("text-sm")
        with ui.element("table").classes("w-full text-sm").mark("drill-jobs"):
            with ui.element("tr").classes("text-left text-slate-500 border-b"):
                for header in (
                    "Job",
                    "Store",
                    "Design",
                    "Material",
                    "Status",
                    "Promised",
                    "Finished",
                ):
                    ui.label(header).classes("px-2 py-1 font-medium table-cell")
            for row in rows:
                with ui.element("tr").classes(
                    "border-b border-slate-100" + (" bg-red-50" if row.late else "")
                ):
                    with ui.element("td").classes("px-2 py-1 font-semibold"):
                        if opens_jobs:
                            ui.link(row.job_number, f"/store/jobs/{row.job_id}")
                        else:
                            ui.label(row.job_number)
                    for cell in (
                        row.store_code,
                        row.lens_design,
                        row.lens_material,
                        row.status.value.replace("_", " "),
                        row.promised,
                        row.finished or "–",
                    ):
                        with ui.element("td").classes("px-2 py-1"):
                            ui.label(cell)


def register_kpi_pages(context: ServerContext) -> None:
    @ui.page(LAB_PAGE, title="LensTrack · Lab KPIs")
    async def lab_kpis(request: Request) -> RedirectResponse | None:
        principal = admit(context, request, LAB_ROLES)
        if not isinstance(principal, PersonPrincipal):
            return principal
        page_header(principal, "Lab KPIs")
        await _render_dashboard(context, principal, request, LAB_PAGE, lab=True)
        return None

    @ui.page(STORE_PAGE, title="LensTrack · Store KPIs")
    async def store_kpis(request: Request) -> RedirectResponse | None:
        principal = admit(context, request, STORE_PORTAL_ROLES)
        if not isinstance(principal, PersonPrincipal):
            return principal
        page_header(principal, "Store KPIs")
        await _render_dashboard(context, principal, request, STORE_PAGE, lab=False)
        return None

    @ui.page(JOBS_PAGE, title="LensTrack · KPI jobs")
    async def kpi_jobs(request: Request) -> RedirectResponse | None:
        principal = admit(context, request, LAB_ROLES | STORE_PORTAL_ROLES)
        if not isinstance(principal, PersonPrincipal):
            return principal
        page_header(principal, "Jobs behind a figure")
        await _render_jobs(context, principal, request)
        return None
