"""The reliability harness of issue #11: stations post while faults happen, then everything
drains and `check` compares UUID sets. Shared by `tests/reliability/` (short form, `make test`)
and `benchmarks/reliability.py` (long form): both call `run_scenario`.

A run: a fresh database (SQLite file, or a throwaway PostgreSQL database), a real
`lenstrack serve` subprocess, and three headless stations (`poster.py` subprocesses: EDGE-1
and EDGE-2 at edging competing for the same jobs, FIT-1 at fitting sending them on or back).
The scenario's fault runs `rounds` times, each at a random moment of a round; then the
stations stop scanning, the outboxes drain, the stations stop, and the checks run. Every wait
is bounded; speed is reported, never asserted.
"""

import contextlib
import os
import random
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from server.crypto import open_cipher
from tests.conftest import POSTGRES_URL, child_environment, throwaway_postgres_database
from tests.reliability.check import Findings, StationFiles, as_text, check, queued
from tests.reliability.lab import prepare_lab, sqlite_url
from tests.reliability.poster import PosterSpec, read_log
from tests.reliability.proxy import LinkCutter, Mode
from tests.station.conftest import LiveServer

PROJECT_ROOT = Path(__file__).resolve().parents[2]
Backend = Literal["sqlite", "postgresql"]
STATIONS = {"EDGE-1": "edging", "EDGE-2": "edging", "FIT-1": "fitting"}
FAULTED_STATION = "FIT-1"  # behind the proxy, or on the tiny disk: its scans are often rejected
POSTER_START_TIMEOUT = 60.0
POSTGRES_TIMEOUT = 60.0
TMPFS_SIZE = "16m"  # room for the outbox and a WAL that grows up to ~4 MB between checkpoints


class Unavailable(Exception):
    """Something the scenario needs is missing here (PostgreSQL, a tmpfs mount)."""

    def __init__(self, message: str, *, required_in_ci: bool) -> None:
        super().__init__(message)
        self.required_in_ci = required_in_ci


DRAIN_LIMIT = 600.0  # seconds: the longest a drain may take, however steadily


@dataclass(frozen=True)
class Plan:
    """How big a run is: bounded in rounds, rate and time."""

    backend: Backend = "sqlite"
    rounds: int = 2
    round_seconds: float = 3.0  # a fault strikes at a random moment of each round
    rate: float = 5.0  # scans per second per station
    jobs: int = 40
    drain_timeout: float = 60.0  # with no event leaving any outbox (see `_drained`)
    seed: int = 0


@dataclass
class Report:
    scenario: str
    backend: Backend
    figures: dict[str, dict[str, int]]
    faults: Counter[str]  # injected
    effects: Counter[str]  # what the proxy and the server's log saw
    seconds: dict[str, float]
    violations: list[str]

    def describe(self) -> str:
        faults = ", ".join(f"{name} {n}" for name, n in self.faults.items()) or "none"
        effects = "".join(f", {name} {n}" for name, n in self.effects.items())
        timing = ", ".join(f"{name} {value:.1f} s" for name, value in self.seconds.items())
        lines = [
            f"{self.scenario} on {self.backend}: faults: {faults}{effects}; {timing}",
            as_text(self.figures),
            *(f"VIOLATION {line}" for line in self.violations),
        ]
        return "\n".join(lines)


# -- the server --


class Server(LiveServer):
    """`lenstrack serve` (the station tests' harness) on any database; can be SIGKILLed."""

    def __init__(self, root: Path, database_url: str) -> None:
        root.mkdir(parents=True, exist_ok=True)
        super().__init__(root)
        self.env = {
            **child_environment("LENSTRACK_"),
            "LENSTRACK_DATA_DIR": str(root),
            "LENSTRACK_DATABASE_URL": database_url,
            "LENSTRACK_PORT": str(self.port),
            "LENSTRACK_HOST": "127.0.0.1",
            "PYTHONPATH": self.env["PYTHONPATH"],
        }

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def exited(self) -> int | None:
        """The exit code if the server died on its own."""
        return None if self.process is None else self.process.poll()

    def troubles(self) -> Counter[str]:
        """What its log shows going wrong: not violations (stations retry), but figures."""
        log = (self.root / "server.log").read_text(errors="replace")
        found = Counter(
            {
                "server 5xx answers": len(re.findall(r'" 5\d\d ', log)),
                "database deadlocks": log.count("DeadlockDetected: deadlock detected"),
            }
        )
        return +found  # the non-zero ones


# -- the stations --


class Poster:
    """One `poster.py` process; killed and restarted on the same outbox and log."""

    def __init__(self, spec: PosterSpec, root: Path) -> None:
        self.spec = spec
        self.spec_file = root / f"{spec.name}.json"
        self.spec_file.write_text(spec.model_dump_json())
        self.output = root / f"{spec.name}.out"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.env = {**child_environment("LENSTRACK_"), "PYTHONPATH": str(PROJECT_ROOT)}

    @property
    def files(self) -> StationFiles:
        return StationFiles(self.spec.data_dir / "outbox.sqlite3", self.spec.log)

    def start(self) -> None:
        with self.output.open("ab") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.reliability.poster", str(self.spec_file)],
                cwd=PROJECT_ROOT,
                env=self.env,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        self.starts += 1

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def kill_while_recording(self, timeout: float) -> bool:
        """SIGKILL as soon as the log shows a scan being committed (tried, not yet answered);
        at `timeout` anyway. True if it struck mid-record."""
        deadline = time.monotonic() + timeout
        with contextlib.suppress(FileNotFoundError), self.spec.log.open("rb") as log:
            while time.monotonic() < deadline:
                log.seek(max(0, os.fstat(log.fileno()).st_size - 400))
                lines = log.read().splitlines()
                if lines and b'"note"' in lines[-1]:
                    self.kill()
                    return True
                time.sleep(0.0005)
        self.kill()
        return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)

    def exited(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def scanning(self) -> bool:
        return any("ok" in r or "refused" in r for r in read_log(self.spec.log))

    def done(self) -> bool:
        """The current process has stopped scanning (it keeps sending)."""
        marks = [r for r in read_log(self.spec.log) if "started" in r or "done" in r]
        return bool(marks) and "done" in marks[-1]

    def tail(self, lines: int = 5) -> str:
        if not self.output.exists():
            return ""
        return "\n".join(self.output.read_text(errors="replace").splitlines()[-lines:])


# -- PostgreSQL --


def _postgres_error(url: str) -> str | None:
    engine = create_engine(url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return None
    except OperationalError as error:
        return str(error.orig).strip()
    finally:
        engine.dispose()


def _cluster() -> list[str]:
    """`pg_ctlcluster` arguments naming the local cluster (version, 'main')."""
    host = make_url(POSTGRES_URL).host
    if host not in (None, "", "127.0.0.1", "localhost", "::1"):
        raise Unavailable(f"PostgreSQL at {host} is not this machine's", required_in_ci=True)
    versions = sorted(os.listdir("/etc/postgresql")) if Path("/etc/postgresql").is_dir() else []
    if len(versions) != 1 or shutil.which("pg_ctlcluster") is None:
        raise Unavailable(
            "no single local PostgreSQL cluster to restart (needs /etc/postgresql/VERSION and "
            "pg_ctlcluster)",
            required_in_ci=True,
        )
    return ["pg_ctlcluster", "--skip-systemctl-redirect", versions[0], "main"]


def restart_postgres(mode: Literal["fast", "immediate"]) -> None:
    subprocess.run(
        [*_cluster(), "restart", "-m", mode], check=True, capture_output=True, timeout=60
    )


def ensure_postgres_up() -> None:
    """Starts the local cluster if a fault left it down, and waits until it answers."""
    if _postgres_error(POSTGRES_URL) is None:
        return
    with contextlib.suppress(Unavailable, subprocess.SubprocessError):
        subprocess.run([*_cluster(), "start"], capture_output=True, timeout=60)
    deadline = time.monotonic() + POSTGRES_TIMEOUT
    while (error := _postgres_error(POSTGRES_URL)) is not None:
        if time.monotonic() > deadline:
            raise RuntimeError(f"PostgreSQL did not come back: {error}")
        time.sleep(0.5)


@contextmanager
def postgres_database() -> Iterator[str]:
    """A throwaway database on the local server (as tests/conftest.py makes), dropped after,
    with the server brought back up first if a fault left it down."""
    error = _postgres_error(POSTGRES_URL)
    if error is not None:
        raise Unavailable(
            f"PostgreSQL not reachable at {POSTGRES_URL}: {error}", required_in_ci=True
        )
    with throwaway_postgres_database(
        "lenstrack_reliability", before_drop=ensure_postgres_up
    ) as url:
        yield url


@contextmanager
def database(backend: Backend, root: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield sqlite_url(root / "lenstrack.db")
    else:
        with postgres_database() as url:
            yield url


# -- a tiny disk --


@contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir(parents=True)
    try:
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        error = (
            (mounted.stderr.strip() or f"exit {mounted.returncode}") if mounted.returncode else ""
        )
    except OSError as failure:  # no mount command
        error = str(failure)
    if error:
        raise Unavailable(
            f"cannot mount a tmpfs (needs root and CAP_SYS_ADMIN): {error}", required_in_ci=False
        )
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True, timeout=30).returncode:
            subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)


def fill(directory: Path) -> Path:
    """Writes a file until the disk is full, to the last 4 KiB page."""
    filler = directory / "filler"
    with filler.open("wb", buffering=0) as out:
        for chunk in (1 << 20, 1 << 16, 1 << 12):
            with contextlib.suppress(OSError):
                while True:
                    out.write(b"\0" * chunk)
    return filler


# -- a run --


@dataclass
class Run:
    """What a fault acts on while the stations post."""

    plan: Plan
    root: Path
    server: Server
    posters: dict[str, Poster]
    rng: random.Random
    proxy: LinkCutter | None = None
    tiny_disk: Path | None = None
    faults: Counter[str] = field(default_factory=Counter)

    def rounds(self) -> Iterator[int]:
        """Yields at a random moment of each round."""
        for number in range(self.plan.rounds):
            time.sleep(self.rng.uniform(0.3, self.plan.round_seconds))
            yield number


Fault = Callable[[Run], None]


def kill_server(run: Run) -> None:
    for _ in run.rounds():
        run.server.kill()
        run.faults["server SIGKILL"] += 1
        time.sleep(run.rng.uniform(0.2, 1.5))
        run.server.start()


def restart_postgres_while_posting(run: Run) -> None:
    try:
        for number in run.rounds():
            mode: Literal["fast", "immediate"] = "immediate" if number % 2 else "fast"
            restart_postgres(mode)
            run.faults[f"PostgreSQL restart ({mode})"] += 1
    finally:
        ensure_postgres_up()


PROXY_MODES: tuple[Mode, ...] = ("lose_replies", "reset", "refuse", "blackhole")


def cut_link(run: Run) -> None:
    assert run.proxy is not None
    try:
        for number in run.rounds():
            mode = PROXY_MODES[number % len(PROXY_MODES)]
            run.proxy.set_mode(mode)
            run.faults[f"link {mode}"] += 1
            if mode != "reset":  # a reset is one instant; the others last a while
                time.sleep(run.rng.uniform(1.0, max(1.0, run.plan.round_seconds)))
                run.proxy.set_mode("pass")
    finally:
        run.proxy.set_mode("pass")


def _kill_mid_send(proxy: LinkCutter, poster: Poster) -> bool:
    """SIGKILL once the server has answered a batch whose reply the proxy holds (at most 3 s
    on); True if it struck then."""
    held = proxy.counts["replies held"]
    proxy.set_mode("hold_replies")
    struck = _until(lambda: proxy.counts["replies held"] > held, 3.0, every=0.01)
    poster.kill()
    proxy.set_mode("pass")
    return struck


def kill_station(run: Run) -> None:
    """Rounds in turn: a station killed while it commits a scan; FIT-1 killed while it sends,
    after the server committed its batch (the proxy holds the reply); a station killed at a
    random moment. Each is restarted at once on the same outbox."""
    assert run.proxy is not None
    names = sorted(run.posters)
    for number in run.rounds():
        kind = number % 3
        poster = run.posters[FAULTED_STATION if kind == 1 else names[number % len(names)]]
        if kind == 0:
            struck = poster.kill_while_recording(timeout=2.0)
            run.faults["station SIGKILL mid-record" if struck else "station SIGKILL"] += 1
        elif kind == 1:
            struck = _kill_mid_send(run.proxy, poster)
            run.faults["station SIGKILL mid-send" if struck else "station SIGKILL"] += 1
        else:
            poster.kill()
            run.faults["station SIGKILL"] += 1
        poster.start()


def fill_disk(run: Run) -> None:
    """Each round: the link is refused while a backlog builds up, the disk fills, the link
    comes back (so the server's answers arrive while the outbox cannot store them, and new
    scans are refused), then the space is freed."""
    assert run.tiny_disk is not None and run.proxy is not None
    filler: Path | None = None
    try:
        for _ in run.rounds():
            run.proxy.set_mode("refuse")
            time.sleep(run.rng.uniform(1.0, 2.0))
            filler = fill(run.tiny_disk)
            run.faults["disk full"] += 1
            run.proxy.set_mode("pass")
            time.sleep(run.rng.uniform(1.5, 3.0))
            filler.unlink()
            filler = None
    finally:
        if filler is not None:
            filler.unlink(missing_ok=True)
        run.proxy.set_mode("pass")


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    fault: Fault
    backends: tuple[Backend, ...] = ("sqlite", "postgresql")
    proxy: bool = False  # FAULTED_STATION talks to the server through the link cutter
    tiny_disk: bool = False  # FAULTED_STATION's outbox is on a small tmpfs
    restarts_postgres: bool = False  # needs the local cluster's pg_ctlcluster


SCENARIOS = {
    scenario.name: scenario
    for scenario in (
        Scenario(
            "server-kill",
            "the server SIGKILLed and restarted while stations post",
            kill_server,
        ),
        Scenario(
            "postgres-restart",
            "PostgreSQL restarted (fast, then immediate) while stations post",
            restart_postgres_while_posting,
            backends=("postgresql",),
            restarts_postgres=True,
        ),
        Scenario(
            "link-cut",
            f"{FAULTED_STATION}'s link cut by a proxy: replies lost, reset, refused, black-holed",
            cut_link,
            proxy=True,
        ),
        Scenario(
            "station-kill",
            "a station SIGKILLed (mid-record, mid-send or anywhere), restarted on its outbox",
            kill_station,
            proxy=True,
        ),
        Scenario(
            "disk-full",
            f"{FAULTED_STATION}'s outbox disk filled with a backlog to mark, then freed",
            fill_disk,
            proxy=True,
            tiny_disk=True,
        ),
    )
}


RunScenario = Callable[[str, Plan], Report]  # the tests' fixture: a scenario by name


def _until(condition: Callable[[], bool], timeout: float, every: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(every)
    return True


def _drained(posters: list[Poster], stall_timeout: float) -> bool:
    """Waits while the outboxes drain: a slow server (a backlog after many faults on a busy
    machine) is waited for as long as events keep leaving, a stuck sender is not — False once
    nothing left any outbox for `stall_timeout` s, or after DRAIN_LIMIT s in all."""

    def left() -> int:
        return sum(queued(p.files.outbox) for p in posters)

    limit = time.monotonic() + DRAIN_LIMIT
    while (before := left()) and time.monotonic() < limit:
        if not _until(lambda: left() < before, stall_timeout):
            return False
    return left() == 0


def _stop_all(posters: dict[str, Poster]) -> None:
    for poster in posters.values():
        poster.stop()


def _posters(
    plan: Plan,
    root: Path,
    jobs: list[str],
    tokens: dict[str, str],
    urls: dict[str, str],
    tiny_disk: Path | None,
) -> dict[str, Poster]:
    posters: dict[str, Poster] = {}
    stations = root / "stations"
    stations.mkdir(parents=True, exist_ok=True)
    for number, (name, stage) in enumerate(STATIONS.items()):
        home = tiny_disk if tiny_disk is not None and name == FAULTED_STATION else stations
        spec = PosterSpec(
            name=name,
            stage=stage,
            server_url=urls[name],
            token=tokens[name],
            data_dir=home / name,
            log=stations / f"{name}.log",
            stop_file=stations / "stop",
            jobs=jobs,
            rate=plan.rate,
            # Bounds a poster whatever happens to the harness: twice the planned time.
            max_attempts=int(plan.rate * 2 * (plan.rounds * plan.round_seconds + 10)),
            seed=plan.seed * 100 + number,
        )
        posters[name] = Poster(spec, stations)
    return posters


def _wind_down(run: Run, scenario: Scenario, seconds: dict[str, float]) -> list[str]:
    """Stops the scanning, waits for every outbox to drain, stops the stations; returns what
    went wrong on the way."""
    violations: list[str] = []
    mark = time.monotonic()
    time.sleep(1.0)  # a last stretch of ordinary posting after the last fault
    (run.root / "stations" / "stop").touch()
    posters = run.posters.values()
    if not _until(lambda: all(p.done() or p.exited() is not None for p in posters), 30.0):
        violations.append("stations still scanning 30 s after they were told to stop")
    seconds["posting"] += time.monotonic() - mark

    mark = time.monotonic()
    for name, poster in run.posters.items():
        if (code := poster.exited()) is not None:
            violations.append(f"{name}: poster exited by itself ({code}): {poster.tail()}")
    if (code := run.server.exited()) is not None:
        violations.append(f"the server exited by itself ({code}); restarted to drain")
        run.server.start()
    drained = _drained(list(posters), run.plan.drain_timeout)
    seconds["drain"] = time.monotonic() - mark
    if not drained:
        left = {name: queued(p.files.outbox) for name, p in run.posters.items()}
        violations.append(
            f"outboxes stopped draining: nothing left them for {run.plan.drain_timeout:.0f} s "
            f"(the sender did not recover?): {left}"
        )
    if scenario.tiny_disk:
        poster = run.posters[FAULTED_STATION]
        if poster.starts != 1 or poster.exited() is not None:
            violations.append(f"{FAULTED_STATION} did not drain in its first process")
    _stop_all(run.posters)
    return violations


def _refusals(scenario: Scenario, run: Run, found: Findings) -> list[str]:
    """Scans are refused on the full disk, and nowhere else."""
    violations: list[str] = []
    for name, figures in found.figures.items():
        if scenario.tiny_disk and name == FAULTED_STATION:
            if run.faults["disk full"] and not figures["refused"]:
                violations.append("the full disk refused no scan: the fault did not bite")
        elif figures["refused"]:
            violations.append(f"{name}: {figures['refused']} scans refused on a sound disk")
    return violations


def run_scenario(scenario: Scenario, plan: Plan, root: Path) -> Report:
    """One bounded run of `scenario`; Unavailable if this machine lacks what it needs."""
    if plan.backend not in scenario.backends:
        raise ValueError(f"{scenario.name} runs on {', '.join(scenario.backends)} only")
    if scenario.restarts_postgres:
        _cluster()  # Unavailable before anything starts, not halfway through
    seconds: dict[str, float] = {}
    started = time.monotonic()
    jobs = [f"RT{uuid.uuid4().hex[:6].upper()}{number:03d}" for number in range(plan.jobs)]
    with ExitStack() as stack:
        database_url = stack.enter_context(database(plan.backend, root))
        # The server reads the data key its data_dir holds; the jobs are made with it.
        cipher = open_cipher(root / "server" / "data_keys", database_url)
        tokens = prepare_lab(database_url, jobs, list(STATIONS), cipher)
        server = Server(root / "server", database_url)
        stack.callback(server.stop)
        server.start()
        urls = dict.fromkeys(STATIONS, server.url)
        proxy = None
        if scenario.proxy:
            proxy = LinkCutter(server.port)
            proxy.start()
            stack.callback(proxy.stop)
            urls[FAULTED_STATION] = proxy.url
        tiny_disk = None
        if scenario.tiny_disk:
            tiny_disk = stack.enter_context(tmpfs(root / "tiny-disk", TMPFS_SIZE))
        posters = _posters(plan, root, jobs, tokens, urls, tiny_disk)
        stack.callback(_stop_all, posters)
        for poster in posters.values():
            poster.start()
        # Faults start once every station scans, so that they strike while stations post.
        if not _until(lambda: all(p.scanning() for p in posters.values()), POSTER_START_TIMEOUT):
            raise RuntimeError(
                "stations did not start scanning: "
                + "; ".join(f"{n}: {p.tail()}" for n, p in posters.items() if not p.scanning())
            )
        seconds["setup"] = time.monotonic() - started

        run = Run(plan, root, server, posters, random.Random(plan.seed), proxy, tiny_disk)
        mark = time.monotonic()
        scenario.fault(run)
        seconds["posting"] = time.monotonic() - mark
        violations = _wind_down(run, scenario, seconds)

        mark = time.monotonic()
        files = {name: poster.files for name, poster in posters.items()}
        (root / "check").mkdir()
        found = check(database_url, files, jobs, root / "check")
        seconds["check"] = time.monotonic() - mark
        violations += _refusals(scenario, run, found)
        effects = server.troubles()
        if proxy is not None:
            for key in ("replies lost", "replies held", "connections reset"):
                effects[key] = proxy.counts[key]
    seconds["total"] = time.monotonic() - started
    return Report(
        scenario.name,
        plan.backend,
        found.figures,
        run.faults,
        +effects,  # the non-zero ones
        seconds,
        violations + found.violations,
    )
