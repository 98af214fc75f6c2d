"""Who is asking: stations and other systems (lab tokens) by bearer token, people by
password and session.

Access rules live in queries (see `jobs.visible_jobs`), not in which menus a page shows.
"""

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session, joinedload

from server.db import Database
from server.domain.errors import Conflict, NotFound, Unauthorized
from server.domain.login_throttle import LoginThrottle
from server.domain.security import (
    LAB_TOKEN_PREFIX,
    SESSION_TOKEN_PREFIX,
    STATION_TOKEN_PREFIX,
    hash_password,
    new_token,
    token_digest,
    verify_password,
)
from server.models import (
    Lab,
    LabToken,
    Person,
    Role,
    Station,
    StationToken,
    UserSession,
    utcnow,
)

LAB_ROLES = frozenset({Role.technician, Role.qc_inspector, Role.lab_manager, Role.admin})
# Who enters, changes and remakes orders and marks pickups: a store for itself, managers for any.
ORDER_ROLES = frozenset({Role.store_staff, Role.lab_manager, Role.admin})
# Who decides for the lab: change requests, breakage reversals, imports from other systems.
MANAGER_ROLES = frozenset({Role.lab_manager, Role.admin})
# Who signs in at a station by badge: the badges a station caches and may name on an event.
# A manager's badge is no station credential, so a station token cannot act as a manager.
STATION_ROLES = frozenset({Role.technician, Role.qc_inspector})


@dataclass(frozen=True)
class StationPrincipal:
    station_id: int
    lab_id: int
    stage_id: int
    name: str


@dataclass(frozen=True)
class PersonPrincipal:
    person_id: int
    lab_id: int
    role: Role
    store_id: int | None
    name: str
    session_id: int | None = None


@dataclass(frozen=True)
class LabPrincipal:
    """The lab itself: another system holding a lab token, or the `lenstrack` command run by
    the lab's operator (`token_id` None). It may import jobs and read every job of the lab."""

    lab_id: int
    name: str
    token_id: int | None = None


Principal = StationPrincipal | PersonPrincipal | LabPrincipal


def create_lab_token(session: Session, name: str) -> str:
    """Returns the token once; only its digest is stored. Names are unique among live tokens."""
    lab = session.scalars(select(Lab).order_by(Lab.id)).first()
    if lab is None:
        raise NotFound("lab", "no lab yet: run `lenstrack config load` first")
    live = select(LabToken.id).where(LabToken.name == name, LabToken.revoked_at.is_(None))
    if session.scalar(live) is not None:
        raise Conflict("name", f"a live lab token is named {name!r} already")
    token = new_token(LAB_TOKEN_PREFIX)
    session.add(LabToken(lab_id=lab.id, name=name, token_hash=token_digest(token)))
    return token


def revoke_lab_token(session: Session, name: str) -> None:
    live = select(LabToken).where(LabToken.name == name, LabToken.revoked_at.is_(None))
    if _revoke(session.scalars(live).all()) == 0:
        raise NotFound("name", f"no live lab token named {name!r}")


def _revoke(tokens: Sequence[LabToken | StationToken]) -> int:
    """Revokes loaded tokens (not by an UPDATE statement), so the audit trail names each."""
    now = utcnow()
    for token in tokens:
        token.revoked_at = now
    return len(tokens)


def create_station_token(session: Session, station_name: str, label: str = "") -> str:
    """Returns the token once; only its digest is stored."""
    station = session.scalar(select(Station).where(Station.name == station_name))
    if station is None:
        raise NotFound("station", f"no station named {station_name!r}")
    token = new_token(STATION_TOKEN_PREFIX)
    session.add(StationToken(station_id=station.id, token_hash=token_digest(token), label=label))
    return token


def revoke_station_tokens(session: Session, station_name: str) -> int:
    """Revokes every live token of the station; returns how many."""
    station = session.scalar(select(Station).where(Station.name == station_name))
    if station is None:
        raise NotFound("station", f"no station named {station_name!r}")
    live = select(StationToken).where(
        StationToken.station_id == station.id, StationToken.revoked_at.is_(None)
    )
    return _revoke(session.scalars(live).all())


def set_password(person: Person, password: str) -> None:
    if len(password) < 8:
        raise ValueError("a password needs at least 8 characters")
    person.password_hash = hash_password(password)


@dataclass(frozen=True)
class LoggedIn:
    token: str
    person: Person  # detached, its store loaded


def log_in(db: Database, username: str, password: str, lifetime: timedelta) -> LoggedIn:
    """Checks the password and opens a session. Argon2 is slow on purpose, so it runs with no
    transaction open: inside one it would hold SQLite's only write lock (and a pooled
    connection) while stations wait to write. Only the session row gets a short write."""
    with db.read_session() as session:
        person = session.scalar(
            select(Person).where(Person.username == username).options(joinedload(Person.store))
        )
    if not verify_password(person.password_hash if person else None, password):
        raise Unauthorized("password", "unknown user name or wrong password")
    assert person is not None
    if not person.active:
        raise Unauthorized("username", "this account is disabled")
    token = new_token(SESSION_TOKEN_PREFIX)
    with db.session() as session:
        session.add(
            UserSession(
                person_id=person.id, token_hash=token_digest(token), expires_at=utcnow() + lifetime
            )
        )
    return LoggedIn(token, person)


def throttled_log_in(
    db: Database,
    throttle: LoginThrottle,
    username: str,
    password: str,
    host: str | None,
    lifetime: timedelta,
) -> LoggedIn:
    """`log_in`, refused before any hashing while the user name or the client address is
    locked out. Blocking (database and hash): call it from a worker thread."""
    with throttle.attempt(db, username, host):
        return log_in(db, username, password, lifetime)


def log_out(session: Session, token: str) -> None:
    session.execute(
        update(UserSession)
        .where(UserSession.token_hash == token_digest(token), UserSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


def check_station_tokens(
    session: Session, digests: Collection[str]
) -> dict[str, StationPrincipal | Unauthorized]:
    """Station token digests to their stations, or why each is refused, in one query (the
    group writer checks the tokens of all its requests at once)."""
    rows = session.execute(
        select(StationToken.token_hash, Station)
        .join(Station, Station.id == StationToken.station_id)
        .where(StationToken.token_hash.in_(digests), StationToken.revoked_at.is_(None))
    )
    stations = {digest: station for digest, station in rows}
    return {digest: _live_station(stations.get(digest)) for digest in digests}


def _live_station(station: Station | None) -> StationPrincipal | Unauthorized:
    if station is None:
        return Unauthorized("authorization", "unknown or revoked station token")
    if not station.active:
        return Unauthorized("authorization", f"station {station.name} is disabled")
    return StationPrincipal(station.id, station.lab_id, station.stage_id, station.name)


def authenticate(session: Session, token: str, now: datetime | None = None) -> Principal:
    """Resolves a bearer or session-cookie token to its principal, or raises Unauthorized."""
    now = now or utcnow()
    digest = token_digest(token)
    if token.startswith(STATION_TOKEN_PREFIX):
        station = check_station_tokens(session, [digest])[digest]
        if isinstance(station, Unauthorized):
            raise station
        return station
    if token.startswith(LAB_TOKEN_PREFIX):
        lab_token = session.scalar(select(LabToken).where(LabToken.token_hash == digest))
        if lab_token is None or lab_token.revoked_at is not None:
            raise Unauthorized("authorization", "unknown or revoked lab token")
        return LabPrincipal(lab_token.lab_id, lab_token.name, lab_token.id)
    if token.startswith(SESSION_TOKEN_PREFIX):
        user_session = session.scalar(select(UserSession).where(UserSession.token_hash == digest))
        if (
            user_session is None
            or user_session.revoked_at is not None
            or user_session.expires_at <= now
            or not user_session.person.active
        ):
            raise Unauthorized("authorization", "session expired or logged out; log in again")
        person = user_session.person
        return PersonPrincipal(
            person.id, person.lab_id, person.role, person.store_id, person.name, user_session.id
        )
    raise Unauthorized("authorization", "not a LensTrack token")
