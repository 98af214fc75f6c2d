"""Callers of every kind, for the authorization matrix and the API fuzzer: each role's
credentials, made straight in the database (no log-in requests, which throttling counts)."""

from datetime import timedelta

from sqlalchemy import select

from server.context import ServerContext
from server.domain import auth
from server.domain.security import SESSION_TOKEN_PREFIX, new_token, token_digest
from server.models import Person, UserSession, utcnow

# Columns of the matrix. "store_own" is store staff of NORTH, the store every target belongs
# to; "store_other" is store staff of SOUTH acting on those same NORTH targets.
ROLES = (
    "anonymous",
    "station",
    "lab_token",
    "technician",
    "qc_inspector",
    "store_own",
    "store_other",
    "lab_manager",
    "admin",
)
USERNAMES = {
    "technician": "tech1",
    "qc_inspector": "qc",
    "store_own": "north",
    "store_other": "south",
    "lab_manager": "manager",
    "admin": "admin",
}
STATION = "EDGE-1"  # the first stage of a stock single-vision job: the targets start there


def session_token(context: ServerContext, username: str) -> str:
    """A live session of the person, as a log-in would open it."""
    token = new_token(SESSION_TOKEN_PREFIX)
    with context.db.session() as session:
        person_id = session.scalar(select(Person.id).where(Person.username == username))
        assert person_id is not None, username
        session.add(
            UserSession(
                person_id=person_id,
                token_hash=token_digest(token),
                expires_at=utcnow() + timedelta(hours=1),
            )
        )
    return token


def role_token(context: ServerContext, role: str) -> str | None:
    """The bearer token a caller in `role` sends; None for the anonymous one."""
    if role == "anonymous":
        return None
    with context.db.session() as session:
        if role == "station":
            return auth.create_station_token(session, STATION)
        if role == "lab_token":
            return auth.create_lab_token(session, f"matrix-{new_token('')[:8]}")
    return session_token(context, USERNAMES[role])
