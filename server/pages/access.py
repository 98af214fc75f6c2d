"""Who opened a page: the session cookie → a person, and where each role belongs.

Pages only decide what to render; which jobs a person sees is decided in the queries
(`visible_jobs`), as for the API.
"""

import asyncio
from collections.abc import Collection

from fastapi import Request
from fastapi.responses import RedirectResponse
from nicegui import ui

from server.api.deps import SESSION_COOKIE
from server.context import ServerContext
from server.domain import audit
from server.domain.auth import LAB_ROLES, ORDER_ROLES, PersonPrincipal, authenticate
from server.domain.errors import Unauthorized
from server.models import Role

STORE_PORTAL_ROLES = ORDER_ROLES  # the portal is where orders are entered and followed


def home_path(principal: PersonPrincipal) -> str:
    return "/wip" if principal.role in LAB_ROLES else "/store"


def page_person(context: ServerContext, request: Request) -> PersonPrincipal | None:
    """The logged-in person, or None (no cookie, expired or revoked session, a station)."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    with context.db.read_session() as session:
        try:
            principal = authenticate(session, token)
        except Unauthorized:
            return None
    if not isinstance(principal, PersonPrincipal):
        return None
    audit.identify(principal)
    return principal


def admit(
    context: ServerContext, request: Request, roles: Collection[Role]
) -> PersonPrincipal | RedirectResponse | None:
    """The person if their role may open the page; else a redirect to log in (returned) or a
    'not for your role' message already rendered (None)."""
    principal = page_person(context, request)
    if principal is None:
        return RedirectResponse("/login")
    if principal.role not in roles:
        with ui.column().classes("w-full items-center p-12 gap-4"):
            ui.label("403 · This page is not for your role").classes("text-2xl font-bold")
            ui.link("Go to your start page", home_path(principal)).classes("text-lg")
        return None
    return principal


async def log_prescription_view(
    context: ServerContext, principal: PersonPrincipal, job_id: int
) -> None:
    """After a page read a job's prescription: store staff's view is logged (audit)."""
    write = audit.log_prescription_view
    await asyncio.to_thread(write, context.db.session_factory, principal, job_id)


def page_header(principal: PersonPrincipal, title: str) -> None:
    with ui.header().classes("items-center bg-slate-900 px-6 gap-4"):
        ui.link("LensTrack", home_path(principal)).classes(
            "text-2xl font-bold text-white no-underline"
        )
        ui.label(title).classes("text-lg opacity-80")
        ui.space()
        ui.label(f"{principal.name} · {principal.role.value.replace('_', ' ')}")
        # A form post: a link or image elsewhere must not log anyone out (GET only asks).
        with ui.element("form").props('method="post" action="/logout"'):
            ui.button("Log out").props("type=submit flat color=white")
