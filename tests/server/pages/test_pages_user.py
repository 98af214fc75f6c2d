"""The store portal and the WIP board through NiceGUI's simulated user (no browser)."""

import asyncio
from collections.abc import Callable

from nicegui import ui
from nicegui.testing.user import User

from server.domain.views import StoreFilter
from server.models import EventAction
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
    await user.should_see("N-1")
    await user.should_not_see("S-1")


async def test_a_station_event_updates_the_open_store_page(
    lab: Lab, floor: Floor, log_in: LogIn
) -> None:
    lab.make_job("N-2")
    user = await log_in("north", "demo-store-pass")
    await user.open("/store")
    await user.should_see("At Edging (queued)")
    floor.send("EDGE-1", "N-2", EventAction.start)
    floor.send("EDGE-1", "N-2", EventAction.breakage, reason_code="B-CHIP")
    lab.context.bus.wake()  # the floor writes straight to the database, not through a request
    await user.should_see("Broke at Edging (chip or crack at edging)")
    await user.should_see("Breakage")


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


async def test_a_changed_job_is_updated_in_its_row_and_a_filtered_out_row_stays_hidden(
    lab: Lab, floor: Floor, log_in: LogIn
) -> None:
    lab.make_job("N-5")
    user = await log_in("north", "demo-store-pass")
    await user.open("/store")
    await user.should_see("At Edging (queued)")
    (state,) = user.find("At Edging (queued)").elements
    row = next(element for element in state.ancestors() if "data-job-id" in element.props)
    before = {element.id for element in row.descendants()}
    floor.send("EDGE-1", "N-5", EventAction.start)
    lab.context.bus.wake()
    await _until(lambda: state.text == "At Edging (in progress)")  # the same label, new text
    assert {element.id for element in row.descendants()} == before  # nothing rebuilt
    (toggle,) = user.find(ui.toggle).elements
    toggle.set_value(StoreFilter.late)
    await user.should_not_see("N-5")
    floor.send("EDGE-1", "N-5", EventAction.breakage, reason_code="B-CHIP")
    lab.context.bus.wake()
    await _until(lambda: row.props.get("data-tone") == "red")
    assert "hidden" in row.classes  # the new tone did not drop the filter's "hidden"
    toggle.set_value(StoreFilter.rework)
    await user.should_see("Broke at Edging (chip or crack at edging)")
    assert "hidden" not in row.classes


async def test_the_flags_feed_adds_new_flags_and_keeps_the_listed_ones(
    lab: Lab, floor: Floor, log_in: LogIn
) -> None:
    lab.make_job("N-6")
    lab.make_job("N-7")
    user = await log_in("north", "demo-store-pass")
    await user.open("/store")
    await user.should_see("No flags raised.")
    floor.send("EDGE-1", "N-6", EventAction.start)
    floor.send("EDGE-1", "N-6", EventAction.breakage, reason_code="B-CHIP")
    lab.context.bus.wake()
    await user.should_see("Broke at Edging (chip or crack at edging)")
    await user.should_not_see("No flags raised.")
    (first,) = _feed_links(user)
    floor.send("EDGE-1", "N-7", EventAction.hold, reason_code="H-FRAME")
    lab.context.bus.wake()
    await user.should_see("On hold at Edging: waiting for frame.")
    second, kept = _feed_links(user)
    assert (second.text, kept.text) == ("N-7", "N-6")  # newest first
    assert kept is first  # the listed entry stayed, only the new one was built


def _feed_links(user: User) -> list[ui.link]:
    """The job links in the flags feed (the page's only card), top to bottom."""
    (card,) = user.find(ui.card).elements
    return [element for element in card.descendants() if isinstance(element, ui.link)]
