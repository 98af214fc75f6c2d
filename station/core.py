"""The station without a screen: outbox → uplink → flow, every configured input, and at a QC
station the QC desk that the lensmeter fills.

`StationApp` puts the touch-screen page on top of it; the floor simulator runs several of them
in one process. Every input is built from its config `kind` through one registry, `INPUTS`.
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import httpx

from drivers.camera import CameraScanner, OpenCVCamera, VirtualCamera
from drivers.device import Device
from drivers.events import Event
from drivers.lensmeter import Lensmeter, SerialLensmeter
from drivers.scanner import BarcodeScanner, ScannedCode, SerialBarcodeScanner
from station.flow import StationFlow
from station.lensmeter import PtyLensmeter
from station.outbox import Outbox
from station.qc import QcDesk
from station.settings import (
    CameraInput,
    SerialInput,
    SerialLensmeterInput,
    SimulatedLensmeterInput,
    StationSettings,
    VirtualCameraInput,
)
from station.uplink import Uplink

log = logging.getLogger(__name__)
IDLE_CHECK_SECONDS = 5.0
RESTART_SECONDS = 1.0  # before a crashed station task starts again

Made = tuple[str, Device]  # the status bar's name for the input, and its driver


def _serial_scanner(config: SerialInput) -> Made:
    return f"Scanner {config.port}", SerialBarcodeScanner(config)


def _camera(config: CameraInput) -> Made:
    camera = OpenCVCamera(config.source, config.camera_settings(), fps=config.fps)
    return f"Camera {config.source}", camera


def _virtual_camera(config: VirtualCameraInput) -> Made:
    virtual = VirtualCamera(
        config.jobs,
        config.camera_settings(),
        fps=config.fps,
        frames_per_ticket=max(1, round(config.seconds_per_ticket * config.fps)),
        level=config.level,
    )
    return "Virtual camera", virtual


def _serial_lensmeter(config: SerialLensmeterInput) -> Made:
    return f"Lensmeter {config.port}", SerialLensmeter(config)


def _simulated_lensmeter(config: SimulatedLensmeterInput) -> Made:
    return "Lensmeter (simulated)", PtyLensmeter(config)


# Every input a station config can name, by its `kind` (each factory takes that kind's config
# model). The wedge makes no driver: the browser reads it (static/station.js).
INPUTS: dict[str, Callable[[Any], Made | None]] = {
    "wedge": lambda _config: None,
    "serial": _serial_scanner,
    "camera": _camera,
    "virtual_camera": _virtual_camera,
    "serial_lensmeter": _serial_lensmeter,
    "simulated_lensmeter": _simulated_lensmeter,
}


@dataclass(frozen=True)
class DeviceStatus:
    name: str  # what the status bar shows, e.g. "Scanner /dev/ttyACM0"
    connected: bool
    detail: str = ""


class StationCore:
    def __init__(
        self, settings: StationSettings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.settings = settings
        self.outbox = Outbox(settings.data_dir / "outbox.sqlite3")
        self.uplink = Uplink(settings, self.outbox, transport=transport)
        qc = settings.qc_settings
        self.flow = StationFlow(
            self.outbox,
            self.uplink,
            stage=settings.stage,
            idle_sign_out_seconds=settings.idle_sign_out_minutes * 60,
            repeat_scan_seconds=settings.repeat_scan_seconds,
            complete_by_scan=qc is None,  # QC completes by PASS, which carries the inspection
        )
        self.uplink.rejected.register(self.flow.rejected)
        # On the flow before any page's bridge, so a redraw sees the new inspection.
        self.qc = QcDesk(qc, self.flow) if qc else None
        self.devices: dict[str, Device] = {}
        self.device_status: dict[str, DeviceStatus] = {}
        self.devices_changed = Event[[DeviceStatus]]()
        for config in settings.inputs:
            if made := INPUTS[config.kind](config):
                self._add_device(*made)
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def cameras(self) -> list[CameraScanner]:
        return [device for device in self.devices.values() if isinstance(device, CameraScanner)]

    def _add_device(self, name: str, device: Device) -> None:
        if name in self.devices:  # two inputs on one port or source: keep the names apart
            name = f"{name} #{len(self.devices) + 1}"
        self.devices[name] = device
        if isinstance(device, BarcodeScanner):
            device.code_read.register(self._scan)
        if isinstance(device, Lensmeter):
            assert self.qc is not None  # the settings refuse a lensmeter elsewhere
            device.reading_received.register(self.qc.reading)
        if isinstance(device, PtyLensmeter):
            assert self.qc is not None
            self.qc.started.register(device.measure_soon)
        self._watch(name, device)

    def _watch(self, name: str, device: Device) -> None:
        """Show the device's connection in the status bar."""
        self.device_status[name] = DeviceStatus(name, connected=False, detail="starting")
        device.connected.register(lambda: self._set_status(DeviceStatus(name, True)))
        device.disconnected.register(
            lambda reason: self._set_status(DeviceStatus(name, False, reason))
        )

    def _set_status(self, status: DeviceStatus) -> None:
        self.device_status[status.name] = status
        self.devices_changed.emit(status)

    async def _scan(self, code: ScannedCode) -> None:
        await self.flow.scan(code.text)

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(_supervised("sender", self.uplink.run)),
            asyncio.create_task(_supervised("idle sign-out", self._idle_watch)),
        ]
        for device in self.devices.values():
            device.start()

    async def stop(self) -> None:
        for device in self.devices.values():
            await device.stop()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.uplink.close()
        self.outbox.close()

    async def _idle_watch(self) -> None:
        while True:
            await asyncio.sleep(IDLE_CHECK_SECONDS)
            self.flow.check_idle()


async def _supervised(name: str, work: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Runs `work` for the station's whole life: should it ever end or crash, it is logged and
    started again (a station that stopped sending would queue scans that never leave)."""
    while True:
        try:
            await work()
            log.error("station task %s ended; starting it again", name)
        except Exception:
            log.exception("station task %s crashed; starting it again", name)
        await asyncio.sleep(RESTART_SECONDS)
