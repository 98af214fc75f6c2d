"""The real server and headless Chromium through after-sales, two weeks after the demo's
deliveries: its overdue ticket worked by the store and the lab to resolution, the follow-up
list with a problem opening a ticket, and a patient link opened on a phone.

Leaves screenshots in screenshots/: a ticket page and the lab queue at 1024x768, the
follow-up list, and the patient page at 390x844.
"""

import re
import sqlite3
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, expect

from tests.chromium import logged_in_page, screenshot
from tests.liveserver import LiveServer, serving_demo_lab

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with serving_demo_lab(tmp_path_factory.mktemp("aftersales-browser"), jobs=30) as running:
        yield running


# The demo's after-sales times, each moved two weeks back: deliveries, follow-ups and tickets
# as they stand 14 days on (its ticket overdue on both clocks, a follow-up overdue).
TWO_WEEKS_BACK = {
    "job": ("ready_for_pickup_at", "delivered_at"),
    "follow_up": ("due_at",),
    "aftersales_ticket": ("opened_at", "first_response_due_at", "resolution_due_at"),
    "ticket_message": ("written_at",),
}


def _two_weeks_pass(server: LiveServer) -> None:
    with sqlite3.connect(server.root / "lenstrack.db") as db:
        for table, columns in TWO_WEEKS_BACK.items():
            moved = ", ".join(f"{c} = datetime({c}, '-14 days')" for c in columns)
            db.execute(f"UPDATE {table} SET {moved} WHERE {columns[0]} IS NOT NULL")


def _active_north_job(server: LiveServer) -> int:
    with httpx.Client(base_url=server.url, timeout=10) as http:
        http.post(
            "/api/auth/login", json={"username": "north", "password": "demo-store-pass"}
        ).raise_for_status()
        jobs = http.get("/api/jobs", params={"active": "true", "limit": 1}).json()["items"]
    return jobs[0]["id"]


def test_a_ticket_runs_to_resolution_follow_ups_fall_due_and_a_patient_follows_the_job(
    server: LiveServer, browser: Browser
) -> None:
    _two_weeks_pass(server)
    store = logged_in_page(browser, server.url, "north", "demo-store-pass")
    store.goto(f"{server.url}/store/tickets")
    row = store.locator("[data-section=tickets] tbody tr").first
    expect(row).to_contain_text("Fine scratch on the right lens")
    expect(row).to_contain_text("OVERDUE")
    row.click()
    store.wait_for_url(re.compile(r".*/tickets/\d+$"))
    ticket_url = store.url
    sla = store.locator("[data-section=sla]")
    expect(sla).to_contain_text("First response")
    expect(sla).to_contain_text("Resolution")
    store.locator("[data-part=message]").fill("The patient can bring them in Monday.")
    store.locator("[data-part=send]").click()
    expect(store.locator("[data-section=messages]")).to_contain_text("bring them in Monday")

    lab = logged_in_page(browser, server.url, "qc", "demo-qc-pass")
    lab.goto(f"{server.url}/lab/tickets")
    expect(lab.locator("[data-section=tickets]")).to_contain_text("Fine scratch")
    expect(lab.get_by_text("Open tickets (1, 1 overdue)")).to_be_visible()
    expect(lab.locator("[data-section=first-time-fix]")).to_contain_text("Lens defect")
    screenshot(lab, "aftersales-lab-queue")
    lab.goto(ticket_url)
    lab.locator("[data-part=message]").fill("Please send them back; we will recoat.")
    lab.locator("[data-part=send]").click()
    # Whoever answers an unowned ticket first owns it; the answer stops the first clock.
    expect(lab.locator("[data-section=details]")).to_contain_text("Owner: Quinn Carter")
    lab.locator("[data-part=resolve]").click()
    expect(lab.locator("[data-section=details]")).to_contain_text("Resolved: Adjusted")
    expect(lab.locator("[data-section=sla]")).to_contain_text("missed")  # answered late
    expect(lab.locator("[data-section=sla]")).not_to_contain_text("OVERDUE")
    store.goto(ticket_url)  # a fresh load, at the top of the page
    expect(store.locator("[data-part=reopen]")).to_be_visible()
    screenshot(store, "aftersales-ticket")

    store.goto(f"{server.url}/store/follow-ups")
    follow_ups = store.locator("[data-section=follow-ups] tbody tr")
    expect(follow_ups.first).to_contain_text("OVERDUE")
    screenshot(store, "aftersales-follow-ups")
    store.locator("[data-section=follow-ups] tbody tr button").first.click()
    store.get_by_text("Problem → open a ticket").click()
    store.get_by_label("Note").fill("Headaches when reading")
    store.locator("[data-part=save-follow-up]").click()
    store.wait_for_url(re.compile(r".*/tickets/\d+$"))
    expect(store.locator("[data-section=messages]")).to_contain_text("Headaches when reading")

    job_id = _active_north_job(server)
    store.goto(f"{server.url}/store/jobs/{job_id}/patient-link")
    store.locator("[data-part=make-link]").click()
    expect(store.locator("[data-part=qr] svg")).to_be_visible()
    link = store.locator("[data-part=link]").input_value()
    assert re.fullmatch(rf"{re.escape(server.url)}/p/[A-Za-z0-9_-]{{43}}", link)
    phone = browser.new_context(viewport={"width": 390, "height": 844}).new_page()
    phone.goto(link)
    expect(phone.get_by_text("Your glasses")).to_be_visible()
    expect(phone.locator(".headline")).to_have_text(
        re.compile("Order received by the lab|Being made|On the way to your store")
    )
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390  # fits the phone
    screenshot(phone, "aftersales-patient-page")
    gone = phone.goto(f"{server.url}/p/{'x' * 43}")
    assert gone is not None and gone.status == 404
