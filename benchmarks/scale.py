"""The hot reads at a year's size: a million jobs, twelve million events.

    PYTHONPATH=. .venv/bin/python benchmarks/scale.py [--jobs 50000] [--days 365]
        [--backend sqlite|postgresql|both] [--runs 40] [--plans 3] [--before 0015] [--keep]

Per backend it makes a fresh database migrated to `--before` (the schema without the hot-read
indexes of 0016) with the demo lab configured, generates `--jobs` jobs over `--days` with
`server.domain.bulk_seed` and prints the time and rows/s per table. Then it times each hot
read up to `--runs` times (p50/p95/max; fewer once a read has taken 15 s): a station looking
up a job by job and by tray number, `GET /api/jobs` pages (each filter, a deep offset) for
the lab, a store and a station, a store's job list with each of its filters, the lab's job
list, job detail with its timeline, the WIP board — HTTP routes in-process through httpx,
pages through their domain functions — and the flag sweep as the background task runs it,
each chunk's transaction (what holds writers) timed. Then it migrates to head on the full
tables and measures again: the baseline is the same reads on the same data before the
indexes, beside a bare primary-key SELECT. Last, the plans of each read's slowest
statements, before and after (EXPLAIN QUERY PLAN on SQLite, EXPLAIN ANALYZE on
PostgreSQL). PostgreSQL databases are made and dropped on the local server
(`LENSTRACK_TEST_POSTGRES_URL`); SQLite files live under /tmp, deleted unless `--keep`.
"""

import argparse
import asyncio
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import event, select, text

from benchmarks.figures import p50_p95_max
from server import migrate
from server.app import create_api
from server.background import SWEEP_CHUNK
from server.context import ServerContext
from server.domain import auth, views
from server.domain.bulk_seed import bulk_seed
from server.domain.flags import learn_stage_times, open_job_ids, sweep
from server.domain.seed import DEMO_PEOPLE, seed_demo
from server.labconfig import load_lab_config
from server.models import Job, Lab, Person, utcnow
from server.settings import Settings
from tests.conftest import throwaway_postgres_database

ROOT = Path(__file__).resolve().parents[1]
TARGET_MS = 50.0
SWEEP_HOLD_TARGET_MS = 100.0
READ_SECONDS = 15.0  # per read, after its first three samples
PASSWORDS = {login.username: login.password for login in DEMO_PEOPLE}


@dataclass
class Read:
    """One hot read: timed samples and the statements of its last run."""

    name: str
    samples: list[float] = field(default_factory=list)
    statements: dict[str, tuple[Any, float]] = field(default_factory=dict)


class StatementLog:
    """The statements a read sends, each with its parameters and its slowest time."""

    def __init__(self) -> None:
        self.current: Read | None = None
        self._started: dict[int, float] = {}

    def before(self, conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        self._started[id(cursor)] = time.perf_counter()

    def after(self, conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        seconds = time.perf_counter() - self._started.pop(id(cursor), time.perf_counter())
        # Reads only: EXPLAIN ANALYZE runs its statement (the audit trail's inserts stay out).
        if self.current is None or not statement.lstrip().upper().startswith("SELECT"):
            return
        known = self.current.statements.get(statement)
        if known is None or seconds > known[1]:
            self.current.statements[statement] = (parameters, seconds)


@contextmanager
def fresh_database(backend: str, label: str, keep: bool) -> Iterator[str]:
    if backend == "sqlite":
        folder = Path(tempfile.mkdtemp(prefix=f"lenstrack-scale-{label}-"))
        try:
            yield f"sqlite:///{folder / 'lenstrack.db'}"
        finally:
            if keep:
                print(f"  kept {folder}")
            else:
                shutil.rmtree(folder)
        return
    with throwaway_postgres_database(f"lenstrack_scale_{label}", keep=keep) as url:
        yield url


def generate(context: ServerContext, jobs: int, days: float) -> datetime:
    """The demo lab and `jobs` jobs of history up to now; prints time and rows/s per table."""
    config = load_lab_config(ROOT / "config" / "lab.example.toml")
    with context.db.session() as session:
        seed_demo(session, config, job_count=0)
    as_of = utcnow()
    last_print = [0.0]

    def progress(done: int, total: int) -> None:
        if time.monotonic() - last_print[0] >= 10 or done == total:
            last_print[0] = time.monotonic()
            print(f"  {done} of {total} jobs ({time.perf_counter() - wall:.0f} s)", flush=True)

    wall, cpu = time.perf_counter(), time.process_time()
    with context.db.session() as session:
        lab_id = session.scalar(select(Lab.id))
        assert lab_id is not None
        written = bulk_seed(
            session, lab_id, jobs, as_of=as_of, history=timedelta(days=days), progress=progress
        )
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"  generated in {wall:.1f} s wall ({cpu:.1f} s CPU of this process, incl. commit):")
    for table, rows in written.items():
        print(f"    {table:<18} {rows:>11,} rows  {rows / wall:>9,.0f} rows/s")
    analyze(context)
    return as_of


def analyze(context: ServerContext) -> None:
    """On PostgreSQL what autovacuum does after a load like this, so the planner knows the
    tables; SQLite is left as the app leaves it (no ANALYZE: its planner's own guesses)."""
    if context.db.dialect != "postgresql":
        return
    started = time.perf_counter()
    with context.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.exec_driver_sql("VACUUM ANALYZE")
    print(f"  VACUUM ANALYZE {time.perf_counter() - started:.1f} s")


class Bench:
    def __init__(self, context: ServerContext, runs: int, as_of: datetime) -> None:
        self.context = context
        self.runs = runs
        self.now = as_of + timedelta(minutes=1)
        self.rng = random.Random(11)
        self.log = StatementLog()
        event.listen(context.db.engine, "before_cursor_execute", self.log.before)
        event.listen(context.db.engine, "after_cursor_execute", self.log.after)
        self.reads: list[Read] = []
        with context.db.read_session() as session:
            self.active = session.execute(
                select(Job.id, Job.job_number, Job.tray_number).where(Job.is_active)
            ).all()
            self.any_ids = session.scalars(select(Job.id)).all()
            self.shipped_numbers = session.scalars(
                select(Job.job_number).where(~Job.is_active).limit(5000)
            ).all()
            self.manager = self._person(session, "manager")
            self.store = self._person(session, "north")

    @staticmethod
    def _person(session: Any, username: str) -> auth.PersonPrincipal:
        person = session.scalar(select(Person).where(Person.username == username))
        return auth.PersonPrincipal(
            person.id, person.lab_id, person.role, person.store_id, person.name
        )

    def attempts(self) -> Iterator[int]:
        """`runs` samples, fewer (at least 3) once READ_SECONDS have passed: a read taking
        seconds at scale says so in a few samples."""
        deadline = time.monotonic() + READ_SECONDS
        for attempt in range(self.runs):
            if attempt >= 3 and time.monotonic() > deadline:
                return
            yield attempt

    def time(self, name: str, work: Callable[[], object]) -> Read:
        read = Read(name)
        self.log.current = read
        for _ in self.attempts():
            started = time.perf_counter()
            work()
            read.samples.append((time.perf_counter() - started) * 1000)
        self.log.current = None
        self.reads.append(read)
        return read

    def page(self, work: Callable[[Any], object]) -> Callable[[], object]:
        """A page's read as the page makes it: a read-only session of its own."""

        def run() -> object:
            with self.context.db.read_session() as session:
                return work(session)

        return run

    async def run(self) -> None:
        transport = httpx.ASGITransport(app=create_api(self.context))
        async with (
            httpx.AsyncClient(transport=transport, base_url="http://scale.test") as station,
            httpx.AsyncClient(transport=transport, base_url="http://scale.test") as manager,
            httpx.AsyncClient(transport=transport, base_url="http://scale.test") as store,
        ):
            with self.context.db.session() as session:
                token = auth.create_station_token(session, "EDGE-1")
            station.headers["Authorization"] = f"Bearer {token}"
            for client, username in ((manager, "manager"), (store, "north")):
                answer = await client.post(
                    "/api/auth/login",
                    json={"username": username, "password": PASSWORDS[username]},
                )
                answer.raise_for_status()
            await self._http_reads(station, manager, store)
        self._page_reads()
        self._baseline()

    async def _get(self, client: httpx.AsyncClient, path: str, read: Read) -> None:
        self.log.current = read
        started = time.perf_counter()
        answer = await client.get(path)
        read.samples.append((time.perf_counter() - started) * 1000)
        self.log.current = None
        if answer.status_code != 200:
            raise RuntimeError(f"GET {path}: {answer.status_code} {answer.text[:200]}")

    async def _timed_get(
        self, name: str, client: httpx.AsyncClient, path: Callable[[], str]
    ) -> None:
        read = Read(name)
        for _ in self.attempts():
            await self._get(client, path(), read)
        self.reads.append(read)

    async def _http_reads(
        self, station: httpx.AsyncClient, manager: httpx.AsyncClient, store: httpx.AsyncClient
    ) -> None:
        pick = self.rng.choice
        await self._timed_get(
            "station: lookup by job number (active)",
            station,
            lambda: f"/api/jobs/lookup/{pick(self.active).job_number}",
        )
        await self._timed_get(
            "station: lookup by tray number",
            station,
            lambda: f"/api/jobs/lookup/{pick(self.active).tray_number}",
        )
        await self._timed_get(
            "station: lookup of a shipped job",
            station,
            lambda: f"/api/jobs/lookup/{pick(self.shipped_numbers)}",
        )
        await self._timed_get("station: GET /api/jobs (its stage)", station, lambda: "/api/jobs")
        await self._timed_get(
            "GET /api/jobs/{id} (manager)", manager, lambda: f"/api/jobs/{pick(self.any_ids)}"
        )
        await self._timed_get(
            "GET /api/jobs/{id}/timeline",
            manager,
            lambda: f"/api/jobs/{pick(self.any_ids)}/timeline",
        )
        filters = ["", "?active=true", "?status=completed", "?status=on_hold", "?stage=edging"]
        for query in filters:
            await self._timed_get(
                f"GET /api/jobs{query} (manager)", manager, lambda q=query: f"/api/jobs{q}"
            )
        for query in ("", "?active=true", "?status=completed"):
            await self._timed_get(
                f"GET /api/jobs{query} (store)", store, lambda q=query: f"/api/jobs{q}"
            )
        deep = len(self.any_ids) // 2
        await self._timed_get(
            f"GET /api/jobs?offset={deep} (manager)",
            manager,
            lambda: f"/api/jobs?offset={deep}",
        )

    def _page_reads(self) -> None:
        now = self.now
        for view in views.StoreFilter:

            def store_page(session: Any, view: views.StoreFilter = view) -> object:
                rows = views.store_rows(session, self.store, now)
                views.flag_feed(session, self.store, now)
                return [row for row in rows if views.matches(row, view)]

            self.time(f"store page: job list, filter {view.value}", self.page(store_page))
        self.time(
            "lab page: job list (active)",
            self.page(lambda s: views.job_list(s, self.manager, now)),
        )
        self.time(
            "job page: detail with timeline",
            self.page(
                lambda s: views.job_detail(s, self.manager, self.rng.choice(self.any_ids), now)
            ),
        )
        self.time(
            "job page: detail, active job",
            self.page(
                lambda s: views.job_detail(s, self.manager, self.rng.choice(self.active).id, now)
            ),
        )
        self.time("WIP board", self.page(lambda s: views.wip_board(s, self.manager, now)))

    def _baseline(self) -> None:
        self.time(
            "baseline: bare SELECT by primary key",
            self.page(
                lambda s: s.execute(
                    text("SELECT id, job_number FROM job WHERE id = :id"),
                    {"id": self.rng.choice(self.any_ids)},
                ).one()
            ),
        )

    def sweep(self) -> dict[str, tuple[float, ...]]:
        """The background task's round: stage times learned, then open jobs in chunks, each
        in a transaction of its own; every transaction timed from begin to commit."""
        with self.context.db.read_session() as session:
            lab_id = session.scalar(select(Lab.id))
            assert lab_id is not None
            job_ids = open_job_ids(session, lab_id)
        started = time.perf_counter()
        with self.context.session() as session:
            learn_stage_times(session, lab_id, self.now)
        learn_ms = (time.perf_counter() - started) * 1000
        chunks = []
        round_started = time.perf_counter()
        for start in range(0, len(job_ids), SWEEP_CHUNK):
            started = time.perf_counter()
            with self.context.session() as session:
                sweep(session, lab_id, self.now, job_ids[start : start + SWEEP_CHUNK])
            chunks.append((time.perf_counter() - started) * 1000)
        round_ms = (time.perf_counter() - round_started) * 1000
        return {
            "open jobs": (float(len(job_ids)),),
            "learn_stage_times transaction ms": (learn_ms,),
            f"sweep chunk ({SWEEP_CHUNK} jobs) transaction ms p50/p95/max": p50_p95_max(chunks)
            if chunks
            else (0.0,),
            "whole round ms": (round_ms,),
        }


def explain(context: ServerContext, read: Read, top: int) -> list[str]:
    lines = []
    slowest = sorted(read.statements.items(), key=lambda item: -item[1][1])[:top]
    with context.db.engine.connect() as connection:
        for statement, (parameters, seconds) in slowest:
            prefix = (
                "EXPLAIN QUERY PLAN "
                if context.db.dialect == "sqlite"
                else "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) "
            )
            rows = connection.exec_driver_sql(prefix + statement, parameters).all()
            plan = [" ".join(str(part) for part in row[-1:]) for row in rows]
            flat = " ".join(statement.split())
            lines.append(f"    [{seconds * 1000:.1f} ms] {flat[:300]}")
            lines.extend(f"        {step}" for step in plan)
        connection.rollback()
    return lines


def plans(bench: Bench, top: int) -> list[str]:
    """The plans of each read's slowest statements, read while the schema is as measured."""
    lines = []
    for read in bench.reads:
        lines.append(f"  {read.name}")
        lines.extend(explain(bench.context, read, top))
    return lines


def report(before: Bench, after: Bench, jobs: int, plans_before: list[str], top: int) -> None:
    header = f"read (ms; {jobs:,} jobs; samples: before/after)"
    print(f"\n  {header:<56}{'before p50/p95/max':>28}{'after p50/p95/max':>29}")
    over = []
    for old, new in zip(before.reads, after.reads, strict=True):
        b, a = p50_p95_max(old.samples), p50_p95_max(new.samples)
        flag = "  OVER" if a[1] > TARGET_MS else ""
        if flag:
            over.append(new.name)
        print(
            f"  {new.name:<56}{b[0]:>9.1f} {b[1]:>8.1f} {b[2]:>8.1f}"
            f"   {a[0]:>9.1f} {a[1]:>8.1f} {a[2]:>8.1f}"
            f"   n={len(old.samples)}/{len(new.samples)}{flag}"
        )
    print(f"\n  over {TARGET_MS:.0f} ms p95 after the indexes: {', '.join(over) or 'none'}")
    for label, lines in (("before", plans_before), ("after", plans(after, top))):
        print(f"\n  plans {label} the indexes (slowest statements of each read):")
        print("\n".join(lines))


def print_sweep(figures: dict[str, tuple[float, ...]]) -> None:
    print(
        "  flag sweep, as the background task runs it "
        f"(OVER: holds writers > {SWEEP_HOLD_TARGET_MS:.0f} ms):"
    )
    for what, values in figures.items():
        over = "transaction" in what and max(values) > SWEEP_HOLD_TARGET_MS
        print(f"    {what}: {' / '.join(f'{v:.1f}' for v in values)}{'  OVER' if over else ''}")


def measure(args: argparse.Namespace, backend: str) -> None:
    """Generates at migration `before`, measures, migrates to head (the new indexes built on
    the full tables, as an upgrade would), measures again: the same data both times."""
    jobs = args.jobs
    print(f"\n=== {backend}: {jobs:,} jobs over {args.days:g} days ===")
    with fresh_database(backend, "scale", args.keep) as url:
        migrate.upgrade(url, args.before)
        data_dir = Path(tempfile.mkdtemp(prefix="lenstrack-scale-data-"))
        settings = Settings(database_url=url, data_dir=data_dir, secret_key="scale-bench")
        context = ServerContext(settings)
        try:
            as_of = generate(context, jobs, args.days)
            print(f"\n  measuring at migration {args.before}")
            old = Bench(context, args.runs, as_of)
            asyncio.run(old.run())
            print_sweep(old.sweep())
            plans_before = plans(old, args.plans)
            started = time.perf_counter()
            migrate.upgrade(url)
            analyze(context)
            print(f"\n  migrated to head in {time.perf_counter() - started:.1f} s; measuring")
            new = Bench(context, args.runs, as_of)
            asyncio.run(new.run())
            print_sweep(new.sweep())
            report(old, new, jobs, plans_before, args.plans)
        finally:
            context.close()
            shutil.rmtree(data_dir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=50_000)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="sqlite")
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--plans", type=int, default=3, help="statements explained per read")
    parser.add_argument("--keep", action="store_true", help="keep the generated databases")
    parser.add_argument("--before", default="0015", help="the migration measured first")
    parser.add_argument(
        "--days",
        type=float,
        default=365,
        help="history length; fewer days with fewer jobs keep a million's daily rate",
    )
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    for backend in backends:
        measure(args, backend)


if __name__ == "__main__":
    main()
