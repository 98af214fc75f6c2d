"""`lenstrack serve` on a seeded demo lab in a subprocess, and Chromium logged in to it.

Shared by the browser tests and benchmarks/push_latency.py: both need the real thing (one
process, the live bus, websockets), bounded in time and always stopped.
"""

import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
from playwright.sync_api import Browser, Page, Playwright

from tests.conftest import child_environment

LENSTRACK = Path(sys.executable).with_name("lenstrack")
PROJECT_ROOT = Path(__file__).resolve().parents[3]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class RealServer:
    data_dir: Path
    url: str
    env: dict[str, str]
    sequences: dict[str, int] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    pid: int | None = None  # of `lenstrack serve`, once started

    def cli(self, *arguments: str) -> str:
        done = subprocess.run(
            [str(LENSTRACK), *arguments],
            env=self.env,
            cwd=PROJECT_ROOT,
            check=True,
            capture_output=True,
            timeout=120,
        )
        return done.stdout.decode()

    def token(self, station: str) -> str:
        if station not in self.tokens:
            self.tokens[station] = self.cli("station-token", "create", "--station", station).strip()
        return self.tokens[station]

    def send(
        self, http: httpx.Client, station: str, job: str, action: str, **fields: object
    ) -> httpx.Response:
        """One station event, as the station would post it (numbered per station)."""
        self.sequences[station] = self.sequences.get(station, 0) + 1
        now = datetime.now(UTC).isoformat()
        event = {
            "event_uuid": str(uuid.uuid4()),
            "sequence": self.sequences[station],
            "job": job,
            "action": action,
            "operator_badge": "B1001",
            "created_at": now,
            "sent_at": now,
            **fields,
        }
        headers = {"Authorization": f"Bearer {self.token(station)}"}
        return http.post(f"{self.url}/api/events", json=event, headers=headers, timeout=10)


@contextmanager
def real_server(data_dir: Path, jobs: int = 30) -> Iterator[RealServer]:
    """Seeds the demo lab with `jobs` jobs, serves it, and stops the server however it ends."""
    port = _free_port()
    env = child_environment("LENSTRACK_")
    env |= {
        "LENSTRACK_DATA_DIR": str(data_dir),
        "LENSTRACK_PORT": str(port),
        "LENSTRACK_SETTINGS_FILE": str(data_dir / "no-settings.toml"),
    }
    server = RealServer(data_dir, f"http://127.0.0.1:{port}", env)
    server.cli("seed-demo", "--jobs", str(jobs))
    log_path = data_dir / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(LENSTRACK), "serve"], env=env, cwd=PROJECT_ROOT, stdout=log, stderr=log
        )
        server.pid = process.pid
        try:
            deadline = time.monotonic() + 30
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"server exited: {log_path.read_text()}")
                try:
                    if httpx.get(f"{server.url}/login", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError("the server did not answer within 30 s")
                time.sleep(0.2)
            yield server
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def launch_chromium(playwright: Playwright) -> Browser:
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


def log_in(page: Page, url: str, username: str, password: str) -> None:
    page.goto(f"{url}/login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_load_state()
