"""The real server in a subprocess, driven by headless Chromium: log-in and store scoping.

Screenshots land in screenshots/ (gitignored) for a human to look at.
"""

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.chromium import chromium, log_in, screenshot
from tests.liveserver import serving_demo_lab

pytestmark = pytest.mark.browser

STORE_COLUMN = "tbody tr td:nth-child(3)"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serving_demo_lab(tmp_path_factory.mktemp("browser-server"), jobs=30) as running:
        yield running.url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as running:
        yield running


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    # The Content-Security-Policy must let every page work: Chromium reports each refusal.
    refused: list[str] = []
    page.on(
        "console",
        lambda message: refused.append(message.text) if "Security Policy" in message.text else None,
    )
    yield page
    context.close()
    assert not refused, refused


def _log_in(page: Page, url: str, username: str, password: str) -> None:
    log_in(page, url, username, password)
    page.wait_for_url(f"{url}/jobs")
    expect(page.locator(STORE_COLUMN).first).to_be_visible()


def test_jobs_without_a_session_redirects_to_login(server: str, page: Page) -> None:
    page.goto(f"{server}/jobs")
    page.wait_for_url(f"{server}/login")
    expect(page.locator("h1")).to_have_text("LensTrack")
    screenshot(page, "login", full_page=True)


def test_a_wrong_password_shows_the_error(server: str, page: Page) -> None:
    log_in(page, server, "north", "wrong-password")
    expect(page.get_by_role("alert")).to_have_text("unknown user name or wrong password")
    expect(page.locator("#username")).to_have_value("north")
    screenshot(page, "login-error", full_page=True)


def test_store_staff_see_only_their_stores_jobs(server: str, page: Page) -> None:
    _log_in(page, server, "north", "demo-store-pass")
    expect(page.locator("header")).to_contain_text("Northside Vision")
    stores = page.locator(STORE_COLUMN).all_inner_texts()
    assert stores and set(stores) == {"NORTH"}, stores
    screenshot(page, "jobs-north", full_page=True)
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(f"{server}/login")
    page.goto(f"{server}/jobs")
    page.wait_for_url(f"{server}/login")


def test_a_manager_sees_every_store(server: str, page: Page) -> None:
    _log_in(page, server, "manager", "demo-manager-pass")
    expect(page.locator("header")).to_contain_text("All stores")
    stores = page.locator(STORE_COLUMN).all_inner_texts()
    assert set(stores) == {"NORTH", "SOUTH"}, stores
    # Each status keeps its own badge colour (the seeded demo has jobs on hold).
    for status, colour in (("on hold", "bg-orange"), ("in progress", "bg-primary")):
        badge = page.locator("tbody .q-badge", has_text=status).first
        expect(badge).to_have_class(re.compile(rf"\b{colour}\b"))
    screenshot(page, "jobs-manager", full_page=True)
    # The page's own response carries the browser's security headers (no framing, …).
    headers = page.request.get(f"{server}/jobs").headers
    assert (headers["x-frame-options"], headers["x-content-type-options"]) == ("DENY", "nosniff")
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
