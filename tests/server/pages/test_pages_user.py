"""The store portal and the WIP board through NiceGUI's simulated user (no browser)."""

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from nicegui import ui
from nicegui.testing.user import User

from server.domain import views
from server.models import EventAction
from server.pages.job_rows import JobRows
from server.pages.store import FlagFeed
from tests.server.conftest import Floor, Lab
from tests.server.pages.conftest import LogIn


async def test_store_staff_land_on_their_store_and_see_only_its_jobs(
    lab: Lab, log_in: LogIn
) -> None:
    lab.make_job("N-1")
    lab.make_job("S-1", store="SOUTH")
    user = await log_in("north", "demo-store-pass")
    await user.open("/")
    await user.should_see("Northside Vision · Store portal")
    assert set(_rows(user)) == {"N-1"}


async def test_a_station_event_updates_the_open_store_page(
    lab: Lab, floor: Floor, log_in: LogIn
) -> None:
    lab.make_job("N-2")
    user = await log_in("north", "demo-store-pass")
    await user.open("/store")
    assert _rows(user)["N-2"]["state"] == "At Edging (queued)"
    floor.send("EDGE-1", "N-2", EventAction.start)
    floor.send("EDGE-1", "N-2", EventAction.breakage, reason_code="B-CHIP")
    lab.context.bus.wake()  # the floor writes straight to the database, not through a request
    await _until(lambda: _rows(user)["N-2"]["tone"] == "red")
    row = _rows(user)["N-2"]
    assert [(flag["label"], flag["reason"]) for flag in row["flags"]] == [
        ("Breakage", "Broke at Edging (chip or crack at edging); being remade from Edging.")
    ]
    (rows,) = user.find(JobRows).elements
    await _until(lambda: rows.props["counts"] == {"all": 1, "late": 0, "rework": 1, "ready": 0})


async def test_the_job_page_has_the_timeline_and_hides_other_stores_jobs(
    lab: Lab, floor: Floor, log_in: LogIn
) -> None:
    north = lab.make_job("N-3")
    south = lab.make_job("S-3", store="SOUTH")
    floor.send("EDGE-1", "N-3", EventAction.start)
    user = await log_in("north", "demo-store-pass")
    await user.open(f"/store/jobs/{north}")
    await user.should_see("Route")
    await user.should_see("QC results")
    tables = sorted(user.find(ui.table).elements, key=lambda table: table.id)  # page order
    route, events = (table.rows for table in tables)
    assert [step["state"] for step in route] == ["current", "todo", "todo", "todo"]
    assert [(event["action"], event["station"]) for event in events] == [("start", "EDGE-1")]
    await user.open(f"/store/jobs/{south}")
    await user.should_see("Job not found.")


async def test_the_wip_board_is_for_the_lab(lab: Lab, floor: Floor, log_in: LogIn) -> None:
    lab.make_job("N-4")
    lab.make_job("S-4", store="SOUTH")
    user = await log_in("manager", "demo-manager-pass")
    await user.open("/")
    await user.should_see("WIP board")
    await user.should_see("N-4")
    await user.should_see("S-4")
    floor.send("EDGE-1", "N-4", EventAction.start)
    floor.send("EDGE-1", "N-4", EventAction.complete)
    lab.context.bus.wake()
    await user.should_see("1 done today")


async def test_a_wip_column_shows_its_oldest_jobs_and_counts_the_rest(
    lab: Lab, floor: Floor, log_in: LogIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(views, "CARDS_PER_COLUMN", 2)
    for number in ("W-1", "W-2", "W-3"):  # oldest first
        lab.make_job(number)
    user = await log_in("manager", "demo-manager-pass")
    await user.open("/wip")
    await user.should_see("W-2")
    await user.should_not_see("W-3")
    await user.should_see("+ 1 newer")
    await user.should_see("3 in WIP")
    await user.should_see("3 jobs in WIP")
    # Starting W-1 makes it the newest at edging: W-3 moves up into view, W-1 out of it.
    floor.send("EDGE-1", "W-1", EventAction.start)
    lab.context.bus.wake()
    await user.should_see("W-3")
    await user.should_not_see("W-1")
    await user.should_see("+ 1 newer")
    # W-2, shown, moves on to fitting: edging reads its oldest two again, W-1 among them.
    floor.send("EDGE-1", "W-2", EventAction.start)
    floor.send("EDGE-1", "W-2", EventAction.complete)
    lab.context.bus.wake()
    await user.should_see("W-1")
    await user.should_not_see("+ 1 newer")
    await user.should_see("2 in WIP")
    await user.should_see("1 in WIP")  # fitting
    await user.should_see("3 jobs in WIP")


async def test_a_job_joining_behind_hidden_ones_only_counts(
    lab: Lab, floor: Floor, log_in: LogIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(views, "CARDS_PER_COLUMN", 1)
    columns_read: list[int] = []
    wip_column = views.wip_column

    def read_column(*args: Any) -> views.WipColumn:
        column = wip_column(*args)
        columns_read.append(column.stage_id)
        return column

    monkeypatch.setattr(views, "wip_column", read_column)
    for number in ("W-5", "W-6"):  # oldest first
        lab.make_job(number)
    user = await log_in("manager", "demo-manager-pass")
    await user.open("/wip")
    await user.should_see("W-5")
    await user.should_see("+ 1 newer")
    lab.make_job("W-7")  # a new job at edging, behind W-6
    lab.context.bus.wake()
    await user.should_see("3 jobs in WIP")
    await user.should_see("+ 2 newer")
    await user.should_see("3 in WIP")
    await user.should_not_see("W-6")
    await user.should_not_see("W-7")
    # W-6, hidden, moves on to fitting, where it shows; edging keeps its card W-5.
    floor.send("EDGE-1", "W-6", EventAction.start)
    floor.send("EDGE-1", "W-6", EventAction.complete)
    lab.context.bus.wake()
    await user.should_see("W-6")
    await user.should_see("+ 1 newer")
    await user.should_see("2 in WIP")
    await user.should_see("3 jobs in WIP")
    await user.should_see("W-5")
    assert columns_read == []


async def test_store_staff_get_a_403_on_the_wip_board(log_in: LogIn) -> None:
    user = await log_in("north", "demo-store-pass")
    await user.open("/wip")
    await user.should_see("This page is not for your role")


async def test_without_a_session_pages_send_you_to_log_in(user: User) -> None:
    response = await user.http_client.get("/store", follow_redirects=False)
    assert response.headers["location"] == "/login"


async def _until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "the page did not update"
        await asyncio.sleep(0.02)


async def test_a_changed_job_is_one_row_sent_and_the_list_keeps_its_order(
    lab: Lab, floor: Floor, log_in: LogIn
) -> None:
    lab.make_job("N-5", promised_in=timedelta(days=1))
    lab.make_job("N-6", promised_in=timedelta(days=2))
    user = await log_in("north", "demo-store-pass")
    await user.open("/store")
    (rows,) = user.find(JobRows).elements
    assert [row["job_number"] for row in rows.rows] == ["N-5", "N-6"]
    sent: list[tuple[str, tuple[object, ...]]] = []
    rows.run_method = lambda name, *args, **_: sent.append((name, args))  # type: ignore[method-assign]
    rows.update = lambda: sent.append(("update", ()))  # type: ignore[method-assign]
    floor.send("EDGE-1", "N-6", EventAction.start)
    lab.context.bus.wake()
    await _until(lambda: _rows(user)["N-6"]["state"] == "At Edging (in progress)")
    assert [(name, args[0]["job_number"]) for name, args in sent] == [("place", "N-6")]
    assert [row["job_number"] for row in rows.rows] == ["N-5", "N-6"]  # changed in place
    lab.make_job("N-7", promised_in=timedelta(hours=36))  # just ordered: in its place
    lab.context.bus.wake()
    await _until(lambda: "N-7" in _rows(user))
    assert [row["job_number"] for row in rows.rows] == ["N-5", "N-7", "N-6"]


async def test_the_flags_feed_lists_new_flags_first(lab: Lab, floor: Floor, log_in: LogIn) -> None:
    lab.make_job("N-6")
    lab.make_job("N-7")
    user = await log_in("north", "demo-store-pass")
    await user.open("/store")
    (feed,) = user.find(FlagFeed).elements
    assert feed.entries == []
    floor.send("EDGE-1", "N-6", EventAction.start)
    floor.send("EDGE-1", "N-6", EventAction.breakage, reason_code="B-CHIP")
    lab.context.bus.wake()
    await _until(lambda: len(feed.entries) == 1)
    floor.send("EDGE-1", "N-7", EventAction.hold, reason_code="H-FRAME")
    lab.context.bus.wake()
    await _until(lambda: len(feed.entries) == 2)
    newest, older = feed.entries
    assert (newest["job_number"], newest["reason"]) == (
        "N-7",
        "On hold at Edging: waiting for frame.",
    )
    assert (older["job_number"], older["label"], older["red"]) == ("N-6", "Breakage", True)
    assert newest["flag_id"] != older["flag_id"]  # the browser keys entries by flag


async def test_the_pickup_buttons_mark_the_job_and_bad_clicks_change_nothing(
    lab: Lab, floor: Floor, log_in: LogIn
) -> None:
    north = lab.make_job("N-8")
    south = lab.make_job("S-8", store="SOUTH")
    floor.ship("N-8")
    floor.ship("S-8")
    user = await log_in("north", "demo-store-pass")
    await user.open("/store")
    assert _rows(user)["N-8"]["can_mark_ready"] is True
    (rows,) = user.find(JobRows).elements
    for bad in (
        {"job_id": north, "action": "burn"},
        {"job_id": "N-8", "action": "ready_for_pickup"},
        {"action": "ready_for_pickup"},
    ):
        _click(rows, "mark", bad)
        await user.should_see("That action was not understood; reload the page.")
    _click(rows, "mark", {"job_id": south, "action": "ready_for_pickup"})  # another store's
    await user.should_see(f"no job {south}")
    assert lab.job(south).ready_for_pickup_at is None
    assert lab.job(north).ready_for_pickup_at is None
    _click(rows, "mark", {"job_id": north, "action": "ready_for_pickup"})
    await _until(lambda: _rows(user)["N-8"]["can_mark_delivered"] is True)
    assert _rows(user)["N-8"]["state"] == "Ready for pickup"
    assert lab.job(north).ready_for_pickup_at is not None


def _click(element: ui.element, event: str, args: object) -> None:
    """What the browser sends when the component emits `event` with `args`."""
    (listener_id,) = [
        key for key, listener in element._event_listeners.items() if listener.type == event
    ]
    element._handle_event({"listener_id": listener_id, "args": args})


def _rows(user: User) -> dict[str, dict[str, object]]:
    """The store list's rows as the browser gets them, by job number."""
    (rows,) = user.find(JobRows).elements
    return {str(row["job_number"]): row for row in rows.rows}
