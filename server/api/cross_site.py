"""What another web site may make a logged-in browser do here: nothing. Writes that come
from another origin are refused (SameSite=Lax alone lets a same-site page, or a top-level
form, through), and every response forbids framing, type sniffing and leaking its address.
"""

from collections.abc import Iterable
from urllib.parse import urlsplit

from fastapi.responses import JSONResponse
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocketClose

from server.api.deps import bearer_token

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
_DEFAULT_PORTS = {"http": 80, "https": 443}
_WEB_SCHEMES = {"ws": "http", "wss": "https"}

# NiceGUI (Vue and Quasar) evaluates scripts and styles it writes inline, so those need
# 'unsafe-inline' and 'unsafe-eval'; everything else is this server's own, and no page may
# be framed (clickjacking) nor post a form elsewhere.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)
SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
}


def origin_of(url: str) -> str | None:
    """`scheme://host:port` of an http(s) URL, lower-case with the port spelled out, so
    equal origins compare equal; None for anything else (`null`, garbage, user info)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname or parts.username is not None:
        return None
    return f"{parts.scheme}://{parts.hostname}:{port or _DEFAULT_PORTS[parts.scheme]}"


class SameOriginWrites:
    """ASGI middleware: refuses (403, field `origin`) a write or a WebSocket whose `Origin`
    (or, without one, `Referer`) is not this server's own (the scheme it was reached by and
    the Host header) nor an allowed origin. A request with a bearer token passes: no browser
    sends one to another site's server unasked. A request naming no origin at all passes
    too: browsers name it on every cross-origin write, scripts and stations do not."""

    def __init__(self, app: ASGIApp, allowed_origins: Iterable[str] = ()) -> None:
        self.app = app
        self.allowed_origins = {origin for origin in map(origin_of, allowed_origins) if origin}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        writes = scope["type"] == "websocket" or (
            scope["type"] == "http" and scope["method"] not in SAFE_METHODS
        )
        if writes and not self._trusted(scope):
            if scope["type"] == "websocket":
                await WebSocketClose(code=1008)(scope, receive, send)  # policy violation
            else:
                message = "cross-site request refused: the page that sent it is not this server's"
                response = JSONResponse({"detail": [{"field": "origin", "message": message}]}, 403)
                await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _trusted(self, scope: Scope) -> bool:
        headers = Headers(scope=scope)
        if bearer_token(headers) is not None:
            return True
        claimed = headers.get("origin") or headers.get("referer")
        if claimed is None:
            return True
        origin = origin_of(claimed)
        if origin is None:
            return False
        scheme = _WEB_SCHEMES.get(scope["scheme"], scope["scheme"])
        own = origin_of(f"{scheme}://{headers.get('host', '')}")
        return origin == own or origin in self.allowed_origins


class SecurityHeaders:
    """ASGI middleware: SECURITY_HEADERS on every HTTP response that does not set its own."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)
