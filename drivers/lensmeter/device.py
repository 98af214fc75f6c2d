"""Lensmeter devices: the abstract interface and the serial one."""

from ..device import Device
from ..events import Event
from ..serial_link import SerialDevice, SerialSettings
from .formats import CODECS, LensmeterFormat
from .reading import FrameRejected, LensmeterReading


class LensmeterConfig(SerialSettings):
    """Defaults to 9600 8N1; a Tomey CF-2000 wants `parity="O"`."""

    format: LensmeterFormat


class Lensmeter(Device):
    """Emits `reading_received(LensmeterReading)`, `frame_rejected(FrameRejected)`,
    `connected()` and `disconnected(reason: str)`."""

    def __init__(self, name: str, *, reconnect_interval: float) -> None:
        super().__init__(name, reconnect_interval=reconnect_interval)
        self.reading_received = Event[[LensmeterReading]]()
        self.frame_rejected = Event[[FrameRejected]]()


class SerialLensmeter(SerialDevice, Lensmeter):
    """A lensmeter on a serial port, reconnecting after an unplug."""

    def __init__(self, config: LensmeterConfig) -> None:
        super().__init__(config)
        self.config = config
        self._codec = CODECS[config.format]
        self._parser = self._codec.parser()

    def _handle_data(self, data: bytes) -> None:
        self._publish(self._parser.feed(data))

    def _handle_disconnect(self, reason: str) -> None:
        self._publish(self._parser.finish())  # a frame cut by the unplug is rejected, not kept
        super()._handle_disconnect(reason)

    def _publish(self, results: list[LensmeterReading | FrameRejected]) -> None:
        for result in results:
            if reply := self._codec.reply(result):
                self.write(reply)
            if isinstance(result, LensmeterReading):
                self.reading_received.emit(result)
            else:
                self.frame_rejected.emit(result)
