"""The authorization matrix (issue #14): every API route × every kind of caller, with the
answer each one gets, on both backends.

Every target belongs to store NORTH: `store_own` is NORTH's staff, `store_other` SOUTH's,
to whom another store's job answers 404 like a missing one (README). The station is EDGE-1
and the targets wait at its stage. Every cell sends a request valid for a caller allowed
there, so a refusal is about the caller, never the body; a change that succeeds uses its
target up, and the next cell gets a fresh one. The `me` webhook routes act on the caller's
own store: SOUTH's staff list and add their own, and NORTH's webhook is missing to them. A
route the app serves without a row here fails `test_the_matrix_covers_every_route`.
"""

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import iter_route_contexts
from sqlalchemy import func, select

from server.app import create_api
from server.domain import aftersales, changes, patient_link
from server.domain.jobs import mark_delivered, mark_ready_for_pickup
from server.models import (
    Breakage,
    EventAction,
    FollowUp,
    Job,
    LabAlert,
    Station,
    TicketClass,
    TicketResolution,
    utcnow,
)
from server.notify import manage
from server.notify.schemas import WebhookIn
from server.schemas import JobCreate
from tests.server.authz import ROLES, STATION, role_token
from tests.server.conftest import Floor, Lab
from tests.server.payloads import event_body, job_body

# Expected answers. Columns as in tests/server/authz.py: anonymous, station (EDGE-1), lab token,
# technician, QC inspector, store staff of the target's store, store staff of another store,
# lab manager, admin.
MATRIX = """
route                                             anon stat lab  tech qc   own  other mgr  admin
GET    /openapi.json                               200  200  200  200  200  200  200   200  200
GET    /docs                                       200  200  200  200  200  200  200   200  200
GET    /docs/oauth2-redirect                       200  200  200  200  200  200  200   200  200
GET    /redoc                                      200  200  200  200  200  200  200   200  200
GET    /api/health                                 200  200  200  200  200  200  200   200  200
POST   /api/auth/login                             200  200  200  200  200  200  200   200  200
POST   /api/auth/logout                            401  403  403  204  204  204  204   204  204
GET    /api/auth/me                                401  403  403  200  200  200  200   200  200
GET    /api/breakages                              401  403  403  200  200  403  403   200  200
POST   /api/breakages/{breakage_id}/reverse        401  403  403  403  403  403  403   200  200
PATCH  /api/jobs/{job_id}                          401  403  403  403  403  200  404   200  200
GET    /api/jobs/{job_id}                          401  200  200  200  200  200  404   200  200
POST   /api/jobs/{job_id}/cancel                   401  403  403  403  403  200  404   200  200
GET    /api/jobs/{job_id}/changes                  401  403  403  200  200  200  404   200  200
GET    /api/jobs/{job_id}/change-requests          401  403  403  200  200  200  404   200  200
POST   /api/jobs/{job_id}/remakes                  401  403  403  403  403  201  404   201  201
GET    /api/change-requests                        401  403  403  200  200  403  403   200  200
GET    /api/change-requests/{request_id}           401  403  403  200  200  200  404   200  200
POST   /api/change-requests/{request_id}/accept    401  403  403  403  403  403  403   200  200
POST   /api/change-requests/{request_id}/decline   401  403  403  403  403  403  403   200  200
POST   /api/events                                 401  201  403  403  403  403  403   403  403
POST   /api/events/batch                           401  200  403  403  403  403  403   403  403
POST   /api/jobs                                   401  403  403  403  403  201  403   201  201
GET    /api/jobs                                   401  200  200  200  200  200  200   200  200
POST   /api/jobs/check                             401  403  403  403  403  200  403   200  200
POST   /api/jobs/import                            401  403  200  403  403  403  403   200  200
GET    /api/jobs/lookup/{code}                     401  200  200  200  200  200  404   200  200
GET    /api/jobs/{job_id}/timeline                 401  200  200  200  200  200  404   200  200
POST   /api/jobs/{job_id}/ready-for-pickup         401  403  403  403  403  200  404   200  200
POST   /api/jobs/{job_id}/delivered                401  403  403  403  403  200  404   200  200
GET    /api/jobs/{job_id}/inspections              401  200  200  200  200  200  404   200  200
GET    /api/stations/me                            401  200  403  403  403  403  403   403  403
GET    /api/stations/me/operators                  401  200  403  403  403  403  403   403  403
GET    /api/stations/me/reasons                    401  200  403  403  403  403  403   403  403
GET    /api/stations/me/labels                     401  200  403  403  403  403  403   403  403
GET    /api/jobs/{job_id}/ticket.pdf               401  200  200  200  200  200  404   200  200
GET    /api/tickets.pdf                            401  403  200  200  200  200  404   200  200
POST   /api/tickets/print-new                      401  403  403  200  200  403  403   200  200
GET    /api/stores/me/webhooks                     401  403  403  403  403  200  200   404  404
POST   /api/stores/me/webhooks                     401  403  403  403  403  201  201   404  404
DELETE /api/stores/me/webhooks/{webhook_id}        401  403  403  403  403  204  404   404  404
GET    /api/stores/me/deliveries                   401  403  403  403  403  200  200   404  404
GET    /api/stores/{code}/webhooks                 401  403  403  403  403  200  404   200  200
POST   /api/stores/{code}/webhooks                 401  403  403  403  403  201  404   201  201
DELETE /api/stores/{code}/webhooks/{webhook_id}    401  403  403  403  403  204  404   204  204
GET    /api/stores/{code}/deliveries               401  403  403  403  403  200  404   200  200
POST   /api/jobs/{job_id}/aftersales-tickets       401  403  403  403  403  201  404   201  201
GET    /api/aftersales-tickets                     401  403  403  200  200  200  200   200  200
GET    /api/aftersales-tickets/{ticket_id}         401  403  403  200  200  200  404   200  200
POST   /api/aftersales-tickets/{ticket_id}/messages 401 403  403  200  200  200  404   200  200
POST   /api/aftersales-tickets/{ticket_id}/owner   401  403  403  200  200  403  403   200  200
POST   /api/aftersales-tickets/{ticket_id}/remake  401  403  403  403  403  201  404   201  201
POST   /api/aftersales-tickets/{ticket_id}/resolve 401  403  403  200  200  403  403   200  200
POST   /api/aftersales-tickets/{ticket_id}/reopen  401  403  403  403  403  200  404   200  200
GET    /api/aftersales/first-time-fix              401  403  403  200  200  200  200   200  200
GET    /api/follow-ups                             401  403  403  200  200  200  200   200  200
POST   /api/follow-ups/{follow_up_id}/outcome      401  403  403  403  403  200  404   200  200
POST   /api/jobs/{job_id}/patient-link             401  403  403  403  403  201  404   201  201
GET    /p/{token}                                  200  200  200  200  200  200  200   200  200
GET    /api/stores/me/notifications                401  403  403  403  403  200  200   404  404
PUT    /api/stores/me/notifications                401  403  403  403  403  200  403   404  404
GET    /api/stores/{code}/notifications            401  403  403  403  403  200  404   200  200
PUT    /api/stores/{code}/notifications            401  403  403  403  403  200  404   200  200
GET    /api/jobs/{job_id}/shipment                 401  200  200  200  200  200  404   200  200
GET    /api/kpis                                   401  403  200  200  200  200  404   200  200
GET    /api/kpis/jobs                              401  403  200  200  200  200  404   200  200
GET    /api/kpis/export/{table}.{file_format}      401  403  200  200  200  200  404   200  200
GET    /api/kpis/jobs/export.{file_format}         401  403  200  200  200  200  404   200  200
GET    /api/kpis/spc/charts                        401  403  403  200  200  403  403   200  200
GET    /api/kpis/spc/chart                         401  403  403  200  200  403  403   200  200
GET    /api/kpis/spc/alerts                        401  403  403  200  200  403  403   200  200
POST   /api/kpis/spc/alerts/{alert_id}/acknowledge 401  403  403  403  403  403  403   200  200
"""
# The log-in and log-out forms are pages: tests/server/pages/test_authz_pages.py.
PAGES = {("GET", "/login"), ("POST", "/login"), ("GET", "/logout"), ("POST", "/logout")}


def parse_matrix(text: str) -> dict[tuple[str, str], dict[str, int]]:
    rows = [line.split() for line in text.strip().splitlines()[1:]]
    return {(method, path): dict(zip(ROLES, map(int, codes), strict=True))
            for method, path, *codes in rows}  # fmt: skip


EXPECTED = parse_matrix(MATRIX)
DEMO_DCS = Path(__file__).resolve().parents[2] / "config" / "demo-dcs"
# A public IP literal: webhook addresses are checked, and tests resolve no names.
WEBHOOK_URL = "https://93.184.216.34/lenstrack"
NOTIFICATIONS = {
    "notify_email": "orders@northside.example",
    "milestones": ["shipped", "late_or_at_risk"],
    "email_mode": "digest",
    "digest_hour": 7,
}


@dataclass
class Call:
    path: str
    json: Any = None
    params: dict[str, str] = field(default_factory=dict)


@dataclass
class World:
    """Targets of store NORTH, made on demand; numbered so each cell's are its own."""

    lab: Lab
    floor: Floor
    numbers: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def number(self) -> str:
        # Not a J-number: the lab assigns those to the orders cells create, counting on.
        return f"W{700000 + next(self.numbers)}"

    def job(self) -> tuple[int, str]:
        """A fresh NORTH job, queued at EDGE-1's stage."""
        number = self.number()
        return self.lab.make_job(number), number

    def started(self) -> tuple[int, str]:
        job_id, number = self.job()
        self.floor.send(STATION, number, EventAction.start)
        return job_id, number

    def shipped(self) -> int:
        job_id, number = self.job()
        self.floor.ship(number)
        return job_id

    def ready(self) -> int:
        job_id = self.shipped()
        with self.lab.context.db.session() as session:
            mark_ready_for_pickup(session, self.lab.manager(), job_id)
        return job_id

    def breakage(self) -> int:
        _job_id, number = self.started()
        self.floor.send(STATION, number, EventAction.breakage, reason_code="B-CHIP")
        with self.lab.context.db.session() as session:
            breakage_id = session.scalar(select(func.max(Breakage.id)))
            assert breakage_id is not None
            return breakage_id

    def change_request(self) -> int:
        """A pending request: NORTH's staff edited the job after production started."""
        job_id, _number = self.started()
        # Store staff send the order without its numbers (the lab's; the job keeps them).
        order = JobCreate.model_validate(job_body(None, patient_ref="P-CHANGED"))
        with self.lab.context.db.session() as session:
            result = changes.edit_order(session, self.lab.person("north"), job_id, order)
            assert result.request is not None
            session.flush()
            return result.request.id

    def webhook(self) -> int:
        with self.lab.context.db.session() as session:
            store = manage.store_for(session, self.lab.person("north"), None)
            hook, _secret = manage.add_webhook(session, store, WebhookIn(url=WEBHOOK_URL))
            return hook.id

    def ticket(self, resolved: bool = False) -> int:
        """An after-sales ticket NORTH's staff opened on a shipped job (resolved by the lab)."""
        job_id, north, manager = self.shipped(), self.lab.person("north"), self.lab.manager()
        with self.lab.context.db.session() as session:
            ticket = aftersales.open_ticket(session, north, job_id, TicketClass.other, "s", "m")
            if resolved:
                aftersales.resolve_ticket(session, manager, ticket.id, TicketResolution.advice, "")
            return ticket.id

    def follow_up(self) -> int:
        """The first follow-up of a NORTH job just delivered."""
        job_id, manager = self.ready(), self.lab.manager()
        with self.lab.context.db.session() as session:
            mark_delivered(session, manager, job_id)
            follow_up_id = session.scalar(
                select(func.min(FollowUp.id)).where(FollowUp.job_id == job_id)
            )
            assert follow_up_id is not None
            return follow_up_id

    def patient_token(self) -> str:
        job_id, north = self.job()[0], self.lab.person("north")
        with self.lab.context.db.session() as session:
            return patient_link.create_patient_link(session, north, job_id)

    def spc_alert(self) -> int:
        """An open SPC alert on a chart of its own (one open alert per chart and rule)."""
        job_id, number = self.job()
        with self.lab.context.db.session() as session:
            station_id = session.scalar(select(Station.id).where(Station.name == STATION))
            assert station_id is not None
            now = utcnow()
            alert = LabAlert(
                lab_id=session.get_one(Job, job_id).lab_id,
                chart=f"matrix {number}",
                measure="sph",
                station_id=station_id,
                rule=1,
                side="above",
                job_id=job_id,
                point_at=now,
                message="Sphere at EDGE-1: 1 point beyond 3σ",
                raised_at=now,
            )
            session.add(alert)
            session.flush()
            return alert.id


def dcs_import() -> Call:
    content = (DEMO_DCS / "single-vision.dcs").read_text()
    return Call(
        "/api/jobs/import",
        json={"files": [{"name": "single-vision.dcs", "content": content}]},
        params={"dry_run": "true"},
    )


def edit(world: World) -> Call:
    """The whole order, edited before production starts."""
    job_id, _number = world.job()
    return Call(f"/api/jobs/{job_id}", json=job_body(None, patient_ref="P-EDIT"))


def print_new(world: World) -> Call:
    world.job()  # a ticket never printed: else the answer is 409, nothing new
    return Call("/api/tickets/print-new")


# How to call each route: the request a caller allowed there would send.
CALLS: dict[tuple[str, str], Callable[[World], Call]] = {
    ("GET", "/openapi.json"): lambda w: Call("/openapi.json"),
    ("GET", "/docs"): lambda w: Call("/docs"),
    ("GET", "/docs/oauth2-redirect"): lambda w: Call("/docs/oauth2-redirect"),
    ("GET", "/redoc"): lambda w: Call("/redoc"),
    ("GET", "/api/health"): lambda w: Call("/api/health"),
    ("POST", "/api/auth/login"): lambda w: Call(
        "/api/auth/login", json={"username": "tech2", "password": "demo-tech-pass"}
    ),
    ("POST", "/api/auth/logout"): lambda w: Call("/api/auth/logout"),
    ("GET", "/api/auth/me"): lambda w: Call("/api/auth/me"),
    ("GET", "/api/breakages"): lambda w: Call("/api/breakages"),
    ("POST", "/api/breakages/{breakage_id}/reverse"): lambda w: Call(
        f"/api/breakages/{w.breakage()}/reverse", json={"reason": "booked by mistake"}
    ),
    ("PATCH", "/api/jobs/{job_id}"): edit,
    ("GET", "/api/jobs/{job_id}"): lambda w: Call(f"/api/jobs/{w.job()[0]}"),
    ("POST", "/api/jobs/{job_id}/cancel"): lambda w: Call(
        f"/api/jobs/{w.job()[0]}/cancel", json={"reason": "patient changed mind"}
    ),
    ("GET", "/api/jobs/{job_id}/changes"): lambda w: Call(f"/api/jobs/{w.job()[0]}/changes"),
    ("GET", "/api/jobs/{job_id}/change-requests"): lambda w: Call(
        f"/api/jobs/{w.job()[0]}/change-requests"
    ),
    ("POST", "/api/jobs/{job_id}/remakes"): lambda w: Call(
        f"/api/jobs/{w.shipped()}/remakes", json={"remake_class": "lab_redo", "reason": "scratch"}
    ),
    ("GET", "/api/change-requests"): lambda w: Call("/api/change-requests"),
    ("GET", "/api/change-requests/{request_id}"): lambda w: Call(
        f"/api/change-requests/{w.change_request()}"
    ),
    ("POST", "/api/change-requests/{request_id}/accept"): lambda w: Call(
        f"/api/change-requests/{w.change_request()}/accept", json={}
    ),
    ("POST", "/api/change-requests/{request_id}/decline"): lambda w: Call(
        f"/api/change-requests/{w.change_request()}/decline", json={"reason": "too late"}
    ),
    ("POST", "/api/events"): lambda w: Call("/api/events", json=event_body(w.job()[1], 1)),
    ("POST", "/api/events/batch"): lambda w: Call(
        "/api/events/batch", json={"events": [event_body(w.job()[1], 1)]}
    ),
    ("POST", "/api/jobs"): lambda w: Call("/api/jobs", json=job_body(None)),
    ("GET", "/api/jobs"): lambda w: Call("/api/jobs"),
    ("POST", "/api/jobs/check"): lambda w: Call("/api/jobs/check", json=job_body(None)),
    ("POST", "/api/jobs/import"): lambda w: dcs_import(),
    ("GET", "/api/jobs/lookup/{code}"): lambda w: Call(f"/api/jobs/lookup/{w.job()[1]}"),
    ("GET", "/api/jobs/{job_id}/timeline"): lambda w: Call(f"/api/jobs/{w.job()[0]}/timeline"),
    ("POST", "/api/jobs/{job_id}/ready-for-pickup"): lambda w: Call(
        f"/api/jobs/{w.shipped()}/ready-for-pickup"
    ),
    ("POST", "/api/jobs/{job_id}/delivered"): lambda w: Call(f"/api/jobs/{w.ready()}/delivered"),
    ("GET", "/api/jobs/{job_id}/inspections"): lambda w: Call(
        f"/api/jobs/{w.job()[0]}/inspections"
    ),
    ("GET", "/api/stations/me"): lambda w: Call("/api/stations/me"),
    ("GET", "/api/stations/me/operators"): lambda w: Call("/api/stations/me/operators"),
    ("GET", "/api/stations/me/reasons"): lambda w: Call("/api/stations/me/reasons"),
    ("GET", "/api/stations/me/labels"): lambda w: Call("/api/stations/me/labels"),
    ("GET", "/api/jobs/{job_id}/ticket.pdf"): lambda w: Call(f"/api/jobs/{w.job()[0]}/ticket.pdf"),
    ("GET", "/api/tickets.pdf"): lambda w: Call(
        "/api/tickets.pdf", params={"jobs": f"{w.job()[0]},{w.job()[0]}"}
    ),
    ("POST", "/api/tickets/print-new"): print_new,
    ("GET", "/api/stores/me/webhooks"): lambda w: Call("/api/stores/me/webhooks"),
    ("POST", "/api/stores/me/webhooks"): lambda w: Call(
        "/api/stores/me/webhooks", json={"url": WEBHOOK_URL}
    ),
    ("DELETE", "/api/stores/me/webhooks/{webhook_id}"): lambda w: Call(
        f"/api/stores/me/webhooks/{w.webhook()}"
    ),
    ("GET", "/api/stores/me/deliveries"): lambda w: Call("/api/stores/me/deliveries"),
    ("GET", "/api/stores/{code}/webhooks"): lambda w: Call("/api/stores/NORTH/webhooks"),
    ("POST", "/api/stores/{code}/webhooks"): lambda w: Call(
        "/api/stores/NORTH/webhooks", json={"url": WEBHOOK_URL}
    ),
    ("DELETE", "/api/stores/{code}/webhooks/{webhook_id}"): lambda w: Call(
        f"/api/stores/NORTH/webhooks/{w.webhook()}"
    ),
    ("GET", "/api/stores/{code}/deliveries"): lambda w: Call("/api/stores/NORTH/deliveries"),
    ("POST", "/api/jobs/{job_id}/aftersales-tickets"): lambda w: Call(
        f"/api/jobs/{w.shipped()}/aftersales-tickets",
        json={"ticket_class": "frame_fit", "subject": "Loose", "message": "Loose hinge"},
    ),
    ("GET", "/api/aftersales-tickets"): lambda w: Call("/api/aftersales-tickets"),
    ("GET", "/api/aftersales-tickets/{ticket_id}"): lambda w: Call(
        f"/api/aftersales-tickets/{w.ticket()}"
    ),
    ("POST", "/api/aftersales-tickets/{ticket_id}/messages"): lambda w: Call(
        f"/api/aftersales-tickets/{w.ticket()}/messages", json={"body": "Any news?"}
    ),
    ("POST", "/api/aftersales-tickets/{ticket_id}/owner"): lambda w: Call(
        f"/api/aftersales-tickets/{w.ticket()}/owner",
        json={"owner_id": w.lab.person("tech1").person_id},
    ),
    ("POST", "/api/aftersales-tickets/{ticket_id}/remake"): lambda w: Call(
        f"/api/aftersales-tickets/{w.ticket()}/remake",
        json={"remake_class": "warranty", "reason": "coating flaw"},
    ),
    ("POST", "/api/aftersales-tickets/{ticket_id}/resolve"): lambda w: Call(
        f"/api/aftersales-tickets/{w.ticket()}/resolve", json={"resolution": "advice"}
    ),
    ("POST", "/api/aftersales-tickets/{ticket_id}/reopen"): lambda w: Call(
        f"/api/aftersales-tickets/{w.ticket(resolved=True)}/reopen", json={"reason": "still loose"}
    ),
    ("GET", "/api/aftersales/first-time-fix"): lambda w: Call("/api/aftersales/first-time-fix"),
    ("GET", "/api/follow-ups"): lambda w: Call("/api/follow-ups"),
    ("POST", "/api/follow-ups/{follow_up_id}/outcome"): lambda w: Call(
        f"/api/follow-ups/{w.follow_up()}/outcome", json={"outcome": "satisfied", "score": 9}
    ),
    ("POST", "/api/jobs/{job_id}/patient-link"): lambda w: Call(
        f"/api/jobs/{w.job()[0]}/patient-link"
    ),
    ("GET", "/p/{token}"): lambda w: Call(f"/p/{w.patient_token()}"),
    ("GET", "/api/stores/me/notifications"): lambda w: Call("/api/stores/me/notifications"),
    ("PUT", "/api/stores/me/notifications"): lambda w: Call(
        "/api/stores/me/notifications", json=NOTIFICATIONS
    ),
    ("GET", "/api/stores/{code}/notifications"): lambda w: Call("/api/stores/NORTH/notifications"),
    ("PUT", "/api/stores/{code}/notifications"): lambda w: Call(
        "/api/stores/NORTH/notifications", json=NOTIFICATIONS
    ),
    ("GET", "/api/jobs/{job_id}/shipment"): lambda w: Call(f"/api/jobs/{w.job()[0]}/shipment"),
    # NORTH's figures: SOUTH's staff asking for them learn nothing, as for a missing store.
    ("GET", "/api/kpis"): lambda w: Call("/api/kpis", params={"store": "NORTH"}),
    ("GET", "/api/kpis/jobs"): lambda w: Call(
        "/api/kpis/jobs", params={"store": "NORTH", "kind": "finished"}
    ),
    ("GET", "/api/kpis/export/{table}.{file_format}"): lambda w: Call(
        "/api/kpis/export/stages.xlsx", params={"store": "NORTH"}
    ),
    ("GET", "/api/kpis/jobs/export.{file_format}"): lambda w: Call(
        "/api/kpis/jobs/export.csv", params={"store": "NORTH", "kind": "wip"}
    ),
    ("GET", "/api/kpis/spc/charts"): lambda w: Call("/api/kpis/spc/charts"),
    ("GET", "/api/kpis/spc/chart"): lambda w: Call(
        "/api/kpis/spc/chart", params={"measure": "sph", "station": STATION}
    ),
    ("GET", "/api/kpis/spc/alerts"): lambda w: Call("/api/kpis/spc/alerts"),
    ("POST", "/api/kpis/spc/alerts/{alert_id}/acknowledge"): lambda w: Call(
        f"/api/kpis/spc/alerts/{w.spc_alert()}/acknowledge"
    ),
}


# Changes that leave their target as it was: a shipped job is remade again and again.
REUSABLE = {
    ("POST", "/api/auth/login"),
    ("POST", "/api/jobs/check"),
    ("POST", "/api/jobs/import"),  # a dry run
    ("POST", "/api/jobs/{job_id}/remakes"),
    ("POST", "/api/jobs/{job_id}/aftersales-tickets"),  # a job may have several tickets
    ("POST", "/api/aftersales-tickets/{ticket_id}/messages"),
    ("POST", "/api/aftersales-tickets/{ticket_id}/owner"),
    ("POST", "/api/jobs/{job_id}/patient-link"),  # a new link replaces the last
    ("POST", "/api/stores/me/webhooks"),
    ("POST", "/api/stores/{code}/webhooks"),
    ("PUT", "/api/stores/me/notifications"),
    ("PUT", "/api/stores/{code}/notifications"),
}


def app_routes(api: Any) -> set[tuple[str, str]]:
    return {
        (method, route.path)
        for route in iter_route_contexts(api.routes)
        for method in (route.methods or ())
        if method != "HEAD"
    }


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # routes: no backend's
def test_the_matrix_covers_every_route(lab: Lab) -> None:
    served = app_routes(create_api(lab.context))
    assert set(CALLS) == set(EXPECTED), "a route with a call but no row, or the reverse"
    assert served - PAGES == set(EXPECTED), (
        f"routes without a matrix row: {sorted(served - PAGES - set(EXPECTED))}; "
        f"rows for no route: {sorted(set(EXPECTED) - served)}"
    )


async def test_every_route_answers_every_caller_as_the_matrix_says(
    lab: Lab, floor: Floor, client: httpx.AsyncClient
) -> None:
    world = World(lab, floor)
    tokens = {role: role_token(lab.context, role) for role in ROLES}
    actual: dict[tuple[str, str], dict[str, int]] = {}
    for method, route in EXPECTED:
        actual[(method, route)] = {}
        call = CALLS[(method, route)](world)
        for role in ROLES:
            token = tokens[role]
            if route == "/api/auth/logout" and token is not None and token.startswith("lss_"):
                token = role_token(lab.context, role)  # log-out ends the session it names
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            client.cookies.clear()  # the log-in row's cookie would speak for the next caller
            response = await client.request(
                method, call.path, json=call.json, params=call.params, headers=headers
            )
            actual[(method, route)][role] = response.status_code
            if method != "GET" and response.is_success and (method, route) not in REUSABLE:
                call = CALLS[(method, route)](world)
    mismatches = [
        f"{method} {route} as {role}: expected {EXPECTED[(method, route)][role]}, got {code}"
        for (method, route), row in actual.items()
        for role, code in row.items()
        if code != EXPECTED[(method, route)][role]
    ]
    assert not mismatches, "\n".join(mismatches)
