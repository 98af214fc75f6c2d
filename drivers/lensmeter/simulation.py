"""A simulated lensmeter: the device end of a pty, for `SerialLensmeter` to read."""

from pathlib import Path

from ..serial_link import SimulatedSerialDevice
from .formats import CODECS, LensmeterFormat
from .reading import LensmeterReading


class SimulatedLensmeter(SimulatedSerialDevice):
    """Sends frames in `format`, built by that format's encoder, in split writes.

    Pair it with `SerialLensmeter(LensmeterConfig(port=sim.port, format=sim.format))`.
    """

    def __init__(
        self,
        format: LensmeterFormat,
        *,
        link_path: Path | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__(link_path=link_path, seed=seed)
        self.format = format
        self.codec = CODECS[format]

    async def send_reading(self, reading: LensmeterReading, *, corrupt: bool = False) -> None:
        """Send one reading; `corrupt` replaces one digit with "?", which every format rejects."""
        frame = bytearray(self.codec.encode(reading))
        if corrupt:
            digits = [i for i, byte in enumerate(frame) if chr(byte).isdigit()]
            frame[self.random.choice(digits)] = ord("?")
        await self.write(bytes(frame))

    async def send_garbage(self) -> None:
        """Line noise between frames, as a loose connector produces."""
        await self.write_noise()
        await self.write(self.codec.resync)
