"""The one device base: a blocking source read on background threads, reopened after a loss,
with every event handed to the asyncio loop that started it.

Serial scanners, lensmeters and cameras differ only in how they open, read and close their
source; the threads, the reconnect loop, the connection state and the loop dispatch are here.
"""

import abc
import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

from .events import Event

log = logging.getLogger(__name__)

Worker = tuple[str, Callable[[], None]]  # thread role, e.g. "capture", and what it runs


class Device(abc.ABC):
    """Emits `connected()` and `disconnected(reason: str)` (reason "stopped" after `stop`).

    A subclass opens its source in `_open` (OSError while it is not available: tried again
    every `reconnect_interval` seconds), reads it in `_read_until_failure` and releases it in
    `_close`. Whatever it reports goes through `_dispatch`, so subscribers always run on the
    loop, never on a device thread.
    """

    def __init__(self, name: str, *, reconnect_interval: float) -> None:
        self.name = name
        self.reconnect_interval = reconnect_interval
        self.connected = Event[[]]()
        self.disconnected = Event[[str]]()
        self._stop = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._threads: list[threading.Thread] = []
        self._connected = False

    @property
    def is_connected(self) -> bool:
        return self._connected

    def start(self) -> None:
        """Start reading; call from the asyncio loop that should receive the events."""
        if self._threads:
            raise RuntimeError(f"{self.name}: already started")
        self._loop = asyncio.get_running_loop()
        self._stop.clear()
        self._threads = [
            threading.Thread(target=target, name=f"{self.name} {role}", daemon=True)
            for role, target in self._workers()
        ]
        for thread in self._threads:
            thread.start()

    async def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            await asyncio.to_thread(thread.join)
        self._threads = []

    def _workers(self) -> list[Worker]:
        """The threads to run; extend to add one beside the connection (a camera's decoder)."""
        return [("connection", self._keep_connected)]

    @abc.abstractmethod
    def _open(self) -> None:
        """Open the source; raise OSError while it is not available (yet)."""

    @abc.abstractmethod
    def _read_until_failure(self) -> str | None:
        """Read the open source until it fails (returns why) or stop is requested (None)."""

    @abc.abstractmethod
    def _close(self) -> None: ...

    def _keep_connected(self) -> None:
        while not self._stop.is_set():
            try:
                self._open()
            except OSError as error:
                log.debug("%s: cannot open: %s", self.name, error)
                self._stop.wait(self.reconnect_interval)
                continue
            self._set_connected(True)
            try:
                reason = self._read_until_failure()
            finally:
                self._close()
            if reason is not None:
                log.warning("%s: disconnected: %s", self.name, reason)
            self._set_connected(False, reason or "stopped")

    def _set_connected(self, connected: bool, reason: str = "") -> None:
        self._connected = connected
        if connected:
            log.info("%s: connected", self.name)
            self._dispatch(self.connected.emit)
        else:
            self._dispatch(self._handle_disconnect, reason)

    def _handle_disconnect(self, reason: str) -> None:
        """Runs on the loop; extend to drop or reject what was cut off by the disconnect."""
        self.disconnected.emit(reason)

    def _dispatch(self, callback: Callable[..., None], *args: Any) -> None:
        """Runs `callback(*args)` on the loop that started the device."""
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:  # the loop closed under us: nobody is left to tell
            self._stop.set()
