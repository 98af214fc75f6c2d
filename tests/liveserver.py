"""`lenstrack` as a child process, for the tests and benchmarks that need the real thing: a
server on a seeded demo lab (SQLite in a temp dir), a station app, the demo. Each listens on
a free localhost port, is waited for until it answers, and is always stopped.
"""

import functools
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from server.group_cli import free_port
from tests.conftest import child_environment
from tests.server.payloads import event_body

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# The server's source tree: this checkout unless LENSTRACK_TEST_SERVER_ROOT names another
# (e.g. a clean export of a known-good commit while the server is being edited).
SERVER_ROOT = Path(os.environ.get("LENSTRACK_TEST_SERVER_ROOT", PROJECT_ROOT))
SERVER_START_TIMEOUT = 60.0


def start_lenstrack(
    arguments: list[str], *, cwd: Path, env: dict[str, str], output: Path
) -> subprocess.Popen[bytes]:
    """`python -m lenstrack.cli ARGUMENTS` in the background, its output appended to `output`."""
    with output.open("ab") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "lenstrack.cli", *arguments],
            cwd=cwd,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )


def wait_until_answering(
    url: str, process: subprocess.Popen[bytes], output: Path, timeout: float
) -> None:
    """Polls `url` until it answers without an error; RuntimeError if `process` exits first,
    TimeoutError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            end = output.read_text(errors="replace")[-4000:]
            raise RuntimeError(f"exited with {process.returncode}; the end of {output}:\n{end}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.05)  # many tests wait for a start: see it soon after
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s; see {output}")


def stop_process(process: subprocess.Popen[bytes] | None) -> None:
    """Terminates `process`, and kills it if it has not ended 15 s later."""
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def station_at_stage() -> dict[str, str]:
    """The demo lab's station at each stage (stage code -> station name)."""
    config = tomllib.loads((PROJECT_ROOT / "config" / "lab.example.toml").read_text())
    return {station["stage"]: station["name"] for station in config["stations"]}


class LiveServer:
    """`lenstrack serve` on a free localhost port, its data in `root`; it can be stopped and
    started again (an outage) as often as a test likes."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **child_environment("LENSTRACK_"),
            "LENSTRACK_DATA_DIR": str(root),
            "LENSTRACK_DATABASE_URL": f"sqlite:///{root / 'lenstrack.db'}",
            "LENSTRACK_PORT": str(self.port),
            "LENSTRACK_HOST": "127.0.0.1",
            # A file that does not exist: no developer's settings file leaks into the test.
            "LENSTRACK_SETTINGS_FILE": str(root / "no-settings.toml"),
            "PYTHONPATH": str(SERVER_ROOT),
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.sequences: dict[str, int] = {}  # the last event sequence `send` used per station
        self._tokens: dict[str, str] = {}
        self._signed_in: set[tuple[str, str]] = set()  # (station, badge)

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

    def send(
        self, http: httpx.Client, station: str, job: str, action: str, **fields: object
    ) -> httpx.Response:
        """One station event, as the station would post it (numbered per station), its
        operator signed in there first, as a station does when the badge is scanned."""
        event = {**event_body(job, self._next_sequence(station), action), **fields}
        headers = {"Authorization": f"Bearer {self.token(station)}"}
        badge = event["operator_badge"]
        if badge is not None and (station, badge) not in self._signed_in:
            sign_in = {**event_body(job, event["sequence"], "sign_in"), "operator_badge": badge}
            del sign_in["job"]
            # Scanned no later than the event, which takes the next number.
            sign_in["created_at"] = sign_in["sent_at"] = event["created_at"]
            event["sequence"] = self._next_sequence(station)
            answer = http.post(f"{self.url}/api/events", json=sign_in, headers=headers, timeout=10)
            answer.raise_for_status()
            self._signed_in.add((station, badge))
        return http.post(f"{self.url}/api/events", json=event, headers=headers, timeout=10)

    def _next_sequence(self, station: str) -> int:
        self.sequences[station] = self.sequences.get(station, 0) + 1
        return self.sequences[station]

    def event_uuids(self, table: str, station: str) -> Counter[uuid.UUID]:
        """Event UUIDs of `station` in an event table (`stage_event`, `station_sign_in`,
        `rejected_event`), with their counts."""
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
        """How often the server stored (job events, sign-ins and sign-outs) and rejected each
        of these local event UUIDs."""
        stored = self.event_uuids("stage_event", station)
        stored += self.event_uuids("station_sign_in", station)
        rejected = self.event_uuids("rejected_event", station)
        return (
            Counter({key: n for key, n in stored.items() if key in local}),
            Counter({key: n for key, n in rejected.items() if key in local}),
        )

    def start(self) -> None:
        log = self.root / "server.log"
        self.process = start_lenstrack(["serve"], cwd=SERVER_ROOT, env=self.env, output=log)
        try:
            wait_until_answering(f"{self.url}/login", self.process, log, SERVER_START_TIMEOUT)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None


# The demo labs seeded in this process, one per job count (see `seeded_demo_lab`).
_SEEDED_LABS = tempfile.TemporaryDirectory(prefix="lenstrack-seeded-")


@functools.cache
def seeded_demo_lab(jobs: int) -> Path:
    """The data dir (SQLite file, data keys) of the demo lab seeded with `jobs` jobs, seeded
    once per process: migrating and seeding take seconds of CPU, a copy a few ms. Its times
    are as of that seeding: a test that needs them as of its own start seeds its own lab."""
    root = Path(_SEEDED_LABS.name) / str(jobs)
    LiveServer(root).cli("seed-demo", "--jobs", str(jobs))  # migrates the new database first
    return root


@contextmanager
def serving_demo_lab(root: Path, jobs: int) -> Iterator[LiveServer]:
    """A copy of the demo lab seeded with `jobs` jobs (`seeded_demo_lab`) in `root`, served
    until the block ends."""
    shutil.copytree(seeded_demo_lab(jobs), root, dirs_exist_ok=True)
    server = LiveServer(root)
    server.start()
    try:
        yield server
    finally:
        server.stop()
