"""Reprinting the shown job's ticket at a station: the server's PDF goes to the printer command
(a fake one here, writing what it reads to a file), or is saved and offered to the browser;
offline, or with a broken printer, the operator is told and nothing is lost.

The browser test drives a real station against a real server and saves the 1024×768
screenshot of the card with its Reprint button (screenshots/station-reprint.png)."""

import asyncio
import sys
from pathlib import Path

import httpx
import pytest
from nicegui.testing import User
from playwright.sync_api import expect

from server.tickets import TicketJob, render_tickets
from station.app import StationApp
from station.settings import PrinterSettings
from tests.chromium import chromium
from tests.liveserver import LiveServer
from tests.server.payloads import job_body
from tests.station.fakes import FakeApi
from tests.station.stations import (
    FAST_RETRIES,
    fake_station,
    started_on_screen,
    station_settings,
)
from tests.station.test_browser import open_station, running_station, shot, sign_in, wedge

PDF = render_tickets([TicketJob(job_number="J1", store_code="NORTH", store_name="North", due="")])


class TicketApi(FakeApi):
    """The fake server, which also draws tickets (job id 1 is J1)."""

    def __init__(self) -> None:
        super().__init__()
        self.tickets_served = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.online and request.url.path == "/api/jobs/1/ticket.pdf":
            self.tickets_served += 1
            return httpx.Response(200, content=PDF, headers={"content-type": "application/pdf"})
        return super().__call__(request)


def fake_printer(folder: Path, exit_code: int = 0) -> list[str]:
    """A print command like `lp`: reads the PDF on stdin (here into printed.pdf)."""
    script = folder / "printer.py"
    script.write_text(
        "import sys\n"
        f"open({str(folder / 'printed.pdf')!r}, 'wb').write(sys.stdin.buffer.read())\n"
        f"print('lp: printer TICKETS is jammed', file=sys.stderr)\nsys.exit({exit_code})\n"
    )
    return [sys.executable, str(script)]


PRINTING = 100  # should_see attempts, 0.1 s apart: the printer command is a Python process

PRINTERS = {
    "fake": lambda folder: PrinterSettings(command=fake_printer(folder)),
    "failing": lambda folder: PrinterSettings(command=fake_printer(folder, exit_code=1)),
    "none": lambda folder: PrinterSettings(),
}


@pytest.fixture
def api() -> TicketApi:
    return TicketApi()


@pytest.fixture
async def station(api: TicketApi, tmp_path: Path, request: pytest.FixtureRequest) -> StationApp:
    """A station whose printer is PRINTERS[param] (default: the fake printer)."""
    printer = PRINTERS[getattr(request, "param", "fake")](tmp_path)
    settings = station_settings(
        tmp_path / "data", repeat_scan_seconds=0, uplink=FAST_RETRIES, printer=printer
    )
    return await fake_station(api, settings)


async def test_reprint_sends_the_servers_ticket_to_the_printer(
    user: User, station: StationApp, api: TicketApi, tmp_path: Path
) -> None:
    await started_on_screen(user, station, "J1")
    user.find(marker="reprint").click()
    await user.should_see("Ticket J1 sent to the printer", retries=PRINTING)
    assert (tmp_path / "printed.pdf").read_bytes() == PDF
    assert api.tickets_served == 1


async def test_offline_it_says_so_and_loses_nothing(
    user: User, station: StationApp, api: TicketApi, tmp_path: Path
) -> None:
    await started_on_screen(user, station, "J1")
    api.online = False
    await station.flow.scan("J1")  # completed offline: queued
    await user.should_see("Completed")
    outbox = station.outbox.counts()
    assert outbox["queued"] >= 1
    user.find(marker="reprint").click()
    await user.should_see("Offline: the ticket of J1 comes from the server")
    assert not (tmp_path / "printed.pdf").exists()
    assert station.outbox.counts() == outbox  # the queued scan is still there, nothing added
    assert station.flow.screen.card is not None  # the card stays on screen
    api.online = True
    user.find(marker="reprint").click()
    await user.should_see("Ticket J1 sent to the printer", retries=PRINTING)


@pytest.mark.parametrize("station", ["failing"], indirect=True)
async def test_a_printer_that_refuses_is_named(user: User, station: StationApp) -> None:
    await started_on_screen(user, station, "J1")
    user.find(marker="reprint").click()
    await user.should_see(
        "The printer refused the ticket: lp: printer TICKETS is jammed", retries=PRINTING
    )


@pytest.mark.parametrize("station", ["none"], indirect=True)
async def test_without_a_printer_the_ticket_is_saved_and_offered(
    user: User, station: StationApp, tmp_path: Path
) -> None:
    await started_on_screen(user, station, "J1")
    download = asyncio.create_task(user.download.next(timeout=10))
    user.find(marker="reprint").click()
    await user.should_see("Ticket J1 saved: open it to print")
    assert (tmp_path / "data" / "tickets" / "ticket-J1.pdf").read_bytes() == PDF
    assert (await download).content == PDF  # the browser is given the file


@pytest.mark.browser
def test_a_station_reprints_the_ticket_the_server_draws(
    live_server: LiveServer, tmp_path: Path
) -> None:
    """On the station tests' shared server (a lab of its own costs a seeding and a server
    start): it orders the job it needs."""
    with httpx.Client(base_url=live_server.url, timeout=30) as http:
        http.post("/api/auth/login", json={"username": "manager", "password": "demo-manager-pass"})
        ordered = http.post("/api/jobs", json=job_body("J7001", tray_number="T71"))
        assert ordered.status_code == 201, ordered.text  # stock single vision: queued at edging
    printer = f"[printer]\ncommand = {fake_printer(tmp_path)!r}\n".replace("'", '"')
    with (
        running_station(live_server, tmp_path, "EDGE-1", "edging", extra_toml=printer) as url,
        chromium() as browser,
    ):
        page = browser.new_page(viewport={"width": 1024, "height": 768})
        page.set_default_timeout(10_000)
        open_station(page, url)
        sign_in(page)
        started = page.get_by_text("Started", exact=True)
        for _ in range(3):  # on a saturated machine CDP may space the keys too far for a scan
            wedge(page, "J7001")
            expect(started.or_(page.get_by_text("Unknown job or tray"))).to_be_visible()
            if started.is_visible():
                break
        expect(started).to_be_visible()
        page.get_by_role("button", name="Reprint ticket").click()
        expect(page.get_by_text("Ticket J7001 sent to the printer")).to_be_visible(timeout=10_000)
        shot(page, "reprint")
    ticket = f"{live_server.url}/api/jobs/{ordered.json()['id']}/ticket.pdf"
    served = httpx.get(ticket, headers={"Authorization": f"Bearer {live_server.token('EDGE-1')}"})
    assert (tmp_path / "printed.pdf").read_bytes() == served.content
