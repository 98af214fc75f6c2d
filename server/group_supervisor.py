"""The supervisor of `lenstrack serve-group`: starts the planned `lenstrack serve` processes and
HAProxy, watches them for the life of the group and stops them all when it ends.

`server/group_cli.py` checks the options and settings and plans the group, then runs this module
in its place (`python -m server.group_supervisor PLAN`). It lives as long as the group, so it
imports little beyond the standard library: no pydantic, settings or cryptography, nor urllib
(which brings ssl and email); about 14 MB resident instead of 58 MB.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

from server.child_process import ChildFailed, ChildProcess

EXIT_PART_FAILED = 1
START_TIMEOUT = 120.0
STOP_TIMEOUT = 15.0
HAPROXY = "haproxy"


@dataclass(frozen=True)
class GroupPlan:
    """What to start, made by `server/group_cli.py` from checked options and settings."""

    log_dir: str
    haproxy_config: str
    proxy_url: str
    process_ports: list[int]
    process_env: dict[str, str]  # set over the supervisor's environment, with LENSTRACK_PORT

    def to_argument(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_argument(cls, argument: str) -> "GroupPlan":
        return cls(**json.loads(argument))


class Stopped(Exception):
    """Ctrl-C or SIGTERM came while the group was starting."""


class Group:
    """The parts started so far; `stop` ends every one of them."""

    def __init__(self, log_dir: Path, stopping: threading.Event) -> None:
        self.log_dir = log_dir
        self.stopping = stopping
        self.parts: list[ChildProcess] = []

    def start(self, name: str, command: list[str], env: dict[str, str], url: str) -> ChildProcess:
        log = self.log_dir / f"{name}.log"
        with log.open("ab") as sink:
            # A session of its own: Ctrl-C reaches this command alone, which stops the parts in
            # order (HAProxy first, so no request goes to a process that is ending).
            process = subprocess.Popen(
                command, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
            )
        part = ChildProcess(name, process, log, url)
        self.parts.append(part)
        return part

    def wait_until_answering(self, part: ChildProcess) -> None:
        assert part.url is not None
        deadline = time.monotonic() + START_TIMEOUT
        while not _answers(part.url):
            if self.stopping.is_set():
                raise Stopped
            self.raise_if_any_exited()
            if time.monotonic() > deadline:
                raise ChildFailed(
                    part, f"did not answer at {part.url} within {START_TIMEOUT:.0f} s"
                )
            time.sleep(0.3)

    def raise_if_any_exited(self) -> None:
        for part in self.parts:
            if part.process.poll() is not None:
                raise ChildFailed(part, f"exited with code {part.process.returncode}")

    def stop(self) -> None:
        for part in reversed(self.parts):
            if part.process.poll() is None:
                part.process.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT
        for part in self.parts:
            try:
                part.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                part.process.kill()
                part.process.wait()


def _answers(url: str) -> bool:
    """Whether anything answers HTTP at `url` (an error status is an answer): the first bytes
    of a reply, over a bare socket (see the module's docstring)."""
    target = urlsplit(url)
    request = f"GET {target.path or '/'} HTTP/1.0\r\nHost: {target.netloc}\r\n\r\n"
    try:
        with socket.create_connection((target.hostname, target.port), timeout=2) as connection:
            connection.sendall(request.encode())
            with connection.makefile("rb") as reply:
                return reply.read(5) == b"HTTP/"
    except OSError:
        return False


@contextmanager
def _stopping_on_signals() -> Iterator[threading.Event]:
    """An event set by SIGINT or SIGTERM while the block runs."""
    stop = threading.Event()
    handlers = {
        sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield stop
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def supervise(plan: GroupPlan) -> int:
    log_dir = Path(plan.log_dir)
    serve = [sys.executable, "-m", "lenstrack.cli", "serve"]
    with _stopping_on_signals() as stopping:
        group = Group(log_dir, stopping)
        try:
            for number, port in enumerate(plan.process_ports, start=1):
                env = {**os.environ, **plan.process_env, "LENSTRACK_PORT": str(port)}
                part = group.start(
                    f"serve-{number}", serve, env, f"http://127.0.0.1:{port}/api/health"
                )
                if number == 1:
                    # The first makes the secret key and data keys if they are new (and checks
                    # them against the database): the others start once it has, and read them.
                    group.wait_until_answering(part)
            for part in group.parts[1:]:
                group.wait_until_answering(part)
            haproxy = group.start(
                "haproxy",
                [HAPROXY, "-db", "-f", plan.haproxy_config],
                dict(os.environ),
                plan.proxy_url,
            )
            group.wait_until_answering(haproxy)
            print(
                f"LensTrack serves on {plan.proxy_url}: {len(plan.process_ports)} processes "
                f"behind HAProxy (logs and haproxy.cfg in {log_dir}); Ctrl-C stops them all",
                flush=True,
            )
            while not stopping.wait(0.5):
                group.raise_if_any_exited()
            return 0
        except Stopped:
            return 0
        except ChildFailed as failure:
            print(f"error: {failure}", file=sys.stderr)
            return EXIT_PART_FAILED
        finally:
            group.stop()


if __name__ == "__main__":
    sys.exit(supervise(GroupPlan.from_argument(sys.argv[1])))
