"""The hot reads at a year's size: a million jobs, twelve million events.

    .venv/bin/python -m benchmarks.scale [--jobs 50000] [--days 365]
        [--backend sqlite|postgresql|both] [--runs 40] [--plans 3] [--indexes 0016,0017,0027,0029]
        [--keep | --generate-only | --database URL --data-dir DIR]

Per backend it makes a fresh database migrated to head with the demo lab configured, without
the hot-read indexes of the migrations in `--indexes`, generates `--jobs` jobs over `--days`
with `server.domain.bulk_seed` and prints the time and rows/s per table. Then it times each
hot read up to `--runs` times (p50/p95/max; fewer once a read has taken 15 s): a station
looking up a job by job and by tray number, `GET /api/jobs` pages (each filter, the next
page by its cursor, the deepest offset) for the lab, a store and a station, a store's job list
opening on each of its filters (first page, counts, flags) and its second page, a lab
manager's (all stores), the lab's job list, job detail with its timeline, the WIP board —
HTTP routes in-process through httpx, pages through their domain functions — and the flag
sweep as the background task runs it, each chunk's transaction (what holds writers) timed.
Then it builds those indexes on the full tables and measures again: the baseline is the same
reads on the same data without them, beside a bare primary-key SELECT. Last, the plans of
each read's slowest statements, before and after (EXPLAIN QUERY PLAN on SQLite, EXPLAIN
ANALYZE on PostgreSQL). PostgreSQL databases are made and dropped on the local server
(`LENSTRACK_TEST_POSTGRES_URL`); SQLite files live under /tmp, deleted unless `--keep`.
A million jobs take long to generate: `--generate-only` keeps the database (its indexes
built) and its data keys, and `--database URL --data-dir DIR` measures it (migrated to head
first) as often as the reads change.
"""

import argparse
import asyncio
import importlib.util
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
from unittest import mock

import httpx
from sqlalchemy import Connection, Engine, Index, event, func, select, text

from benchmarks.figures import p50_p95_max
from server import migrate
from server.app import create_api
from server.background import SWEEP_CHUNK, Sweeper
from server.context import ServerContext
from server.db import READ_ONLY
from server.domain import auth, views
from server.domain.bulk_seed import bulk_seed
from server.domain.flags import open_job_ids
from server.domain.jobs import OFFSET_REACH, JobCursor
from server.domain.seed import DEMO_PEOPLE, seed_demo
from server.labconfig import load_lab_config
from server.models import Base, Job, Lab, Person, StageEvent, utcnow
from server.settings import Settings
from tests.conftest import throwaway_postgres_database

ROOT = Path(__file__).resolve().parents[1]
MIGRATIONS = ROOT / "server" / "migrations" / "versions"
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


# A sweep round's figures, and its write transactions over the target: (held ms, its slowest
# statement's ms, that statement).
Sweep = tuple[dict[str, tuple[float, ...]], list[tuple[float, float, str]]]


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
            self.cursors = [
                str(JobCursor(promised_at, job_id))
                for promised_at, job_id in session.execute(
                    select(Job.promised_at, Job.id).order_by(func.random()).limit(2000)
                )
            ]
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
        await self._timed_get(
            f"GET /api/jobs?offset={OFFSET_REACH} (manager; the deepest)",
            manager,
            lambda: f"/api/jobs?offset={OFFSET_REACH}",
        )
        deeper = await manager.get(f"/api/jobs?offset={OFFSET_REACH + 1}")  # refused, any size
        if deeper.status_code != 422 or "offset" not in deeper.text:
            raise RuntimeError(f"a deep offset: {deeper.status_code} {deeper.text[:200]}")
        await self._timed_get(
            "GET /api/jobs?after=<a random job's cursor> (manager)",
            manager,
            lambda: f"/api/jobs?after={pick(self.cursors)}",
        )
        await self._timed_get(
            "GET /api/jobs?active=true&after=<cursor> (store)",
            store,
            lambda: f"/api/jobs?active=true&after={pick(self.cursors)}",
        )

    def _page_reads(self) -> None:
        now = self.now
        size = views.STORE_PAGE_SIZE
        for view in views.StoreFilter:
            # What the page reads opening on that filter: its first rows, the counts, the
            # flags (a filter button's click reads the rows alone).
            def store_page(session: Any, view: views.StoreFilter = view) -> object:
                views.store_counts(session, self.store)
                views.flag_feed(session, self.store, now)
                return views.store_page(session, self.store, now, view, None, size)

            self.time(f"store page: job list, filter {view.value}", self.page(store_page))
        self.time(
            "store page: job list, all stores (manager)",
            self.page(
                lambda s: (
                    views.store_counts(s, self.manager),
                    views.store_page(s, self.manager, now, views.StoreFilter.all, None, size),
                )
            ),
        )
        with self.context.db.read_session() as session:
            after = views.store_page(session, self.store, now, views.StoreFilter.all, None, size)
        if after.more is not None:  # a second page to show
            self.time(
                "store page: Show more (filter all)",
                self.page(
                    lambda s: views.store_page(
                        s, self.store, now, views.StoreFilter.all, after.more, size
                    )
                ),
            )
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

    def sweep(self) -> Sweep:
        """A round of the background task (stage times learned, open jobs in chunks), every
        write transaction timed from its BEGIN to its COMMIT: what holds other writers."""
        with self.context.db.read_session() as session:
            open_jobs = len(open_job_ids(session, self.manager.lab_id))
        held = WriteTransactions(self.context.db.engine)
        started = time.perf_counter()
        # The SPC scan of the round reads for minutes at this size, outside any write
        # transaction: its own benchmark's figure, left out of this one.
        with mock.patch("server.background.scan_for_violations"):
            Sweeper(self.context).sweep_once(self.now)
        round_ms = (time.perf_counter() - started) * 1000
        held.stop()
        return {
            "open jobs": (float(open_jobs),),
            f"write transactions ({len(held.ms)}; chunks of {SWEEP_CHUNK} jobs) ms "
            "p50/p95/max": p50_p95_max(held.ms),
            "statements per write transaction p50/p95/max": p50_p95_max(held.statements),
            "whole round ms (without the SPC scan)": (round_ms,),
        }, held.over


class WriteTransactions:
    """The time and statements of each write transaction on `engine` (read-only sessions
    left out): the statements are round trips, the figure a busy machine does not change."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.ms: list[float] = []
        self.statements: list[int] = []
        self._begun: dict[int, float] = {}
        self._counted: dict[int, int] = {}
        # Per transaction its slowest statement (ms, text), to name what made one hold long.
        self._slowest: dict[int, tuple[float, str]] = {}
        self._statement_began: dict[int, float] = {}
        self.over: list[tuple[float, float, str]] = []  # (held ms, statement ms, statement)
        event.listen(engine, "begin", self._begin)
        event.listen(engine, "before_cursor_execute", self._statement)
        event.listen(engine, "after_cursor_execute", self._statement_done)
        event.listen(engine, "commit", self._end)
        event.listen(engine, "rollback", self._end)

    def _begin(self, connection: Connection) -> None:
        if not connection.get_execution_options().get(READ_ONLY, False):
            self._begun[id(connection)] = time.perf_counter()
            self._counted[id(connection)] = 0

    def _statement(self, connection: Connection, *_: Any) -> None:
        if id(connection) in self._counted:
            self._counted[id(connection)] += 1
            self._statement_began[id(connection)] = time.perf_counter()

    def _statement_done(
        self, connection: Connection, _cursor: Any, statement: str, *_: Any
    ) -> None:
        if (began := self._statement_began.pop(id(connection), None)) is not None:
            ms = (time.perf_counter() - began) * 1000
            if ms > self._slowest.get(id(connection), (0.0, ""))[0]:
                self._slowest[id(connection)] = (ms, " ".join(statement.split())[:120])

    def _end(self, connection: Connection) -> None:
        if (begun := self._begun.pop(id(connection), None)) is not None:
            held = (time.perf_counter() - begun) * 1000
            self.ms.append(held)
            self.statements.append(self._counted.pop(id(connection)))
            slowest = self._slowest.pop(id(connection), (0.0, ""))
            if held > SWEEP_HOLD_TARGET_MS:
                self.over.append((held, *slowest))

    def stop(self) -> None:
        event.remove(self.engine, "begin", self._begin)
        event.remove(self.engine, "before_cursor_execute", self._statement)
        event.remove(self.engine, "after_cursor_execute", self._statement_done)
        event.remove(self.engine, "commit", self._end)
        event.remove(self.engine, "rollback", self._end)


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


def print_sweep(sweep: Sweep) -> None:
    figures, held_long = sweep
    print(
        "  flag sweep, as the background task runs it "
        f"(OVER: holds writers > {SWEEP_HOLD_TARGET_MS:.0f} ms):"
    )
    for what, values in figures.items():
        over = "transactions" in what and max(values) > SWEEP_HOLD_TARGET_MS
        print(f"    {what}: {' / '.join(f'{v:.1f}' for v in values)}{'  OVER' if over else ''}")
    for held, ms, statement in held_long:
        print(f"      held {held:.0f} ms; its slowest statement took {ms:.0f} ms: {statement}")


def hot_read_indexes(migrations: str) -> list[Index]:
    """The indexes the migrations numbered in `migrations` (comma-separated) add for the hot
    reads, as the models declare them."""
    names: list[str] = []
    for number in migrations.split(","):
        (path,) = MIGRATIONS.glob(f"{number}_*.py")
        spec = importlib.util.spec_from_file_location(f"migration_{number}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        names.extend(module.INDEXES)
    declared = {
        index.name: index for table in Base.metadata.tables.values() for index in table.indexes
    }
    return [declared[name] for name in names]


def set_indexes(context: ServerContext, indexes: list[Index], present: bool) -> float:
    """Builds (on the full tables, as an upgrade would) or drops `indexes`; seconds taken."""
    started = time.perf_counter()
    with context.db.engine.begin() as connection:
        for index in indexes:
            if present:
                index.create(connection, checkfirst=True)
            else:
                index.drop(connection, checkfirst=True)
    return time.perf_counter() - started


def unusable_indexes(context: ServerContext) -> list[str]:
    """On PostgreSQL the indexes its planner may not use yet: one built over rows updated in
    place (HOT, as the sweep before it updates jobs) waits until every transaction older than
    it has ended, in any database of the server (pg_index.indcheckxmin)."""
    if context.db.dialect != "postgresql":
        return []
    with context.db.engine.connect() as connection:
        return list(
            connection.scalars(
                text(
                    "SELECT indexrelid::regclass::text FROM pg_index WHERE indcheckxmin"
                    " AND xmin::text::bigint"
                    " >= pg_snapshot_xmin(pg_current_snapshot())::text::bigint % 4294967296"
                )
            )
        )


def measure(args: argparse.Namespace, backend: str) -> None:
    """Generates at head without the hot-read indexes, measures, builds them, measures again:
    the same data both times."""
    jobs = args.jobs
    print(f"\n=== {backend}: {jobs:,} jobs over {args.days:g} days ===")
    with fresh_database(backend, "scale", args.keep or args.generate_only) as url:
        migrate.upgrade(url)
        data_dir = Path(tempfile.mkdtemp(prefix="lenstrack-scale-data-"))
        context = bench_context(url, data_dir)
        try:
            indexes = hot_read_indexes(args.indexes)
            set_indexes(context, indexes, present=False)  # a faster load
            as_of = generate(context, jobs, args.days)
            if args.generate_only:
                # Kept at head whole: other benchmarks (kpi_scale.py) read it as the app would.
                print(f"  indexes built in {set_indexes(context, indexes, present=True):.1f} s")
                print(f"  measure it with: --database {url} --data-dir {data_dir}")
                return
            measure_twice(context, args, as_of)
        finally:
            context.close()
            if not args.generate_only:
                shutil.rmtree(data_dir)


def bench_context(url: str, data_dir: Path) -> ServerContext:
    return ServerContext(Settings(database_url=url, data_dir=data_dir, secret_key="scale-bench"))


def measure_twice(context: ServerContext, args: argparse.Namespace, as_of: datetime) -> None:
    """The reads and the sweep without the hot-read indexes, then with them."""
    indexes = hot_read_indexes(args.indexes)
    set_indexes(context, indexes, present=False)
    analyze(context)
    print(f"\n  measuring without the indexes of migrations {args.indexes}")
    old = Bench(context, args.runs, as_of)
    asyncio.run(old.run())
    print_sweep(old.sweep())
    plans_before = plans(old, args.plans)
    seconds = set_indexes(context, indexes, present=True)
    analyze(context)
    print(f"\n  {len(indexes)} indexes built in {seconds:.1f} s; measuring")
    if waiting := unusable_indexes(context):
        print(f"  NOT USED YET (an older transaction is open on the server): {', '.join(waiting)}")
    new = Bench(context, args.runs, as_of)
    asyncio.run(new.run())
    print_sweep(new.sweep())
    report(old, new, len(new.any_ids), plans_before, args.plans)


def measure_kept(args: argparse.Namespace) -> None:
    """A database kept by `--generate-only` (its jobs as of their newest event), measured as
    generated: the long generation runs once while the reads change."""
    migrate.upgrade(args.database)  # the migrations added since it was generated
    context = bench_context(args.database, args.data_dir)
    try:
        with context.db.read_session() as session:
            newest = session.scalar(select(func.max(StageEvent.corrected_at)))
        assert newest is not None, "no events: not a database scale.py generated"
        print(f"\n=== {context.db.dialect}: {args.database} ===")
        measure_twice(context, args, newest)
    finally:
        context.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=50_000)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="sqlite")
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--plans", type=int, default=3, help="statements explained per read")
    parser.add_argument("--keep", action="store_true", help="keep the generated databases")
    parser.add_argument(
        "--indexes",
        default="0016,0017,0027,0029",
        help="the migrations whose hot-read indexes the baseline goes without",
    )
    parser.add_argument(
        "--days",
        type=float,
        default=365,
        help="history length; fewer days with fewer jobs keep a million's daily rate",
    )
    parser.add_argument(
        "--generate-only",
        action="store_true",
        help="generate and keep the database (and its data keys) for --database, measure none",
    )
    parser.add_argument("--database", help="measure this kept database instead of generating")
    parser.add_argument("--data-dir", type=Path, help="its data folder (data keys), with it")
    args = parser.parse_args()
    if args.database:
        if args.data_dir is None:
            parser.error("--database needs the --data-dir printed with it")
        measure_kept(args)
        return
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    for backend in backends:
        measure(args, backend)


if __name__ == "__main__":
    main()
