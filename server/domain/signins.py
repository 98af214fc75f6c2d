"""Who is signed in at which station: a job event counts only from an operator signed in
at its station when the event was made.

Operators sign in on the station itself, offline too. The station records each sign-in and
sign-out in its outbox like a job event (a UUID, the next sequence number) and sends them in
its order, so they arrive before the job events that follow them, even after a night offline.
Times are the station's device clock, the same clock its job events carry.
"""

import uuid
from datetime import datetime

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from core.contract import SignAction
from server.db import conflict_insert
from server.domain.auth import StationPrincipal
from server.domain.errors import Forbidden
from server.models import StationSignIn
from server.schemas import EventIn, EventResult


def known(session: Session, event_uuid: uuid.UUID) -> EventResult | None:
    """A stored sign-in or sign-out answers "duplicate" when sent again."""
    if session.scalar(select(StationSignIn.id).where(StationSignIn.event_uuid == event_uuid)):
        return EventResult(event_uuid=event_uuid, status="duplicate")
    return None


def record(
    session: Session,
    station: StationPrincipal,
    event: EventIn,
    operator_id: int,
    received_at: datetime,
) -> EventResult:
    """Stores a sign-in or sign-out (its operator checked by the caller). A sign-out without a
    sign-in is stored too: it is what the station did, and it signs no one in."""
    dialect = session.get_bind().dialect.name
    insert = conflict_insert(dialect, StationSignIn)
    stored = session.scalar(
        insert.on_conflict_do_nothing(index_elements=["event_uuid"])
        .values(
            event_uuid=event.event_uuid,
            station_id=station.station_id,
            station_sequence=event.sequence,
            person_id=operator_id,
            action=event.action,
            device_created_at=event.created_at,
            server_received_at=received_at,
        )
        .returning(StationSignIn.id)
    )
    # None: a concurrent request stored this UUID first.
    return EventResult(
        event_uuid=event.event_uuid, status="duplicate" if stored is None else "stored"
    )


def check_signed_in(
    session: Session, station: StationPrincipal, operator_id: int, event: EventIn
) -> None:
    """Forbidden (field operator_badge) unless the operator's last sign-in or sign-out at this
    station up to the event's scan is a sign-in."""
    last = session.scalar(
        select(StationSignIn.action)
        .where(
            StationSignIn.station_id == station.station_id,
            StationSignIn.person_id == operator_id,
            StationSignIn.device_created_at <= event.created_at,
        )
        .order_by(StationSignIn.device_created_at.desc(), StationSignIn.station_sequence.desc())
        .limit(1)
    )
    if last != SignAction.sign_in:
        raise Forbidden(
            "operator_badge",
            f"badge {event.operator_badge!r} was not signed in at station {station.name} "
            "when this was scanned",
        )


def received_sequences(station_id: int) -> Select[tuple[int]]:
    """The station's sequence numbers its sign-ins and sign-outs took."""
    return select(StationSignIn.station_sequence.label("sequence")).where(
        StationSignIn.station_id == station_id
    )
