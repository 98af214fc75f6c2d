"""A station's view of itself: identity, sequence state, operators and reason codes."""

from fastapi import APIRouter

from server.api.deps import CurrentStation, DbSession
from server.domain import stations
from server.schemas import OperatorOut, ReasonOut, StationMe

router = APIRouter(prefix="/api/stations", tags=["stations"])


@router.get("/me")
def station_me(station: CurrentStation, session: DbSession) -> StationMe:
    return stations.station_me(session, station)


@router.get("/me/operators")
def station_operators(station: CurrentStation, session: DbSession) -> list[OperatorOut]:
    return stations.station_operators(session, station)


@router.get("/me/reasons")
def station_reasons(station: CurrentStation, session: DbSession) -> list[ReasonOut]:
    return stations.station_reasons(session, station)
