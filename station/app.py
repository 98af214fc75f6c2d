"""Composition root of the station: settings → outbox → uplink → flow → inputs → page."""

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any

import httpx
from nicegui import Event as UiEvent
from nicegui import app, ui

from drivers.scanner import BarcodeScanner, ScannedCode, SerialBarcodeScanner
from station.flow import Screen, StationFlow
from station.outbox import Outbox
from station.settings import SerialInput, StationSettings
from station.ui import build_page
from station.uplink import Uplink, UplinkStatus
from station.wire import StationMe

log = logging.getLogger(__name__)
IDLE_CHECK_SECONDS = 5.0


class StationApp:
    def __init__(
        self, settings: StationSettings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.settings = settings
        self.outbox = Outbox(settings.data_dir / "outbox.sqlite3")
        self.uplink = Uplink(settings, self.outbox, transport=transport)
        self.flow = StationFlow(
            self.outbox,
            self.uplink,
            stage=settings.stage,
            idle_sign_out_seconds=settings.idle_sign_out_minutes * 60,
            repeat_scan_seconds=settings.repeat_scan_seconds,
        )
        self.scanners: list[BarcodeScanner] = [
            SerialBarcodeScanner(scanner)
            for scanner in settings.scanners
            if isinstance(scanner, SerialInput)
        ]
        # Bridges into NiceGUI's event, which redraws each client in its own context and
        # forgets clients that went away.
        self.screen_changed = UiEvent[Screen]()
        self.status_changed = UiEvent[UplinkStatus]()
        self.flow.changed.register(self.screen_changed.emit)
        self.uplink.changed.register(self.status_changed.emit)
        self.uplink.rejected.register(self.flow.rejected)
        for scanner in self.scanners:
            scanner.code_read.register(self._serial_scan)
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def stage_name(self) -> str:
        cached = self.outbox.get_meta("station")
        return StationMe.model_validate_json(cached).stage.name if cached else self.settings.stage

    def stage_names(self) -> dict[str, str]:
        """Stage names seen on cached cards (for reason return stages)."""
        screen = self.flow.screen
        stages = screen.card.card.route_stages if screen.card else []
        return {stage.code: stage.name for stage in stages}

    async def start(self) -> None:
        self._tasks = [self._spawn(self.uplink.run()), self._spawn(self._idle_watch())]
        for scanner in self.scanners:
            scanner.start()

    async def stop(self) -> None:
        for scanner in self.scanners:
            await scanner.stop()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.uplink.close()
        self.outbox.close()

    def page(self) -> None:
        build_page(self)

    async def _serial_scan(self, code: ScannedCode) -> None:
        await self.flow.scan(code.text)

    async def _idle_watch(self) -> None:
        while True:
            await asyncio.sleep(IDLE_CHECK_SECONDS)
            self.flow.check_idle()

    @staticmethod
    def _spawn(coroutine: Coroutine[Any, Any, None]) -> "asyncio.Task[None]":
        task = asyncio.create_task(coroutine)
        task.add_done_callback(_log_crash)
        return task


def _log_crash(task: "asyncio.Task[None]") -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("station task crashed", exc_info=task.exception())


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
