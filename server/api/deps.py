"""Request dependencies: the context, a transactional session and the caller's identity."""

import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.context import ServerContext
from server.domain import audit
from server.domain.auth import PersonPrincipal, Principal, StationPrincipal, authenticate
from server.domain.errors import Forbidden, Unauthorized, Unavailable
from server.domain.security import token_digest

SESSION_COOKIE = "lenstrack_session"
# Row ids in paths: bounded so an absurd number is a 422, not a database driver overflow.
RowId = Annotated[int, Path(ge=1, le=2**31 - 1)]


# The dependencies that do no I/O are async: FastAPI runs a plain `def` dependency in a worker
# thread, and those hops were a good share of a station event's cost.
async def get_context(request: Request) -> ServerContext:
    return request.app.state.context


Context = Annotated[ServerContext, Depends(get_context)]


def get_session(request: Request, context: Context) -> Iterator[Session]:
    """A reading request (GET, HEAD) reads without waiting for writers; the others write."""
    reading = request.method in ("GET", "HEAD")
    with context.db.read_session() if reading else context.session() as session:
        yield session


# scope="function": the transaction commits when the endpoint returns, before the response
# is sent, so a client that follows it (a redirect after log-in) reads what it wrote.
DbSession = Annotated[Session, Depends(get_session, scope="function")]


def bearer_token(headers: Headers) -> str | None:
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials:
        return credentials.strip()
    return None


def request_token(request: Request) -> str | None:
    return bearer_token(request.headers) or request.cookies.get(SESSION_COOKIE)


def get_principal(request: Request, context: Context) -> Principal:
    token = request_token(request)
    if token is None:
        raise Unauthorized("authorization", "log in or send a station bearer token")
    # Its own short transaction: a request-long one would hold SQLite's write lock (BEGIN
    # IMMEDIATE) while an endpoint opens its own session, which then waits for it and fails.
    with context.db.read_session() as session:
        principal = authenticate(session, token)
    audit.identify(principal)
    return principal


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


async def get_station(principal: CurrentPrincipal) -> StationPrincipal:
    if not isinstance(principal, StationPrincipal):
        raise Forbidden("authorization", "this endpoint is for stations (station token)")
    return principal


async def get_person(principal: CurrentPrincipal) -> PersonPrincipal:
    if not isinstance(principal, PersonPrincipal):
        raise Forbidden("authorization", "this endpoint is for people (log in)")
    return principal


CurrentStation = Annotated[StationPrincipal, Depends(get_station)]
CurrentPerson = Annotated[PersonPrincipal, Depends(get_person)]


class StationTokens:
    """The stations of station tokens seen lately, by token digest: a bounded LRU, one per app.

    Only for work the group writer does, which checks every token again in its transaction
    (`auth.check_station_tokens`, one query per group) and forgets those it refuses: a hit
    spares the request a database session of its own, and a token revoked or a station
    disabled meanwhile, from any process, is still refused before anything is stored.
    """

    SIZE = 256

    def __init__(self) -> None:
        self._stations: OrderedDict[str, StationPrincipal] = OrderedDict()
        self._lock = threading.Lock()  # the event loop reads, the writer thread forgets

    def get(self, digest: str) -> StationPrincipal | None:
        with self._lock:
            station = self._stations.get(digest)
            if station is not None:
                self._stations.move_to_end(digest)
            return station

    def put(self, digest: str, station: StationPrincipal) -> None:
        with self._lock:
            self._stations[digest] = station
            self._stations.move_to_end(digest)
            while len(self._stations) > self.SIZE:
                self._stations.popitem(last=False)

    def forget(self, digest: str) -> None:
        with self._lock:
            self._stations.pop(digest, None)


@dataclass(frozen=True)
class WritingStation:
    """A station whose token the group writer checks again (see StationTokens)."""

    principal: StationPrincipal
    token_digest: str
    tokens: StationTokens

    def checked(self, found: StationPrincipal | Unauthorized) -> StationPrincipal:
        """The station as the writer found it; refused (and forgotten) if no longer live."""
        if not isinstance(found, StationPrincipal) or found != self.principal:
            self.tokens.forget(self.token_digest)  # the next request reads it afresh
        if isinstance(found, Unauthorized):
            raise found
        return found


async def get_writing_station(request: Request, context: Context) -> WritingStation:
    """The calling station, read from the database only for a token not seen lately: for the
    routes whose work the group writer does, which checks the token (see StationTokens)."""
    tokens: StationTokens = request.app.state.station_tokens
    digest = token_digest(request_token(request) or "")  # no token: refused just below
    station = tokens.get(digest)
    if station is None:
        station = await get_station(await run_in_threadpool(get_principal, request, context))
        tokens.put(digest, station)
    audit.identify(station)
    return WritingStation(station, digest, tokens)


CurrentWritingStation = Annotated[WritingStation, Depends(get_writing_station)]


class RecordOrigin:
    """ASGI middleware: the audit trail's "from where" for everything a request changes, the
    client's address (a trusted proxy's forwarded one: setting `trusted_proxies`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        with audit.request_origin(client[0] if client else "unknown"):
            await self.app(scope, receive, send)


class StampArrival:
    """ASGI middleware: notes when a request arrived, before it waits for a worker thread or
    a database lock, so its deadline counts the time the client has been waiting."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope.setdefault("state", {})["arrived_at"] = time.monotonic()
        await self.app(scope, receive, send)


class BodyLimit:
    """ASGI middleware: a request body over `max_bytes` answers 413 naming `body` before the
    app parses any of it. A declared length is checked first; a chunked body is read up to
    the limit and then handed on as it came."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None:
            if declared.isdigit() and int(declared) > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        messages: list[Message] = []
        size, more = 0, True
        while more:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            more = message.get("more_body", False)
            if size > self.max_bytes:
                await self._refuse(scope, receive, send)
                return

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = f"larger than {self.max_bytes} bytes"
        response = JSONResponse({"detail": [{"field": "body", "message": message}]}, 413)
        await response(scope, receive, send)


@dataclass(frozen=True)
class RequestDeadline:
    at: float  # time.monotonic()

    def check(self) -> None:
        """Call last inside the transaction: past the deadline, it rolls back (503)."""
        if self.remaining() < 0:
            raise Unavailable("request", "not finished in time; nothing was stored, send again")

    def remaining(self) -> float:
        return self.at - time.monotonic()


async def get_deadline(request: Request, context: Context) -> RequestDeadline:
    arrived_at = getattr(request.state, "arrived_at", None) or time.monotonic()
    return RequestDeadline(arrived_at + context.settings.ingest_deadline_seconds)


Deadline = Annotated[RequestDeadline, Depends(get_deadline)]
