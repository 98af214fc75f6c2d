"""Scanner inputs through the real drivers into the station: a serial scanner on a pty and a
virtual camera, each read by `StationApp` into the flow and the outbox (fake API); and the one
registry that builds every input from its config `kind`."""

from collections.abc import AsyncIterator
from pathlib import Path
from typing import get_args

import pytest

from drivers.scanner import SimulatedSerialScanner
from station.app import StationApp
from station.core import INPUTS
from station.settings import LensmeterInput, ScannerInput, SerialInput, VirtualCameraInput
from station.wire import Action
from tests.station.conftest import until
from tests.station.fakes import FakeApi
from tests.station.stations import fake_station, station_settings

DEVICE_TIMEOUT = 10.0
CAMERA_TIMEOUT = 30.0  # decoding shares two cores with whatever else the machine runs


# The badge's sign-in reaches the server before the job event it scopes.
SIGNED_IN_AND_STARTED = [("sign_in", None), ("start", "J1")]


def _sent(api: FakeApi) -> list[tuple[object, object]]:
    return [(event["action"], event["job"]) for event in api.events]


@pytest.fixture
def api() -> FakeApi:
    return FakeApi()


@pytest.fixture
async def pty_station(
    api: FakeApi, tmp_path: Path
) -> AsyncIterator[tuple[StationApp, SimulatedSerialScanner]]:
    scanner = SimulatedSerialScanner(seed=1)
    serial = SerialInput(kind="serial", port=scanner.port)
    station = await fake_station(api, station_settings(tmp_path, scanners=[serial]))
    await station.start()
    yield station, scanner
    await station.stop()
    scanner.close()


async def test_a_pty_scanner_signs_in_and_starts_a_job(
    pty_station: tuple[StationApp, SimulatedSerialScanner], api: FakeApi
) -> None:
    station, scanner = pty_station
    [name] = station.device_status
    await until(lambda: station.device_status[name].connected, DEVICE_TIMEOUT)

    await scanner.scan("B1001")
    await until(lambda: station.flow.screen.operator is not None, DEVICE_TIMEOUT)
    await scanner.scan("J1", aim="]A0")
    await until(lambda: _sent(api) == SIGNED_IN_AND_STARTED, DEVICE_TIMEOUT)
    [event] = station.outbox.events_for_job({"J1"})
    assert (event.action, event.fields["operator_badge"]) == (Action.start, "B1001")

    scanner.unplug()  # the status bar turns the scanner's chip red
    await until(lambda: not station.device_status[name].connected, DEVICE_TIMEOUT)


async def test_a_virtual_camera_reads_badge_and_job_into_the_outbox(
    api: FakeApi, tmp_path: Path
) -> None:
    camera_input = VirtualCameraInput(
        kind="virtual_camera", jobs=["B1001", "J1"], seconds_per_ticket=1.5, fps=6
    )
    station = await fake_station(api, station_settings(tmp_path, scanners=[camera_input]))
    previews: list[bytes] = []
    [camera] = station.cameras
    camera.preview.register(previews.append)
    await station.start()
    try:
        await until(lambda: _sent(api) == SIGNED_IN_AND_STARTED, CAMERA_TIMEOUT)
        [event] = station.outbox.events_for_job({"J1"})
    finally:
        await station.stop()
    assert (event.action, event.fields["operator_badge"]) == (Action.start, "B1001")
    assert previews and previews[-1].startswith(b"\xff\xd8"), "JPEG previews for the page"


def test_every_input_kind_a_config_can_name_has_one_factory() -> None:
    models = [*get_args(get_args(ScannerInput)[0]), *get_args(get_args(LensmeterInput)[0])]
    kinds = [kind for model in models for kind in get_args(model.model_fields["kind"].annotation)]
    assert sorted(kinds) == sorted(INPUTS)
