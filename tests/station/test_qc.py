"""QC logic without a screen: readings and manual entry judged by the Z80.1 engine, the payload
the server accepts, and the headless station core as a QC station, its simulated lensmeter on
a pty read by the real serial driver."""

import asyncio
import random
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from core.optics import load_profiles
from drivers.lensmeter import EyeReading, LensmeterReading
from server.schemas import EventIn as ServerEventIn
from station.core import StationCore
from station.lensmeter import OUT_OF_TOLERANCE_D, simulated_reading
from station.qc import Inspection
from station.settings import QcSettings, SimulatedLensmeterInput
from station.wire import Action, DefectIn, InspectionIn
from tests.station.conftest import until
from tests.station.qc_fakes import QcApi, qc_card
from tests.station.stations import simulated_lensmeter, station_settings

SETTINGS = QcSettings()


def inspection() -> Inspection:
    return Inspection(qc_card(), SETTINGS, load_profiles())


def reading(r_sph: float = -2.0, **r: object) -> LensmeterReading:
    right = EyeReading.model_validate({"sph": r_sph, "cyl": -0.75, "axis": 180, **r})
    left = EyeReading(sph=-1.75, cyl=-0.5, axis=10)
    return LensmeterReading(R=right, L=left, pd=63.5, source_format="nidek")


def server_accepts(action: Action, payload: InspectionIn, reason_code: str | None = None) -> None:
    now = datetime.now(UTC).isoformat()
    ServerEventIn.model_validate(
        {
            "event_uuid": "6f1c2b1e-8a63-4c55-9d0e-1c2b3a4d5e6f",
            "sequence": 1,
            "job": "J7",
            "action": action.value,
            "reason_code": reason_code,
            "inspection": payload.model_dump(mode="json"),
            "created_at": now,
            "sent_at": now,
        }
    )


def test_a_reading_fills_both_eyes_and_passes() -> None:
    qc = inspection()
    assert qc.missing() == [("R", "sph"), ("R", "cyl"), ("L", "sph"), ("L", "cyl")]
    qc.apply_reading(reading())
    assert qc.measured["L"] == {"sph": -1.75, "cyl": -0.5, "axis": 10}
    assert qc.missing() == [] and qc.passes() and qc.source == "lensmeter"


def test_manual_entry_per_field() -> None:
    qc = inspection()
    for eye, values in (("R", (-2.0, -0.75, 180)), ("L", (-1.75, -0.5, 10.0))):
        for field, value in zip(("sph", "cyl", "axis"), values, strict=True):
            qc.set_value(eye, field, value)  # type: ignore[arg-type]
    assert qc.measured["L"]["axis"] == 10 and isinstance(qc.measured["L"]["axis"], int)
    assert qc.passes() and qc.source == "manual"
    qc.set_value("R", "sph", None)
    assert qc.missing() == [("R", "sph")] and not qc.passes()


def test_out_of_tolerance_names_the_value_and_its_tolerance() -> None:
    qc = inspection()
    qc.apply_reading(reading(r_sph=-2.37))
    result = qc.result()
    assert result is not None and not qc.passes()
    failed = [c for c in result.checks if not c.passed]
    assert [(c.eye, c.field) for c in failed] == [("R", "sph")]
    assert failed[0].tolerance == pytest.approx(0.13) and failed[0].deviation == pytest.approx(0.37)


@pytest.mark.parametrize(
    ("store_profile", "used", "passes"),
    [
        (None, None, True),  # the station's own (the file's default, Z80.1)
        ("store-strict", "store-strict", False),  # 0.07 D is outside ±0.06 D
        ("not-in-this-file", None, True),  # the server still judges with the store's
    ],
)
def test_the_store_profile_on_the_card_is_what_the_station_highlights_with(
    store_profile: str | None, used: str | None, passes: bool
) -> None:
    card = qc_card().model_copy(update={"tolerance_profile": store_profile})
    qc = Inspection(card, SETTINGS, load_profiles())
    qc.apply_reading(reading(r_sph=-2.07))
    assert qc.profile_name == used
    assert qc.passes() is passes
    assert qc.payload([]).profile == used


def test_a_plus_cylinder_reading_is_transposed_and_passes() -> None:
    qc = inspection()
    qc.apply_reading(reading(r_sph=-2.75, cyl=0.75, axis=90))
    assert qc.passes()


def test_a_failed_cosmetic_item_blocks_the_pass() -> None:
    qc = inspection()
    qc.apply_reading(reading())
    qc.cosmetic["Coating"] = False
    assert not qc.passes()


def test_payloads_are_what_the_server_accepts() -> None:
    qc = inspection()
    qc.apply_reading(reading())
    passed = qc.payload([])
    assert passed.measured["R"] == {"sph": -2.0, "cyl": -0.75, "axis": 180}
    assert passed.measured["pd"] == 63.5 and all(passed.cosmetic.values())
    server_accepts(Action.complete, passed)
    failed = qc.payload([DefectIn(eye="R", code="D-POWER"), DefectIn(eye=None, code="D-FIT")])
    server_accepts(Action.rework, failed, reason_code="D-POWER")


def test_the_simulated_reading_is_near_the_order_or_out_on_purpose() -> None:
    qc = inspection()
    qc.apply_reading(simulated_reading(qc.ordered, random.Random(1), 0.0))
    assert qc.passes()
    off = simulated_reading(qc.ordered, random.Random(1), 1.0)
    assert any(
        abs(getattr(off, eye).sph - qc.ordered.lens(eye).sph) >= OUT_OF_TOLERANCE_D - 0.03  # type: ignore[union-attr]
        for eye in ("R", "L")
    )


async def test_the_headless_core_is_a_qc_station_its_pty_lensmeter_measures(
    tmp_path: Path,
) -> None:
    settings = station_settings(
        tmp_path,
        "QC-1",
        "final_qc",
        repeat_scan_seconds=0,
        lensmeter=simulated_lensmeter(auto_measure_seconds=0.1, seed=3),
    )
    core = StationCore(settings, transport=httpx.MockTransport(QcApi()))
    desk, flow, outbox = core.qc, core.flow, core.outbox
    assert desk is not None and list(core.device_status) == ["Lensmeter (simulated)"]
    await core.uplink.refresh_reference()
    await core.start()
    try:
        await flow.scan("B1001")
        await flow.scan("J7")  # starts the job; the simulated inspector presses Print
        assert desk.inspection is not None
        await until(lambda: desk.inspection is not None and not desk.inspection.missing(), 10)
        assert desk.inspection.passes() and desk.inspection.source == "lensmeter"
        await flow.scan("J7")  # at QC a scan shows the card; PASS completes
        assert [e.action for e in outbox.events_for_job({"J7"})] == [Action.start]
        desk.pass_job()
        events = outbox.events_for_job({"J7"})
        assert [e.action for e in events] == [Action.start, Action.complete]
        assert events[-1].fields["inspection"]["measured"]["L"]["axis"] == 10
        assert desk.inspection is None  # the job moved on to shipping
    finally:
        await asyncio.wait_for(core.stop(), 10)


def test_a_lensmeter_needs_a_qc_station(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="a lensmeter needs a QC station"):
        station_settings(tmp_path, lensmeter=SimulatedLensmeterInput(kind="simulated_lensmeter"))
