"""`lenstrack serve-group`: several server processes on PostgreSQL behind HAProxy.

The group test runs the real command (2 processes) with a store page open in headless
Chromium through the proxy, and posts station events through the proxy, which hands them to
both processes in turn: the page's row changes for each, whichever process stored it, and the
page's socket stays with the process that served the page. It needs PostgreSQL and Debian's
`haproxy`; without either it skips saying so, except under CI=true, where that fails.
"""

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.background import SWEEPER_LEADER, Leadership, Sweeper
from server.context import ServerContext
from server.db import Database
from server.group_cli import STICKY_COOKIE, free_port
from server.group_supervisor import _answers
from server.settings import Settings
from tests.chromium import chromium, logged_in_page
from tests.conftest import _postgres_database, child_environment
from tests.liveserver import (
    SERVER_ROOT,
    LiveServer,
    start_lenstrack,
    station_at_stage,
    wait_until_answering,
)

GROUP_START_TIMEOUT = 300.0  # the first process starts alone (it may make the keys), then the rest
NOT_BEFORE_QC = {"final_qc", "shipping"}  # completing QC needs an inspection


@contextmanager
def serving_group(root: Path, database_url: str, processes: int, jobs: int) -> Iterator[LiveServer]:
    """The demo lab seeded with `jobs` jobs into `database_url` (PostgreSQL), served by
    `lenstrack serve-group --processes N` until the block ends; `url` is HAProxy's."""
    server = LiveServer(root)
    server.env["LENSTRACK_DATABASE_URL"] = database_url
    server.cli("seed-demo", "--jobs", str(jobs))
    log = root / "serve-group.log"
    arguments = ["serve-group", "--processes", str(processes)]
    server.process = start_lenstrack(arguments, cwd=SERVER_ROOT, env=server.env, output=log)
    try:
        wait_until_answering(f"{server.url}/login", server.process, log, GROUP_START_TIMEOUT)
        yield server
    finally:
        server.stop()


def haproxy_log(server: LiveServer) -> str:
    return (server.root / "group" / "haproxy.log").read_text()


def require_haproxy() -> None:
    if shutil.which("haproxy") is None:
        message = "haproxy is not installed (Debian's package `haproxy`, in make's SYSTEM_PACKAGES)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message} (CI=true requires it)")
        pytest.skip(message)


def test_it_refuses_sqlite_saying_why(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "lenstrack.cli", "serve-group", "--processes", "2"],
        env={
            **child_environment("LENSTRACK_"),
            "LENSTRACK_DATA_DIR": str(tmp_path),
            "LENSTRACK_SETTINGS_FILE": str(tmp_path / "no-settings.toml"),
            "PYTHONPATH": str(SERVER_ROOT),
        },
        cwd=SERVER_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "needs PostgreSQL" in done.stderr and "SQLite" in done.stderr
    assert not (tmp_path / "group").exists()  # nothing was started


def test_the_supervisor_runs_without_pydantic_settings_or_cryptography() -> None:
    """It lives as long as the group: what it imports stays resident all that time."""
    heavy = ("pydantic", "pydantic_settings", "cryptography", "server.settings", "ssl", "email")
    listing = "import sys, server.group_supervisor; print(' '.join(sys.modules))"
    done = subprocess.run(
        [sys.executable, "-c", listing],
        env={**child_environment(), "PYTHONPATH": str(SERVER_ROOT)},
        cwd=SERVER_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    imported = done.stdout.split()
    assert "server.group_supervisor" in imported
    assert [name for name in imported if name.split(".")[0] in heavy or name in heavy] == []


def test_the_start_probe_takes_an_error_status_as_an_answer_and_silence_as_none() -> None:
    class Failing(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_error(503)

        def log_message(self, *_: object) -> None:
            pass

    with ThreadingHTTPServer(("127.0.0.1", 0), Failing) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            assert _answers(f"http://127.0.0.1:{server.server_address[1]}/api/health")
        finally:
            server.shutdown()
    assert not _answers(f"http://127.0.0.1:{free_port()}/api/health")


def _postgres_only(context: ServerContext) -> None:
    if context.db.dialect != "postgresql":
        pytest.skip("leadership is the PostgreSQL path; SQLite is served by one process")


def _counting_rounds(sweeper: Sweeper) -> list[int]:
    """A list that grows by one for every round `sweeper` runs."""
    rounds: list[int] = []
    sweep_once = sweeper.sweep_once

    def counted(now: Any = None) -> int:
        rounds.append(1)
        return sweep_once(now)

    sweeper.sweep_once = counted  # type: ignore[method-assign]
    return rounds


async def _until(condition: Callable[[], bool], seconds: float = 60) -> None:
    """Waits for `condition`; a bound, so a broken hand-over fails instead of hanging."""
    for _ in range(int(seconds / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not so within {seconds} s")


async def test_one_process_sweeps_and_another_takes_over_when_it_stops(
    context: ServerContext, settings: Settings
) -> None:
    _postgres_only(context)
    other_process = ServerContext(settings)  # an engine of its own, as another process has
    often = timedelta(milliseconds=50)
    first, second = Sweeper(context, interval=often), Sweeper(other_process, interval=often)
    first_rounds, second_rounds = _counting_rounds(first), _counting_rounds(second)
    try:
        await first.start()
        await _until(lambda: len(first_rounds) >= 3)  # alone: it leads
        await second.start()
        await _until(lambda: len(first_rounds) >= 13)
        assert second_rounds == []  # about ten chances to sweep, and it took none
        await first.stop()
        stopped_at = len(first_rounds)
        await _until(lambda: len(second_rounds) >= 5)
        assert len(first_rounds) == stopped_at
    finally:
        await first.stop()
        await second.stop()
        other_process.close()


def test_leadership_passes_on_when_the_leading_process_is_killed(
    context: ServerContext, settings: Settings
) -> None:
    _postgres_only(context)
    url = settings.resolved_database_url
    leading = (
        "import sys, time\n"
        "from server.background import Leadership, SWEEPER_LEADER\n"
        "from server.db import Database\n"
        f"print(Leadership(Database({url!r}), SWEEPER_LEADER).held(), flush=True)\n"
        "time.sleep(600)\n"
    )
    environment = {**child_environment(), "PYTHONPATH": str(SERVER_ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-c", leading], env=environment, stdout=subprocess.PIPE, text=True
    )
    ours = Leadership(Database(url), SWEEPER_LEADER)
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "True"
        assert not ours.held()
        process.kill()
        process.wait(timeout=10)
        # PostgreSQL ends the dead process's session, and its lock with it, once it notices the
        # closed connection: at once on this machine.
        for _ in range(100):
            if ours.held():
                break
            time.sleep(0.1)
        assert ours.held()
    finally:
        process.kill()
        ours.release()
        ours.db.dispose()


@pytest.fixture(scope="module")
def group(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    require_haproxy()
    for database_url in _postgres_database("group"):
        root = tmp_path_factory.mktemp("group")
        with serving_group(root, database_url, processes=2, jobs=20) as server:
            yield server


def _job_with_two_stages_to_go(
    http: httpx.Client, server: LiveServer
) -> tuple[dict[str, Any], list[str]]:
    """A queued NORTH job whose current and next stage both come before final QC."""
    http.post(
        f"{server.url}/api/auth/login", json={"username": "north", "password": "demo-store-pass"}
    ).raise_for_status()
    listed = http.get(f"{server.url}/api/jobs", params={"active": "true", "limit": 500}).json()
    for summary in listed["items"]:
        if summary["status"] != "queued":
            continue
        job = http.get(f"{server.url}/api/jobs/{summary['id']}").json()
        route = [stage["code"] for stage in job["route_stages"]]
        position = route.index(job["current_stage"]["code"])
        stages = route[position : position + 2]
        if len(stages) == 2 and not NOT_BEFORE_QC & set(stages):
            return job, stages
    raise AssertionError("the seeded demo has no queued NORTH job two stages before final QC")


@pytest.mark.browser
def test_a_page_behind_the_proxy_sees_events_stored_by_either_process(group: LiveServer) -> None:
    stations = station_at_stage()
    with chromium() as browser, httpx.Client(timeout=10) as http:
        job, stages = _job_with_two_stages_to_go(http, group)
        steps = [(stage, action) for stage in stages for action in ("start", "complete")]
        for stage, _ in steps:
            group.token(stations[stage])  # the CLI takes a while: before the events
        page = logged_in_page(browser, group.url, "north", "demo-store-pass", 1280, 800)
        page.goto(f"{group.url}/store")
        state = page.locator(f"[data-job-id='{job['id']}'] [data-part=state]")
        state.wait_for()
        (pinned,) = [c["value"] for c in page.context.cookies() if c["name"] == STICKY_COOKIE]
        client_id = page.evaluate("window.clientId")
        for stage, action in steps:
            before = state.inner_text()
            sent = group.send(http, stations[stage], job["job_number"], action)
            assert sent.is_success, sent.text
            page.wait_for_function(
                "([selector, before]) => document.querySelector(selector)?.innerText !== before",
                arg=[f"[data-job-id='{job['id']}'] [data-part=state]", before],
                timeout=10_000,
            )
        page.context.close()
    log = haproxy_log(group)
    storing = set(re.findall(r" api/(p\d) .*\"POST /api/events ", log))
    assert storing == {"p1", "p2"}, "the events went to both processes in turn"
    socket = [line for line in log.splitlines() if "/_nicegui_ws/" in line and client_id in line]
    assert socket, "the page's socket went through the proxy"
    assert all(f" pages/{pinned} " in line for line in socket), "the socket stays on its process"


def _children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_when_a_process_dies_the_group_stops_naming_it(group: LiveServer) -> None:
    """Runs last: it ends the module's group."""
    assert group.process is not None
    parts = _children(group.process.pid)
    assert len(parts) == 3  # two servers and HAProxy
    os.kill(parts[1], signal.SIGKILL)  # the second server
    assert group.process.wait(timeout=60) == 1
    output = (group.root / "serve-group.log").read_text()
    assert "error: serve-2 exited with code -9" in output
    assert not [pid for pid in parts if Path(f"/proc/{pid}").exists()]  # the others stopped
