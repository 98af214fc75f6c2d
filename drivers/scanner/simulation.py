"""A simulated serial scanner: the device end of a pty, for `SerialBarcodeScanner` to read."""

from pathlib import Path

from ..serial_link import SimulatedSerialDevice
from .framing import Terminator


class SimulatedSerialScanner(SimulatedSerialDevice):
    """Writes what a programmed scanner sends: `[AIM id]text<terminator>`, in chunks.

    Pair it with `SerialBarcodeScanner(ScannerConfig(port=sim.port))`. With `noise` > 0 that
    share of scans is preceded by non-printable line noise.
    """

    def __init__(
        self,
        *,
        terminator: Terminator = Terminator.CR,
        noise: float = 0.0,
        link_path: Path | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__(link_path=link_path, seed=seed)
        self.terminator = terminator
        self.noise = noise

    async def scan(self, text: str, *, aim: str | None = "]C0") -> None:
        """Send one code, e.g. `await sim.scan("J123456", aim="]A0")`; `aim=None` sends none."""
        if self.random.random() < self.noise:
            await self.write_noise()
        await self.write(f"{aim or ''}{text}".encode("ascii") + self.terminator.bytes)
