"""A station's view of itself: identity, sequence state, operators, reason codes, labels."""

from fastapi import APIRouter

from core.labels import StationLabels
from server.api.deps import CurrentStation, DbSession
from server.domain import stations
from server.schemas import Operator, ReasonOut, StationMe

router = APIRouter(prefix="/api/stations", tags=["stations"])


@router.get("/me")
def station_me(station: CurrentStation, session: DbSession) -> StationMe:
    return StationMe.model_validate(stations.station_me(session, station))


@router.get("/me/operators")
def station_operators(station: CurrentStation, session: DbSession) -> list[Operator]:
    people = stations.station_operators(session, station)
    return [Operator.model_validate(person) for person in people]


@router.get("/me/reasons")
def station_reasons(station: CurrentStation, session: DbSession) -> list[ReasonOut]:
    reasons = stations.station_reasons(session, station)
    return [ReasonOut.model_validate(reason) for reason in reasons]


@router.get("/me/labels")
def station_labels(station: CurrentStation, session: DbSession) -> StationLabels:
    """What the station shows for identifiers: the lab config's labels and stage names."""
    return stations.station_labels(session, station)
