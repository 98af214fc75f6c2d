"""Real browser, real server: a QC station with a simulated lensmeter passes one seeded job and
fails another; the server stores the inspection and moves the jobs. Saves screenshots of the
QC states into screenshots/."""

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.liveserver import LiveServer
from tests.station.test_browser import (
    assert_people_read_it,
    job_at,
    open_station,
    page,
    running_station,
    shot,
    sign_in,
    wedge,
)

__all__ = ["page"]  # the Chromium fixture
pytestmark = pytest.mark.browser

LENSMETER = (
    '[lensmeter]\nkind = "simulated_lensmeter"\nauto_measure_seconds = 0.5\n'
    "out_of_tolerance_chance = 0.0\nseed = 7\n"
)


@pytest.fixture
def qc_url(live_server: LiveServer, tmp_path: Path) -> Iterator[str]:
    with running_station(live_server, tmp_path, "QC-1", "final_qc", LENSMETER) as url:
        yield url


def api(server: LiveServer, path: str) -> Any:
    headers = {"Authorization": f"Bearer {server.token('QC-1')}"}
    reply = httpx.get(f"{server.url}/api{path}", headers=headers, timeout=10)
    reply.raise_for_status()
    return reply.json()


def eventually(check: Callable[[], Any], timeout: float = 15.0) -> Any:
    """`check()`'s first truthy result, polled; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout} s")


def measured(page: Page, job: str) -> None:
    wedge(page, job)
    expect(page.get_by_text("Started", exact=True)).to_be_visible(timeout=5_000)
    expect(page.get_by_text("Lensmeter reading")).to_be_visible(timeout=10_000)


def test_qc_pass_and_fail_reach_the_server(
    page: Page, qc_url: str, live_server: LiveServer
) -> None:
    open_station(page, qc_url)
    sign_in(page)

    passed = job_at(live_server, "final_qc", "queued")
    measured(page, passed)
    expect(page.get_by_text("All within tolerance")).to_be_visible()
    assert_people_read_it(page)
    shot(page, "qc-in-tolerance")
    page.get_by_role("button", name="PASS").click()
    expect(page.get_by_text("Completed, next: Shipping")).to_be_visible(timeout=5_000)
    job_id = api(live_server, f"/jobs/lookup/{passed}")["id"]
    eventually(lambda: api(live_server, f"/jobs/{job_id}")["current_stage"]["code"] == "shipping")
    [inspection] = api(live_server, f"/jobs/{job_id}/inspections")
    assert inspection["passed"] and {c["eye"] for c in inspection["checks"]} >= {"R", "L"}

    failed = job_at(live_server, "final_qc", "queued")
    measured(page, failed)
    page.locator(".qc-cell").first.click()  # R SPH: the inspector re-measures by hand
    for key in ("±", "9"):
        page.get_by_role("button", name=key, exact=True).click()
    page.get_by_role("button", name="OK", exact=True).click()
    expect(page.get_by_text("Out of tolerance: R SPH")).to_be_visible(timeout=5_000)
    shot(page, "qc-out-of-tolerance")
    page.get_by_role("button", name="Breakage…").click()
    expect(page.get_by_text("Breakage reason")).to_be_visible()
    shot(page, "qc-breakage-dialog")
    page.keyboard.press("Escape")
    page.get_by_role("button", name="FAIL…").click()
    expect(page.get_by_text("Fail: choose the defects, per eye")).to_be_visible()
    fit = page.locator(".q-dialog .row").filter(has_text="D-FIT")
    fit.get_by_role("button", name="L", exact=True).click()
    expect(page.get_by_text("R failed: choose a defect for R (or the pair)")).to_be_visible()
    expect(page.get_by_role("button", name="Send to rework")).to_be_disabled()
    shot(page, "qc-fail-dialog-uncovered")
    row = page.locator(".q-dialog .row").filter(has_text="D-POWER")
    row.get_by_role("button", name="R", exact=True).click()
    expect(page.get_by_text("Job goes back to")).to_be_visible()
    shot(page, "qc-fail-dialog")
    page.get_by_role("button", name="Send to rework").click()
    expect(page.get_by_text("Sent to rework")).to_be_visible(timeout=5_000)

    card = api(live_server, f"/jobs/lookup/{failed}")
    route = [stage["code"] for stage in card["route_stages"]]
    back_to = "generating" if "generating" in route else route[0]

    def reworked() -> dict[str, Any] | None:
        job = api(live_server, f"/jobs/{card['id']}")
        return job if job["current_stage"]["code"] == back_to else None

    job = eventually(reworked)
    [rework] = [flag for flag in job["flags"] if flag["kind"] == "rework"]
    assert "Failed at Final QC" in rework["reason"] and "ower" in rework["reason"]
    [inspection] = api(live_server, f"/jobs/{card['id']}/inspections")
    assert not inspection["passed"]
    # D-FIT (back to fitting) was chosen first; D-POWER sends the job further back.
    assert [d["code"] for d in inspection["defects"]] == ["D-FIT", "D-POWER"]
