"""The log-in form is plain HTML posted to the server: no script needed, password managers work,
and the session cookie is set HttpOnly by the response itself. Log-out is a POST too (a
link or an image on another site must not log anyone out)."""

import html
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from server.api.auth import set_session_cookie, throttled_log_in
from server.api.deps import SESSION_COOKIE, Context, DbSession, request_token
from server.api.errors import domain_error_headers
from server.domain import auth
from server.domain.errors import TooManyAttempts, Unauthorized

router = APIRouter(include_in_schema=False)

_LAYOUT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>LensTrack · {title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body {{ font-family: system-ui, sans-serif; background: #0f172a; color: #0f172a;
        display: grid; place-items: center; min-height: 100vh; margin: 0; }}
 form {{ background: #fff; padding: 2rem 2.5rem; border-radius: 12px; width: 22rem;
        box-shadow: 0 10px 30px rgba(0,0,0,.4); }}
 h1 {{ margin: 0 0 1.5rem; font-size: 1.6rem; }} h1 span {{ color: #2563eb; }}
 label {{ display: block; font-weight: 600; margin: 1rem 0 .3rem; }}
 input {{ width: 100%; box-sizing: border-box; font-size: 1.1rem; padding: .7rem;
         border: 2px solid #cbd5e1; border-radius: 8px; }}
 button {{ margin-top: 1.5rem; width: 100%; min-height: 48px; font-size: 1.1rem;
          background: #2563eb; color: #fff; border: 0; border-radius: 8px; cursor: pointer; }}
 .error {{ background: #fee2e2; color: #991b1b; padding: .6rem; border-radius: 6px; }}
</style></head>
<body><form method="post" action="{action}">
<h1>Lens<span>Track</span></h1>{body}
</form></body></html>"""

_LOGIN_FORM = """{error}
<label for="username">User name</label>
<input id="username" name="username" autocomplete="username" required autofocus value="{username}">
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Log in</button>"""

_LOGOUT_FORM = '<p>Log out of LensTrack on this browser?</p><button type="submit">Log out</button>'


def _page(title: str, action: str, body: str) -> str:
    return _LAYOUT.format(title=title, action=action, body=body)


def _render(
    error: Unauthorized | TooManyAttempts | None = None, username: str = ""
) -> HTMLResponse:
    error_html = f'<p class="error" role="alert">{html.escape(error.message)}</p>' if error else ""
    body = _LOGIN_FORM.format(error=error_html, username=html.escape(username))
    return HTMLResponse(
        _page("Log in", "/login", body),
        error.status_code if error else 200,
        headers=domain_error_headers(error) if error else None,
    )


@router.get("/login")
def login_form() -> HTMLResponse:
    return _render()


@router.post("/login", response_model=None)
async def login_submit(
    request: Request,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=256)],
    context: Context,
) -> HTMLResponse | RedirectResponse:
    try:
        logged_in = await throttled_log_in(request, context, username.strip(), password)
    except (Unauthorized, TooManyAttempts) as error:
        return _render(error, username)
    response = RedirectResponse("/jobs", status_code=303)
    set_session_cookie(request, response, logged_in.token, context)
    return response


@router.get("/logout")
def logout_form() -> HTMLResponse:
    """Changes nothing: a button that posts the log-out."""
    return HTMLResponse(_page("Log out", "/logout", _LOGOUT_FORM))


@router.post("/logout")
def logout(request: Request, session: DbSession) -> RedirectResponse:
    token = request_token(request)
    if token is not None:
        auth.log_out(session, token)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
