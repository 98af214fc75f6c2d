"""Real browser: a wedge-scan burst typed into headless Chromium shows the job card.

Also saves 1024×768 screenshots of each station state into screenshots/ for review.
"""

import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from tests.conftest import child_environment
from tests.station.conftest import LiveServer, free_port

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "screenshots"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]

pytestmark = pytest.mark.browser


def start_station(
    server: LiveServer,
    root: Path,
    name: str,
    stage: str,
    extra_toml: str = "",
    uplink_toml: str = "",
) -> tuple[str, object]:
    port = free_port()
    token_file = root / "token"
    token_file.write_text(server.token(name))
    config = root / "station.toml"
    config.write_text(
        f'name = "{name}"\nstage = "{stage}"\nserver_url = "{server.url}"\n'
        f'token_file = "{token_file}"\ndata_dir = "{root / "data"}"\nport = {port}\n'
        "[uplink]\nbackoff_cap_seconds = 1.0\nidle_poll_seconds = 1.0\n"
        + uplink_toml
        +
        # CDP key events on a busy test machine can lag past the 30 ms default (seen: >80 ms
        # between the keys of one burst with the CPU saturated).
        '[[scanners]]\nkind = "wedge"\nmax_key_gap_ms = 150\n'
        + extra_toml
    )
    env = child_environment("PYTHONPATH")
    log = (root / "station.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "lenstrack.cli", "station", "--config", str(config)],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return url, process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise TimeoutError(f"station did not come up; see {root / 'station.log'}")


@pytest.fixture
def station_url(live_server: LiveServer, tmp_path: Path) -> Iterator[str]:
    url, process = start_station(live_server, tmp_path, "EDGE-1", "edging")
    yield url
    assert isinstance(process, subprocess.Popen)
    process.terminate()
    process.wait(timeout=15)


@pytest.fixture
def page() -> Iterator[Page]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS, headless=True
        )
        yield browser.new_page(viewport={"width": 1024, "height": 768})
        browser.close()


def wedge(page: Page, code: str) -> None:
    """What a keyboard-wedge scanner does: fast keystrokes, then Enter."""
    page.keyboard.type(code)  # key after key, as fast as CDP delivers them
    page.keyboard.press("Enter")


def shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    page.wait_for_timeout(600)  # let the scan flash fade
    page.screenshot(path=SCREENSHOTS / f"station-{name}.png")


def job_at(server: LiveServer, stage: str, status: str) -> str:
    import httpx

    jobs = httpx.get(
        f"{server.url}/api/jobs",
        params={"stage": stage, "active": "true", "status": status, "limit": 1},
        headers={"Authorization": f"Bearer {server.token('EDGE-1')}"},
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
    page.goto(station_url)
    expect(page.get_by_text("Scan your badge to sign in")).to_be_visible(timeout=10_000)
    shot(page, "signed-out")
    wedge(page, "B1001")
    expect(page.get_by_text("Hello Tom Baker")).to_be_visible(timeout=5_000)
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
    url, process = start_station(
        live_server, tmp_path, "EDGE-1", "edging", uplink_toml="prefetch_limit = 0\n"
    )
    assert isinstance(process, subprocess.Popen)
    try:
        page.goto(url)
        expect(page.get_by_text("Scan your badge to sign in")).to_be_visible(timeout=10_000)
        wedge(page, "B1001")
        expect(page.get_by_text("Hello Tom Baker")).to_be_visible(timeout=5_000)
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
    finally:
        process.terminate()
        process.wait(timeout=15)
