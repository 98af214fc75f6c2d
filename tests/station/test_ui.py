"""NiceGUI `User` tests of every station flow, against an in-process fake API (httpx mock).

The station talks HTTP only, so a MockTransport standing in for the server exercises the
real uplink, outbox, flow and page; the real server is used by the outage and browser tests.
"""

from datetime import UTC, datetime
from pathlib import Path

import pytest
from nicegui.testing import User

from station.app import StationApp
from station.wire import JobCard
from tests.station.fakes import FakeApi
from tests.station.stations import FAST_RETRIES, fake_station, station_settings


@pytest.fixture
def api() -> FakeApi:
    return FakeApi()


@pytest.fixture
async def station(api: FakeApi, tmp_path: Path) -> StationApp:
    settings = station_settings(tmp_path, repeat_scan_seconds=0, uplink=FAST_RETRIES)
    return await fake_station(api, settings)


async def scan(user: User, station: StationApp, code: str) -> None:
    await station.flow.scan(code)  # what the wedge event handler and serial scanners call


async def signed_in_with(user: User, station: StationApp, job: str) -> None:
    """The page open, Tom Baker signed in by his badge, and `job` scanned."""
    await user.open("/")
    await scan(user, station, "B1001")
    await scan(user, station, job)


def tap(user: User, *markers: str) -> None:
    """Taps the marked elements, one after the other."""
    for marker in markers:
        user.find(marker=marker).click()


async def test_sign_in_start_and_complete_without_a_tap(user: User, station: StationApp) -> None:
    await user.open("/")
    await user.should_see("Scan your badge to sign in")
    for code, shown in (  # each scan, and what the page then says
        ("B1001", ["Tom Baker"]),
        ("J1", ["Started", "J1", "RUSH"]),
        ("J1", ["Completed, next: Fitting"]),
        ("B1001", ["Tom Baker signed out"]),
    ):
        await scan(user, station, code)
        for text in shown:
            await user.should_see(text)


async def test_hold_breakage_and_note_by_tapping(user: User, station: StationApp) -> None:
    await signed_in_with(user, station, "J1")
    await user.should_see("Started")
    tap(user, "hold", "reason-H-FRAME")
    await user.should_see("Put on hold")
    tap(user, "release")
    await user.should_see("Released")
    tap(user, "breakage")
    await user.should_see("back to the route's first stage")
    tap(user, "reason-B-CHIP")
    await user.should_see("Breakage recorded")
    tap(user, "note")
    user.find(marker="note-text").type("left lens has a mark")
    tap(user, "save-note")
    await user.should_see("Note added")
    counts = station.outbox.counts()
    assert counts["queued"] + counts["sent"] == 6  # sign-in, start, hold, release, breakage, note


async def test_wrong_stage_warns_and_an_override_needs_a_reason(
    user: User, station: StationApp
) -> None:
    await signed_in_with(user, station, "J2")
    await user.should_see("Already past this stage")
    tap(user, "override", "confirm-override")
    await user.should_see("An override needs a reason")
    tap(user, "override")
    user.find(marker="override-reason").type("customer waiting at the counter")
    tap(user, "confirm-override")
    await user.should_see("Started")


async def test_offline_indicator_and_queue(user: User, station: StationApp, api: FakeApi) -> None:
    await signed_in_with(user, station, "J1")  # cached now
    await user.should_see("Started")
    api.online = False
    await scan(user, station, "J1")  # completes from the cache
    await user.should_see("Offline")
    await user.should_see("queued")
    api.online = True
    await user.should_see("Online", retries=50)
    assert {e["action"] for e in api.events} == {"sign_in", "start", "complete"}


async def test_the_job_card_shows_what_the_bench_needs(
    user: User, station: StationApp, api: FakeApi
) -> None:
    api.cards["J1"] = JobCard.model_validate(
        {
            **api.cards["J1"].model_dump(),
            "special_instructions": "Patient is a pilot: no tint",
            "treatments": ["hard_coat", "blue_filter", "edge_polish"],
            "frame": {"type": "semi_rimless", "a_mm": 52.0, "dbl_mm": 18.5, "temple_mm": 140},
            # The server may list the left eye first; the card shows R (OD) above L.
            "prescription": [
                {"eye": "L", "sph": -1.0, "cyl": 0.0, "mono_pd": 32.0},
                {"eye": "R", "sph": -1.25, "cyl": -0.5, "axis": 90, "mono_pd": 31.5},
            ],
        }
    )
    await signed_in_with(user, station, "J1")
    await user.should_see("Started")
    for text in (
        "Tray T1",
        "RUSH",
        "Store NORTH",
        # the lab config's names; an identifier it lacks is made readable
        "Lens Single vision CR-39 1.5 stock · Hard coat, Blue-light filter, Edge polish",
        "Frame Semi-rimless · A 52 · DBL 18.5 · Temple mm 140",
        "Patient is a pilot: no tint",
        "Edging → Fitting",
        "h left",  # promised in 5 hours
        "History",
    ):
        await user.should_see(text)
    (rx,) = user.find(marker="rx").elements
    assert "<th>SPH</th><th>CYL</th><th>AXIS</th>" in rx.content
    right = rx.content.index("<th>R</th><td>-1.25</td><td>-0.50</td><td>90</td>")
    assert right < rx.content.index("<th>L</th><td>-1.00</td>")


async def test_the_card_marks_values_the_lab_changed_and_draws_the_frame_shape(
    user: User, station: StationApp, api: FakeApi
) -> None:
    changed_at = datetime(2026, 3, 3, 13, 32, tzinfo=UTC)
    api.cards["J1"] = JobCard.model_validate(
        {
            **api.cards["J1"].model_dump(),
            "frame": {"type": "full_rim", "a_mm": 52.0},
            "trace": {"right": {"radii": [2400, 2000] * 16}},  # stored JSON: lists
            "accepted_changes": [
                {"field": f, "old_value": None, "new_value": 1, "changed_at": changed_at}
                for f in ("right.cyl", "right.axis", "frame.a_mm")
            ],
        }
    )
    await signed_in_with(user, station, "J1")
    when = f"{changed_at.astimezone():%a %H:%M}"
    await user.should_see(f"R CYL, R AXIS changed {when}")
    await user.should_see(f"A changed {when}")
    chips = user.find(marker="changed").elements
    assert len(chips) == 2  # the Rx and the frame; the lens and promise did not change
    (shape,) = user.find(marker="trace").elements
    assert shape.content.count("<path") == 2  # both lenses, the left one mirrored


async def test_without_labels_from_the_server_identifiers_are_made_readable(
    user: User, station: StationApp, api: FakeApi
) -> None:
    api.labels = None  # a server from before labels answers 404
    await station.uplink.refresh_reference()
    await signed_in_with(user, station, "J1")
    await user.should_see("Lens SV CR-39 1.5 stock · Ar")
    await user.should_see("Frame Full rim")
