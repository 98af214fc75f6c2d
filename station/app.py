"""Composition root of the station: the station core (settings → outbox → uplink → flow →
inputs) with its touch-screen page on top."""

import httpx
from nicegui import Event as UiEvent
from nicegui import app, ui

from station.core import DeviceStatus, StationCore
from station.flow import Screen
from station.lensmeter import LensmeterLink
from station.qc import QcDesk
from station.settings import StationSettings
from station.ui import build_page
from station.uplink import UplinkStatus
from station.wire import StationMe


class StationApp(StationCore):
    def __init__(
        self, settings: StationSettings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        super().__init__(settings, transport=transport)
        qc = settings.qc_settings
        # Registered on the flow before the page's bridge, so a redraw sees the new inspection.
        self.qc = QcDesk(qc, self.flow) if qc else None
        self.lensmeter: LensmeterLink | None = None
        if self.qc is not None:
            self.flow.complete_by_scan = False  # the inspector completes by PASS
            if settings.lensmeter is not None:
                self.lensmeter = LensmeterLink(settings.lensmeter, self.qc)
                self._watch(self.lensmeter.name, self.lensmeter.device)
        # Bridges into NiceGUI's event, which redraws each client in its own context and
        # forgets clients that went away.
        self.screen_changed = UiEvent[Screen]()
        self.status_changed = UiEvent[UplinkStatus]()
        self.device_changed = UiEvent[DeviceStatus]()
        self.preview_changed = UiEvent[bytes]()
        self.qc_changed = UiEvent[[]]()
        self.flow.changed.register(self.screen_changed.emit)
        self.uplink.changed.register(self.status_changed.emit)
        self.devices_changed.register(self.device_changed.emit)
        for camera in self.cameras:
            camera.preview.register(self.preview_changed.emit)
        if self.qc is not None:
            self.qc.changed.register(self.qc_changed.emit)

    async def start(self) -> None:
        await super().start()
        if self.lensmeter is not None:
            self.lensmeter.start()

    async def stop(self) -> None:
        if self.lensmeter is not None:
            await self.lensmeter.stop()
        await super().stop()

    @property
    def stage_name(self) -> str:
        cached = self.outbox.get_meta("station")
        return StationMe.model_validate_json(cached).stage.name if cached else self.settings.stage

    def stage_names(self) -> dict[str, str]:
        """Stage names seen on cached cards (for reason return stages)."""
        screen = self.flow.screen
        stages = screen.card.card.route_stages if screen.card else []
        return {stage.code: stage.name for stage in stages}

    def page(self) -> None:
        build_page(self)


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
