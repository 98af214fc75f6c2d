"""SerialLensmeter reading a SimulatedLensmeter over a real pty, in each format."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from drivers.lensmeter import (
    EyeReading,
    FrameRejected,
    LensmeterConfig,
    LensmeterFormat,
    LensmeterReading,
    SerialLensmeter,
    SimulatedLensmeter,
)

TIMEOUT = 3.0
PAIR = LensmeterReading(
    R=EyeReading(sph=-2.25, cyl=-0.75, axis=180, add=2.0),
    L=EyeReading(sph=-2.0, cyl=-1.0, axis=5, add=2.0),
    source_format="test",
)
RIGHT = LensmeterReading(R=EyeReading(sph=1.5, cyl=0.0, axis=0), source_format="test")


class Rig:
    def __init__(self, sim: SimulatedLensmeter, lensmeter: SerialLensmeter) -> None:
        self.sim = sim
        self.lensmeter = lensmeter
        self.results: asyncio.Queue[LensmeterReading | FrameRejected] = asyncio.Queue()
        self.connections: asyncio.Queue[str] = asyncio.Queue()
        lensmeter.reading_received.register(self.results.put_nowait)
        lensmeter.frame_rejected.register(self.results.put_nowait)
        lensmeter.connected.register(lambda: self.connections.put_nowait("connected"))
        lensmeter.disconnected.register(lambda _: self.connections.put_nowait("disconnected"))

    async def next_result(self) -> LensmeterReading | FrameRejected:
        return await asyncio.wait_for(self.results.get(), TIMEOUT)

    async def next_connection(self) -> str:
        return await asyncio.wait_for(self.connections.get(), TIMEOUT)


@contextlib.asynccontextmanager
async def running(format: LensmeterFormat, link_path: Path) -> AsyncIterator[Rig]:
    sim = SimulatedLensmeter(format, link_path=link_path, seed=3)
    lensmeter = SerialLensmeter(
        LensmeterConfig(port=sim.port, format=format, reconnect_interval=0.05)
    )
    test_rig = Rig(sim, lensmeter)
    lensmeter.start()
    try:
        assert await test_rig.next_connection() == "connected"
        yield test_rig
    finally:
        await lensmeter.stop()
        sim.close()


@pytest.fixture(params=["nidek", "tomey", "dcs"])
async def rig(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Rig]:
    async with running(request.param, tmp_path / "lensmeter") as test_rig:
        yield test_rig


def powers(result: LensmeterReading | FrameRejected) -> dict[str, object]:
    assert isinstance(result, LensmeterReading), result
    return result.to_json_dict()


async def test_readings_arrive_whole_between_garbage_and_corrupt_frames(rig: Rig) -> None:
    await rig.sim.send_reading(PAIR)
    await rig.sim.send_garbage()
    await rig.sim.send_reading(PAIR, corrupt=True)
    await rig.sim.send_reading(RIGHT)
    assert powers(await rig.next_result()) == PAIR.to_json_dict()
    garbage = await rig.next_result()
    assert isinstance(garbage, FrameRejected) and garbage.reason
    corrupt = await rig.next_result()
    assert isinstance(corrupt, FrameRejected) and b"?" in corrupt.raw
    reading = await rig.next_result()
    assert powers(reading) == RIGHT.to_json_dict()
    assert reading.source_format == rig.sim.format


async def test_a_frame_cut_by_an_unplug_is_rejected_and_reading_resumes(rig: Rig) -> None:
    frame = rig.sim.codec.encode(PAIR)
    await rig.sim.write(frame[: len(frame) // 2])
    await asyncio.sleep(0.2)
    rig.sim.unplug()
    cut = await rig.next_result()
    assert isinstance(cut, FrameRejected) and "truncated" in cut.reason
    assert await rig.next_connection() == "disconnected"
    rig.sim.replug()
    assert await rig.next_connection() == "connected"
    await rig.sim.send_reading(RIGHT)
    assert powers(await rig.next_result()) == RIGHT.to_json_dict()


async def test_dcs_packets_are_acknowledged(tmp_path: Path) -> None:
    async with running("dcs", tmp_path / "dcs") as rig:
        await rig.sim.send_reading(PAIR)
        await rig.sim.send_reading(PAIR, corrupt=True)
        await rig.next_result()
        await rig.next_result()
        replies = b""
        async with asyncio.timeout(TIMEOUT):
            while len(replies) < 2:
                replies += rig.sim.read_nowait()
                await asyncio.sleep(0.01)
        assert replies == b"\x06\x15"  # ACK the good packet, NAK the corrupt one
