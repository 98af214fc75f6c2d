"""The real server and headless Chromium: a store person types a whole order with the keyboard
alone; a wrong Rx is refused field by field, a warning asks for a second submit, and the
corrected order is created with the job number the lab assigns. The lab's form proposes the
next job number and takes a tray.

Leaves order-form.png, order-form-errors.png, order-created.png and order-form-lab.png in
screenshots/.
"""

import re
from collections.abc import Iterator
from datetime import datetime
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from tests.chromium import logged_in_page, screenshot
from tests.liveserver import LiveServer, serving_demo_lab

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with serving_demo_lab(tmp_path_factory.mktemp("order-browser"), jobs=10) as running:
        yield running


def _field(page: Page, path: str) -> Locator:
    """The whole field (input, label, error or warning below it) of an order field path."""
    return page.locator(".q-field", has=page.locator(f"[data-field='{path}']"))


def order_field(page: Page, path: str) -> Locator:
    return page.locator(f"[data-field='{path}']")


def press_keys(page: Page, *steps: str) -> None:
    """Each step is typed, except key names in angle brackets: "<Tab>", "<Control+a>"."""
    for step in steps:
        if step.startswith("<") and step.endswith(">"):
            page.keyboard.press(step[1:-1])
        else:
            page.keyboard.type(step)


def test_an_order_typed_without_the_mouse_is_refused_field_by_field_then_created(
    server: LiveServer, browser: Browser
) -> None:
    page = logged_in_page(browser, server.url, "north", "demo-store-pass")
    page.goto(f"{server.url}/store/orders/new")
    # The lab assigns a store's job number: no number or tray to type, the patient first.
    expect(order_field(page, "patient_ref")).to_be_focused()
    note = page.locator("[data-part=job-number-note]")
    expect(note).to_have_text("Job number: assigned when you submit")
    for path in ("job_number", "tray_number"):
        expect(order_field(page, path)).to_have_count(0)
    expect(page.locator("[data-part=proposal]")).to_contain_text("Proposed")

    # A select takes a typed letter as a native one does: "p" is Progressive, Tab moves on.
    press_keys(page, "P-4711", "<Tab>", "<Tab>", "p", "<Tab>")
    expect(order_field(page, "right.add")).to_be_enabled()  # ADD opens for a progressive
    press_keys(page, "c", "<Tab>", "<Space>", "<Tab>", "<Tab>")  # CR-39, surfaced, not rush
    press_keys(page, "<Space>", "<Tab>", "<Space>", "<Tab>", "<Tab>", "<Tab>", "<Tab>")  # HC, AR
    press_keys(page, "c")  # the catalogue's classic rectangle: its sizes filled in
    expect(order_field(page, "frame.a_mm")).to_have_value("54")
    expect(order_field(page, "frame.a_mm")).to_be_disabled()
    press_keys(page, "<Tab>", "<Tab>")  # past "plus cylinder" to the R row
    expect(order_field(page, "right.sph")).to_be_focused()
    # R: SPH off the step, a cylinder without its axis, no add on a progressive.
    press_keys(page, "-1.13", "<Tab>", "-0.50", "<Tab>", "<Tab>", "<Tab>", "<Tab>", "<Tab>")
    press_keys(page, "31", "<Tab>", "18", "<Tab>")
    # L: a PD of 10 mm is no one's.
    press_keys(page, "-1.00", "<Tab>", "<Tab>", "<Tab>", "2.00", "<Tab>", "<Tab>", "<Tab>")
    press_keys(page, "10", "<Tab>", "18", "<Tab>", "Rimless look, handle with care", "<Tab>")
    expect(order_field(page, "promised_at")).to_be_focused()
    screenshot(page, "order-form")  # the whole order typed
    press_keys(page, "<Enter>")  # Enter in the last field submits

    refusals = {
        "right.sph": "must be a multiple of 0.125 D",
        "right.axis": "axis (1–180) is required when cyl is not 0",
        "right.add": "PAL lenses need an add",
        "left.mono_pd": "greater than or equal to 20",
    }
    for path, message in refusals.items():
        expect(_field(page, path)).to_contain_text(message)
    expect(order_field(page, "right.sph")).to_be_focused()  # the first wrong field
    expect(page.locator("[data-part=created]")).to_have_count(0)
    screenshot(page, "order-form-errors")

    # Corrected from the keyboard; L sphere now 3.25 D from R: a warning, not a refusal.
    press_keys(page, "<Control+a>", "-1.25", "<Tab>", "<Tab>", "90", "<Tab>", "2.00")
    press_keys(page, *["<Tab>"] * 5, "<Control+a>", "-4.50", *["<Tab>"] * 6, "<Control+a>", "32")
    press_keys(page, "<Control+Enter>")
    expect(_field(page, "left.sph")).to_contain_text("R/L differ by 3.25 D")
    for path in refusals:
        expect(_field(page, path)).not_to_have_class("q-field--error")
    expect(page.locator("[data-part=created]")).to_have_count(0)  # not until confirmed
    press_keys(page, "<Control+Enter>")

    created = page.locator("[data-part=created]")
    job_number = "J100010"  # the demo's highest number (10 jobs) plus one
    expect(created).to_contain_text(f"Created {job_number} · promised")
    job_link = created.get_by_role("link", name="Open the job")
    href = job_link.get_attribute("href")
    assert href is not None and href.startswith("/store/jobs/")
    job_id = int(href.rsplit("/", 1)[1])
    expect(created.get_by_role("link", name="Print its ticket")).to_have_attribute(
        "href", f"/api/jobs/{job_id}/ticket.pdf"
    )
    # Ready for the next order: focus back at the top.
    expect(order_field(page, "patient_ref")).to_be_focused()
    expect(order_field(page, "patient_ref")).to_have_value("")
    expect(order_field(page, "right.sph")).to_have_value("")
    screenshot(page, "order-created")

    with httpx.Client(base_url=server.url, timeout=10) as http:
        logged_in = http.post(
            "/api/auth/login", json={"username": "north", "password": "demo-store-pass"}
        )
        logged_in.raise_for_status()
        job = http.get(f"/api/jobs/{job_id}").json()
    assert (job["job_number"], job["tray_number"], job["store_code"]) == (
        job_number,
        None,  # the lab puts it in a tray
        "NORTH",
    )
    assert (job["lens_design"], job["lens_material"], job["lens_index"]) == ("PAL", "CR-39", 1.5)
    assert job["surfaced"] is True and job["priority"] == "regular"
    assert job["treatments"] == ["hard_coat", "ar"]
    assert job["frame"]["code"] == "F-RECT54" and job["frame"]["a_mm"] == 54
    eyes = {eye["eye"]: eye for eye in job["prescription"]}
    assert (eyes["R"]["sph"], eyes["R"]["cyl"], eyes["R"]["axis"], eyes["R"]["add"]) == (
        -1.25,
        -0.5,
        90,
        2.0,
    )
    assert (eyes["L"]["sph"], eyes["L"]["mono_pd"]) == (-4.5, 32.0)
    promised = datetime.fromisoformat(job["promised_at"]).astimezone(ZoneInfo("Europe/Berlin"))
    assert (promised.hour, promised.minute) == (17, 0)  # the end of a working day, lab time


def test_the_lab_is_proposed_the_next_job_number_and_gives_a_tray(
    server: LiveServer, browser: Browser
) -> None:
    page = logged_in_page(browser, server.url, "manager", "demo-manager-pass")
    page.goto(f"{server.url}/store/orders/new")
    number = order_field(page, "job_number")
    expect(number).to_be_focused()
    expect(number).to_have_value(re.compile(r"^J1000\d\d$"))  # the highest number plus one
    expect(page.locator("[data-part=job-number-note]")).to_have_count(0)
    press_keys(page, "<Tab>", "7702")
    expect(order_field(page, "tray_number")).to_have_value("7702")
    screenshot(page, "order-form-lab")
