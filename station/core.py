"""The station without a screen: outbox → uplink → flow, fed by the configured scanner inputs.

`StationApp` puts the touch-screen page on top of it; the floor simulator runs several of them
in one process. Serial scanners and cameras share one handler into the flow.
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import httpx

from drivers.camera import CameraScanner, OpenCVCamera, VirtualCamera
from drivers.events import Event
from drivers.scanner import ScannedCode, SerialBarcodeScanner
from drivers.serial_link import Device
from station.flow import StationFlow
from station.outbox import Outbox
from station.settings import (
    CameraInput,
    ScannerInput,
    SerialInput,
    StationSettings,
    VirtualCameraInput,
)
from station.uplink import Uplink

log = logging.getLogger(__name__)
IDLE_CHECK_SECONDS = 5.0
RESTART_SECONDS = 1.0  # before a crashed station task starts again

InputDevice = SerialBarcodeScanner | CameraScanner


@dataclass(frozen=True)
class DeviceStatus:
    name: str  # what the status bar shows, e.g. "Scanner /dev/ttyACM0"
    connected: bool
    detail: str = ""


def make_device(config: ScannerInput) -> tuple[str, InputDevice] | None:
    """The driver for a configured input and its display name; None for the browser's wedge."""
    match config:
        case SerialInput():
            return f"Scanner {config.port}", SerialBarcodeScanner(config)
        case CameraInput():
            camera = OpenCVCamera(config.source, config.camera_settings(), fps=config.fps)
            return f"Camera {config.source}", camera
        case VirtualCameraInput():
            virtual = VirtualCamera(
                config.jobs,
                config.camera_settings(),
                fps=config.fps,
                frames_per_ticket=max(1, round(config.seconds_per_ticket * config.fps)),
                level=config.level,
            )
            return "Virtual camera", virtual
    return None


class StationCore:
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
        self.uplink.rejected.register(self.flow.rejected)
        self.devices: dict[str, InputDevice] = {}
        self.device_status: dict[str, DeviceStatus] = {}
        self.devices_changed = Event[[DeviceStatus]]()
        for config in settings.scanners:
            if made := make_device(config):
                self._add_device(*made)
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def cameras(self) -> list[CameraScanner]:
        return [device for device in self.devices.values() if isinstance(device, CameraScanner)]

    def _add_device(self, name: str, device: InputDevice) -> None:
        if name in self.devices:  # two inputs on one port or source: keep the names apart
            name = f"{name} #{len(self.devices) + 1}"
        self.devices[name] = device
        device.code_read.register(self._scan)
        self._watch(name, device)

    def _watch(self, name: str, device: InputDevice | Device) -> None:
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
