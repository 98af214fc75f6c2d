"""Stations for the tests: the settings of one of the demo lab's stations, and the real station
app with a fake API standing in for the server, seen through NiceGUI's simulated user."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from nicegui.testing import User
from nicegui.testing.user_simulation import user_simulation

from station.app import StationApp
from station.settings import SimulatedLensmeterInput, StationSettings, UplinkSettings
from tests.station.fakes import FakeApi

FAKE_SERVER = "http://server.test"
# Retries in tenths of a second, so a test does not wait the default backoff after a failure.
FAST_RETRIES = UplinkSettings(backoff_base_seconds=0.05, backoff_cap_seconds=0.2)


def station_settings(
    data_dir: Path,
    name: str = "EDGE-1",
    stage: str = "edging",
    *,
    server_url: str = FAKE_SERVER,
    token: str = "lst_test",
    **more: Any,
) -> StationSettings:
    """The settings of station `name` at `stage`; by default it talks to the fake API."""
    return StationSettings(
        name=name, stage=stage, server_url=server_url, token=token, data_dir=data_dir, **more
    )


def simulated_lensmeter(auto_measure_seconds: float, seed: int) -> SimulatedLensmeterInput:
    """A simulated lensmeter that measures by itself, always within tolerance."""
    return SimulatedLensmeterInput(
        kind="simulated_lensmeter",
        auto_measure_seconds=auto_measure_seconds,
        out_of_tolerance_chance=0.0,
        seed=seed,
    )


async def fake_station(api: FakeApi, settings: StationSettings) -> StationApp:
    """The real station app, `api` answering for the server; its badges and reasons loaded."""
    app = StationApp(settings, transport=httpx.MockTransport(api))
    await app.uplink.refresh_reference()
    return app


@asynccontextmanager
async def on_the_page(station: StationApp) -> AsyncIterator[User]:
    """NiceGUI's simulated user on the station's page, the station running meanwhile."""
    async with user_simulation(root=station.page) as simulated:
        await station.start()
        try:
            yield simulated
        finally:
            await station.stop()


async def started_on_screen(user: User, station: StationApp, job: str) -> None:
    """The page open, Tom Baker signed in by his badge, `job` scanned and shown started."""
    await user.open("/")
    await station.flow.scan("B1001")
    await station.flow.scan(job)
    await user.should_see("Started")
