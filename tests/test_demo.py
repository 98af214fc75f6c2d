"""`lenstrack demo` end to end, as `make demo` runs it: seeded, every process up, the
simulated floor producing events, and Ctrl-C stopping all of it — on a machine kept busy by a
CPU-bound process per core, since the demo must come up on a slow machine too. And the demo's
wait for its parts: slow is not dead, a part that exits is named with its log's last lines.

It runs in a scratch directory holding a copy of `config/` (the demo keeps its database and
logs under `var/demo` of the working directory). The stations listen on the fixed ports of
`config/stations/*.toml`, as in a lab.
"""

import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from lenstrack.demo import wait_until_up
from server.child_process import ChildFailed, ChildProcess
from station.settings import StationSettings
from tests.conftest import child_environment
from tests.liveserver import free_port, start_lenstrack

CONFIG = Path(__file__).resolve().parent.parent / "config"
# Seeding 3000 jobs of history and starting ten processes on a 2-core machine with both
# cores busy; the demo's own deadlines are per part and longer still.
UP_TIMEOUT = 420.0


def _status(url: str) -> int:
    """HTTP status without following redirects (a page behind log-in answers 307)."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: object, **kwargs: object) -> None:
            return None

    try:
        with urllib.request.build_opener(NoRedirect).open(url, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def _events(database: Path) -> int:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
        return int(connection.execute("SELECT count(*) FROM stage_event").fetchone()[0])


def _port_open(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _cpu_hogs() -> list[subprocess.Popen[bytes]]:
    """One busy-looping process per core, at the demo's own priority."""
    return [
        subprocess.Popen([sys.executable, "-c", "while True: pass"])
        for _ in range(os.cpu_count() or 2)
    ]


def test_demo_runs_every_part_under_load_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    shutil.copytree(CONFIG, tmp_path / "config")
    stations = [StationSettings.load(path) for path in sorted(CONFIG.glob("stations/*.toml"))]
    busy = [station.port for station in stations if _port_open(station.port)]
    if busy:
        pytest.fail(f"station ports in use (is a demo running?): {busy}")
    port = free_port()
    env = child_environment("LENSTRACK_", "NICEGUI_")
    hogs = _cpu_hogs()
    demo = start_lenstrack(
        ["demo", "--port", str(port)], cwd=tmp_path, env=env, output=tmp_path / "demo.out"
    )
    try:
        deadline = time.monotonic() + UP_TIMEOUT
        while b"demo is running" not in (tmp_path / "demo.out").read_bytes():
            assert demo.poll() is None, (tmp_path / "demo.out").read_text()
            assert time.monotonic() < deadline, "the demo did not come up in time"
            time.sleep(0.5)
        for hog in hogs:
            hog.kill()
        printed = (tmp_path / "demo.out").read_text()
        # It said what it was waiting for while it started.
        assert "seeding the demo lab: 1500 of 3000 jobs" in printed  # months of history
        assert f"stations: {len(stations)} of {len(stations)} up" in printed
        server = f"http://127.0.0.1:{port}"
        for path in ("/store", "/wip", "/jobs", "/store/orders/new", "/lab/changes"):
            assert f"{server}{path}" in printed
        # New work waits for its tickets: jobs from DCS files and a remake of a shipped job.
        new_today = next(line for line in printed.splitlines() if line.startswith("new today"))
        assert "DCS-" in new_today and "-R1" in new_today, new_today
        assert f"{server}/api/jobs/1/ticket.pdf" in printed
        assert _status(f"{server}/api/jobs/1/ticket.pdf") == 401  # behind log-in
        for station in stations:
            assert f"http://127.0.0.1:{station.port}/" in printed
            assert _status(f"http://127.0.0.1:{station.port}/") == 200
        assert _status(f"{server}/login") == 200
        assert _status(f"{server}/wip") == 307  # behind log-in
        assert _status(f"{server}/docs") == 200
        # The simulated stations work the floor: events keep arriving.
        database = tmp_path / "var/demo/lenstrack.db"
        seeded = _events(database)
        until = time.monotonic() + 30
        while _events(database) <= seeded and time.monotonic() < until:
            time.sleep(1)
        assert _events(database) > seeded, "the floor simulator posted no event in 30 s"
        # What the stores are told reaches the demo's local mail sink.
        mail_index = tmp_path / "var/demo/mail/index.txt"
        until = time.monotonic() + 60
        while not mail_index.exists() and time.monotonic() < until:
            time.sleep(1)
        assert mail_index.exists(), "no store message reached the demo's mail sink in 60 s"
        assert "@" in mail_index.read_text()  # each line names its recipient
    finally:
        for hog in hogs:
            hog.kill()
        if demo.poll() is None:
            demo.send_signal(signal.SIGINT)
        try:
            code = demo.wait(timeout=30)
        except subprocess.TimeoutExpired:
            demo.kill()
            raise
    assert code == 0
    still_listening = [p for p in [port, *(s.port for s in stations)] if _port_open(p)]
    assert not still_listening, f"still listening after Ctrl-C: {still_listening}"


def _child(tmp_path: Path, name: str, script: str) -> ChildProcess:
    log = tmp_path / f"{name}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-c", script], stdout=output, stderr=subprocess.STDOUT
        )
    return ChildProcess(name, process, log, f"http://127.0.0.1:{free_port()}/")


def _serve_after(seconds: float, port: int) -> str:
    return (
        "import http.server, time\n"
        f"time.sleep({seconds})\n"
        f"http.server.HTTPServer(('127.0.0.1', {port}), http.server.SimpleHTTPRequestHandler)"
        ".serve_forever()\n"
    )


def test_a_part_still_starting_is_waited_for_and_progress_is_said(tmp_path: Path) -> None:
    port = free_port()
    child = _child(tmp_path, "slow", _serve_after(2.5, port))
    child.url = f"http://127.0.0.1:{port}/"
    said: list[str] = []
    try:
        wait_until_up([child], "parts", said.append, timeout=60, progress_every=1)
    finally:
        child.process.kill()
    assert "parts: still starting slow" in said
    assert said[-1] == "parts: 1 of 1 up (slow)"


def test_a_part_that_exits_is_named_with_the_end_of_its_log(tmp_path: Path) -> None:
    script = "import sys\nfor n in range(40): print('line', n)\nsys.exit(3)"
    child = _child(tmp_path, "broken", script)
    with pytest.raises(ChildFailed) as failure:
        wait_until_up([child], "parts", lambda line: None, timeout=60)
    message = str(failure.value)
    assert message.startswith("broken exited with code 3")
    assert "line 39" in message and "line 20" in message
    assert "line 19" not in message  # the last 20 lines, not the whole log


def test_a_part_silent_past_its_own_deadline_fails(tmp_path: Path) -> None:
    child = _child(
        tmp_path, "silent", "import time; print('listening soon', flush=True); time.sleep(60)"
    )
    try:
        with pytest.raises(ChildFailed) as failure:
            wait_until_up([child], "parts", lambda line: None, timeout=1.5)
    finally:
        child.process.kill()
    assert "silent did not answer" in str(failure.value)
    assert "within 2 s" in str(failure.value)
    assert "listening soon" in str(failure.value)
