"""SPC for other tools: which charts there are, one chart's points, limits and violations,
and the lab alerts violations raise. For the lab's people only (server/domain/spc.py)."""

from typing import Annotated

from fastapi import APIRouter, Query

from server.api.deps import CurrentPerson, DbSession, RowId
from server.domain import spc
from server.models import utcnow

router = APIRouter(prefix="/api/kpis/spc", tags=["spc"])


@router.get("/charts")
def spc_charts(person: CurrentPerson, session: DbSession) -> spc.ChartOptions:
    """The measures, stations, shifts and materials a chart may be drawn for."""
    return spc.chart_options(session, person)


@router.get("/chart")
def spc_chart(
    query: Annotated[spc.ChartQuery, Query()], person: CurrentPerson, session: DbSession
) -> spc.ChartOut:
    """One chart: its points (phase I baseline first), limits and Western Electric
    violations, each naming the rule and the job of the violating point."""
    return spc.chart(session, person, query, utcnow())


@router.get("/alerts")
def spc_alerts(
    person: CurrentPerson, session: DbSession, include_acknowledged: bool = False
) -> list[spc.AlertOut]:
    return spc.list_alerts(session, person, include_acknowledged=include_acknowledged)


@router.post("/alerts/{alert_id}/acknowledge")
def acknowledge_spc_alert(
    alert_id: RowId, person: CurrentPerson, session: DbSession
) -> spc.AlertOut:
    return spc.acknowledge_alert(session, person, alert_id, utcnow())
