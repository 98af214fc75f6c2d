"""People log in with user name and password; the session rides in an HttpOnly cookie."""

from fastapi import APIRouter, Request, Response, status

from server.api.deps import SESSION_COOKIE, Context, CurrentPerson, DbSession, request_token
from server.domain import auth
from server.models import Person
from server.schemas import LoginIn, PersonOut

router = APIRouter(prefix="/api/auth", tags=["auth"])


def set_session_cookie(response: Response, token: str, context: Context) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(context.session_lifetime.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=context.settings.cookie_secure,
        path="/",
    )


def person_out(session: DbSession, person_id: int) -> PersonOut:
    return PersonOut.model_validate(session.get_one(Person, person_id))


@router.post("/login")
def log_in(
    credentials: LoginIn, response: Response, session: DbSession, context: Context
) -> PersonOut:
    token = auth.log_in(
        session, credentials.username, credentials.password, context.session_lifetime
    )
    set_session_cookie(response, token, context)
    principal = auth.authenticate(session, token)
    assert isinstance(principal, auth.PersonPrincipal)
    return person_out(session, principal.person_id)


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
