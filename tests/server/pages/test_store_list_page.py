"""The store list a page at a time, through NiceGUI's simulated user: "Show more", the filter
buttons and their counts, and live changes placed by the list's order among the loaded rows."""

import asyncio
from collections.abc import Callable
from datetime import timedelta

import pytest
from nicegui.testing.user import User

from server.domain import views
from server.models import EventAction
from server.pages.job_rows import StoreList
from tests.server.conftest import Floor, Lab
from tests.server.pages.conftest import LogIn


async def _until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "the page did not update"
        await asyncio.sleep(0.02)


def _list(user: User) -> StoreList:
    (store_list,) = user.find(StoreList).elements
    return store_list


def _numbers(store_list: StoreList) -> list[str]:
    return [str(row["job_number"]) for row in store_list.rows]


def _emit(store_list: StoreList, event: str, args: object = None) -> None:
    """What the browser sends when the component emits `event` with `args`."""
    (listener_id,) = [
        key for key, listener in store_list._event_listeners.items() if listener.type == event
    ]
    store_list._handle_event({"listener_id": listener_id, "args": args})


async def test_a_change_beyond_the_loaded_rows_waits_for_show_more_which_adds_the_rest_once(
    lab: Lab, floor: Floor, log_in: LogIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(views, "STORE_PAGE_SIZE", 3)
    for day in range(1, 7):
        lab.make_job(f"N-{day}", promised_in=timedelta(days=day))
    user = await log_in("north", "demo-store-pass")
    await user.open("/store")
    store_list = _list(user)
    assert _numbers(store_list) == ["N-1", "N-2", "N-3"]
    assert store_list.props["more"] is True
    floor.send("EDGE-1", "N-6", EventAction.start)  # after the loaded rows: not shown
    floor.send("EDGE-1", "N-5", EventAction.start)
    floor.send("EDGE-1", "N-5", EventAction.breakage, reason_code="B-CHIP")  # red: on top
    lab.context.bus.wake()
    await _until(lambda: "N-5" in _numbers(store_list))
    assert _numbers(store_list) == ["N-5", "N-1", "N-2", "N-3"]
    await _until(lambda: store_list.props["counts"]["rework"] == 1)
    assert store_list.props["counts"] == {"all": 6, "late": 0, "rework": 1, "ready": 0}
    _emit(store_list, "more")
    await _until(lambda: len(store_list.rows) == 6)
    assert _numbers(store_list) == ["N-5", "N-1", "N-2", "N-3", "N-4", "N-6"]
    assert store_list.props["more"] is False
    assert store_list.rows[-1]["state"] == "At Edging (in progress)"


async def test_a_filter_reads_its_own_rows_and_a_collected_job_leaves_them(
    lab: Lab, floor: Floor, log_in: LogIn
) -> None:
    shipped = lab.make_job("N-1")
    floor.ship("N-1")
    lab.make_job("N-2")
    lab.make_job("N-3")
    floor.send("EDGE-1", "N-3", EventAction.start)
    floor.send("EDGE-1", "N-3", EventAction.breakage, reason_code="B-CHIP")
    lab.make_job("S-1", store="SOUTH")
    floor.ship("S-1")
    user = await log_in("north", "demo-store-pass")
    await user.open("/store")
    store_list = _list(user)
    assert _numbers(store_list) == ["N-3", "N-1", "N-2"]  # red, to collect, in the lab
    assert store_list.props["counts"] == {"all": 3, "late": 0, "rework": 1, "ready": 1}
    _emit(store_list, "view", "ready")
    await _until(lambda: store_list.props["view"] == "ready")
    assert _numbers(store_list) == ["N-1"]
    _emit(store_list, "view", "nonsense")  # not a filter: nothing changes
    await asyncio.sleep(0.2)
    assert (_numbers(store_list), store_list.props["view"]) == (["N-1"], "ready")
    _emit(store_list, "mark", {"job_id": shipped, "action": "ready_for_pickup"})
    await _until(lambda: store_list.rows[0]["state"] == "Ready for pickup")
    _emit(store_list, "mark", {"job_id": shipped, "action": "delivered"})
    await _until(lambda: _numbers(store_list) == [])  # collected: off the list
    await _until(lambda: store_list.props["counts"]["all"] == 2)
    assert store_list.props["counts"] == {"all": 2, "late": 0, "rework": 1, "ready": 0}
    _emit(store_list, "view", "all")
    await _until(lambda: store_list.props["view"] == "all")
    assert _numbers(store_list) == ["N-3", "N-2"]
