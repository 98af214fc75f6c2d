"""Real browser: a wedge-scan burst typed into headless Chromium shows the job card.

Also saves 1024×768 screenshots of each station state into screenshots/ for review.
"""

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.chromium import chromium, screenshot
from tests.conftest import child_environment
from tests.liveserver import (
    PROJECT_ROOT,
    SERVER_START_TIMEOUT,
    LiveServer,
    free_port,
    start_lenstrack,
    stop_process,
    wait_until_answering,
)

pytestmark = pytest.mark.browser


@contextmanager
def running_station(
    server: LiveServer,
    root: Path,
    name: str,
    stage: str,
    extra_toml: str = "",
    uplink_toml: str = "",
) -> Iterator[str]:
    """`lenstrack station` as station `name` of the server's lab, data in `root`; gives its URL
    once it answers and stops it when the block ends."""
    port = free_port()
    token_file = root / "token"
    token_file.write_text(server.token(name))
    config = root / "station.toml"
    config.write_text(
        f'name = "{name}"\nstage = "{stage}"\nserver_url = "{server.url}"\n'
        f'token_file = "{token_file}"\ndata_dir = "{root / "data"}"\nport = {port}\n'
        "[uplink]\nbackoff_cap_seconds = 1.0\nidle_poll_seconds = 1.0\n"
        + uplink_toml
        + '[[scanners]]\nkind = "wedge"\n'
        + extra_toml
    )
    log = root / "station.log"
    arguments = ["station", "--config", str(config)]
    env = child_environment("PYTHONPATH")
    process = start_lenstrack(arguments, cwd=PROJECT_ROOT, env=env, output=log)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_answering(url, process, log, SERVER_START_TIMEOUT)  # a loaded machine
        yield url
    finally:
        stop_process(process)


def test_a_scan_the_page_handles_late_is_read_whole_and_not_typed(
    page: Page, station_url: str, live_server: LiveServer
) -> None:
    # The last keys of a scan handled after the pause that lets typing into the focused field
    # (a loaded machine): their own timestamps show the burst went on, so what the pause let
    # into the note is taken back and the scan is read whole (a CI run once read "CH42" of
    # "NOSUCH42", the rest typed into the note).
    open_station(page, station_url)
    sign_in(page)
    job = job_at(live_server, "edging", "queued")
    wedge(page, job)
    expect(page.get_by_text("Started", exact=True)).to_be_visible(timeout=5_000)
    page.get_by_role("button", name="Note…").click()
    note = page.locator("textarea")
    note.click()
    page.keyboard.type("ok", delay=400)
    expect(note).to_have_value("ok")
    wedge(page, "NOSUCH43", stall_after=4)
    expect(page.get_by_text("Unknown job or tray NOSUCH43")).to_be_visible(timeout=5_000)
    shot(page, "late-scan")


@pytest.fixture
def station_url(live_server: LiveServer, tmp_path: Path) -> Iterator[str]:
    with running_station(live_server, tmp_path, "EDGE-1", "edging") as url:
        yield url


@pytest.fixture
def page() -> Iterator[Page]:
    with chromium() as browser:
        yield browser.new_page(viewport={"width": 1024, "height": 768})


# A USB wedge scanner's keys arrive a few milliseconds apart, and the OS stamps each on arrival.
SCANNER_KEY_INTERVAL_SECONDS = 0.004


def wedge(page: Page, code: str, *, stall_after: int | None = None) -> None:
    """What a keyboard-wedge scanner does: trusted keystrokes a few ms apart, then Enter.

    Each key carries its own timestamp, as a scanner's do: the station tells a burst from
    typing by those (station.js), and a loaded test machine can hold CDP's delivery of one
    key for more than the burst gap (a CI run read only "001" of "B1001"), which is the test
    harness's delay, not the scanner's. `stall_after` keys, the delivery of the rest waits
    well past the burst gap, their timestamps still the scanner's: a busy page does that."""
    session = page.context.new_cdp_session(page)
    try:
        start = time.time()
        for index, key in enumerate([*code, "Enter"]):
            if index == stall_after:
                page.wait_for_timeout(300)
            at = start + index * SCANNER_KEY_INTERVAL_SECONDS
            typed = {"key": key, "text": key}
            if key == "Enter":
                typed = {"key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13, "text": "\r"}
            session.send("Input.dispatchKeyEvent", {"type": "keyDown", "timestamp": at, **typed})
            session.send("Input.dispatchKeyEvent", {"type": "keyUp", "timestamp": at, "key": key})
    finally:
        session.detach()


def open_station(page: Page, url: str) -> None:
    page.goto(url)
    expect(page.get_by_text("Scan your badge to sign in")).to_be_visible(timeout=10_000)


def sign_in(page: Page) -> None:
    """Tom Baker scans his badge at the open station."""
    wedge(page, "B1001")
    expect(page.get_by_text("Hello Tom Baker")).to_be_visible(timeout=5_000)


def shot(page: Page, name: str) -> None:
    page.wait_for_timeout(600)  # let the scan flash fade
    screenshot(page, f"station-{name}")


def job_at(server: LiveServer, stage: str, status: str) -> str:
    """A job at the stage, as that stage's station lists it (a station lists only its own)."""
    station = {"edging": "EDGE-1", "fitting": "FIT-1", "final_qc": "QC-1"}[stage]
    jobs = httpx.get(
        f"{server.url}/api/jobs",
        params={"stage": stage, "active": "true", "status": status, "limit": 1},
        headers={"Authorization": f"Bearer {server.token(station)}"},
    ).json()["items"]
    return jobs[0]["job_number"]


def assert_people_read_it(page: Page) -> None:
    """The shown job (card or QC panel, the first panel): R (OD) above L, and no identifier
    as the database spells it (`semi_rimless`, `a_mm`, `blue_filter`…)."""
    panel = page.locator(".panel").first
    eyes = [text.strip() for text in panel.locator("th, .text-3xl").all_inner_texts()]
    assert [eye for eye in eyes if eye in ("R", "L")] == ["R", "L"], eyes
    text = panel.inner_text()
    assert "_" not in text, text


def test_a_wedge_burst_shows_the_job_card(
    page: Page, station_url: str, live_server: LiveServer
) -> None:
    open_station(page, station_url)
    shot(page, "signed-out")
    sign_in(page)
    job = job_at(live_server, "edging", "queued")
    wedge(page, job)
    expect(page.get_by_text(job, exact=True)).to_be_visible(timeout=5_000)
    expect(page.get_by_text("Started", exact=True)).to_be_visible()
    assert_people_read_it(page)
    shot(page, "job-card")
    past = job_at(live_server, "fitting", "queued")
    wedge(page, past)
    expect(page.get_by_text("Already past this stage")).to_be_visible(timeout=5_000)
    shot(page, "warning")
    # slow human typing in a field is not a scan and reaches the field
    page.get_by_role("button", name="Note…").click()
    note = page.locator("textarea")
    note.click()
    page.keyboard.type("ok", delay=400)  # well past the burst gap: typing
    expect(note).to_have_value("ok")
    # a scan while the field has focus is a scan (it closes the dialog); none of it is typed
    note.evaluate(
        "field => { window.__typed = '';"
        " field.addEventListener('input', e => { window.__typed += e.data ?? '?'; }); }"
    )
    wedge(page, "NOSUCH42")
    expect(page.get_by_text("Unknown job or tray NOSUCH42")).to_be_visible(timeout=5_000)
    assert page.evaluate("window.__typed") == ""
    page.keyboard.press("Escape")
    live_server.stop()
    try:
        wedge(page, job)
        expect(page.get_by_text("Offline").first).to_be_visible(timeout=10_000)
        shot(page, "offline")
    finally:
        live_server.start()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """The station's data folder on a filesystem of its own, 1 MiB, that the test can fill."""
    folder = tmp_path / "data"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs (needs root): {mounted.stderr.decode().strip()}")
    yield folder
    subprocess.run(["umount", "--lazy", str(folder)], check=False)


def fill(folder: Path) -> Path:
    filler = folder / "filler"
    with filler.open("wb") as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError:
            pass
    return filler


def test_a_station_with_a_full_disk_refuses_scans_on_screen(
    page: Page, live_server: LiveServer, tmp_path: Path, small_disk: Path
) -> None:
    """Nothing may say "Started" for a scan that was not saved; the refusal lasts until a save
    succeeds again, with no restart."""
    with running_station(
        live_server, tmp_path, "EDGE-1", "edging", uplink_toml="prefetch_limit = 0\n"
    ) as url:
        open_station(page, url)
        sign_in(page)
        job = job_at(live_server, "edging", "queued")
        filler = fill(small_disk)
        wedge(page, job)
        expect(page.get_by_text(f"NOT RECORDED: start of {job}")).to_be_visible(timeout=5_000)
        expect(page.get_by_text("Cannot save scans")).to_be_visible()
        shot(page, "disk-full")
        filler.unlink()
        page.wait_for_timeout(2_500)  # past the double-read window for the same code
        wedge(page, job)
        expect(page.get_by_text("Started", exact=True)).to_be_visible(timeout=5_000)
        expect(page.get_by_text("Cannot save scans")).to_have_count(0)
