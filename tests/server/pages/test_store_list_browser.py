"""A store with a few hundred open jobs in headless Chromium: the first page, "Show more" by
keyboard, a filter button with its count. Leaves screenshots/store-list-*.png."""

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from server.domain import views
from tests.chromium import logged_in_page, screenshot
from tests.liveserver import LiveServer

pytestmark = pytest.mark.browser
TONES = [tone.value for tone in views.TONE_ORDER]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    # Ten days of a 60-job-a-day lab straight to the tables: ~200 open jobs a store.
    running = LiveServer(tmp_path_factory.mktemp("store-list"))
    running.cli("seed-demo", "--jobs", "600", "--bulk", "10")
    running.start()
    try:
        yield running
    finally:
        running.stop()


def _tones(page: Page) -> list[str]:
    return page.locator("[data-job-id]").evaluate_all("rows => rows.map(row => row.dataset.tone)")


def _count(page: Page, label: str) -> int:
    text = page.get_by_role("button", name=re.compile(rf"^{re.escape(label)} \(\d+\)$"))
    found = re.search(r"\((\d+)\)$", text.inner_text().strip())
    assert found, text.inner_text()
    return int(found.group(1))


def test_show_more_by_keyboard_and_a_filter_with_its_count(
    server: LiveServer, browser: Browser
) -> None:
    page = logged_in_page(browser, server.url, "north", "demo-store-pass", 1280, 800)
    page.goto(f"{server.url}/store")
    rows = page.locator("[data-job-id]")
    expect(rows).to_have_count(views.STORE_PAGE_SIZE)
    total = _count(page, "All")
    assert total > 2 * views.STORE_PAGE_SIZE, "the seeded store has too few open jobs"
    tones = _tones(page)
    assert tones == sorted(tones, key=TONES.index)
    more = page.get_by_role("button", name="Show more")
    for shown in range(
        2 * views.STORE_PAGE_SIZE, total + views.STORE_PAGE_SIZE, views.STORE_PAGE_SIZE
    ):
        more.focus()  # reached and pressed from the keyboard
        page.keyboard.press("Enter")
        expect(rows).to_have_count(min(shown, total))
    expect(more).to_have_count(0)  # every row is shown
    ids = rows.evaluate_all("rows => rows.map(row => row.dataset.jobId)")
    assert len(set(ids)) == total
    tones = _tones(page)
    assert tones == sorted(tones, key=TONES.index)

    late = _count(page, "Late")
    assert late > 0
    page.get_by_role("button", name=re.compile(r"^Late \(")).click()
    expect(rows).to_have_count(min(late, views.STORE_PAGE_SIZE))
    flagged = rows.evaluate_all("rows => rows.map(row => !!row.querySelector('[data-flag=late]'))")
    assert all(flagged)
    page.mouse.move(0, 0)
    screenshot(page, "store-list-late")
    page.get_by_role("button", name=re.compile(r"^To collect \(")).click()
    expect(
        rows.first.get_by_role("button", name=re.compile("Ready for pickup|Delivered"))
    ).to_be_visible()
    screenshot(page, "store-list-to-collect")
