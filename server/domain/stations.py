"""What a station needs to work on its own: who may sign in, which reasons exist."""

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from server.domain.auth import StationPrincipal
from server.domain.events import last_sequence, sequence_gaps
from server.domain.naming import initials
from server.models import Person, ReasonCode, Role, Stage
from server.schemas import OperatorOut, ReasonOut, StageOut, StationMe

OPERATOR_ROLES = (Role.technician, Role.qc_inspector, Role.lab_manager, Role.admin)


def station_me(session: Session, station: StationPrincipal) -> StationMe:
    stage = session.get_one(Stage, station.stage_id)
    return StationMe(
        id=station.station_id,
        name=station.name,
        stage=StageOut(code=stage.code, name=stage.name),
        last_sequence=last_sequence(session, station.station_id),
        sequence_gaps=sequence_gaps(session, station.station_id),
    )


def station_operators(session: Session, station: StationPrincipal) -> list[OperatorOut]:
    """Active lab people with a badge, cached by the station for offline sign-in."""
    people = session.scalars(
        select(Person)
        .where(
            Person.lab_id == station.lab_id,
            Person.active,
            Person.badge_code.is_not(None),
            Person.role.in_(OPERATOR_ROLES),
        )
        .order_by(Person.name)
    )
    return [
        OperatorOut(
            badge_code=person.badge_code or "",
            name=person.name,
            initials=initials(person.name),
            role=person.role,
        )
        for person in people
    ]


def station_reasons(session: Session, station: StationPrincipal) -> list[ReasonOut]:
    return_stage = aliased(Stage)
    rows = session.execute(
        select(ReasonCode, return_stage.code)
        .outerjoin(return_stage, ReasonCode.return_stage_id == return_stage.id)
        .where(ReasonCode.lab_id == station.lab_id)
        .order_by(ReasonCode.kind, ReasonCode.code)
    )
    return [
        ReasonOut(
            kind=reason.kind,
            code=reason.code,
            description=reason.description,
            return_stage=stage_code,
        )
        for reason, stage_code in rows
    ]
