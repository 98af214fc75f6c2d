"""Every KPI table as rows a spreadsheet opens: the dashboards' tables and the drill-down's
jobs, as CSV or XLSX (openpyxl). Rates are fractions in XLSX (formatted as percent), and the
same fractions in CSV, so either sums and charts without parsing text."""

import csv
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from server.domain.kpis import (
    CountRow,
    Dashboard,
    DrillRow,
    FloorRow,
    GroupRow,
    Headline,
    Percentiles,
    Ratio,
)

Cell = str | int | float | None


class ExportFormat(StrEnum):
    csv = "csv"
    xlsx = "xlsx"


MEDIA_TYPES = {
    ExportFormat.csv: "text/csv; charset=utf-8",
    ExportFormat.xlsx: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
RATE_SUFFIX = " rate"  # a header ending so is a fraction, shown as percent in XLSX
# A text cell starting so is a formula to a spreadsheet: written with a quote in front.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class Table:
    title: str
    headers: tuple[str, ...]
    rows: list[tuple[Cell, ...]]


def _rate(ratio: Ratio) -> float | None:
    return ratio.rate


def _percentiles(times: Percentiles) -> tuple[Cell, ...]:
    return times.median_minutes, times.p90_minutes


def _headline_rows(dashboard: Dashboard) -> list[tuple[Cell, ...]]:
    def figures(headline: Headline) -> list[Cell]:
        return [
            headline.finished,
            _rate(headline.on_time),
            _rate(headline.first_pass),
            _rate(headline.rework),
            _rate(headline.breakages),
            headline.breakage_cost,
            _rate(headline.remakes),
        ]

    names = [
        "finished jobs",
        "on-time rate",
        "first-pass yield rate",
        "rework rate",
        "breakage rate",
        "breakage cost",
        "remake rate",
    ]
    targets: list[Cell] = [None, dashboard.targets.on_time, dashboard.targets.first_pass]
    targets += [None] * (len(names) - len(targets))
    return list(
        zip(
            names,
            figures(dashboard.current),
            figures(dashboard.previous),
            targets,
            strict=True,
        )
    )


def _group_rows(rows: Sequence[GroupRow]) -> list[tuple[Cell, ...]]:
    return [
        (row.key, row.finished, _rate(row.on_time), _rate(row.rework), _rate(row.first_pass))
        for row in rows
    ]


def _floor_rows(rows: Sequence[FloorRow]) -> list[tuple[Cell, ...]]:
    return [
        (row.key, row.completions, *_percentiles(row.cycle), _rate(row.first_pass)) for row in rows
    ]


def _count_rows(rows: Sequence[CountRow]) -> list[tuple[Cell, ...]]:
    return [(row.key, row.count) for row in rows]


GROUP_HEADERS = ("", "finished", "on-time rate", "rework rate", "first-pass yield rate")
FLOOR_HEADERS = ("", "completions", "cycle median min", "cycle p90 min", "first-pass yield rate")

# Table name (as in the export URL) -> how it is read off a dashboard.
TABLES: dict[str, Callable[[Dashboard], Table]] = {
    "headline": lambda d: Table(
        "Headline",
        ("figure", d.period.label, d.previous_period.label, "target"),
        _headline_rows(d),
    ),
    "trend": lambda d: Table(
        "Trend",
        ("from", "finished", "on-time rate", "first-pass yield rate"),
        [
            (
                point.first_day.isoformat(),
                point.finished,
                _rate(point.on_time),
                _rate(point.first_pass),
            )
            for point in d.trend
        ],
    ),
    "stages": lambda d: Table(
        "Stages",
        (
            "stage",
            "completions",
            "cycle median min",
            "cycle p90 min",
            "queue median min",
            "queue p90 min",
            "breakages",
            "breakage rate",
            "breakage cost",
            "WIP queued",
            "WIP in progress",
            "WIP on hold",
        ),
        [
            (
                row.stage,
                row.completions,
                *_percentiles(row.cycle),
                *_percentiles(row.queue),
                row.breakages,
                _rate(row.breakage_rate),
                row.breakage_cost,
                row.wip_queued,
                row.wip_in_progress,
                row.wip_on_hold,
            )
            for row in d.stages
        ],
    ),
    "stores": lambda d: Table("Stores", ("store", *GROUP_HEADERS[1:]), _group_rows(d.stores)),
    "designs": lambda d: Table("Designs", ("design", *GROUP_HEADERS[1:]), _group_rows(d.designs)),
    "materials": lambda d: Table(
        "Materials", ("material", *GROUP_HEADERS[1:]), _group_rows(d.materials)
    ),
    "stations": lambda d: Table(
        "Stations", ("station", *FLOOR_HEADERS[1:]), _floor_rows(d.stations)
    ),
    "operators": lambda d: Table(
        "Operators", ("operator", *FLOOR_HEADERS[1:]), _floor_rows(d.operators)
    ),
    "shifts": lambda d: Table(
        "Breakages by shift",
        ("shift", "breakages", "cost"),
        [(row.key, row.count, row.cost) for row in d.shifts],
    ),
    "defects": lambda d: Table("Rework defects", ("defect", "reworks"), _count_rows(d.defects)),
    "remakes": lambda d: Table("Remakes", ("class", "remakes"), _count_rows(d.remakes)),
    "late_causes": lambda d: Table(
        "Late jobs by cause", ("cause", "late jobs"), _count_rows(d.late_causes)
    ),
}


def drill_table(title: str, rows: Sequence[DrillRow]) -> Table:
    return Table(
        title,
        ("job", "store", "design", "material", "status", "promised", "finished", "late"),
        [
            (
                row.job_number,
                row.store_code,
                row.lens_design,
                row.lens_material,
                row.status.value,
                row.promised,
                row.finished,
                "late" if row.late else "",
            )
            for row in rows
        ],
    )


def _safe(cell: Cell) -> Cell:
    if isinstance(cell, str) and cell.startswith(FORMULA_STARTS):
        return "'" + cell
    return cell


def to_csv(table: Table) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(table.headers)
    writer.writerows([_safe(cell) for cell in row] for row in table.rows)
    return out.getvalue().encode("utf-8-sig")  # the BOM: Excel reads the text as UTF-8


def to_xlsx(table: Table) -> bytes:
    # Imported here: openpyxl brings NumPy and Pillow (~29 MB), which a server process that
    # never exports should not hold (lab groups run several).
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None  # a new workbook has its first sheet
    sheet.title = table.title[:31]  # Excel's limit
    sheet.append(list(table.headers))
    for row in table.rows:
        sheet.append([_safe(cell) for cell in row])
    for column, header in enumerate(table.headers, start=1):
        if header.endswith(RATE_SUFFIX):
            for (cell,) in sheet.iter_rows(min_row=2, min_col=column, max_col=column):
                cell.number_format = "0.0%"
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def render(table: Table, file_format: ExportFormat) -> bytes:
    return to_csv(table) if file_format == ExportFormat.csv else to_xlsx(table)
