"""The real server and headless Chromium: the WIP board's "Print new tickets" downloads one PDF
of every job never printed, whose codes read back; pressed again, it says there is none."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from drivers.camera import BarcodeDecoder, Symbology
from tests.chromium import chromium, log_in, screenshot
from tests.liveserver import LiveServer, serving_demo_lab
from tests.tickets import job_number, page_count, ticket_image

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with serving_demo_lab(tmp_path_factory.mktemp("ticket-browser"), jobs=6) as running:
        yield running


def test_print_new_tickets_downloads_a_pdf_that_scans(server: LiveServer, tmp_path: Path) -> None:
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.set_default_timeout(15_000)
        log_in(page, server.url, "manager", "demo-manager-pass")
        page.goto(f"{server.url}/wip")
        button = page.get_by_role("button", name="Print new tickets")
        with page.expect_download() as download:
            button.click()
        assert download.value.suggested_filename == "tickets-new.pdf"
        pdf = Path(download.value.path()).read_bytes()
        screenshot(page, "wip-print-new")
        button.click()  # everything is printed now
        expect(page.get_by_text("every active job's ticket is printed already")).to_be_visible()
    pages = page_count(pdf)
    assert pages >= 1
    for number in range(pages):
        image = ticket_image(pdf, number, dpi=200)
        codes = BarcodeDecoder([Symbology.CODE128, Symbology.DATAMATRIX], all_codes=True)
        read = {(code.text, code.symbology) for code in codes.decode(image).codes}
        printed = job_number(pdf, number)
        assert read == {(printed, Symbology.CODE128), (printed, Symbology.DATAMATRIX)}
