"""QC flows on the station page as `User` tests: the real station (outbox, uplink, flow, QC
desk, simulated lensmeter on a pty) against a MockTransport standing in for the server."""

from pathlib import Path

import pytest
from nicegui.testing import User

from station.app import StationApp
from tests.station.conftest import until
from tests.station.qc_fakes import QcApi
from tests.station.stations import (
    FAST_RETRIES,
    fake_station,
    simulated_lensmeter,
    started_on_screen,
    station_settings,
)


@pytest.fixture
def api() -> QcApi:
    return QcApi()


@pytest.fixture
async def station(api: QcApi, tmp_path: Path) -> StationApp:
    settings = station_settings(
        tmp_path,
        "QC-1",
        "final_qc",
        repeat_scan_seconds=0,
        uplink=FAST_RETRIES,
        lensmeter=simulated_lensmeter(auto_measure_seconds=0.2, seed=5),
    )
    return await fake_station(api, settings)


async def start_inspection(user: User, station: StationApp) -> None:
    await started_on_screen(user, station, "J7")
    await user.should_see("Lensmeter reading", retries=50)  # the simulated Print


def type_in(user: User, cell: str, keys: str) -> None:
    """Taps a measurement cell, then the number pad's keys and OK."""
    user.find(marker=f"qc-cell-{cell}").click()
    for key in keys:
        user.find(marker=f"pad-{key}").click()
    user.find(marker="pad-ok").click()


async def r_sph_out_of_tolerance_by_hand(user: User, station: StationApp) -> None:
    """An inspection whose R SPH the inspector re-measured by hand, 0.40 D off."""
    await start_inspection(user, station)
    type_in(user, "R-sph", "±2.40")
    await user.should_see("Out of tolerance: R SPH")


def sent(api: QcApi, action: str) -> dict[str, object]:
    return next(e for e in api.events if e["action"] == action)


async def test_pass_is_one_scan_and_one_tap(user: User, station: StationApp, api: QcApi) -> None:
    await start_inspection(user, station)
    await user.should_see("All within tolerance")
    await user.should_see("Single vision CR-39 1.5 stock · Anti-reflective")  # the lab's names
    for title in ("SPH", "CYL", "AXIS"):
        await user.should_see(title)
    [right], [left] = user.find(marker="qc-eye-R").elements, user.find(marker="qc-eye-L").elements
    assert right.id < left.id, "R (OD) is drawn above L"
    user.find(marker="qc-pass").click()
    await user.should_see("Completed, next: Shipping")
    await until(lambda: any(e["action"] == "complete" for e in api.events), 10)
    inspection = sent(api, "complete")["inspection"]
    assert isinstance(inspection, dict) and inspection["defects"] == []
    assert set(inspection["measured"]) >= {"R", "L"}


async def test_out_of_tolerance_by_hand_then_fail_with_a_defect_per_eye(
    user: User, station: StationApp, api: QcApi
) -> None:
    await r_sph_out_of_tolerance_by_hand(user, station)
    await user.should_see("Entered by hand")
    await user.should_see("off 0.40 (±0.13)")
    user.find(marker="qc-pass").click()  # disabled: nothing is recorded
    user.find(marker="cosmetic-1").click()
    await user.should_see("✗ Coating")
    user.find(marker="qc-fail").click()
    await user.should_see("back to the route's first stage")  # D-POWER: generating is off-route
    user.find(marker="defect-D-POWER-R").click()
    user.find(marker="defect-D-FIT-Pair").click()
    await user.should_see("Job goes back to the route's first stage")
    user.find(marker="send-rework").click()
    await user.should_see("Sent to rework")
    await until(lambda: any(e["action"] == "rework" for e in api.events), 10)
    rework = sent(api, "rework")
    assert rework["reason_code"] == "D-POWER"
    inspection = rework["inspection"]
    assert isinstance(inspection, dict)
    assert inspection["defects"] == [
        {"eye": "R", "code": "D-POWER"},
        {"eye": None, "code": "D-FIT"},
    ]
    assert inspection["measured"]["R"]["sph"] == -2.4
    assert inspection["cosmetic"]["Coating"] is False
    assert [e["action"] for e in api.events] == ["sign_in", "start", "rework"]
    assert station.flow.screen.state is not None and station.flow.screen.state.stage == "edging"


async def test_a_fail_needs_a_defect_for_every_failed_eye_and_goes_furthest_back(
    user: User, station: StationApp, api: QcApi
) -> None:
    await r_sph_out_of_tolerance_by_hand(user, station)
    user.find(marker="qc-fail").click()
    user.find(marker="defect-D-FIT-L").click()
    await user.should_see("R failed: choose a defect for R (or the pair)")
    user.find(marker="send-rework").click()  # disabled: R has no defect
    user.find(marker="defect-D-POWER-R").click()
    await user.should_not_see("R failed")
    # D-FIT (fitting), chosen first, is later on the route than D-POWER (the route's start).
    await user.should_see("Job goes back to the route's first stage")
    user.find(marker="send-rework").click()
    await user.should_see("Sent to rework")
    await until(lambda: any(e["action"] == "rework" for e in api.events), 10)
    assert [e["action"] for e in api.events] == ["sign_in", "start", "rework"]
    rework = sent(api, "rework")
    assert rework["reason_code"] == "D-POWER"
    inspection = rework["inspection"]
    assert isinstance(inspection, dict)
    assert [d["code"] for d in inspection["defects"]] == ["D-FIT", "D-POWER"]


async def test_breakage_says_which_lens_and_the_replacement_blank(
    user: User, station: StationApp, api: QcApi
) -> None:
    await start_inspection(user, station)
    user.find(marker="breakage").click()
    # the User simulation cannot tap a toggle's option: set what the tap sets
    user.find(marker="breakage-eyes").elements.pop().value = "L"
    user.find(marker="breakage-blanks").type("BLK-1042")
    user.find(marker="reason-B-CHIP").click()
    await user.should_see("Breakage recorded")
    await until(lambda: any(e["action"] == "breakage" for e in api.events), 10)
    assert sent(api, "breakage")["breakage"] == {
        "part": "lens",
        "eyes": ["L"],
        "replacement_blanks": ["BLK-1042"],
    }
