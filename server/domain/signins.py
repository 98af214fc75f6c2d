"""Who is signed in at which station: a job event counts only from an operator signed in
at its station when the event was made.

Operators sign in on the station itself, offline too. The station records each sign-in and
sign-out in its outbox like a job event (a UUID, the next sequence number) and sends them in
its order, so they arrive before the job events that follow them, even after a night offline.
Times are the station's device clock, the same clock its job events carry.
"""

import bisect
from datetime import datetime

from sqlalchemy import CompoundSelect, Select, bindparam, func, select, union_all
from sqlalchemy.orm import Session

from core.contract import SignAction
from server.db import conflict_insert
from server.domain.auth import StationPrincipal
from server.domain.errors import Forbidden
from server.models import StationSignIn
from server.schemas import EventIn, EventResult


def _sign_in_log_query() -> CompoundSelect[tuple[int, int, datetime, int, str]]:
    """The pairs' entries between `earliest` and `latest` and the last one before: built once
    (the window query took most of a group's sign-in check to build), its values bound."""
    among_pairs = (
        StationSignIn.station_id.in_(bindparam("stations", expanding=True)),
        StationSignIn.person_id.in_(bindparam("people", expanding=True)),
    )
    columns = (
        StationSignIn.station_id,
        StationSignIn.person_id,
        StationSignIn.device_created_at,
        StationSignIn.station_sequence,
        StationSignIn.action,
    )
    ranked = (
        select(
            *columns,
            func.row_number()
            .over(
                partition_by=(StationSignIn.station_id, StationSignIn.person_id),
                order_by=(
                    StationSignIn.device_created_at.desc(),
                    StationSignIn.station_sequence.desc(),
                ),
            )
            .label("recency"),
        )
        .where(*among_pairs, StationSignIn.device_created_at < bindparam("earliest"))
        .subquery()
    )
    last_before = select(
        ranked.c.station_id,
        ranked.c.person_id,
        ranked.c.device_created_at,
        ranked.c.station_sequence,
        ranked.c.action,
    ).where(ranked.c.recency == 1)
    within = select(*columns).where(
        *among_pairs,
        StationSignIn.device_created_at.between(bindparam("earliest"), bindparam("latest")),
    )
    return union_all(last_before, within)


_SIGN_IN_LOG = _sign_in_log_query()


class SignInLog:
    """Each (station, operator) pair's sign-ins and sign-outs that a group of events made
    between `earliest` and `latest` needs: those in that span and the last one before it,
    read in one query. Those the group records join it, so later events see them."""

    def __init__(
        self,
        session: Session,
        pairs: set[tuple[int, int]],
        earliest: datetime,
        latest: datetime,
    ) -> None:
        self._entries: dict[tuple[int, int], list[tuple[datetime, int, str]]] = {}
        if not pairs:
            return
        values = {
            "stations": sorted({station_id for station_id, _ in pairs}),
            "people": sorted({person_id for _, person_id in pairs}),
            "earliest": earliest,
            "latest": latest,
        }
        for station_id, person_id, at, sequence, action in session.execute(_SIGN_IN_LOG, values):
            self.add(station_id, person_id, at, sequence, action)

    def add(
        self, station_id: int, person_id: int, at: datetime, sequence: int, action: str
    ) -> None:
        entries = self._entries.setdefault((station_id, person_id), [])
        bisect.insort(entries, (at, sequence, action))

    def signed_in(self, station_id: int, person_id: int, at: datetime) -> bool:
        """Whether the pair's last sign-in or sign-out up to `at` is a sign-in."""
        entries = self._entries.get((station_id, person_id), [])
        before = bisect.bisect_right(entries, at, key=lambda entry: entry[0])
        return before > 0 and entries[before - 1][2] == SignAction.sign_in


def record(
    session: Session,
    log: SignInLog,
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
    if stored is not None:
        log.add(station.station_id, operator_id, event.created_at, event.sequence, event.action)
    return EventResult(
        event_uuid=event.event_uuid, status="duplicate" if stored is None else "stored"
    )


def check_signed_in(
    log: SignInLog, station: StationPrincipal, operator_id: int, event: EventIn
) -> None:
    """Forbidden (field operator_badge) unless the operator's last sign-in or sign-out at this
    station up to the event's scan is a sign-in."""
    if not log.signed_in(station.station_id, operator_id, event.created_at):
        raise Forbidden(
            "operator_badge",
            f"badge {event.operator_badge!r} was not signed in at station {station.name} "
            "when this was scanned",
        )


def received_sequences(station_id: int, after: int = 0) -> Select[tuple[int]]:
    """The station's sequence numbers after `after` that its sign-ins and sign-outs took."""
    return select(StationSignIn.station_sequence.label("sequence")).where(
        StationSignIn.station_id == station_id, StationSignIn.station_sequence > after
    )


def highest_sequence(station_id: int) -> Select[tuple[int | None]]:
    return select(func.max(StationSignIn.station_sequence).label("sequence")).where(
        StationSignIn.station_id == station_id
    )
