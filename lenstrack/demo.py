"""`lenstrack demo`: seed a demo lab on SQLite and run it, with every process it needs.

Each part runs as its own process (as it would in a lab), started and stopped together here:
the server, one station app per `config/stations/*.toml` (for people) and the floor
simulator working the second station of each stage.
"""

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from server.child_process import ChildFailed, ChildProcess

if TYPE_CHECKING:  # the station package is imported only once the demo runs
    from station.settings import StationSettings
    from station.simulator import FloorSettings

DEMO_DIR = Path("var/demo")
MAIL_DIR = DEMO_DIR / "mail"  # what the stores were e-mailed: one .eml each, and index.txt
TOKENS_DIR = DEMO_DIR / "tokens"  # the station TOMLs and config/floor.toml read NAME.token here
STATION_CONFIGS = Path("config/stations")
FLOOR_CONFIG = Path("config/floor.toml")
# Each part gets its own deadline, counted from its own start: a busy two-core machine
# starts ten Python processes at once, and a part that is still running is slow, not dead.
START_TIMEOUT = 300.0
PROGRESS_EVERY = 10.0  # seconds between "still waiting" lines
Say = Callable[[str], None]


@dataclass
class DemoProcesses:
    """Children started by the demo; all are stopped when it ends."""

    children: list[ChildProcess] = field(default_factory=list)

    def start(
        self, name: str, arguments: list[str], env: dict[str, str], url: str | None = None
    ) -> ChildProcess:
        log_path = DEMO_DIR / f"{name}.log"
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                _cli(*arguments), env=env, stdout=log, stderr=subprocess.STDOUT
            )
        child = ChildProcess(name, process, log_path, url)
        self.children.append(child)
        return child

    def stop(self) -> None:
        for child in self.children:
            if child.process.poll() is None:
                child.process.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 10
        for child in self.children:
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.process.kill()

    def exited(self) -> list[ChildProcess]:
        return [child for child in self.children if child.process.poll() is not None]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5):
            return True
    except OSError:
        return False


def wait_until_up(
    children: Sequence[ChildProcess],
    what: str,
    say: Say,
    timeout: float = START_TIMEOUT,
    progress_every: float = PROGRESS_EVERY,
) -> None:
    """Wait until every child's URL answers. Fails (ChildFailed) as soon as one exits, or once
    one has been running `timeout` seconds since its own start without answering. Says how
    many are up whenever that changes, and what is still awaited every `progress_every` s."""
    waiting = list(children)
    last_said = time.monotonic()
    while waiting:
        for child in list(waiting):
            if child.url is not None and _answers(child.url):
                waiting.remove(child)
                say(f"{what}: {len(children) - len(waiting)} of {len(children)} up ({child.name})")
                last_said = time.monotonic()
            elif child.process.poll() is not None:
                raise ChildFailed(child, f"exited with code {child.process.returncode}")
            elif time.monotonic() - child.started_at > timeout:
                raise ChildFailed(child, f"did not answer at {child.url} within {timeout:.0f} s")
        if waiting and time.monotonic() - last_said >= progress_every:
            names = ", ".join(child.name for child in waiting)
            say(f"{what}: still starting {names}")
            last_said = time.monotonic()
        if waiting:
            time.sleep(0.3)


def _cli(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "lenstrack.cli", *arguments]


def _token_file(station: str) -> Path:
    return TOKENS_DIR / f"{station}.token"


def _ensure_tokens(names: list[str], data_dir: Path) -> None:
    """A working token file per station: kept if it still authenticates, else replaced (the
    demo database may have been reset under old files). One transaction, one writer."""
    from server.db import Database
    from server.domain.auth import authenticate, create_station_token
    from server.domain.errors import Unauthorized
    from server.settings import Settings

    TOKENS_DIR.mkdir(parents=True, exist_ok=True)
    database = Database(Settings(data_dir=data_dir).resolved_database_url)
    try:
        with database.session() as session:
            for name in names:
                path = _token_file(name)
                token = path.read_text().strip() if path.is_file() else ""
                try:
                    valid = getattr(authenticate(session, token), "name", None) == name
                except Unauthorized:
                    valid = False
                if not valid:
                    path.write_text(create_station_token(session, name, label="demo") + "\n")
    finally:
        database.dispose()


def _say(line: str) -> None:
    print(line, flush=True)


def _seed(env: dict[str, str], jobs: int, history_days: float) -> tuple[int, str]:
    """Run `seed-demo`, relaying its progress lines as they come; returns its exit code and
    what it printed on stdout (the demo log-ins). With `history_days` the jobs are that many
    days of history written by the bulk path, so the KPI dashboards have months to show."""
    _say(f"seeding the demo lab ({jobs} jobs) in {DEMO_DIR / 'lenstrack.db'}")
    started_at = time.monotonic()
    bulk = ["--bulk", f"{history_days:g}"] if history_days > 0 else []
    with subprocess.Popen(
        _cli("seed-demo", "--jobs", str(jobs), *bulk),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as seeding:
        assert seeding.stderr is not None and seeding.stdout is not None
        for line in seeding.stderr:  # the log-ins on stdout fit the pipe, so this cannot block
            print(f"  {line.rstrip()}", file=sys.stderr, flush=True)
        printed = seeding.stdout.read()
    if seeding.returncode == 0:
        _say(f"seeded in {time.monotonic() - started_at:.0f} s")
    return seeding.returncode, printed


def _print_urls(
    server_url: str, stations: list["StationSettings"], floor: "FloorSettings", speed: float
) -> None:
    print(f"  store portal (north / south):  {server_url}/store")
    print(f"  new order (keyboard only):     {server_url}/store/orders/new")
    print(f"  WIP board (Print new tickets): {server_url}/wip")
    print(f"  change requests (manager):     {server_url}/lab/changes")
    print(f"  a job's ticket:                {server_url}/api/jobs/1/ticket.pdf")
    print(f"  job list:                      {server_url}/jobs")
    print(f"  KPIs (lab / store):            {server_url}/lab/kpis  {server_url}/store/kpis")
    print(f"  API documentation:             {server_url}/docs")
    print("  stations for people (sign in by scanning a badge, e.g. B1001):")
    for station in stations:
        camera = (
            " (virtual camera)" if any(s.kind == "virtual_camera" for s in station.scanners) else ""
        )
        print(f"    {station.name:7} {station.stage:11} http://127.0.0.1:{station.port}/{camera}")
    simulated = ", ".join(station.name for station in floor.stations)
    print(f"  simulated stations ({speed:g}× speed): {simulated}")
    print(f"  logs:                          {DEMO_DIR}/*.log")
    print(f"  e-mails (stores, SPC alerts):  {MAIL_DIR}/index.txt, one .eml per message")
    print(f"  store messages (north):        {server_url}/store/settings")


def run_demo(args: argparse.Namespace) -> int:
    from lenstrack.mail_sink import MailSink
    from station.settings import StationSettings
    from station.simulator import FloorSettings

    DEMO_DIR.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "LENSTRACK_DATA_DIR": str(DEMO_DIR.resolve()),
        "LENSTRACK_PORT": str(args.port),
        "LENSTRACK_HOST": "127.0.0.1",
    }
    env.pop("LENSTRACK_DATABASE_URL", None)  # the demo always runs on its own SQLite file
    started_at = time.monotonic()
    code, logins = _seed(env, args.jobs, args.history)
    if code != 0:
        print(f"seeding the demo lab failed (exit code {code})", file=sys.stderr)
        return code
    server_url = f"http://127.0.0.1:{args.port}"
    configs = {path: StationSettings.load(path) for path in STATION_CONFIGS.glob("*.toml")}
    configs = dict(sorted(configs.items(), key=lambda item: item[1].port))
    stations = list(configs.values())
    floor = FloorSettings.load(FLOOR_CONFIG)
    _ensure_tokens([s.name for s in stations] + [s.name for s in floor.stations], DEMO_DIR)
    # The stores' e-mails go to a local sink, never out; it keeps each one under MAIL_DIR.
    mail_sink = MailSink(directory=MAIL_DIR).start()
    env |= {f"LENSTRACK_{key.upper()}": str(value) for key, value in mail_sink.settings().items()}
    station_env = {**env, "LENSTRACK_STATION_SERVER_URL": server_url}
    children = DemoProcesses()
    try:
        server = children.start("server", ["serve"], env, f"{server_url}/login")
        wait_until_up([server], "server", _say)
        station_children = [
            children.start(
                station.name,
                ["station", "--config", str(path)],
                station_env,
                f"http://127.0.0.1:{station.port}/",
            )
            for path, station in configs.items()
        ]
        floor_args = ["simulate-floor", "--config", str(FLOOR_CONFIG), "--server-url", server_url]
        children.start("floor", [*floor_args, "--speed", str(args.speed)], env)
        wait_until_up(station_children, "stations", _say)
        print(logins, end="")
        print()
        print(
            f"LensTrack demo is running, up in {time.monotonic() - started_at:.0f} s "
            "(Ctrl-C stops everything):"
        )
        _print_urls(server_url, stations, floor, args.speed)
        while not children.exited():
            time.sleep(1)
        for child in children.exited():
            print(ChildFailed(child, "stopped unexpectedly"), file=sys.stderr)
        return 1
    except ChildFailed as failure:
        print(failure, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        children.stop()
        mail_sink.stop()


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    demo = subparsers.add_parser("demo", help="seed and run the demo lab on this machine")
    demo.add_argument("--port", type=int, default=8080)
    demo.add_argument("--jobs", type=int, default=3000, help="jobs in a newly seeded demo lab")
    demo.add_argument(
        "--history",
        type=float,
        default=120,
        metavar="DAYS",
        help="the jobs as DAYS days of history (KPI charts); 0: moved by station events",
    )
    demo.add_argument(
        "--speed", type=float, default=60, help="floor simulator: standard minutes per minute"
    )
    demo.set_defaults(handler=run_demo)
