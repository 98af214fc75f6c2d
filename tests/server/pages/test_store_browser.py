"""The real server and headless Chromium: a breakage at a station turns the store's row red.

Also leaves screenshots of the portal and the WIP board in screenshots/ (gitignored).
"""

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, expect

from tests.chromium import logged_in_page, screenshot
from tests.liveserver import LiveServer, serving_demo_lab, station_at_stage

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    # 36: NORTH then has a shipped job to collect besides the one the demo delivered for its
    # after-sales (server.domain.seed._seed_aftersales).
    with serving_demo_lab(tmp_path_factory.mktemp("store-browser"), jobs=36) as running:
        yield running


def _calm_north_job(http: httpx.Client, server: LiveServer) -> dict[str, Any]:
    """An active NORTH job not on hold and without a red flag, at edging if there is one."""
    http.post(
        f"{server.url}/api/auth/login",
        json={"username": "north", "password": "demo-store-pass"},
    ).raise_for_status()
    jobs = http.get(f"{server.url}/api/jobs", params={"active": "true", "limit": 500}).json()
    calm = [
        job
        for job in jobs["items"]
        if job["status"] != "on_hold"
        and not {"late", "rework", "breakage"} & {flag["kind"] for flag in job["flags"]}
    ]
    assert calm, "the seeded demo has no calm NORTH job"
    return min(calm, key=lambda job: job["current_stage"]["code"] != "edging")


def test_a_breakage_turns_the_row_red_with_its_reason_within_a_second(
    server: LiveServer, browser: Browser
) -> None:
    page = logged_in_page(browser, server.url, "north", "demo-store-pass", 1280, 800)
    page.goto(f"{server.url}/")
    page.wait_for_url(f"{server.url}/store")
    with httpx.Client(timeout=10) as http:
        job = _calm_north_job(http, server)
        stage = job["current_stage"]
        station = station_at_stage()[stage["code"]]
        row = page.locator(f"[data-job-id='{job['id']}']")
        expect(row).not_to_have_attribute("data-tone", "red")
        server.token(station)  # made before the clock starts: the CLI takes a while
        if job["status"] == "queued":
            assert server.send(http, station, job["job_number"], "start").is_success
        sent = server.send(http, station, job["job_number"], "breakage", reason_code="B-CHIP")
        assert sent.is_success, sent.text
    expect(row).to_have_attribute("data-tone", "red", timeout=1_000)
    expect(row.locator("[data-flag=breakage]")).to_contain_text(
        f"Broke at {stage['name']} (chip or crack at edging)", timeout=1_000
    )
    expect(row).to_contain_text("Expected")
    screenshot(page, "store-after-breakage")


def test_the_job_page_shows_the_breakage_history(server: LiveServer, browser: Browser) -> None:
    page = logged_in_page(browser, server.url, "north", "demo-store-pass", 1280, 800)
    page.goto(f"{server.url}/store")
    red = page.locator("[data-tone=red] a").first
    red.click()
    page.wait_for_url(re.compile(r".*/store/jobs/\d+"))
    expect(page.get_by_text("Rework and breakage")).to_be_visible()
    expect(page.locator("[data-section=qc-summary]")).to_be_visible()
    screenshot(page, "store-job")


def test_another_stores_job_is_not_found_and_the_wip_board_is_for_the_lab(
    server: LiveServer, browser: Browser
) -> None:
    manager = logged_in_page(browser, server.url, "manager", "demo-manager-pass", 1280, 800)
    manager.goto(f"{server.url}/")
    manager.wait_for_url(f"{server.url}/wip")
    south_card = manager.locator("[data-job-id]", has_text="SOUTH").first
    south_id = south_card.get_attribute("data-job-id")
    screenshot(manager, "wip")
    north = logged_in_page(browser, server.url, "north", "demo-store-pass", 1280, 800)
    north.goto(f"{server.url}/store/jobs/{south_id}")
    expect(north.get_by_text("Job not found.")).to_be_visible()
    north.goto(f"{server.url}/wip")
    expect(north.get_by_text("This page is not for your role")).to_be_visible()


def test_the_filters_and_the_pickup_button_work_in_the_browser(
    server: LiveServer, browser: Browser
) -> None:
    page = logged_in_page(browser, server.url, "north", "demo-store-pass", 1280, 800)
    page.goto(f"{server.url}/store")
    rows = page.locator("[data-job-id]")
    expect(rows.first).to_be_visible()
    page.get_by_role("button", name="Rework / breakage").click()  # the server sends its rows
    unflagged = page.locator("[data-job-id]:not(:has([data-flag=rework], [data-flag=breakage]))")
    expect(unflagged).to_have_count(0)
    page.get_by_role("button", name="To collect").click()
    ready = page.locator(
        "[data-job-id]:visible", has=page.get_by_role("button", name="Ready for pickup")
    )
    expect(ready.first).to_be_visible()
    job_id = ready.first.get_attribute("data-job-id")
    row = page.locator(f"[data-job-id='{job_id}']")
    row.get_by_role("button", name="Ready for pickup").click()
    expect(row.locator("[data-part=state]")).to_have_text("Ready for pickup", timeout=2_000)
    expect(row.get_by_role("button", name="Delivered to patient")).to_be_visible()
    screenshot(page, "store-to-collect")
    page.get_by_role("button", name="All").click()
    expect(row).to_be_visible()
