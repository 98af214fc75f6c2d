"""`lenstrack demo` end to end, as `make demo` runs it: seeded, every process up, the
simulated floor producing events, and Ctrl-C stopping all of it.

It runs in a scratch directory holding a copy of `config/` (the demo keeps its database and
logs under `var/demo` of the working directory). The stations listen on the fixed ports of
`config/stations/*.toml`, as in a lab.
"""

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

from station.settings import StationSettings
from tests.conftest import child_environment

CONFIG = Path(__file__).resolve().parent.parent / "config"
UP_TIMEOUT = 120.0  # seeding 200 jobs and starting ten processes on a 2-core CI machine


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


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


def test_demo_runs_every_part_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    shutil.copytree(CONFIG, tmp_path / "config")
    stations = [StationSettings.load(path) for path in sorted(CONFIG.glob("stations/*.toml"))]
    busy = [station.port for station in stations if _port_open(station.port)]
    if busy:
        pytest.fail(f"station ports in use (is a demo running?): {busy}")
    port = _free_port()
    env = child_environment("LENSTRACK_", "NICEGUI_")
    output = (tmp_path / "demo.out").open("w+b")
    demo = subprocess.Popen(
        [sys.executable, "-m", "lenstrack.cli", "demo", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=output,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + UP_TIMEOUT
        while b"demo is running" not in (tmp_path / "demo.out").read_bytes():
            assert demo.poll() is None, (tmp_path / "demo.out").read_text()
            assert time.monotonic() < deadline, "the demo did not come up in time"
            time.sleep(0.5)
        printed = (tmp_path / "demo.out").read_text()
        server = f"http://127.0.0.1:{port}"
        for url in (f"{server}/store", f"{server}/wip", f"{server}/jobs"):
            assert url in printed
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
    finally:
        if demo.poll() is None:
            demo.send_signal(signal.SIGINT)
        try:
            code = demo.wait(timeout=30)
        except subprocess.TimeoutExpired:
            demo.kill()
            raise
        output.close()
    assert code == 0
    still_listening = [p for p in [port, *(s.port for s in stations)] if _port_open(p)]
    assert not still_listening, f"still listening after Ctrl-C: {still_listening}"
