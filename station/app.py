"""Composition root of the station: the station core (settings → outbox → uplink → flow →
inputs, QC) with its touch-screen page on top, fed by a view and NiceGUI event bridges."""

import httpx
from nicegui import app, ui

from station.core import StationCore
from station.settings import StationSettings
from station.ui import build_page
from station.view import StationView


class StationApp(StationCore):
    def __init__(
        self, settings: StationSettings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        super().__init__(settings, transport=transport)
        self.view = StationView(self)

    def page(self) -> None:
        build_page(self.view)


def run(settings: StationSettings) -> None:
    """Serve the station page; NiceGUI is global, so this runs once per process."""
    station = StationApp(settings)
    app.on_startup(station.start)
    app.on_shutdown(station.stop)
    ui.run(
        station.page,
        host=settings.host,
        port=settings.port,
        title=f"{settings.name} · LensTrack",
        dark=True,
        reload=False,
        show=False,
        show_welcome_message=False,
        storage_secret=None,
    )
