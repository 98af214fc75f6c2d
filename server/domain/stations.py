"""What a station needs to work on its own: who may sign in, which reasons exist."""

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.labels import Labels, StationLabels
from server.domain.auth import StationPrincipal
from server.domain.events import last_sequence, sequence_gaps, station_operator_query
from server.models import Lab, Person, ReasonCode, Stage
from server.schemas import SequenceGap


@dataclass(frozen=True)
class StationState:
    """Who the station is, where it works, and how far the server has its events."""

    id: int
    name: str
    stage: Stage
    last_sequence: int
    sequence_gaps: list[SequenceGap]


def station_me(session: Session, station: StationPrincipal) -> StationState:
    return StationState(
        id=station.station_id,
        name=station.name,
        stage=session.get_one(Stage, station.stage_id),
        last_sequence=last_sequence(session, station.station_id),
        sequence_gaps=sequence_gaps(session, station.station_id),
    )


def station_operators(session: Session, station: StationPrincipal) -> list[Person]:
    """Active station operators with a badge, cached by the station for offline sign-in: what
    it needs to greet them by name, and no one else (the server accepts the same badges)."""
    return list(session.scalars(station_operator_query(station.lab_id).order_by(Person.name)))


def station_reasons(session: Session, station: StationPrincipal) -> list[ReasonCode]:
    return list(
        session.scalars(
            select(ReasonCode)
            .where(ReasonCode.lab_id == station.lab_id)
            .order_by(ReasonCode.kind, ReasonCode.code)
        )
    )


def station_labels(session: Session, station: StationPrincipal) -> StationLabels:
    """What the station shows for identifiers: the lab's labels (from its config) and every
    stage of the lab by code, in route order."""
    lab = session.get_one(Lab, station.lab_id)
    stages = session.scalars(
        select(Stage).where(Stage.lab_id == station.lab_id).order_by(Stage.position)
    )
    return StationLabels(
        **Labels.model_validate(lab.labels or {}).model_dump(),
        stages={stage.code: stage.name for stage in stages},
    )
