"""Ingest throughput and latency: LensTrack's event API beside the baselines, in one run.

    .venv/bin/python -m benchmarks.ingest [--seconds 15] [--jobs 600] [--batch 100]
        [--backend sqlite|postgresql|both] [--baseline-server TREE]

A realistic floor: the demo lab's 16 stations (two per stage) each post, as fast as their
answers come, the events of the jobs queued at their stage: start, sometimes a note or a
hold and its release, complete; at final QC a pass with an on-spec inspection or (one in ten)
a fail with an off-spec one and a defect, which sends the job back along its route. Where a
job goes next is read from each answer, so the events stay valid whatever the server
decides. Posted one event per request (16 at once), then in batches of `--batch` events per
station request. Printed: events/s, p50 and p99 request latency, server CPU per event.

Baselines from the same run and machine: the naive endpoint (`benchmarks/naive_ingest.py`,
one row per request through SQLAlchemy) under the same 16 posters, and raw batch inserts
(`executemany`, `--batch` rows per commit) with no server at all. Afterwards every stored
event is counted against the answers and every job's state against the last answer about it.
Bounded: each phase stops after `--seconds` or when every job has left the floor.

`--in-process` first times the domain calls alone, without HTTP: CPU and SQL statements per
event for a station's batch (`ingest_batch`) and for 16 single events taken as one group,
as the writer gathers them (`ingest_events`), and for single events each in a group of its
own (what a group costs whatever its size); each job is started and completed at edging.
"""

import argparse
import asyncio
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
import tomllib
import uuid
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy import event as sql_events

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.figures import p50_p95_max
from benchmarks.push_latency import _cpu_seconds
from server import migrate
from server.context import ServerContext
from server.domain.events import Arrival, ingest_batch, ingest_events
from server.domain.seed import seed_demo
from server.labconfig import load_lab_config
from server.models import EventAction, utcnow
from server.schemas import EventIn
from server.settings import Settings
from tests import liveserver
from tests.conftest import throwaway_postgres_database
from tests.liveserver import PROJECT_ROOT, LiveServer, free_port, stop_process, wait_until_answering
from tests.server import conftest as test_lab

OPERATOR = {"final_qc": "B2001"}  # the QC inspector; technicians elsewhere
TECHNICIANS = ("B1001", "B1002")
RIGHT = {"sph": -1.25, "cyl": -0.5, "axis": 90, "mono_pd": 31.5}
LEFT = {"sph": -1.0, "cyl": 0.0, "mono_pd": 31.0}
MULTIFOCAL = {"add": 2.0, "fitting_height": 20.0}
Order = tuple[str, bool, float]  # design, surfaced, share of jobs
ORDERS: tuple[Order, ...] = (
    ("SV", False, 0.5),
    ("SV", True, 0.3),
    ("PAL", True, 0.2),
)
FAIL_SHARE, HOLD_SHARE, NOTE_SHARE = 0.1, 0.03, 0.05


def _now() -> str:
    return datetime.now(UTC).isoformat()


@dataclass
class FloorJob:
    number: str
    measured: dict[str, Any]  # what a lensmeter reads on a good pair: the ordered lenses
    stage: str
    status: str = "queued"


@dataclass
class Tally:
    latencies_ms: list[float] = field(default_factory=list)
    events: int = 0
    stored: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    last_state: dict[str, tuple[str | None, str]] = field(default_factory=dict)


def _stations() -> dict[str, list[str]]:
    """The demo lab's stations by stage (it has two at each)."""
    config = tomllib.loads((PROJECT_ROOT / "config" / "lab.example.toml").read_text())
    by_stage: dict[str, list[str]] = {}
    for station in config["stations"]:
        by_stage.setdefault(station["stage"], []).append(station["name"])
    return by_stage


def _measured(design: str) -> dict[str, Any]:
    def lens(rx: dict[str, Any]) -> dict[str, Any]:
        lens = {"sph": rx["sph"], "cyl": rx["cyl"], "pd": rx["mono_pd"]}
        if "axis" in rx:
            lens["axis"] = rx["axis"]
        if design != "SV":
            lens |= MULTIFOCAL
        return lens

    return {"R": lens(RIGHT), "L": lens(LEFT)}


def _order(number: str, design: str, surfaced: bool) -> dict[str, Any]:
    now = datetime.now(UTC)
    extra = MULTIFOCAL if design != "SV" else {}
    return {
        "job_number": number,
        "store_code": "NORTH" if int(number[1:]) % 2 else "SOUTH",
        "patient_ref": f"P-{number}",
        "ordered_at": (now - timedelta(hours=1)).isoformat(),
        "promised_at": (now + timedelta(days=3)).isoformat(),
        "lens_design": design,
        "lens_material": "CR-39" if design == "SV" else "Polycarbonate",
        "lens_index": 1.5 if design == "SV" else 1.59,
        "surfaced": surfaced,
        "right": RIGHT | extra,
        "left": LEFT | extra,
    }


def create_jobs(
    server: LiveServer, prefix: str, count: int, orders: Sequence[Order] = ORDERS
) -> list[FloorJob]:
    """`count` orders through the API as the lab manager, spread over the routes."""
    rng = random.Random(count)
    jobs = []
    with httpx.Client(base_url=server.url, timeout=60) as http:
        http.post(
            "/api/auth/login", json={"username": "manager", "password": "demo-manager-pass"}
        ).raise_for_status()
        for index in range(count):
            design, surfaced, _ = rng.choices(orders, weights=[share for *_, share in orders])[0]
            number = f"{prefix}{100000 + index}"
            answer = http.post("/api/jobs", json=_order(number, design, surfaced))
            if answer.is_error:
                raise SystemExit(f"order {number} refused: {answer.text}")
            stage = answer.json()["current_stage"]["code"]
            jobs.append(FloorJob(number, _measured(design), stage))
    return jobs


class Floor:
    """Jobs queued per stage; each station takes the next one waiting at its stage."""

    def __init__(self, jobs: list[FloorJob], seed: int) -> None:
        self.rng = random.Random(seed)
        self.waiting: dict[str, deque[FloorJob]] = {}
        for job in jobs:
            self.waiting.setdefault(job.stage, deque()).append(job)
        self.busy = 0

    def take(self, stage: str) -> FloorJob | None:
        queue = self.waiting.get(stage)
        if not queue:
            return None
        self.busy += 1
        return queue.popleft()

    def put_back(self, job: FloorJob, state: dict[str, Any] | None) -> None:
        """Where the answer says the job now is; a finished job leaves the floor."""
        self.busy -= 1
        if state is None:
            return
        job.stage, job.status = state["stage"], state["status"]
        if job.status in ("queued", "in_progress") and job.stage is not None:
            self.waiting.setdefault(job.stage, deque()).append(job)

    def empty(self) -> bool:
        return self.busy == 0 and not any(self.waiting.values())

    def events_for(self, job: FloorJob, stage: str) -> list[dict[str, Any]]:
        """What the station at `stage` sends for one job, in order."""
        badge = OPERATOR.get(stage, self.rng.choice(TECHNICIANS))
        events: list[dict[str, Any]] = []

        def event(action: str, **fields: Any) -> None:
            now = _now()
            body = {"event_uuid": str(uuid.uuid4()), "job": job.number, "action": action}
            events.append(
                body | {"operator_badge": badge, "created_at": now, "sent_at": now} | fields
            )

        if job.status == "queued":
            event("start")
        if self.rng.random() < NOTE_SHARE:
            event("note", note="checked the frame")
        if self.rng.random() < HOLD_SHARE:
            event("hold", reason_code="H-FRAME")
            event("release")
        if stage != "final_qc":
            event("complete")
        elif self.rng.random() < FAIL_SHARE:
            off = {eye: lens | {"sph": lens["sph"] + 0.5} for eye, lens in job.measured.items()}
            defects = [{"code": "D-POWER"}]
            event("rework", inspection={"measured": off, "defects": defects})
        else:
            event("complete", inspection={"measured": job.measured})
        return events


class Poster:
    """One station: its token and its sequence numbers."""

    def __init__(self, server: LiveServer, name: str) -> None:
        self.name = name
        self.headers = {"Authorization": f"Bearer {server.token(name)}"}
        self.sequence = 0

    async def sign_in(self, http: httpx.AsyncClient, stage: str) -> None:
        """The operators who work here badge in first: the server takes no one else's scans."""
        for badge in (OPERATOR[stage],) if stage in OPERATOR else TECHNICIANS:
            now = _now()
            body = {"event_uuid": str(uuid.uuid4()), "action": "sign_in", "operator_badge": badge}
            body |= {"created_at": now, "sent_at": now}
            answer = await http.post(
                "/api/events", json=self.numbered([body])[0], headers=self.headers
            )
            answer.raise_for_status()

    def numbered(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for event in events:
            self.sequence += 1
            event["sequence"] = self.sequence
        return events


def _note(tally: Tally, job: FloorJob, result: dict[str, Any]) -> dict[str, Any] | None:
    tally.events += 1
    if result["status"] == "rejected":
        tally.rejected[result["error"]["message"][:60]] += 1
        return None
    tally.stored += 1
    state = result["job"]
    tally.last_state[job.number] = (state["stage"], state["status"])
    return state


async def _station_single(
    http: httpx.AsyncClient, poster: Poster, stage: str, floor: Floor, tally: Tally, stop: float
) -> None:
    while time.monotonic() < stop and not floor.empty():
        job = floor.take(stage)
        if job is None:
            await asyncio.sleep(0.005)
            continue
        state = None
        for body in poster.numbered(floor.events_for(job, stage)):
            started = time.perf_counter()
            answer = await http.post("/api/events", json=body, headers=poster.headers)
            tally.latencies_ms.append((time.perf_counter() - started) * 1000)
            if answer.status_code == 503:  # this one not stored: the job waits to go again
                tally.rejected["503, sent again"] += 1
                state = state or {"stage": job.stage, "status": job.status}
                break
            if answer.status_code >= 500:
                answer.raise_for_status()
            result = answer.json()
            if answer.status_code >= 400:
                result = {"status": "rejected", "error": {"message": str(result["detail"])}}
            state = _note(tally, job, result)
            if state is None:
                break
        floor.put_back(job, state)


async def _station_batched(
    http: httpx.AsyncClient,
    poster: Poster,
    stage: str,
    floor: Floor,
    tally: Tally,
    stop: float,
    batch: int,
) -> None:
    while time.monotonic() < stop and not floor.empty():
        taken: list[tuple[FloorJob, int]] = []
        events: list[dict[str, Any]] = []
        while len(events) < batch - 5 and (job := floor.take(stage)) is not None:
            job_events = floor.events_for(job, stage)
            taken.append((job, len(job_events)))
            events += job_events
        if not taken:
            await asyncio.sleep(0.005)
            continue
        started = time.perf_counter()
        answer = await http.post(
            "/api/events/batch", json={"events": poster.numbered(events)}, headers=poster.headers
        )
        tally.latencies_ms.append((time.perf_counter() - started) * 1000)
        if answer.status_code == 503:  # nothing stored: the jobs wait to be sent again
            tally.rejected["503, sent again"] += 1
            for job, _ in taken:
                floor.put_back(job, {"stage": job.stage, "status": job.status})
            continue
        answer.raise_for_status()
        results = iter(answer.json()["results"])
        for job, count in taken:  # a budget-cut batch answers a prefix: the rest is dropped
            state = None
            for result in (next(results, None) for _ in range(count)):
                state = _note(tally, job, result) if result is not None else None
            floor.put_back(job, state)


def _run_floor(
    server: LiveServer,
    jobs: list[FloorJob],
    stations: dict[str, list[str]],
    seconds: float,
    batch: int | None,
) -> tuple[Tally, float, float]:
    """The floor until `seconds` pass or no job is left; (tally, wall s, server CPU s)."""
    floor = Floor(jobs, seed=len(jobs))
    tally = Tally()
    posters = [(Poster(server, name), stage) for stage, names in stations.items() for name in names]
    assert server.process is not None
    cpu_before = _cpu_seconds([server.process.pid])

    async def run() -> float:
        limits = httpx.Limits(max_connections=len(posters) + 4)
        async with httpx.AsyncClient(base_url=server.url, timeout=60, limits=limits) as http:
            for poster, stage in posters:
                await poster.sign_in(http, stage)
            started = time.monotonic()
            stop = started + seconds
            await asyncio.gather(
                *(
                    _station_single(http, poster, stage, floor, tally, stop)
                    if batch is None
                    else _station_batched(http, poster, stage, floor, tally, stop, batch)
                    for poster, stage in posters
                )
            )
            return time.monotonic() - started

    wall = asyncio.run(run())
    return tally, wall, _cpu_seconds([server.process.pid]) - cpu_before


def _check_stored(url: str, tally: Tally) -> str:
    """The stored events and every job's state against the answers the posters got."""
    engine = create_engine(url)
    with engine.connect() as connection:
        stored = connection.scalar(text("SELECT count(*) FROM stage_event"))
        rows = connection.execute(
            text(
                "SELECT j.job_number, s.code, j.status FROM job j"
                " LEFT JOIN stage s ON s.id = j.current_stage_id"
            )
        )
        states = {number: (code, status) for number, code, status in rows}
    engine.dispose()
    wrong = [number for number, state in tally.last_state.items() if states.get(number) != state]
    return (
        f"{stored} events stored, {tally.stored} answered stored;"
        f" {len(wrong)} job states unlike their last answer"
    )


def _report(label: str, tally: Tally, wall: float, cpu: float) -> None:
    p50, _, _ = p50_p95_max(tally.latencies_ms)
    ordered = sorted(tally.latencies_ms)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    per_event = cpu / tally.events * 1000 if tally.events else float("nan")
    print(
        f"  {label:<44} {tally.events / wall:>9.0f} ev/s  p50 {p50:>7.1f} ms  p99 {p99:>7.1f} ms"
        f"  {tally.events:>6} events  {per_event:>6.2f} ms CPU/event"
    )
    if tally.rejected:
        print(f"    rejected: {dict(tally.rejected.most_common(5))}")


@contextmanager
def database(backend: str, root: Path, name: str) -> Iterator[str]:
    """A fresh database URL for one server; PostgreSQL's is dropped afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{root / name}.db"
        return
    with throwaway_postgres_database(f"bench_{name}") as url:
        yield url


@contextmanager
def serving_from(tree: Path) -> Iterator[None]:
    """LiveServers made in the block run the server of source tree `tree`."""
    kept = liveserver.SERVER_ROOT
    liveserver.SERVER_ROOT = tree
    try:
        yield
    finally:
        liveserver.SERVER_ROOT = kept


def _lenstrack(backend: str, root: Path, args: argparse.Namespace) -> None:
    stations = _stations()
    trees = [("", liveserver.SERVER_ROOT)]
    if args.baseline_server:  # each phase right after this tree's, on the same machine load
        trees.append(("baseline ", args.baseline_server))
    for mode, batch in (("single", None), (f"batched {args.batch}", args.batch)):
        for label, tree in trees:
            name = f"{label}{mode}".replace(" ", "_")
            with database(backend, root, f"lenstrack_{name}") as url, serving_from(tree):
                server = LiveServer(root / name)
                server.env["LENSTRACK_DATABASE_URL"] = url
                server.cli("seed-demo", "--jobs", "0")
                server.start()
                try:
                    jobs = create_jobs(server, "J", args.jobs)
                    for stage_names in stations.values():
                        for station in stage_names:
                            server.token(station)
                    tally, wall, cpu = _run_floor(server, jobs, stations, args.seconds, batch)
                finally:
                    server.stop()
                _report(f"{label}LensTrack, {mode}, 16 stations", tally, wall, cpu)
                print(f"    {_check_stored(url, tally)}")


def _naive(backend: str, root: Path, args: argparse.Namespace) -> None:
    with database(backend, root, "naive") as url:
        port = free_port()
        log = root / "naive.log"
        with log.open("ab") as sink:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "benchmarks.naive_ingest:app",
                    "--port",
                    str(port),
                    "--log-level",
                    "warning",
                ],
                cwd=PROJECT_ROOT,
                env={"NAIVE_DATABASE_URL": url, "PATH": "/usr/bin:/bin"},
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_until_answering(f"http://127.0.0.1:{port}/docs", process, log, 60)
            tally, wall, cpu = _naive_floor(f"http://127.0.0.1:{port}", args.seconds, process.pid)
        finally:
            stop_process(process)
        _report("naive endpoint, single, 16 posters", tally, wall, cpu)


def _naive_floor(url: str, seconds: float, pid: int) -> tuple[Tally, float, float]:
    tally = Tally()
    cpu_before = _cpu_seconds([pid])

    async def poster(http: httpx.AsyncClient, stop: float) -> None:
        while time.monotonic() < stop:
            body = {"event_uuid": str(uuid.uuid4()), "job": "J1", "action": "start"}
            started = time.perf_counter()
            answer = await http.post("/events", json=body | {"created_at": _now()})
            tally.latencies_ms.append((time.perf_counter() - started) * 1000)
            answer.raise_for_status()
            tally.events += 1

    async def run() -> float:
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            started = time.monotonic()
            await asyncio.gather(*(poster(http, started + seconds) for _ in range(16)))
            return time.monotonic() - started

    wall = asyncio.run(run())
    return tally, wall, _cpu_seconds([pid]) - cpu_before


def _raw_sqlite(root: Path, batch: int, seconds: float) -> None:
    """Rows of a stage_event's width, `batch` per commit, WAL and synchronous=FULL."""
    database = sqlite3.connect(root / "raw.db", isolation_level=None)
    database.execute("PRAGMA journal_mode=WAL")
    database.execute("PRAGMA synchronous=FULL")
    database.execute(
        "CREATE TABLE raw_event (id INTEGER PRIMARY KEY, event_uuid TEXT UNIQUE, job_id INTEGER,"
        " station_id INTEGER, action TEXT, created_at TEXT, received_at TEXT)"
    )
    rows = 0
    started = time.monotonic()
    while time.monotonic() - started < seconds and rows < 5_000_000:
        now = _now()
        values = [(str(uuid.uuid4()), rows + i, 1, "start", now, now) for i in range(batch)]
        database.execute("BEGIN")
        database.executemany(
            "INSERT INTO raw_event (event_uuid, job_id, station_id, action, created_at,"
            " received_at) VALUES (?, ?, ?, ?, ?, ?)",
            values,
        )
        database.execute("COMMIT")
        rows += batch
    elapsed = time.monotonic() - started
    database.close()
    label = f"raw SQLite, executemany {batch} rows/commit"
    print(f"  {label:<44} {rows / elapsed:>9.0f} rows/s")


def _in_process(backend: str, root: Path, jobs: int, batch: int) -> None:
    """The domain calls alone: CPU ms and SQL statements per event, per way of grouping."""
    with database(backend, root, "in_process") as url:
        migrate.upgrade(url)
        context = ServerContext(Settings(database_url=url, data_dir=root, secret_key="bench"))
        try:
            with context.db.session() as session:
                seed_demo(session, load_lab_config(test_lab.EXAMPLE_CONFIG), job_count=0)
            lab = test_lab.Lab(context)
            floor = test_lab.Floor(lab)
            station = floor.station("EDGE-1")
            statements = [0]

            def count(*_: object) -> None:
                statements[0] += 1

            phases = (
                ("B", f"ingest_batch of {batch}", batch),
                ("S", "groups of 16 singles", 16),
                ("A", "single events alone (a group's fixed cost)", 1),
            )
            for prefix, label, size in phases:
                as_batch = prefix == "B"
                numbers = [f"{prefix}{100000 + index}" for index in range(jobs // 2)]
                for number in numbers:
                    lab.make_job(number)
                events: list[EventIn] = []
                for number in numbers:
                    events += [
                        floor.event("EDGE-1", number, action)
                        for action in (EventAction.start, EventAction.complete)
                    ]
                sql_events.listen(context.db.engine, "before_cursor_execute", count)
                statements[0], cpu = 0, time.process_time()
                for start in range(0, len(events), size):
                    chunk = events[start : start + size]
                    with context.session() as session:
                        if as_batch:
                            ingest_batch(session, station, chunk)
                        else:
                            ingest_events(session, [Arrival(station, e, utcnow()) for e in chunk])
                cpu = time.process_time() - cpu
                sql_events.remove(context.db.engine, "before_cursor_execute", count)
                print(
                    f"  {'in process, ' + label:<44} {cpu / len(events) * 1000:>6.2f} ms CPU/event"
                    f"  {statements[0] / len(events):>5.1f} statements/event"
                )
        finally:
            context.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="per phase")
    parser.add_argument("--jobs", type=int, default=600, help="jobs on the floor per phase")
    parser.add_argument("--batch", type=int, default=100, help="events per batch request")
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--in-process", action="store_true", help="time the domain calls too")
    parser.add_argument(
        "--baseline-server",
        type=Path,
        metavar="TREE",
        help="also time the server of this source tree (e.g. `git archive` of the last commit)",
    )
    args = parser.parse_args()
    backends = ("sqlite", "postgresql") if args.backend == "both" else (args.backend,)
    with tempfile.TemporaryDirectory(prefix="lenstrack-ingest-") as temp:
        for backend in backends:
            root = Path(temp) / backend
            root.mkdir()
            print(f"{backend}:")
            if args.in_process:
                _in_process(backend, root, args.jobs, args.batch)
            _lenstrack(backend, root, args)
            _naive(backend, root, args)
            if backend == "sqlite":
                _raw_sqlite(root, args.batch, min(args.seconds, 5.0))


if __name__ == "__main__":
    main()
