"""`lenstrack demo`: seed a demo lab on SQLite and run it, with every process it needs.

Each part runs as its own process (as it would in a lab), started and stopped together here.
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


@dataclass
class DemoProcesses:
    """Children started by the demo; all are stopped when it ends."""

    processes: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def start(self, name: str, arguments: list[str], env: dict[str, str]) -> None:
        log = (DEMO_DIR / f"{name}.log").open("ab")
        command = [sys.executable, "-m", "lenstrack.cli", *arguments]
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
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


def run_demo(args: argparse.Namespace) -> int:
    DEMO_DIR.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "LENSTRACK_DATA_DIR": str(DEMO_DIR.resolve()),
        "LENSTRACK_PORT": str(args.port),
        "LENSTRACK_HOST": "127.0.0.1",
    }
    env.pop("LENSTRACK_DATABASE_URL", None)  # the demo always runs on its own SQLite file
    seeded = subprocess.run(
        [sys.executable, "-m", "lenstrack.cli", "seed-demo"], env=env, check=False
    )
    if seeded.returncode != 0:
        return seeded.returncode
    server_url = f"http://127.0.0.1:{args.port}"
    children = DemoProcesses()
    try:
        children.start("server", ["serve"], env)
        if not _wait_until_up(f"{server_url}/login", timeout=60):
            print(f"the server did not come up; see {DEMO_DIR / 'server.log'}", file=sys.stderr)
            return 1
        print()
        print("LensTrack demo is running (Ctrl-C stops everything):")
        print(f"  job list (log in as above):  {server_url}/jobs")
        print(f"  API documentation:           {server_url}/docs")
        print(f"  logs:                        {DEMO_DIR}/*.log")
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
    demo.set_defaults(handler=run_demo)
