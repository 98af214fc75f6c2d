"""Station test fixtures: a REAL LensTrack server in a subprocess, seeded with the demo lab.

The station talks HTTP only, so its end-to-end tests run against `lenstrack serve` exactly as
deployed: fresh SQLite in a temp dir, `seed-demo`, a token per station.
"""

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from nicegui.testing import User

from station.app import StationApp
from tests.liveserver import LiveServer, serving_demo_lab
from tests.station.stations import on_the_page

__all__ = ["LiveServer", "until"]  # the reliability harness builds its server on LiveServer


async def until(condition: Callable[[], bool], timeout: float, every: float = 0.05) -> None:
    """Polls `condition` until it holds; TimeoutError after `timeout` seconds.

    The condition runs on the event loop: one that makes HTTP requests should poll seldom, or
    it starves what the test is waiting for (the simulated floor runs on the same loop).
    """

    async def poll() -> None:
        while not condition():
            await asyncio.sleep(every)

    await asyncio.wait_for(poll(), timeout)


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with serving_demo_lab(tmp_path_factory.mktemp("live-server"), jobs=150) as server:
        yield server


@pytest.fixture
async def user(station: StationApp) -> AsyncIterator[User]:
    """NiceGUI's simulated user on the page of the module's `station`, which runs meanwhile."""
    async with on_the_page(station) as simulated:
        yield simulated
