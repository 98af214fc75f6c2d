"""The store portal and the WIP board through NiceGUI's simulated user (no browser)."""

from nicegui import ui
from nicegui.testing.user import User

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
