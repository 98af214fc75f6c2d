"""Station test fixtures: a REAL LensTrack server in a subprocess, seeded with the demo lab.

The station talks HTTP only, so its end-to-end tests run against `lenstrack serve` exactly as
deployed: fresh SQLite in a temp dir, `db upgrade`, `seed-demo`, a token per station.
"""

import asyncio
import os
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

SERVER_START_TIMEOUT = 60.0
# The server's source tree: this checkout unless LENSTRACK_TEST_SERVER_ROOT names another
# (e.g. a clean export of a known-good commit while the server is being edited).
SERVER_ROOT = Path(os.environ.get("LENSTRACK_TEST_SERVER_ROOT", Path(__file__).parents[2]))


async def until(condition: Callable[[], bool], timeout: float, every: float = 0.05) -> None:
    """Polls `condition` until it holds; TimeoutError after `timeout` seconds.

    The condition runs on the event loop: one that makes HTTP requests should poll seldom, or
    it starves what the test is waiting for (the simulated floor runs on the same loop).
    """

    async def poll() -> None:
        while not condition():
            await asyncio.sleep(every)

    await asyncio.wait_for(poll(), timeout)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class LiveServer:
    """`lenstrack serve` on a free localhost port; can be stopped and started again."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "LENSTRACK_DATA_DIR": str(root),
            "LENSTRACK_DATABASE_URL": f"sqlite:///{root / 'lenstrack.db'}",
            "LENSTRACK_PORT": str(self.port),
            "LENSTRACK_HOST": "127.0.0.1",
            "PYTHONPATH": str(SERVER_ROOT),
        }
        self.process: subprocess.Popen[bytes] | None = None
        self._tokens: dict[str, str] = {}

    def cli(self, *arguments: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "lenstrack.cli", *arguments],
            env=self.env,
            cwd=SERVER_ROOT,
            capture_output=True,
            check=True,
            timeout=120,
        )
        return done.stdout.decode()

    def token(self, station: str) -> str:
        if station not in self._tokens:
            self._tokens[station] = self.cli(
                "station-token", "create", "--station", station
            ).strip()
        return self._tokens[station]

    def event_uuids(self, table: str, station: str) -> Counter[uuid.UUID]:
        """Event UUIDs of `station` in `stage_event` or `rejected_event`, with their counts."""
        with sqlite3.connect(self.root / "lenstrack.db") as db:
            rows = db.execute(
                f"SELECT e.event_uuid FROM {table} e JOIN station s ON s.id = e.station_id"
                " WHERE s.name = ?",
                (station,),
            )
            return Counter(uuid.UUID(str(value)) for (value,) in rows)

    def stored_and_rejected(
        self, station: str, local: set[uuid.UUID]
    ) -> tuple[Counter[uuid.UUID], Counter[uuid.UUID]]:
        """How often the server stored and rejected each of these local event UUIDs."""
        stored = self.event_uuids("stage_event", station)
        rejected = self.event_uuids("rejected_event", station)
        return (
            Counter({key: n for key, n in stored.items() if key in local}),
            Counter({key: n for key, n in rejected.items() if key in local}),
        )

    def start(self) -> None:
        log = (self.root / "server.log").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "lenstrack.cli", "serve"],
            env=self.env,
            cwd=SERVER_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited; see {self.root / 'server.log'}")
            try:
                with urllib.request.urlopen(f"{self.url}/login", timeout=1):
                    return
            except OSError:
                time.sleep(0.2)
        raise TimeoutError("server did not come up")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = LiveServer(tmp_path_factory.mktemp("live-server"))
    server.cli("db", "upgrade")
    server.cli("seed-demo", "--jobs", "150")
    server.start()
    yield server
    server.stop()
