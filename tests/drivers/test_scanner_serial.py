"""SerialBarcodeScanner reading a SimulatedSerialScanner over a real pty."""

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from drivers.scanner import (
    ScannedCode,
    ScannerConfig,
    SerialBarcodeScanner,
    SimulatedSerialScanner,
    Terminator,
)

TIMEOUT = 3.0


class Rig:
    def __init__(self, sim: SimulatedSerialScanner, scanner: SerialBarcodeScanner) -> None:
        self.sim = sim
        self.scanner = scanner
        self.codes: asyncio.Queue[ScannedCode] = asyncio.Queue()
        self.connections: asyncio.Queue[str] = asyncio.Queue()
        scanner.code_read.register(self.codes.put_nowait)
        scanner.connected.register(lambda: self.connections.put_nowait("connected"))
        scanner.disconnected.register(lambda _reason: self.connections.put_nowait("disconnected"))

    async def next_code(self) -> tuple[str, str | None]:
        code = await asyncio.wait_for(self.codes.get(), TIMEOUT)
        return code.text, code.symbology

    async def next_connection(self) -> str:
        return await asyncio.wait_for(self.connections.get(), TIMEOUT)


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    sim = SimulatedSerialScanner(
        terminator=Terminator.CRLF, noise=0.5, link_path=tmp_path / "scanner", seed=7
    )
    config = ScannerConfig(
        port=sim.port, terminator=Terminator.CRLF, debounce=0.5, reconnect_interval=0.05
    )
    scanner = SerialBarcodeScanner(config)
    test_rig = Rig(sim, scanner)
    scanner.start()
    assert await test_rig.next_connection() == "connected"
    yield test_rig
    await scanner.stop()
    sim.close()


async def test_codes_with_aim_ids_split_writes_and_noise(rig: Rig) -> None:
    for text, aim in [("J104233", "]C0"), ("12345", "]A0"), ("4006381333931", "]E0")]:
        await rig.sim.scan(text, aim=aim)
    await rig.sim.scan("NOAIM", aim=None)
    assert [await rig.next_code() for _ in range(4)] == [
        ("J104233", "Code 128"),
        ("12345", "Code 39"),
        ("4006381333931", "EAN-13"),
        ("NOAIM", None),
    ]


async def test_many_codes_in_a_row_arrive_complete_and_in_order(rig: Rig) -> None:
    sent = [f"J{n:06d}" for n in range(30)]
    for text in sent:
        await rig.sim.scan(text)
    assert [(await rig.next_code())[0] for _ in sent] == sent


async def test_a_repeat_within_the_window_is_reported_once(rig: Rig) -> None:
    await rig.sim.scan("J1")
    await rig.sim.scan("J1")
    await rig.sim.scan("J2")
    # order is kept, so J2 arriving second proves the repeat was dropped
    assert [await rig.next_code() for _ in range(2)] == [("J1", "Code 128"), ("J2", "Code 128")]
    await asyncio.sleep(0.6)
    await rig.sim.scan("J1")
    assert await rig.next_code() == ("J1", "Code 128")


async def test_events_fire_on_the_loop_thread(rig: Rig) -> None:
    threads: list[threading.Thread] = []
    rig.scanner.code_read.register(lambda _code: threads.append(threading.current_thread()))
    await rig.sim.scan("J1")
    await rig.next_code()
    assert threads == [threading.current_thread()]


async def test_reconnects_after_unplug_and_drops_the_cut_code(rig: Rig) -> None:
    assert rig.scanner.is_connected
    await rig.sim.write(b"]C0J999")  # unplugged mid-code: the terminator never comes
    await asyncio.sleep(0.2)
    rig.sim.unplug()
    assert await rig.next_connection() == "disconnected"
    assert not rig.scanner.is_connected
    await asyncio.sleep(0.2)  # a few failed reopen attempts while the path is gone
    rig.sim.replug()
    assert await rig.next_connection() == "connected"
    await rig.sim.scan("J2")
    assert await rig.next_code() == ("J2", "Code 128")
    assert rig.codes.empty()


async def test_stop_is_prompt_and_reports_disconnected(rig: Rig) -> None:
    await asyncio.wait_for(rig.scanner.stop(), 1.0)
    assert await rig.next_connection() == "disconnected"
    assert not rig.scanner.is_connected
