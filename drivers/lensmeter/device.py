"""Lensmeter devices: the abstract interface and the serial one."""

import abc

from ..events import Event
from ..serial_link import SerialLink, SerialSettings
from .formats import CODECS, LensmeterFormat
from .reading import FrameRejected, LensmeterReading


class LensmeterConfig(SerialSettings):
    """Defaults to 9600 8N1; a Tomey CF-2000 wants `parity="O"`."""

    format: LensmeterFormat


class Lensmeter(abc.ABC):
    """Emits `reading_received(LensmeterReading)`, `frame_rejected(FrameRejected)`,
    `connected()` and `disconnected(reason: str)`."""

    def __init__(self) -> None:
        self.reading_received = Event[[LensmeterReading]]()
        self.frame_rejected = Event[[FrameRejected]]()
        self.connected = Event[[]]()
        self.disconnected = Event[[str]]()

    @property
    @abc.abstractmethod
    def is_connected(self) -> bool: ...

    @abc.abstractmethod
    def start(self) -> None:
        """Begin reading; events fire on the running asyncio loop."""

    @abc.abstractmethod
    async def stop(self) -> None: ...


class SerialLensmeter(Lensmeter):
    """A lensmeter on a serial port, surviving unplug/replug without a restart."""

    def __init__(self, config: LensmeterConfig) -> None:
        super().__init__()
        self.config = config
        self._codec = CODECS[config.format]
        self._parser = self._codec.parser()
        self._link = SerialLink(config)
        self._link.data_received.register(self._handle_data)
        self._link.connected.register(self.connected.emit)
        self._link.disconnected.register(self._handle_disconnect)

    @property
    def is_connected(self) -> bool:
        return self._link.is_connected

    def start(self) -> None:
        self._link.start()

    async def stop(self) -> None:
        await self._link.stop()

    def _handle_data(self, data: bytes) -> None:
        self._publish(self._parser.feed(data))

    def _handle_disconnect(self, reason: str) -> None:
        self._publish(self._parser.finish())  # a frame cut by the unplug is rejected, not kept
        self.disconnected.emit(reason)

    def _publish(self, results: list[LensmeterReading | FrameRejected]) -> None:
        for result in results:
            if reply := self._codec.reply(result):
                self._link.write(reply)
            if isinstance(result, LensmeterReading):
                self.reading_received.emit(result)
            else:
                self.frame_rejected.emit(result)
