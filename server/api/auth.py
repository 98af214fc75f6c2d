"""People log in with user name and password; the session rides in an HttpOnly cookie."""

from fastapi import APIRouter, Request, Response, status
from starlette.concurrency import run_in_threadpool

from server.api.deps import SESSION_COOKIE, Context, CurrentPerson, DbSession, request_token
from server.context import ServerContext
from server.domain import auth
from server.models import Person
from server.schemas import LoginIn, PersonOut

router = APIRouter(prefix="/api/auth", tags=["auth"])


async def throttled_log_in(
    request: Request, context: ServerContext, username: str, password: str
) -> auth.LoggedIn:
    """Refused before any hashing while the user name or the client address is locked out;
    the throttle's database work and the hash run on a worker thread, never on the event loop."""
    host = request.client.host if request.client else None
    return await run_in_threadpool(
        auth.throttled_log_in,
        context.db,
        context.login_throttle,
        username,
        password,
        host,
        context.session_lifetime,
    )


def set_session_cookie(request: Request, response: Response, token: str, context: Context) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(context.session_lifetime.total_seconds()),
        httponly=True,
        samesite="lax",
        # Over HTTPS the browser must never send it back in clear (`trusted_proxies` lets
        # a TLS-terminating proxy say the request was HTTPS).
        secure=context.settings.cookie_secure or request.url.scheme == "https",
        path="/",
    )


def person_out(session: DbSession, person_id: int) -> PersonOut:
    return PersonOut.model_validate(session.get_one(Person, person_id))


@router.post(
    "/login",
    responses={429: {"description": "Too many failed log-ins lately: wait Retry-After seconds."}},
)
async def log_in(
    credentials: LoginIn, request: Request, response: Response, context: Context
) -> PersonOut:
    logged_in = await throttled_log_in(request, context, credentials.username, credentials.password)
    set_session_cookie(request, response, logged_in.token, context)
    return PersonOut.model_validate(logged_in.person)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
def log_out(request: Request, person: CurrentPerson, session: DbSession) -> Response:
    token = request_token(request)
    if token is not None:
        auth.log_out(session, token)
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/me")
def me(person: CurrentPerson, session: DbSession) -> PersonOut:
    return person_out(session, person.person_id)
