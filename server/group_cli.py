"""`lenstrack serve-group --processes N [--port P]`: a lab group's server, several `lenstrack
serve` processes on one PostgreSQL database behind Debian's HAProxy, in the foreground.

The processes listen on free localhost ports with the same settings and data_dir (so the same
secret key and data keys); HAProxy listens on `host:port`. NiceGUI keeps a page's state, and
its socket, in the process that served the page, so a browser is pinned to its first process by
a cookie HAProxy inserts; `/api/` goes round-robin (stations and other systems need no pin:
their sessions and tokens are in the database). Pages of one process learn about changes made
by another through PostgreSQL LISTEN/NOTIFY (server/live.py). Each part logs to
`data_dir/group/NAME.log`; Ctrl-C or SIGTERM stops them all, and if any part exits the others
are stopped and the command fails naming it with the end of its log.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from server.child_process import ChildFailed, ChildProcess
from server.settings import Settings

EXIT_REFUSED, EXIT_PART_FAILED = 2, 1
START_TIMEOUT = 120.0
STOP_TIMEOUT = 15.0
STICKY_COOKIE = "lenstrack_process"
HAPROXY = "haproxy"
# A socket stays open as long as its page; HTTP requests (a DCS import, 200 tickets) end sooner.
HAPROXY_CONFIG = """\
global
    log stdout format raw local0

defaults
    mode http
    log global
    option httplog
    option logasap
    option redispatch
    retries 2
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout tunnel 1h

frontend lenstrack
    bind {host}:{port}
    option forwardfor
    http-request set-header X-Forwarded-Proto http unless {{ req.hdr(x-forwarded-proto) -m found }}
    use_backend api if {{ path_beg /api/ }}
    default_backend pages

backend pages
    balance roundrobin
    cookie {cookie} insert indirect nocache httponly attr "SameSite=Lax"
{page_servers}

backend api
    balance roundrobin
{api_servers}
"""


class GroupOptions(BaseModel):
    """What the command line asks for."""

    processes: int = Field(ge=1, le=32)
    port: int | None = Field(default=None, ge=1, le=65535)


class ProxyPlan(BaseModel):
    """Where HAProxy listens and the ports of the server processes behind it."""

    host: str
    port: int = Field(ge=1, le=65535)
    process_ports: list[int] = Field(min_length=1)

    def haproxy_config(self) -> str:
        servers = [(f"p{n}", port) for n, port in enumerate(self.process_ports, start=1)]
        pages = "\n".join(
            f"    server {name} 127.0.0.1:{port} cookie {name} check" for name, port in servers
        )
        api = "\n".join(f"    server {name} 127.0.0.1:{port} check" for name, port in servers)
        return HAPROXY_CONFIG.format(
            host=self.host,
            port=self.port,
            cookie=STICKY_COOKIE,
            page_servers=pages,
            api_servers=api,
        )


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
    """Whether anything answers HTTP at `url` (an error status is an answer)."""
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


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


def _process_env(settings: Settings, port: int) -> dict[str, str]:
    """The environment of one `lenstrack serve`: these settings, its own port, and HAProxy
    (on this machine) believed about the client's address and scheme."""
    trusted = sorted({*settings.trusted_proxies, "127.0.0.1"})
    return {
        **os.environ,
        "LENSTRACK_DATA_DIR": str(settings.data_dir.resolve()),
        "LENSTRACK_HOST": "127.0.0.1",
        "LENSTRACK_PORT": str(port),
        "LENSTRACK_TRUSTED_PROXIES": json.dumps(trusted),
    }


def _refusal(settings: Settings) -> str | None:
    if settings.resolved_database_url.startswith("sqlite"):
        return (
            "serve-group needs PostgreSQL (database_url = postgresql+psycopg://…): several "
            "server processes writing one SQLite file is not a supported setup; run one "
            "`lenstrack serve` on SQLite"
        )
    if shutil.which(HAPROXY) is None:
        return "serve-group needs HAProxy: apt-get install haproxy (Debian's package)"
    return None


def serve_group(settings: Settings, options: GroupOptions) -> int:
    if refusal := _refusal(settings):
        print(f"error: {refusal}", file=sys.stderr)
        return EXIT_REFUSED
    log_dir = settings.data_dir / "group"
    log_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    plan = ProxyPlan(
        host=settings.host,
        port=options.port or settings.port,
        process_ports=[free_port() for _ in range(options.processes)],
    )
    config = log_dir / "haproxy.cfg"
    config.write_text(plan.haproxy_config())
    serve = [sys.executable, "-m", "lenstrack.cli", "serve"]
    with _stopping_on_signals() as stopping:
        group = Group(log_dir, stopping)
        try:
            for number, process_port in enumerate(plan.process_ports, start=1):
                env = _process_env(settings, process_port)
                part = group.start(
                    f"serve-{number}", serve, env, f"http://127.0.0.1:{process_port}/api/health"
                )
                if number == 1:
                    # The first makes the secret key and data keys if they are new (and checks
                    # them against the database): the others start once it has, and read them.
                    group.wait_until_answering(part)
            for part in group.parts[1:]:
                group.wait_until_answering(part)
            proxy_url = f"http://{plan.host}:{plan.port}"
            haproxy = group.start(
                "haproxy", [HAPROXY, "-db", "-f", str(config)], dict(os.environ), proxy_url
            )
            group.wait_until_answering(haproxy)
            print(
                f"LensTrack serves on {proxy_url}: {options.processes} processes behind HAProxy "
                f"(logs and haproxy.cfg in {log_dir}); Ctrl-C stops them all",
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


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--processes", type=int, default=2, help="server processes (default 2)")
    parser.add_argument(
        "--port", type=int, help="where HAProxy listens (default: the port setting)"
    )


def _serve_group(args: argparse.Namespace) -> int:
    try:
        options = GroupOptions(processes=args.processes, port=args.port)
    except ValidationError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_REFUSED
    return serve_group(Settings(), options)


def _as_lean_supervisor(args: argparse.Namespace) -> int:
    """Runs this module alone in place of `lenstrack`, which has imported every app's commands
    (camera decoders among them): the supervisor lives as long as the group, and this halves
    its memory (about 100 MB to 55 MB)."""
    arguments = ["--processes", str(args.processes)]
    if args.port is not None:
        arguments += ["--port", str(args.port)]
    os.execv(sys.executable, [sys.executable, "-m", "server.group_cli", *arguments])


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    group = subparsers.add_parser(
        "serve-group", help="several server processes on PostgreSQL behind HAProxy"
    )
    _add_arguments(group)
    group.set_defaults(handler=_as_lean_supervisor)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="lenstrack serve-group", description=__doc__)
    _add_arguments(parser)
    sys.exit(_serve_group(parser.parse_args()))
