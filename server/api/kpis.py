"""KPIs for other tools: the dashboards' figures, the jobs behind each, and each table as CSV
or XLSX — scoped as the pages are (a store's staff see their store only)."""

from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict

from server.api.deps import CurrentPrincipal, DbSession
from server.domain import kpi_export, kpis
from server.domain.kpi_export import ExportFormat
from server.labconfig import KpiTargets
from server.models import utcnow

router = APIRouter(prefix="/api/kpis", tags=["kpis"])


class PeriodOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    kind: kpis.PeriodKind
    label: str
    first_day: date
    last_day: date
    start: datetime
    end: datetime


class ScopeOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    store_code: str | None  # None: the whole lab


class KpiDashboardOut(BaseModel):
    """Rates as numerator and denominator (the rate is their quotient; none without jobs)."""

    model_config = ConfigDict(from_attributes=True)
    scope: ScopeOut
    period: PeriodOut
    previous_period: PeriodOut
    targets: KpiTargets
    current: kpis.Headline
    previous: kpis.Headline
    trend: list[kpis.TrendPoint]
    stages: list[kpis.StageRow]
    stores: list[kpis.GroupRow]
    designs: list[kpis.GroupRow]
    materials: list[kpis.GroupRow]
    stations: list[kpis.FloorRow]
    operators: list[kpis.FloorRow]
    shifts: list[kpis.CountRow]
    defects: list[kpis.CountRow]
    remakes: list[kpis.CountRow]
    late_causes: list[kpis.CountRow]


class KpiDrillOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    period: PeriodOut
    jobs: list[kpis.DrillRow]


TableName = Annotated[str, Path(pattern="^(" + "|".join(kpi_export.TABLES) + ")$")]


@router.get("")
def kpi_dashboard(
    query: Annotated[kpis.KpiQuery, Query()], principal: CurrentPrincipal, session: DbSession
) -> KpiDashboardOut:
    """Every figure of the period (and the one before it), per stage, store, design,
    material, station and operator; definitions in server/domain/kpis.py."""
    dashboard = kpis.dashboard(session, principal, query, utcnow())
    return KpiDashboardOut.model_validate(dashboard, from_attributes=True)


@router.get("/jobs")
def kpi_jobs(
    query: Annotated[kpis.DrillQuery, Query()], principal: CurrentPrincipal, session: DbSession
) -> KpiDrillOut:
    """The jobs behind one figure (`kind`), optionally one group's (`dimension`, `value`)."""
    period, rows = kpis.drill(session, principal, query, utcnow())
    return KpiDrillOut(period=PeriodOut.model_validate(period), jobs=rows)


@router.get("/export/{table}.{file_format}", response_class=Response)
def kpi_export_table(
    table: TableName,
    file_format: ExportFormat,
    query: Annotated[kpis.KpiQuery, Query()],
    principal: CurrentPrincipal,
    session: DbSession,
) -> Response:
    """One dashboard table as a file a spreadsheet opens."""
    dashboard = kpis.dashboard(session, principal, query, utcnow())
    return _file(kpi_export.TABLES[table](dashboard), file_format, f"kpi-{table}")


@router.get("/jobs/export.{file_format}", response_class=Response)
def kpi_jobs_export(
    file_format: ExportFormat,
    query: Annotated[kpis.DrillQuery, Query()],
    principal: CurrentPrincipal,
    session: DbSession,
) -> Response:
    """The drill-down's jobs as a file a spreadsheet opens."""
    _period, rows = kpis.drill(session, principal, query, utcnow())
    table = kpi_export.drill_table(f"Jobs {query.kind}", rows)
    return _file(table, file_format, f"kpi-jobs-{query.kind}")


def _file(table: kpi_export.Table, file_format: ExportFormat, name: str) -> Response:
    return Response(
        kpi_export.render(table, file_format),
        media_type=kpi_export.MEDIA_TYPES[file_format],
        headers={"Content-Disposition": f'attachment; filename="{name}.{file_format}"'},
    )
