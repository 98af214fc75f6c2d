"""Composition root of the server: the API, the pages and how they are served."""

import logging

from fastapi import FastAPI
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from server.api import (
    aftersales,
    auth,
    breakages,
    changes,
    events,
    followups,
    health,
    imports,
    jobs,
    kpis,
    patient_links,
    spc,
    stations,
    stores,
    tickets,
    webhooks,
)
from server.api.cross_site import SameOriginWrites, SecurityHeaders
from server.api.deps import BodyLimit, RecordOrigin, StampArrival, StationTokens
from server.api.errors import document_errors, install_error_handlers
from server.background import Sweeper
from server.context import ServerContext
from server.notify.worker import DeliveryWorker
from server.pages import login, patient
from server.settings import Settings

log = logging.getLogger(__name__)


def create_api(context: ServerContext) -> FastAPI:
    """The HTTP API alone (what API tests drive through httpx)."""
    api = FastAPI(
        title="LensTrack",
        summary="Production tracking and quality control for optical prescription labs",
        version="0.1.0",
    )
    api.state.context = context
    api.state.station_tokens = StationTokens()
    # Inside StampArrival: a deadline counts the time a chunked body took to arrive.
    api.add_middleware(BodyLimit, max_bytes=context.settings.max_request_bytes)
    api.add_middleware(StampArrival)
    api.add_middleware(RecordOrigin)
    api.add_middleware(SameOriginWrites, allowed_origins=context.settings.allowed_origins)
    api.add_middleware(SecurityHeaders)
    if context.settings.trusted_proxies:  # outermost: all see the client's scheme, address
        api.add_middleware(ProxyHeadersMiddleware, trusted_hosts=context.settings.trusted_proxies)
    install_error_handlers(api)
    document_errors(api)
    # imports first: POST /api/jobs/import must never be taken for a /api/jobs/{job_id} route.
    routers = (
        imports,
        aftersales,
        auth,
        breakages,
        changes,
        events,
        followups,
        health,
        jobs,
        kpis,
        patient_links,
        spc,
        stations,
        stores,
        tickets,
        webhooks,
        login,
        patient,
    )
    for module in routers:
        api.include_router(module.router)
    return api


def create_app(settings: Settings) -> FastAPI:
    """API plus NiceGUI pages. NiceGUI keeps global state: call this once per process."""
    from nicegui import app, ui

    from server.pages.routes import register_pages

    context = ServerContext(settings)
    api = create_api(context)
    register_pages(context)
    sweeper = Sweeper(context)
    for service in (context.bus, sweeper, DeliveryWorker(context)):
        app.on_startup(service.start)
        app.on_shutdown(service.stop)
    app.on_shutdown(context.writer.stop)  # answers the events queued before the server ends
    ui.run_with(
        api,
        title="LensTrack",
        storage_secret=settings.resolved_secret_key,
        show_welcome_message=False,
    )
    return api


class QuietStoredEvents(logging.Filter):
    """Drops the access-log line of a station event post answered 2xx: what it did is on
    record (stage_event, station_sign_in, rejected_event), and formatting and writing a line
    per event took a good share of a busy floor's server time. 4xx and 5xx are still logged."""

    PATHS = frozenset({"/api/events", "/api/events/batch"})

    def filter(self, record: logging.LogRecord) -> bool:
        # uvicorn's arguments: client, method, path, HTTP version, status
        args = record.args
        if isinstance(args, tuple) and len(args) == 5:
            _, method, path, _, status = args
            return not (method == "POST" and path in self.PATHS and status < 400)
        return True


def serve(settings: Settings) -> None:
    import uvicorn

    app = create_app(settings)
    logging.getLogger("uvicorn.access").addFilter(QuietStoredEvents())
    log.info("serving on http://%s:%d", settings.host, settings.port)
    # proxy_headers off: only `trusted_proxies` (see create_api) may set scheme and client.
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info", proxy_headers=False)
