"""The KPI dashboards in a real browser, on a demo lab with two weeks of bulk history: a number
drills down to the jobs behind it and on to a job, a table exports, and a store's staff see
their own store's figures only. Screenshots land in screenshots/ for a human to look at."""

import csv
import io
import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.chromium import chromium, logged_in_page, screenshot
from tests.liveserver import LiveServer

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = LiveServer(tmp_path_factory.mktemp("kpi-pages"))
    server.cli("seed-demo", "--jobs", "150", "--bulk", "14")
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def test_dashboards_drill_down_export_and_store_scope(server: str) -> None:
    with chromium() as browser:
        page = logged_in_page(browser, server, "manager", "demo-manager-pass", 1440, 900)
        page.goto(f"{server}/lab/kpis?period=month")
        expect(page.get_by_text("Finished jobs", exact=True)).to_be_visible()
        finished = page.get_by_role("link", name=re.compile(r"^\d+$")).first
        count = int(finished.inner_text())
        assert count > 0  # a month of history finished jobs
        expect(page.get_by_role("link", name="Statistical process control →")).to_be_visible()
        expect(page.locator("canvas").first).to_be_visible()  # the charts drew
        _charts_drawn_screenshot(page, "kpi-lab")
        export = page.request.get(f"{server}/api/kpis/export/stores.csv?period=month")
        rows = list(csv.reader(io.StringIO(export.text().lstrip("\ufeff"))))
        assert rows[0][0] == "store" and {row[0] for row in rows[1:]} == {"NORTH", "SOUTH"}
        finished.click()
        page.wait_for_url(re.compile(r"/kpis/jobs\?"))
        expect(page.get_by_text(f"({min(count, 1000)})")).to_be_visible()
        screenshot(page, "kpi-drill")
        job = page.get_by_role("link", name=re.compile(r"^J\d+")).first
        number = job.inner_text()
        job.click()
        page.wait_for_url(re.compile(r"/store/jobs/\d+$"))
        expect(page.get_by_text(number).first).to_be_visible()

        store = logged_in_page(browser, server, "north", "demo-store-pass", 1440, 900)
        store.goto(f"{server}/store/kpis?period=month&store=SOUTH")
        expect(
            store.get_by_text("Cannot show these figures · store: no store SOUTH")
        ).to_be_visible()
        store.goto(f"{server}/store/kpis?period=week")
        expect(store.get_by_text("Stations")).to_have_count(0)  # the floor is the lab's
        _charts_drawn_screenshot(store, "kpi-store-week")
        store.goto(f"{server}/store/kpis?period=month")
        store.get_by_role("link", name=re.compile(r"^\d+$")).first.click()
        store.wait_for_url(re.compile(r"/kpis/jobs\?"))
        stores = store.locator("table tr td:nth-child(2)").all_inner_texts()
        assert stores and set(stores) == {"NORTH"}, stores
        screenshot(store, "kpi-store-drill")


def _charts_drawn_screenshot(page: Page, name: str) -> None:
    """A whole dashboard once its charts have drawn: ECharts animates their first drawing for a
    second (a screenshot at once caught bars half grown)."""
    page.wait_for_timeout(1500)
    screenshot(page, name, full_page=True)
