"""The real server, a real station and headless Chromium: a store edits an order before
production, asks for a change after it, a lab manager accepts it on the queue and the station
card shows the new values; a remake links both ways.

Leaves 1024×768 screenshots in screenshots/: job-history, change-queue, remake,
station-card-changed.
"""

import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, expect

from server.models import utcnow
from tests.chromium import logged_in_page, screenshot
from tests.liveserver import LiveServer, serving_demo_lab
from tests.station.test_browser import open_station, running_station, sign_in, wedge

pytestmark = pytest.mark.browser

# A 52 × 40 mm oval, as a tracer sends it: radii in 0.01 mm at 64 equal angles.
TRACE = {
    "right": {
        "radii": [
            round(2600 * 2000 / math.hypot(2000 * math.cos(a), 2600 * math.sin(a)))
            for a in (i * math.tau / 64 for i in range(64))
        ]
    }
}
SURFACED = ("GEN-1", "POL-1", "HC-1", "AR-1")  # the surfaced route up to edging


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with serving_demo_lab(tmp_path_factory.mktemp("changes-browser"), jobs=30) as running:
        yield running


@contextmanager
def _http(server: LiveServer, username: str, password: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as http:
        login = {"username": username, "password": password}
        http.post("/api/auth/login", json=login).raise_for_status()
        yield http


def _order(number: str, *, surfaced: bool) -> dict[str, Any]:
    now = utcnow()
    return {
        "job_number": number,
        "store_code": "NORTH",
        "patient_ref": "P-77",
        "ordered_at": now.isoformat(),
        "promised_at": (now + timedelta(days=3)).isoformat(),
        "lens_design": "SV",
        "lens_material": "CR-39",
        "lens_index": 1.5,
        "surfaced": surfaced,
        "frame": {"type": "full_rim", "a_mm": 52.0, "b_mm": 40.0},
        "right": {"sph": -1.25, "cyl": -0.5, "axis": 90, "mono_pd": 31.5},
        "left": {"sph": -1.0, "mono_pd": 32.0},
        "trace": TRACE,
    }


def _new_job(server: LiveServer, number: str, *, surfaced: bool = False) -> int:
    with _http(server, "manager", "demo-manager-pass") as http:
        response = http.post("/api/jobs", json=_order(number, surfaced=surfaced))
        assert response.status_code == 201, response.text
    return int(response.json()["id"])


def test_an_edit_before_production_shows_old_and_new_in_the_history(
    server: LiveServer, browser: Browser
) -> None:
    job_id = _new_job(server, "E-100")
    page = logged_in_page(browser, server.url, "north", "demo-store-pass")
    page.goto(f"{server.url}/store/jobs/{job_id}")
    page.get_by_role("button", name="Edit order").click()
    page.wait_for_url(f"{server.url}/store/orders/{job_id}/edit")
    expect(page.get_by_text("Edit order E-100")).to_be_visible()
    # The numbers are the lab's: told to the store, not offered to change.
    expect(page.locator("[data-part=job-number-note]")).to_have_text(
        "Job number E-100 · no tray yet"
    )
    expect(page.locator("[data-field=job_number]")).to_have_count(0)
    # The job's traced shape is drawn on the order page, both lenses.
    expect(page.locator("[data-section=frame-shape] svg path")).to_have_count(2)
    screenshot(page, "order-edit-shape")
    sphere = page.get_by_role("textbox", name="right.sph")
    expect(sphere).to_have_value("-1.25")
    sphere.fill("-1.5")
    page.get_by_role("button", name="Save changes").click()
    page.wait_for_url(f"{server.url}/store/jobs/{job_id}")
    history = page.locator("[data-section=history]")
    row = history.locator("tr", has_text="Right SPH")
    expect(row).to_contain_text("-1.25")
    expect(row).to_contain_text("-1.50")
    expect(row).to_contain_text("Nora")  # who changed it (the demo's north store person)
    history.scroll_into_view_if_needed()
    screenshot(page, "job-history")


def test_a_change_after_production_is_accepted_and_the_station_shows_it(
    server: LiveServer, browser: Browser, tmp_path: Path
) -> None:
    job_id = _new_job(server, "E-200", surfaced=True)
    with httpx.Client(timeout=10) as http:
        for station in SURFACED:
            assert server.send(http, station, "E-200", "start").is_success
            assert server.send(http, station, "E-200", "complete").is_success
        assert server.send(http, "EDGE-1", "E-200", "start").is_success
    store = logged_in_page(browser, server.url, "north", "demo-store-pass")
    store.goto(f"{server.url}/store/jobs/{job_id}")
    store.get_by_role("button", name="Request a change").click()
    store.wait_for_url(f"{server.url}/store/orders/{job_id}/edit")
    expect(store.locator("[data-part=edit-note]")).to_contain_text("change request")
    store.get_by_role("textbox", name="right.cyl").fill("-0.75")
    store.get_by_role("button", name="Send change request").click()
    store.wait_for_url(f"{server.url}/store/jobs/{job_id}")
    pending = store.locator("[data-section=history] [data-state=pending]")
    expect(pending).to_contain_text("Right CYL")
    expect(store.get_by_role("button", name="Request a change")).to_be_disabled()

    manager = logged_in_page(browser, server.url, "manager", "demo-manager-pass")
    manager.goto(f"{server.url}/wip")
    manager.get_by_role("link", name="Change requests →").click()
    manager.wait_for_url(f"{server.url}/lab/changes")
    card = manager.locator(f"[data-job-id='{job_id}']")
    expect(card).to_contain_text("Right CYL")
    expect(card.locator("[data-part=return-stage]")).to_contain_text("Cutting / surface generating")
    screenshot(manager, "change-queue")
    card.get_by_role("button", name="Accept").click()
    expect(card).to_have_count(0)
    with _http(server, "north", "demo-store-pass") as http:
        job = http.get(f"/api/jobs/{job_id}").json()
    assert (job["current_stage"]["code"], job["status"], job["rework_count"]) == (
        "generating",
        "queued",
        0,
    )
    assert {eye["eye"]: eye["cyl"] for eye in job["prescription"]}["R"] == -0.75
    # The store's open page follows: the request is accepted, back to generating.
    accepted = store.locator("[data-section=history] [data-state=accepted]")
    expect(accepted).to_contain_text("back to Cutting / surface generating")

    with running_station(server, tmp_path, "GEN-1", "generating") as url:
        station = store.context.browser.new_page(viewport={"width": 1024, "height": 768})
        open_station(station, url)
        sign_in(station)
        wedge(station, "E-200")
        expect(station.get_by_text("E-200", exact=True)).to_be_visible(timeout=5_000)
        rx = station.locator("table.rx")
        expect(rx).to_contain_text("-0.75")
        expect(station.locator("[data-part=changed]").first).to_contain_text("changed")
        expect(station.locator("[data-part=trace] svg")).to_be_visible()
        station.wait_for_timeout(600)  # let the scan flash fade
        screenshot(station, "station-card-changed")


def test_a_remake_of_a_shipped_job_links_both_ways(server: LiveServer, browser: Browser) -> None:
    with _http(server, "north", "demo-store-pass") as http:
        shipped = http.get("/api/jobs", params={"status": "completed", "limit": 1}).json()
    original = shipped["items"][0]
    page = logged_in_page(browser, server.url, "north", "demo-store-pass")
    page.goto(f"{server.url}/store/jobs/{original['id']}")
    page.get_by_role("button", name="Open a remake").click()
    page.locator("[data-part=remake-class]").click()
    page.get_by_role("option", name="Doctor redo").click()
    page.locator("[data-part=remake-reason]").fill("New Rx from the optometrist")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*/store/orders/\d+/edit"))
    # -R1, or the next number when the demo seeding remade this job already.
    heading = page.get_by_text(
        re.compile(rf"^Edit order {re.escape(original['job_number'])}-R\d+$")
    )
    expect(heading).to_be_visible()
    remake_number = heading.inner_text().removeprefix("Edit order ")
    page.get_by_role("link", name="← The job").click()
    links = page.locator("[data-link=remake-of]")
    expect(links).to_contain_text("Remake of")
    expect(links.get_by_role("link", name=original["job_number"])).to_be_visible()
    expect(links).to_contain_text("doctor redo: New Rx from the optometrist")
    screenshot(page, "remake")
    links.get_by_role("link", name=original["job_number"]).click()
    page.wait_for_url(f"{server.url}/store/jobs/{original['id']}")
    expect(page.locator("[data-link=remakes]")).to_contain_text(remake_number)


def test_a_store_asks_to_cancel_and_the_lab_declines_with_its_reason(
    server: LiveServer, browser: Browser
) -> None:
    job_id = _new_job(server, "E-300")
    with httpx.Client(timeout=10) as http:
        assert server.send(http, "EDGE-1", "E-300", "start").is_success
    store = logged_in_page(browser, server.url, "north", "demo-store-pass")
    store.goto(f"{server.url}/store/jobs/{job_id}")
    store.get_by_role("button", name="Ask the lab to cancel").click()
    reason = store.locator("[data-part=cancel-reason]")
    reason.fill("no")
    reason.press("Enter")  # too short: refused in place, nothing sent
    expect(store.get_by_text("3 to 200 characters")).to_be_visible()
    reason.fill("Patient moved away")
    reason.press("Enter")
    pending = store.locator("[data-section=history] [data-state=pending]")
    expect(pending).to_contain_text("Patient moved away")

    manager = logged_in_page(browser, server.url, "manager", "demo-manager-pass")
    manager.goto(f"{server.url}/lab/changes")
    card = manager.locator(f"[data-job-id='{job_id}']")
    expect(card).to_contain_text("The store asks to cancel the order")
    card.locator("[data-part=decline-reason]").fill("Lenses are already cut")
    card.get_by_role("button", name="Decline").click()
    expect(card).to_have_count(0)
    declined = store.locator("[data-section=history] [data-state=declined]")
    expect(declined).to_contain_text("Reason: Lenses are already cut")  # live, no reload
    with _http(server, "north", "demo-store-pass") as http:
        assert http.get(f"/api/jobs/{job_id}").json()["status"] == "in_progress"
