"""The authorization matrix of the pages (issue #14): every page × every kind of caller, as
in tests/server/test_authz_matrix.py, through NiceGUI's app over httpx.

Pages read the session cookie only, so each caller's token rides there (a station's or a lab
token is no log-in). Answers: `page` (rendered), `403` (rendered as "not for your role"),
`404` (rendered as "Job not found", another store's job like a missing one), `>path` (a
redirect to /path). On SQLite only: pages read through the same scoped queries as the API,
whose matrix runs on both backends.
"""

import httpx
import pytest
from nicegui import Client
from nicegui.testing.user import User

from server.api.deps import SESSION_COOKIE
from server.domain import aftersales
from server.models import TicketClass
from server.pages import login
from tests.server.authz import ROLES, role_token
from tests.server.conftest import Floor, Lab

MATRIX = """
page                                anon   stat   lab    tech   qc     own    other  mgr    admin
GET  /                              >login >login >login >wip   >wip   >store >store >wip   >wip
GET  /jobs                          >login >login >login page   page   page   page   page   page
GET  /store                         >login >login >login 403    403    page   page   page   page
GET  /store/jobs/{job_id}           >login >login >login 403    403    page   404    page   page
GET  /store/orders/new              >login >login >login 403    403    page   page   page   page
GET  /store/settings                >login >login >login 403    403    page   page   page   page
GET  /store/orders/{job_id}/edit    >login >login >login 403    403    page   404    page   page
GET  /lab/changes                   >login >login >login page   page   403    403    page   page
GET  /lab/audit                     >login >login >login 403    403    403    403    page   page
GET  /wip                           >login >login >login page   page   403    403    page   page
GET  /store/tickets                 >login >login >login 403    403    page   page   page   page
GET  /lab/tickets                   >login >login >login page   page   403    403    page   page
GET  /lab/spc                       >login >login >login page   page   403    403    page   page
GET  /lab/kpis                      >login >login >login page   page   403    403    page   page
GET  /store/kpis                    >login >login >login 403    403    page   page   page   page
GET  /kpis/jobs                     >login >login >login page   page   page   page   page   page
GET  /tickets/{ticket_id}           >login >login >login page   page   page   404    page   page
GET  /store/follow-ups              >login >login >login 403    403    page   page   page   page
GET  /store/jobs/{job_id}/patient-link >login >login >login 403 403    page   404    page   page
GET  /login                         page   page   page   page   page   page   page   page   page
POST /login                         >jobs  >jobs  >jobs  >jobs  >jobs  >jobs  >jobs  >jobs  >jobs
GET  /logout                        page   page   page   page   page   page   page   page   page
POST /logout                        >login >login >login >login >login >login >login >login >login
"""
EXPECTED = {
    (method, path): dict(zip(ROLES, answers, strict=True))
    for method, path, *answers in (line.split() for line in MATRIX.strip().splitlines()[1:])
}
ORIGIN = "http://test"  # the simulated app's own origin, as a browser sends it on a POST


def answer(response: httpx.Response) -> str:
    if response.is_redirect:
        return ">" + response.headers["location"].removeprefix("/")
    assert response.status_code in (200, 403, 404), response.text[:300]
    if response.status_code != 200:
        return str(response.status_code)
    if "This page is not for your role" in response.text:
        return "403"
    not_found = ("Job not found.", "Ticket not found.")
    return "404" if any(text in response.text for text in not_found) else "page"


def _ticket(lab: Lab) -> int:
    """An after-sales ticket of NORTH's on a job shipped for it."""
    job_id, north = lab.make_job("J800002"), lab.person("north")
    Floor(lab).ship("J800002")
    with lab.context.db.session() as session:
        return aftersales.open_ticket(session, north, job_id, TicketClass.other, "s", "m").id


def page_routes() -> set[tuple[str, str]]:
    """Every page NiceGUI serves, and the log-in router's forms."""
    pages = {("GET", path) for path in Client.page_routes.values()}
    forms = {(method, route.path) for route in login.router.routes for method in route.methods}
    return pages | forms


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_every_page_answers_every_caller_as_the_matrix_says(lab: Lab, user: User) -> None:
    assert page_routes() == set(EXPECTED), "a page without a matrix row, or the reverse"
    job_id = lab.make_job("J800001")  # NORTH's, not started: its order is editable
    ticket_id = _ticket(lab)
    tokens = {role: role_token(lab.context, role) for role in ROLES}
    client = user.http_client
    mismatches = []
    for (method, page), expected in EXPECTED.items():
        for role in ROLES:
            token = tokens[role]
            if (method, page) == ("POST", "/logout") and token is not None:
                token = role_token(lab.context, role)  # log-out ends the session it is sent with
            client.cookies.clear()
            if token is not None:
                client.cookies.set(SESSION_COOKIE, token)
            response = await client.request(
                method,
                page.replace("{job_id}", str(job_id)).replace("{ticket_id}", str(ticket_id)),
                headers={"Origin": ORIGIN} if method == "POST" else None,
                data={"username": "tech2", "password": "demo-tech-pass"}
                if page == "/login"
                else None,
            )
            if (got := answer(response)) != expected[role]:
                mismatches.append(
                    f"{method} {page} as {role}: expected {expected[role]}, got {got}"
                )
    assert not mismatches, "\n".join(mismatches)
