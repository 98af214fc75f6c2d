"""Request dependencies: the context, a transactional session and the caller's identity."""

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Request
from sqlalchemy.orm import Session
from starlette.types import ASGIApp, Receive, Scope, Send

from server.context import ServerContext
from server.domain.auth import PersonPrincipal, Principal, StationPrincipal, authenticate
from server.domain.errors import Forbidden, Unauthorized, Unavailable

SESSION_COOKIE = "lenstrack_session"
# Row ids in paths: bounded so an absurd number is a 422, not a database driver overflow.
RowId = Annotated[int, Path(ge=1, le=2**31 - 1)]


def get_context(request: Request) -> ServerContext:
    return request.app.state.context


Context = Annotated[ServerContext, Depends(get_context)]


def get_session(request: Request, context: Context) -> Iterator[Session]:
    """A reading request (GET, HEAD) reads without waiting for writers; the others write."""
    reading = request.method in ("GET", "HEAD")
    with context.db.read_session() if reading else context.session() as session:
        yield session


def get_write_session(context: Context) -> Iterator[Session]:
    with context.session() as session:
        yield session


# scope="function": the transaction commits when the endpoint returns, before the response
# is sent, so a client that follows it (a redirect after log-in) reads what it wrote.
DbSession = Annotated[Session, Depends(get_session, scope="function")]
WriteSession = Annotated[Session, Depends(get_write_session, scope="function")]  # GET /logout


def request_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer" and credentials:
        return credentials.strip()
    return request.cookies.get(SESSION_COOKIE)


def get_principal(request: Request, context: Context) -> Principal:
    token = request_token(request)
    if token is None:
        raise Unauthorized("authorization", "log in or send a station bearer token")
    # Its own short transaction: a request-long one would hold SQLite's write lock (BEGIN
    # IMMEDIATE) while an endpoint opens its own session, which then waits for it and fails.
    with context.db.read_session() as session:
        return authenticate(session, token)


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def get_station(principal: CurrentPrincipal) -> StationPrincipal:
    if not isinstance(principal, StationPrincipal):
        raise Forbidden("authorization", "this endpoint is for stations (station token)")
    return principal


def get_person(principal: CurrentPrincipal) -> PersonPrincipal:
    if not isinstance(principal, PersonPrincipal):
        raise Forbidden("authorization", "this endpoint is for people (log in)")
    return principal


CurrentStation = Annotated[StationPrincipal, Depends(get_station)]
CurrentPerson = Annotated[PersonPrincipal, Depends(get_person)]


class StampArrival:
    """ASGI middleware: notes when a request arrived, before it waits for a worker thread or
    a database lock, so its deadline counts the time the client has been waiting."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope.setdefault("state", {})["arrived_at"] = time.monotonic()
        await self.app(scope, receive, send)


@dataclass(frozen=True)
class RequestDeadline:
    at: float  # time.monotonic()

    def check(self) -> None:
        """Call last inside the transaction: past the deadline, it rolls back (503)."""
        if time.monotonic() > self.at:
            raise Unavailable("request", "not finished in time; nothing was stored, send again")


def get_deadline(request: Request, context: Context) -> RequestDeadline:
    arrived_at = getattr(request.state, "arrived_at", None) or time.monotonic()
    return RequestDeadline(arrived_at + context.settings.ingest_deadline_seconds)


Deadline = Annotated[RequestDeadline, Depends(get_deadline)]
