"""An order from the store to the lab floor, every part real: the store person types a stock
single-vision order without the mouse (headless Chromium on `lenstrack serve`), the lab prints
its ticket (`GET /api/jobs/{id}/ticket.pdf`, rasterised by PDFium), and two station processes
read that ticket:

- EDGE-1 (edging, the route's first stage) by wand: the ticket's Code 128 as our decoder reads
  it, typed into the station page as a keyboard-wedge burst; a first scan starts the job, a
  second completes it;
- FIT-1 (fitting, the next stage) by camera: a video of the ticket turned 30° in camera
  frames, read by the station's `[[scanners]] kind = "camera"` input after the operator signed
  in by badge; it starts the job there.

The server's timeline has each of those events from its station. Leaves e2e-station-wand.png
and e2e-station-camera.png in screenshots/.
"""

import re
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
from playwright.sync_api import Browser, Page, expect

from drivers.camera import BarcodeDecoder, Symbology
from drivers.camera.synth import FRAME_SIZE, Level, camera_frame
from tests.chromium import chromium, log_in, screenshot
from tests.liveserver import PROJECT_ROOT, LiveServer, serving_demo_lab
from tests.server.pages.test_order_form_browser import order_field, press_keys
from tests.station.test_browser import open_station, running_station, wedge
from tests.tickets import job_number, rotated, ticket_image

pytestmark = pytest.mark.browser

TICKET_DPI = 200
MODULE_PX = 0.5 / 25.4 * TICKET_DPI  # the ticket's Code 128 module (0.5 mm) at TICKET_DPI
CAMERA_FPS = 10.0
# Shown for 1.2 s, less than the camera's 2 s debounce and the station's 2 s repeat window:
# one ticket passing under the camera is one scan (a second would complete the job).
TICKET_FRAMES = 12
# After the ticket, an empty table long enough for the test to see the start before the
# video file ends (the camera replays a file that ended; the test deletes it first).
TAIL_FRAMES = int(30 * CAMERA_FPS)
EVENT_TIMEOUT = 30.0  # the station's outbox to the server's timeline, on a loaded machine
# A refusal naming what the station read: a mangled wedge burst (a key lost or split off on
# a saturated machine, when CDP spaces keys past the burst gap) reads as another code.
HELLO = re.compile(r"^Hello Tom Baker\b")  # B1001's badge signed in
STARTED = re.compile(r"^Started$")
COMPLETED = re.compile(r"^Completed\b")
MISREAD = re.compile(r"(?:Unknown job or tray|Scan your badge first \(read) (\S+?)\)?$")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The demo lab with one job (quick to seed); the test orders the one it follows. (Without
    any, the form proposes J1: shorter than a wedge burst's 3 keys, so typing, not a scan.)"""
    with serving_demo_lab(tmp_path_factory.mktemp("order-to-station"), jobs=1) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as running:
        yield running


def first_station_at_stage() -> dict[str, str]:
    """The demo lab's first station at each stage (EDGE-1, FIT-1…: people work those)."""
    config = tomllib.loads((PROJECT_ROOT / "config" / "lab.example.toml").read_text())
    stations: dict[str, str] = {}
    for station in config["stations"]:
        stations.setdefault(station["stage"], station["name"])
    return stations


def new_page(browser: Browser) -> Page:
    page = browser.new_context(viewport={"width": 1024, "height": 768}).new_page()
    page.set_default_timeout(15_000)
    return page


def order_by_keyboard(page: Page, server: LiveServer) -> tuple[int, str]:
    """A store person enters a stock single-vision order with the keyboard alone; gives the
    new job's id and the number the lab assigned it."""
    log_in(page, server.url, "north", "demo-store-pass")
    page.goto(f"{server.url}/store/orders/new")
    expect(order_field(page, "patient_ref")).to_be_focused()  # the lab numbers store orders
    # Patient; job type "new" and lens design SV as proposed; material CR-39, not surfaced,
    # not rush, hard coat only; the catalogue's classic rectangle frame.
    press_keys(page, "P-2002", "<Tab>", "<Tab>", "<Tab>", "c", "<Tab>")
    press_keys(page, "<Tab>", "<Tab>", "<Space>", *["<Tab>"] * 5, "c")
    expect(order_field(page, "frame.a_mm")).to_have_value("54")
    press_keys(page, "<Tab>", "<Tab>")  # past "plus cylinder" to the R row
    expect(order_field(page, "right.sph")).to_be_focused()
    # SV: no ADD (disabled, out of the tab order).
    press_keys(page, "-1.00", "<Tab>", "-0.25", "<Tab>", "180", "<Tab>", "<Tab>", "<Tab>", "31")
    expect(order_field(page, "right.mono_pd")).to_be_focused()
    press_keys(page, "<Tab>", "<Tab>", "-1.25", *["<Tab>"] * 5, "31", "<Tab>")
    press_keys(page, "<Tab>", "Ticket to the floor test")
    expect(order_field(page, "special_instructions")).to_be_focused()
    press_keys(page, "<Control+Enter>")
    created = page.locator("[data-part=created]")
    expect(created).to_contain_text(re.compile(r"Created J\d{6} · promised"))
    number = re.search(r"Created (J\d{6})", created.inner_text())
    href = created.get_by_role("link", name="Print its ticket").get_attribute("href")
    assert href is not None and number is not None
    found = re.fullmatch(r"/api/jobs/(\d+)/ticket\.pdf", href)
    assert found, href
    return int(found[1]), number[1]


@contextmanager
def manager(server: LiveServer) -> Iterator[httpx.Client]:
    """A lab manager's session: the lab prints tickets and reads timelines."""
    with httpx.Client(base_url=server.url, timeout=30) as http:
        signed_in = http.post(
            "/api/auth/login", json={"username": "manager", "password": "demo-manager-pass"}
        )
        signed_in.raise_for_status()
        yield http


def wand_read(image: np.ndarray) -> str:
    """What a wand scanner reads off the printed ticket: its Code 128."""
    codes = BarcodeDecoder([Symbology.CODE128]).decode(image).codes
    assert len(codes) == 1, codes
    return codes[0].text


def scan(page: Page, code: str, shows: re.Pattern[str]) -> None:
    """A wedge burst of `code` until the station's banner shows `shows`; typed again (three
    times at most) only when the station refused another code than the one typed: a mangled
    burst. A refusal of `code` itself fails the test."""
    # Each screen is drawn anew: the banner shown before a burst is marked, so it cannot pass
    # for the burst's answer.
    fresh = page.locator(".banner:not([data-seen])")
    expected = fresh.filter(has_text=shows)
    refused = fresh.filter(has_text=MISREAD)
    for _ in range(3):
        page.locator(".banner").evaluate_all(
            "banners => banners.forEach(banner => { banner.dataset.seen = '1'; })"
        )
        wedge(page, code)
        expect(expected.or_(refused)).to_be_visible(timeout=10_000)
        if expected.is_visible():
            return
        read = MISREAD.search(refused.inner_text().strip())
        assert read is not None and read[1] != code, f"the station refused {code} itself"
        print(f"{code} typed again: the station read {read[1]}")
    expect(expected).to_be_visible()


def timeline(http: httpx.Client, job_id: int) -> list[dict[str, Any]]:
    response = http.get(f"/api/jobs/{job_id}/timeline")
    response.raise_for_status()
    return list(response.json())


def wait_for_events(
    http: httpx.Client, job_id: int, station: str, actions: list[str]
) -> list[dict[str, Any]]:
    """The job's timeline once it holds `actions` (in that order) from `station`."""
    deadline = time.monotonic() + EVENT_TIMEOUT
    while True:
        entries = timeline(http, job_id)
        if [e["action"] for e in entries if e["station"] == station] == actions:
            return entries
        if time.monotonic() > deadline:
            pytest.fail(
                f"{station} {actions} not on the timeline after {EVENT_TIMEOUT} s: {entries}"
            )
        time.sleep(0.3)


def empty_table(rng: np.random.Generator) -> np.ndarray:
    """A camera frame of the bench without a ticket."""
    width, height = FRAME_SIZE
    bench = rng.normal(float(rng.uniform(80, 160)), 3.0, (height, width))
    return cv2.cvtColor(np.clip(bench, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)


def ticket_video(image: np.ndarray, path: Path) -> None:
    """An MJPG video at CAMERA_FPS of the ticket turned 30° passing under the camera: an empty
    bench, the ticket for TICKET_FRAMES frames, the empty bench again. Written aside and then
    renamed, so a camera waiting for `path` never opens half a file."""
    turned = rotated(image, 30.0)
    # The codes stay in view even where the 4×6 in ticket does not fit the frame.
    codes = BarcodeDecoder(all_codes=True).decode(turned).codes
    assert {code.symbology for code in codes} == {Symbology.CODE128, Symbology.DATAMATRIX}
    corners = np.array([corner for code in codes for corner in code.corners], np.float32)
    # Around the turned ticket the bench, not paper: -1 is what `camera_frame` fills with it.
    outside = rotated(np.zeros_like(image), 30.0) > 127
    card = np.where(outside, -1.0, turned).astype(np.float32)
    rng = np.random.default_rng(30)
    partial = path.with_name("writing-" + path.name)
    fourcc = cv2.VideoWriter.fourcc(*"MJPG")
    writer = cv2.VideoWriter(str(partial), fourcc, CAMERA_FPS, FRAME_SIZE)
    assert writer.isOpened()
    benches = [empty_table(rng) for _ in range(8)]  # a few, over and over: quick to write
    for index in range(int(CAMERA_FPS) + TICKET_FRAMES + TAIL_FRAMES):
        if int(CAMERA_FPS) <= index < int(CAMERA_FPS) + TICKET_FRAMES:
            frame = camera_frame(card, MODULE_PX, Level.L0, rng, inside=corners)
        else:
            frame = benches[index % len(benches)]
        writer.write(frame)
    writer.release()
    partial.rename(path)


def test_a_keyboard_order_is_printed_and_its_ticket_read_by_wand_and_camera(
    server: LiveServer, browser: Browser, tmp_path: Path
) -> None:
    stations = first_station_at_stage()
    started = time.monotonic()
    store = new_page(browser)
    job_id, number = order_by_keyboard(store, server)
    store.context.close()
    ordered = time.monotonic()

    with manager(server) as http:
        job = http.get(f"/api/jobs/{job_id}").json()
        assert (job["job_number"], job["lens_design"], job["surfaced"]) == (number, "SV", False)
        printed = http.get(f"/api/jobs/{job_id}/ticket.pdf")
        assert printed.status_code == 200, printed.text
        assert printed.headers["content-type"] == "application/pdf"
        pdf = printed.content
        assert job_number(pdf) == number
        image = ticket_image(pdf, dpi=TICKET_DPI)
        code = wand_read(image)
        assert code == number
        # Stock single vision: edging, fitting, final QC, shipping.
        assert job["route_code"] == "stock_sv", job["route_code"]
        first_stage, next_stage = (stage["code"] for stage in job["route_stages"][:2])
        assert (job["current_stage"]["code"], first_stage, next_stage) == (
            "edging",
            "edging",
            "fitting",
        )

        # (a) By wand at the first stage: start, then (past the repeat window) complete.
        wand_station = stations[first_stage]
        (tmp_path / "wand").mkdir()
        with running_station(server, tmp_path / "wand", wand_station, first_stage) as url:
            page = new_page(browser)
            open_station(page, url)
            scan(page, "B1001", HELLO)
            scan(page, code, STARTED)
            expect(page.get_by_text(number, exact=True).first).to_be_visible()
            page.wait_for_timeout(2_100)  # the same code again this soon is one scan
            scan(page, code, COMPLETED)
            expect(page.get_by_text(number, exact=True).first).to_be_visible()
            page.wait_for_timeout(600)  # let the scan flash fade
            screenshot(page, "e2e-station-wand")
            page.context.close()
        entries = wait_for_events(http, job_id, wand_station, ["start", "complete"])
        assert all(
            e["stage"]["code"] == first_stage for e in entries if e["station"] == wand_station
        )
        wand_done = time.monotonic()

        # (b) By camera at the next stage, its operator signed in by badge first.
        camera_station = stations[next_stage]
        video = tmp_path / "camera" / "ticket.avi"
        video.parent.mkdir()
        camera = f'[[scanners]]\nkind = "camera"\nsource = "{video}"\nfps = {CAMERA_FPS}\n'
        with running_station(
            server, tmp_path / "camera", camera_station, next_stage, extra_toml=camera
        ) as url:
            page = new_page(browser)
            open_station(page, url)
            scan(page, "B1001", HELLO)
            ticket_video(image, video)  # the ticket goes under the camera now
            banner = page.locator(".banner")
            expect(banner).to_have_text(STARTED, timeout=30_000)  # by the camera alone
            expect(page.get_by_text(number, exact=True).first).to_be_visible()
            page.wait_for_timeout(500)  # past the scan flash (0.45 s); the ticket in view still
            screenshot(page, "e2e-station-camera")
            wait_for_events(http, job_id, camera_station, ["start"])
            video.unlink()  # no replay: a second read would complete the job
            page.context.close()
        entries = timeline(http, job_id)
        assert [(e["station"], e["action"], e["stage"]["code"]) for e in entries] == [
            (wand_station, "start", first_stage),
            (wand_station, "complete", first_stage),
            (camera_station, "start", next_stage),
        ]
        assert http.get(f"/api/jobs/{job_id}").json()["current_stage"]["code"] == next_stage
    finished = time.monotonic()
    print(
        f"ordered {ordered - started:.1f} s, wand {wand_done - ordered:.1f} s,"
        f" camera {finished - wand_done:.1f} s"
    )
