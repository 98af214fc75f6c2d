"""The demo's lensmeter: a simulated one on a pty that the real serial driver reads, so the demo
and the floor simulator exercise the real path (frame → parser → reading → QC desk)."""

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
from station.qc import EYES, Inspection
from station.settings import SimulatedLensmeterInput

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


class PtyLensmeter(SerialLensmeter):
    """A `SerialLensmeter` reading its simulated twin on a pty. `measure_soon(inspection)` is
    the inspector pressing Print: `auto_measure_seconds` later the twin sends a reading."""

    def __init__(self, simulation: SimulatedLensmeterInput) -> None:
        self.twin = SimulatedLensmeter(simulation.format, seed=simulation.seed)
        super().__init__(LensmeterConfig(port=self.twin.port, format=simulation.format))
        self.simulation = simulation
        self._rng = random.Random(simulation.seed)
        self._measuring: asyncio.Task[None] | None = None

    def measure_soon(self, inspection: Inspection) -> None:
        if self.simulation.auto_measure_seconds is None:
            return  # never by itself: a test sends the reading
        if self._measuring is not None:
            self._measuring.cancel()
        self._measuring = asyncio.create_task(self._measure(inspection.ordered))

    async def _measure(self, ordered: PairRx) -> None:
        await asyncio.sleep(self.simulation.auto_measure_seconds or 0)
        chance = self.simulation.out_of_tolerance_chance
        await self.twin.send_reading(simulated_reading(ordered, self._rng, chance))

    async def stop(self) -> None:
        if self._measuring is not None:
            self._measuring.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._measuring
        await super().stop()
        self.twin.close()
