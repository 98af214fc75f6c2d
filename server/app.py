"""Composition root of the server: the API, the pages and how they are served."""

import logging

from fastapi import FastAPI

from server.api import (
    auth,
    breakages,
    changes,
    events,
    health,
    imports,
    jobs,
    stations,
    tickets,
    webhooks,
)
from server.api.deps import StampArrival
from server.api.errors import install_error_handlers
from server.background import Sweeper
from server.context import ServerContext
from server.notify.worker import DeliveryWorker
from server.pages import login
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
    api.add_middleware(StampArrival)
    install_error_handlers(api)
    # imports first: POST /api/jobs/import must never be taken for a /api/jobs/{job_id} route.
    routers = (
        imports,
        auth,
        breakages,
        changes,
        events,
        health,
        jobs,
        stations,
        tickets,
        webhooks,
        login,
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
    ui.run_with(
        api,
        title="LensTrack",
        storage_secret=settings.resolved_secret_key,
        show_welcome_message=False,
    )
    return api


def serve(settings: Settings) -> None:
    import uvicorn

    app = create_app(settings)
    log.info("serving on http://%s:%d", settings.host, settings.port)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info")
