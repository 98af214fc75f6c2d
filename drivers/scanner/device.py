"""Barcode scanner devices: the interface every scanner shares (cameras too) and the serial one."""

import time

from pydantic import Field

from ..device import Device
from ..events import Event
from ..serial_link import SerialDevice, SerialSettings
from .framing import ScanFramer, ScannedCode, Terminator


class ScannerConfig(SerialSettings):
    terminator: Terminator = Terminator.CR
    prefix: str = Field("", description="printable prefix the scanner is programmed to send")
    suffix: str = ""
    debounce: float = Field(1.0, ge=0, description="seconds in which a repeated code is dropped")


class Debouncer:
    """Drops a code seen again within `window` seconds of the last time it was reported.

    Measured from the last report, so a deliberate rescan after the window goes through while a
    scanner in continuous mode repeating the same code every 100 ms is reported once a window.
    """

    def __init__(self, window: float) -> None:
        self.window = window
        self._reported: dict[str, float] = {}

    def accept(self, text: str, now: float) -> bool:
        self._reported = {t: at for t, at in self._reported.items() if now - at < self.window}
        if text in self._reported:
            return False
        self._reported[text] = now
        return True


class BarcodeScanner(Device):
    """Emits `code_read(ScannedCode)`, `connected()` and `disconnected(reason: str)`."""

    def __init__(self, name: str, *, reconnect_interval: float) -> None:
        super().__init__(name, reconnect_interval=reconnect_interval)
        self.code_read = Event[[ScannedCode]]()


class SerialBarcodeScanner(SerialDevice, BarcodeScanner):
    """A scanner on a serial port (CDC-ACM or USB-serial), reconnecting after an unplug."""

    def __init__(self, config: ScannerConfig) -> None:
        super().__init__(config)
        self.config = config
        self._framer = ScanFramer(
            source=config.port,
            terminator=config.terminator,
            prefix=config.prefix,
            suffix=config.suffix,
        )
        self._debouncer = Debouncer(config.debounce)

    def _handle_data(self, data: bytes) -> None:
        for code in self._framer.feed(data):
            if self._debouncer.accept(code.text, time.monotonic()):
                self.code_read.emit(code)

    def _handle_disconnect(self, reason: str) -> None:
        self._framer.reset()
        super()._handle_disconnect(reason)
