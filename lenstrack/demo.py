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
from dataclasses import dataclass, field
from pathlib import Path

DEMO_DIR = Path("var/demo")
TOKENS_DIR = DEMO_DIR / "tokens"  # the station TOMLs and config/floor.toml read NAME.token here
STATION_CONFIGS = Path("config/stations")
FLOOR_CONFIG = Path("config/floor.toml")
START_TIMEOUT = 60.0


@dataclass
class DemoProcesses:
    """Children started by the demo; all are stopped when it ends."""

    processes: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def start(self, name: str, arguments: list[str], env: dict[str, str]) -> None:
        log = (DEMO_DIR / f"{name}.log").open("ab")
        process = subprocess.Popen(_cli(*arguments), env=env, stdout=log, stderr=subprocess.STDOUT)
        self.processes.append((name, process))

    def stop(self) -> None:
        for _, process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 10
        for _, process in self.processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()

    def exited(self) -> list[str]:
        return [name for name, process in self.processes if process.poll() is not None]


def _wait_until_up(url: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return True
        except OSError:
            time.sleep(0.3)
    return False


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


def run_demo(args: argparse.Namespace) -> int:
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
    seeded = subprocess.run(_cli("seed-demo"), env=env, check=False, capture_output=True)
    if seeded.returncode != 0:
        sys.stderr.buffer.write(seeded.stdout + seeded.stderr)
        return seeded.returncode
    server_url = f"http://127.0.0.1:{args.port}"
    configs = {path: StationSettings.load(path) for path in STATION_CONFIGS.glob("*.toml")}
    configs = dict(sorted(configs.items(), key=lambda item: item[1].port))
    stations = list(configs.values())
    floor = FloorSettings.load(FLOOR_CONFIG)
    _ensure_tokens([s.name for s in stations] + [s.name for s in floor.stations], DEMO_DIR)
    station_env = {**env, "LENSTRACK_STATION_SERVER_URL": server_url}
    children = DemoProcesses()
    try:
        children.start("server", ["serve"], env)
        if not _wait_until_up(f"{server_url}/login", timeout=START_TIMEOUT):
            print(f"the server did not come up; see {DEMO_DIR / 'server.log'}", file=sys.stderr)
            return 1
        for path, station in configs.items():
            children.start(station.name, ["station", "--config", str(path)], station_env)
        floor_args = ["simulate-floor", "--config", str(FLOOR_CONFIG), "--server-url", server_url]
        children.start("floor", [*floor_args, "--speed", str(args.speed)], env)
        deadline = started_at + START_TIMEOUT
        for station in stations:
            url = f"http://127.0.0.1:{station.port}/"
            if not _wait_until_up(url, timeout=max(1.0, deadline - time.monotonic())):
                print(f"{station.name} did not come up; see {DEMO_DIR}/{station.name}.log")
                return 1
        print(seeded.stdout.decode(), end="")
        print()
        print(
            f"LensTrack demo is running, up in {time.monotonic() - started_at:.0f} s "
            "(Ctrl-C stops everything):"
        )
        print(f"  store portal (north / south):  {server_url}/store")
        print(f"  WIP board:                     {server_url}/wip")
        print(f"  job list:                      {server_url}/jobs")
        print(f"  API documentation:             {server_url}/docs")
        print("  stations for people (sign in by scanning a badge, e.g. B1001):")
        for station in stations:
            camera = (
                " (virtual camera)"
                if any(s.kind == "virtual_camera" for s in station.scanners)
                else ""
            )
            print(
                f"    {station.name:7} {station.stage:11} http://127.0.0.1:{station.port}/{camera}"
            )
        simulated = ", ".join(station.name for station in floor.stations)
        print(f"  simulated stations ({args.speed:g}× speed): {simulated}")
        print(f"  logs:                          {DEMO_DIR}/*.log")
        while not children.exited():
            time.sleep(1)
        print(f"stopped unexpectedly: {', '.join(children.exited())}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        children.stop()


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    demo = subparsers.add_parser("demo", help="seed and run the demo lab on this machine")
    demo.add_argument("--port", type=int, default=8080)
    demo.add_argument(
        "--speed", type=float, default=60, help="floor simulator: standard minutes per minute"
    )
    demo.set_defaults(handler=run_demo)
