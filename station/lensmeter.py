"""The QC station's lensmeter: a serial one, or for demos a simulated one on a pty that the same
serial driver reads, so the demo exercises the real path (frame → parser → reading → QC)."""

import asyncio
import contextlib
import random

from core.optics import PairRx
from drivers.lensmeter import (
    EyeReading,
    LensmeterConfig,
    LensmeterReading,
    SerialLensmeter,
    SimulatedLensmeter,
)
from station.qc import EYES, Inspection, QcDesk
from station.settings import LensmeterInput, SimulatedLensmeterInput

OUT_OF_TOLERANCE_D = 0.37  # beyond every sphere tolerance up to ±18 D


def simulated_reading(
    ordered: PairRx, rng: random.Random, out_of_tolerance_chance: float
) -> LensmeterReading:
    """A reading close to the ordered lenses (well inside Z80.1); with the given chance one
    eye's sphere is off by OUT_OF_TOLERANCE_D."""
    eyes: dict[str, EyeReading] = {}
    for eye in EYES:
        lens = ordered.lens(eye)
        if lens is None or lens.sph is None:
            continue
        cyl = lens.cyl or 0.0
        eyes[eye] = EyeReading(
            sph=round(lens.sph + rng.choice((-0.02, 0.0, 0.01, 0.03)), 2),
            cyl=cyl,
            axis=lens.axis if cyl else None,
            add=lens.add,
            prism_h=lens.prism_h,
            prism_v=lens.prism_v,
        )
    if eyes and rng.random() < out_of_tolerance_chance:
        eye = rng.choice(sorted(eyes))
        off = eyes[eye].sph + rng.choice((-1, 1)) * OUT_OF_TOLERANCE_D
        eyes[eye] = eyes[eye].model_copy(update={"sph": round(off, 2)})
    return LensmeterReading.model_validate({**eyes, "source_format": "simulated"})


class LensmeterLink:
    """Feeds the QC desk from the configured lensmeter; `device` reports its connection."""

    def __init__(self, config: LensmeterInput, desk: QcDesk) -> None:
        self.config = config
        self.simulator: SimulatedLensmeter | None = None
        if isinstance(config, SimulatedLensmeterInput):
            self.simulator = SimulatedLensmeter(config.format, seed=config.seed)
            port = LensmeterConfig(port=self.simulator.port, format=config.format)
            self.device = SerialLensmeter(port)
            if config.auto_measure_seconds is not None:
                desk.started.register(self._measure_soon)
        else:
            self.device = SerialLensmeter(config)
        self.device.reading_received.register(desk.reading)
        self._rng = random.Random(config.seed if self.simulator else None)
        self._measuring: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return "Lensmeter (simulated)" if self.simulator else f"Lensmeter {self.device.config.port}"

    def start(self) -> None:
        self.device.start()

    async def stop(self) -> None:
        await self._cancel_measuring()
        await self.device.stop()
        if self.simulator is not None:
            self.simulator.close()

    def _measure_soon(self, inspection: Inspection) -> None:
        """The demo inspector presses Print a moment after starting the job."""
        if self._measuring is not None:
            self._measuring.cancel()
        self._measuring = asyncio.create_task(self._measure(inspection))

    async def _measure(self, inspection: Inspection) -> None:
        assert isinstance(self.config, SimulatedLensmeterInput) and self.simulator is not None
        await asyncio.sleep(self.config.auto_measure_seconds or 0)
        chance = self.config.out_of_tolerance_chance
        await self.simulator.send_reading(simulated_reading(inspection.ordered, self._rng, chance))

    async def _cancel_measuring(self) -> None:
        if self._measuring is not None:
            self._measuring.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._measuring
