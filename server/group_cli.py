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

This module checks the options and settings and plans the group; `server/group_supervisor.py`
then runs it, in this command's process and without this module's imports.
"""

import argparse
import json
import os
import shutil
import socket
import sys

from pydantic import BaseModel, Field, ValidationError

from server.group_supervisor import HAPROXY, GroupPlan
from server.settings import Settings

EXIT_REFUSED = 2
STICKY_COOKIE = "lenstrack_process"
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


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _process_env(settings: Settings) -> dict[str, str]:
    """What every `lenstrack serve` gets over this environment (the supervisor adds its port):
    these settings, and HAProxy (on this machine) believed about the client's address and
    scheme."""
    trusted = sorted({*settings.trusted_proxies, "127.0.0.1"})
    return {
        "LENSTRACK_DATA_DIR": str(settings.data_dir.resolve()),
        "LENSTRACK_HOST": "127.0.0.1",
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


def _plan_group(settings: Settings, options: GroupOptions) -> GroupPlan | str:
    """The group to start, with HAProxy's configuration written to data_dir/group; or why
    these settings cannot have one."""
    if refusal := _refusal(settings):
        return refusal
    log_dir = settings.data_dir / "group"
    log_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    proxy = ProxyPlan(
        host=settings.host,
        port=options.port or settings.port,
        process_ports=[free_port() for _ in range(options.processes)],
    )
    config = log_dir / "haproxy.cfg"
    config.write_text(proxy.haproxy_config())
    return GroupPlan(
        log_dir=str(log_dir),
        haproxy_config=str(config),
        proxy_url=f"http://{proxy.host}:{proxy.port}",
        process_ports=proxy.process_ports,
        process_env=_process_env(settings),
    )


def _serve_group(args: argparse.Namespace) -> int:
    """Checks and plans here, in `lenstrack`, which has imported every app's commands (camera
    decoders among them), then runs the lean supervisor in its place for the group's life."""
    try:
        options = GroupOptions(processes=args.processes, port=args.port)
    except ValidationError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_REFUSED
    plan = _plan_group(Settings(), options)
    if isinstance(plan, str):
        print(f"error: {plan}", file=sys.stderr)
        return EXIT_REFUSED
    supervisor = [sys.executable, "-m", "server.group_supervisor", plan.to_argument()]
    os.execv(sys.executable, supervisor)


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    group = subparsers.add_parser(
        "serve-group", help="several server processes on PostgreSQL behind HAProxy"
    )
    group.add_argument("--processes", type=int, default=2, help="server processes (default 2)")
    group.add_argument("--port", type=int, help="where HAProxy listens (default: the port setting)")
    group.set_defaults(handler=_serve_group)
