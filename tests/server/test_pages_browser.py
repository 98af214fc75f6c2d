"""The real server in a subprocess, driven by headless Chromium: log-in and store scoping.

Screenshots land in screenshots/ (gitignored) for a human to look at.
"""

import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.conftest import child_environment

pytestmark = pytest.mark.browser

LENSTRACK = Path(sys.executable).with_name("lenstrack")
PROJECT_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = PROJECT_ROOT / "screenshots"
CHROMIUM = "/usr/bin/chromium"
STORE_COLUMN = "tbody tr td:nth-child(3)"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data_dir = tmp_path_factory.mktemp("browser-server")
    port = _free_port()
    env = child_environment("LENSTRACK_")
    env |= {
        "LENSTRACK_DATA_DIR": str(data_dir),
        "LENSTRACK_PORT": str(port),
        "LENSTRACK_SETTINGS_FILE": str(data_dir / "no-settings.toml"),
    }
    subprocess.run(
        [str(LENSTRACK), "seed-demo", "--jobs", "30"],
        env=env,
        cwd=PROJECT_ROOT,
        check=True,
        capture_output=True,
        timeout=120,
    )
    log = (data_dir / "server.log").open("wb")
    process = subprocess.Popen(
        [str(LENSTRACK), "serve"], env=env, cwd=PROJECT_ROOT, stdout=log, stderr=log
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited: {(data_dir / 'server.log').read_text()}")
            try:
                if httpx.get(f"{url}/login", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("the server did not answer within 30 s")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


def _log_in(page: Page, url: str, username: str, password: str) -> None:
    page.goto(f"{url}/login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/jobs")
    expect(page.locator(STORE_COLUMN).first).to_be_visible()


def _screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)


def test_jobs_without_a_session_redirects_to_login(server: str, page: Page) -> None:
    page.goto(f"{server}/jobs")
    page.wait_for_url(f"{server}/login")
    expect(page.locator("h1")).to_have_text("LensTrack")
    _screenshot(page, "login")


def test_a_wrong_password_shows_the_error(server: str, page: Page) -> None:
    page.goto(f"{server}/login")
    page.fill("#username", "north")
    page.fill("#password", "wrong-password")
    page.click("button[type=submit]")
    expect(page.get_by_role("alert")).to_have_text("unknown user name or wrong password")
    expect(page.locator("#username")).to_have_value("north")
    _screenshot(page, "login-error")


def test_store_staff_see_only_their_stores_jobs(server: str, page: Page) -> None:
    _log_in(page, server, "north", "demo-store-pass")
    expect(page.locator("header")).to_contain_text("Northside Vision")
    stores = page.locator(STORE_COLUMN).all_inner_texts()
    assert stores and set(stores) == {"NORTH"}, stores
    _screenshot(page, "jobs-north")
    page.goto(f"{server}/logout")
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
    _screenshot(page, "jobs-manager")
