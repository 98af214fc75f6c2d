"""Serial plumbing shared by the scanner and lensmeter drivers.

`SerialDevice` is a `Device` on one serial port (pyserial blocks, so the device base reads it
on a thread and reopens it after an unplug). `SimulatedSerialDevice` is the device end of a
pty pair for the simulated twins and tests.
"""

import abc
import asyncio
import logging
import os
import pty
import random
import tty
from pathlib import Path
from typing import Literal, Self

import serial
from pydantic import BaseModel, ConfigDict, Field

from .device import Device

log = logging.getLogger(__name__)


class SerialSettings(BaseModel):
    """Where and how to open a serial port; prefer a stable `/dev/serial/by-id/...` path."""

    model_config = ConfigDict(frozen=True)

    port: str = Field(min_length=1)
    baudrate: int = Field(9600, gt=0)
    bytesize: Literal[5, 6, 7, 8] = 8
    parity: Literal["N", "E", "O", "M", "S"] = "N"
    stopbits: Literal[1, 1.5, 2] = 1
    reconnect_interval: float = Field(1.0, gt=0, description="seconds between reopen attempts")


class SerialDevice(Device):
    """A device on a serial port, surviving unplug/replug without a restart.

    Reads use a short timeout so `stop` is prompt; pyserial may return a partial message on
    timeout, so subclasses frame the byte stream themselves (`_handle_data`, on the loop).
    """

    READ_TIMEOUT = 0.1

    def __init__(self, settings: SerialSettings) -> None:
        super().__init__(settings.port, reconnect_interval=settings.reconnect_interval)
        self.settings = settings
        self._serial: serial.Serial | None = None

    def write(self, data: bytes) -> None:
        """Send bytes to the device (e.g. an ACK); dropped with a warning while disconnected."""
        port = self._serial
        if port is None:
            log.warning("%s: not connected, dropped %r", self.name, data)
            return
        try:
            port.write(data)
        except (serial.SerialException, OSError) as error:
            log.warning("%s: write failed: %s", self.name, error)

    @abc.abstractmethod
    def _handle_data(self, data: bytes) -> None:
        """Bytes as they arrived, on the loop."""

    def _open(self) -> None:
        s = self.settings
        self._serial = serial.Serial(
            s.port,
            baudrate=s.baudrate,
            bytesize=s.bytesize,
            parity=s.parity,
            stopbits=s.stopbits,
            timeout=self.READ_TIMEOUT,
            exclusive=True,  # a second reader would silently steal half of the codes
        )

    def _read_until_failure(self) -> str | None:
        port = self._serial
        assert port is not None
        while not self._stop.is_set():
            try:
                data = port.read(max(1, port.in_waiting))
            except (serial.SerialException, OSError) as error:
                return str(error)
            if data:
                self._dispatch(self._handle_data, data)
        return None

    def _close(self) -> None:
        port, self._serial = self._serial, None
        if port is not None:
            port.close()


class SimulatedSerialDevice:
    """The device end of a pty pair: what a real scanner or lensmeter would write.

    With `link_path` the port is also reachable under that stable symlink, which `unplug`
    removes and `replug` points at a fresh pty, as udev does for `/dev/serial/by-id`.
    Writes are split into 1–3 chunks with small delays, like a UART seen through USB.
    """

    NOISE = (b"\x00", b"\xff", b"\x11", b"\x13", b"\x80", b"\xfe\xfe")

    def __init__(self, *, link_path: Path | None = None, seed: int | None = None) -> None:
        self.link_path = link_path
        self.random = random.Random(seed)
        self._master: int | None = None
        self._slave: int | None = None
        self._slave_path = ""
        self.replug()

    @property
    def port(self) -> str:
        """The path to configure as the serial port."""
        return str(self.link_path) if self.link_path else self._slave_path

    @property
    def is_plugged(self) -> bool:
        return self._master is not None

    def replug(self) -> None:
        if self._master is not None:
            return
        self._master, self._slave = pty.openpty()
        # raw mode, or the line discipline would echo and turn CR into LF before anyone opens it
        tty.setraw(self._slave)
        self._slave_path = os.ttyname(self._slave)
        if self.link_path:
            temporary = self.link_path.with_name(self.link_path.name + ".new")
            temporary.unlink(missing_ok=True)
            temporary.symlink_to(self._slave_path)
            temporary.replace(self.link_path)

    def unplug(self) -> None:
        """Hang up: the reader's next read fails, and the symlink path disappears."""
        if self.link_path:
            self.link_path.unlink(missing_ok=True)
        for fd in (self._master, self._slave):
            if fd is not None:
                os.close(fd)
        self._master = self._slave = None

    close = unplug

    async def write(self, data: bytes, *, max_delay: float = 0.02) -> None:
        """Write `data` in 1–3 chunks with a short pause between them."""
        if not data:
            return
        cuts = sorted(self.random.sample(range(1, len(data)), min(len(data) - 1, 2)))
        cuts = cuts[: self.random.randint(0, len(cuts))]
        for start, end in zip([0, *cuts], [*cuts, len(data)], strict=True):
            self._write_now(data[start:end])
            if end < len(data):
                await asyncio.sleep(self.random.uniform(0.001, max_delay))

    def read_nowait(self) -> bytes:
        """What the host has sent to the device so far (e.g. ACK/NAK)."""
        if self._master is None:
            raise RuntimeError("simulated device is unplugged")
        os.set_blocking(self._master, False)
        try:
            return os.read(self._master, 4096)
        except BlockingIOError:
            return b""

    async def write_noise(self) -> None:
        """Line noise that never contains printable ASCII, so it cannot forge a message."""
        await self.write(self.random.choice(self.NOISE))

    def _write_now(self, data: bytes) -> None:
        if self._master is None:
            raise RuntimeError("simulated device is unplugged")
        os.write(self._master, data)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()
