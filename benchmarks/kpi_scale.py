"""The KPI and SPC dashboards' queries at a lab's size (server/domain/kpis.py, spc.py).

    nice .venv/bin/python -m benchmarks.kpi_scale [--jobs 200000] [--days 365]
        [--backend sqlite|postgresql|both] [--runs 20] [--keep]
    nice .venv/bin/python -m benchmarks.kpi_scale --database URL --data-dir DIR

Per backend it builds the data set as benchmarks/scale.py does (a fresh database at head, the
demo lab, `--jobs` jobs over `--days` by `server.domain.bulk_seed`, with its planted drift on
EDGE-2), prints the rows per table, then times each query a KPI dashboard sends — the lab's
and one store's, for this day, week and month so far and the whole month before — and each
SPC chart as the page draws it — an inspecting station's, a machine's (the lenses it
processed last before QC), narrowed to a shift and to a material, and as X̄/R — `--runs`
times, and prints p50/p95/max beside a bare primary-key SELECT measured in the same run (the
floor any query stands on). Target: each ≤ 50 ms p95. Each query's runs share one pooled
connection, as a server's do: psycopg prepares a statement after five runs and PostgreSQL may
plan it generically after five more, so an SPC chart's `1-5` (the p50 of its first five runs)
beside its p50 shows such a plan flip (issue #16). Last, one whole SPC scan
(`find_violations`: every chart of the lab, as the sweeper runs it every 10 minutes) and what
it found. `--keep` keeps the database and its data directory (the data keys), which
`--database`/`--data-dir` measure again (migrated to head first) without generating.
"""

import argparse
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from benchmarks.figures import p50_p95_max
from benchmarks.scale import TARGET_MS, fresh_database, generate
from server import migrate
from server.context import ServerContext
from server.domain import kpis, spc
from server.domain.auth import PersonPrincipal
from server.domain.kpis import Dimension, KpiQuery
from server.models import Base, Lab, Person, Role, StageEvent, Store
from server.settings import Settings

# Each query of a dashboard, as `dashboard` sends it.
QUERIES: dict[str, Callable[[Session, kpis.Scope, kpis.Period], Any]] = {
    "headline": kpis.headline,
    "trend": kpis.trend,
    "stages (cycle, queue, breakages, WIP)": kpis.by_stage,
    "stores": lambda s, scope, p: kpis.by_job_dimension(s, scope, p, Dimension.store),
    "designs": lambda s, scope, p: kpis.by_job_dimension(s, scope, p, Dimension.design),
    "materials": lambda s, scope, p: kpis.by_job_dimension(s, scope, p, Dimension.material),
    "stations": lambda s, scope, p: kpis.by_floor(s, scope, p, Dimension.station),
    "operators": lambda s, scope, p: kpis.by_floor(s, scope, p, Dimension.operator),
    "breakages by shift": kpis.breakages_by_shift,
    "rework defects": kpis.rework_defects,
    "remakes by class": kpis.remakes_by_class,
    "late jobs by cause": kpis.late_by_cause,
}
# Each kind of SPC chart the page draws (EDGE-2 drifts in the generated data).
CHARTS = {
    "inspecting station QC-1": spc.ChartQuery(measure="sph", station="QC-1"),
    "machine EDGE-2 (drifting)": spc.ChartQuery(measure="sph", station="EDGE-2"),
    "machine GEN-1, axis": spc.ChartQuery(measure="axis", station="GEN-1"),
    "machine EDGE-2, late shift": spc.ChartQuery(measure="sph", station="EDGE-2", shift="late"),
    "machine EDGE-2, CR-39": spc.ChartQuery(measure="sph", station="EDGE-2", material="CR-39"),
    "machine EDGE-2, X̄/R": spc.ChartQuery(measure="sph", station="EDGE-2", kind="xbar_r"),
}
TABLES = {
    "job",
    "stage_event",
    "kpi_stage_time",
    "kpi_job_day",
    "kpi_stage_bucket",
    "inspection",
    "inspection_check",
    "breakage",
}


def time_ms(context: ServerContext, read: Callable[[Session], Any], runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        with context.db.read_session() as session:
            started = time.perf_counter()
            read(session)
            samples.append((time.perf_counter() - started) * 1000)
    return samples


def row_counts(context: ServerContext) -> dict[str, int]:
    with context.db.read_session() as session:
        return {
            table.name: session.scalar(select(func.count()).select_from(table)) or 0
            for table in Base.metadata.sorted_tables
            if table.name in TABLES
        }


def measure(args: argparse.Namespace, backend: str) -> None:
    print(f"\n=== {backend}: {args.jobs:,} jobs over {args.days:g} days ===")
    with fresh_database(backend, "kpi", args.keep) as url:
        migrate.upgrade(url)
        data_dir = Path(tempfile.mkdtemp(prefix="lenstrack-kpi-data-"))
        context = ServerContext(
            Settings(database_url=url, data_dir=data_dir, secret_key="kpi-bench")
        )
        try:
            as_of = generate(context, args.jobs, args.days)
            report(context, args.runs, as_of)
        finally:
            context.close()
            if args.keep:
                print(f"  kept --database {url} --data-dir {data_dir}")
            else:
                shutil.rmtree(data_dir)


def measure_again(args: argparse.Namespace) -> None:
    """A kept data set, measured as of its newest event (its `as_of`)."""
    migrate.upgrade(args.database)
    settings = Settings(database_url=args.database, data_dir=args.data_dir, secret_key="kpi")
    context = ServerContext(settings)
    try:
        with context.db.read_session() as session:
            as_of = session.scalar(select(func.max(StageEvent.corrected_at)))
        assert as_of is not None, "no events: not a generated data set"
        print(f"\n=== {context.db.dialect}: {args.database} ===")
        report(context, args.runs, as_of)
    finally:
        context.close()


def report(context: ServerContext, runs: int, as_of: datetime) -> None:
    counts = row_counts(context)
    print("  rows: " + ", ".join(f"{table} {rows:,}" for table, rows in counts.items()))
    baseline = p50_p95_max(
        time_ms(context, lambda s: s.execute(text("SELECT id FROM job WHERE id = 1")).all(), runs)
    )
    print(f"  primary-key SELECT baseline: p50 {baseline[0]:.2f} ms, p95 {baseline[1]:.2f} ms")
    over = report_kpis(context, runs, as_of) + report_spc(context, runs, as_of)
    print(f"\n  over {TARGET_MS:.0f} ms p95: {', '.join(over) or 'none'}")
    scan_spc(context, as_of)


def _row(name: str, columns: str, figures: tuple[float, float, float], over: list[str]) -> None:
    flag = "  OVER" if figures[1] > TARGET_MS else ""
    if flag:
        over.append(name)
    print(f"  {columns}{figures[0]:>8.1f}{figures[1]:>8.1f}{figures[2]:>8.1f}{flag}")


def report_kpis(context: ServerContext, runs: int, as_of: datetime) -> list[str]:
    """Each KPI query, for the lab and one store and each period; those over."""
    with context.db.read_session() as session:
        lab_id = session.scalar(select(Lab.id))
        store = session.scalars(select(Store).order_by(Store.id)).first()
        assert lab_id is not None and store is not None
        zone = kpis.lab_zone(session, lab_id)
    print(f"\n  {'KPI query (ms)':<44}{'scope':<8}{'period':<8}{'p50':>8}{'p95':>8}{'max':>8}")
    over: list[str] = []
    periods = {
        kind: kpis.resolve_period(KpiQuery(period=kind), zone, as_of)
        for kind in ("day", "week", "month")
    }
    periods["month-1"] = periods["month"].previous()  # a whole month, the last so far
    for period_kind, period in periods.items():
        for scope in (kpis.Scope(lab_id, None, None), kpis.Scope(lab_id, store.id, store.code)):
            scope_name = "store" if scope.store_id else "lab"
            for name, query in QUERIES.items():
                if scope.store_id and name in {"stores", "stations", "operators"}:
                    continue  # a store's dashboard shows none of these
                figures = p50_p95_max(
                    time_ms(context, lambda s, q=query, sc=scope, p=period: q(s, sc, p), runs)
                )
                columns = f"{name:<44}{scope_name:<8}{period_kind:<8}"
                _row(f"{name} ({scope_name}, {period_kind})", columns, figures, over)
    return over


def _manager(context: ServerContext) -> PersonPrincipal:
    with context.db.read_session() as session:
        manager = session.scalars(select(Person).where(Person.role == Role.lab_manager)).one()
        return PersonPrincipal(
            manager.id, manager.lab_id, manager.role, manager.store_id, manager.name
        )


def report_spc(context: ServerContext, runs: int, as_of: datetime) -> list[str]:
    """Each kind of SPC chart as of `as_of`; those over."""
    person = _manager(context)
    print(f"\n  {'SPC chart (ms)':<44}{'points':>8}{'1-5':>8}{'p50':>8}{'p95':>8}{'max':>8}")
    over: list[str] = []
    for name, query in CHARTS.items():
        with context.db.read_session() as session:
            points = len(spc.chart(session, person, query, as_of).points)
        samples = time_ms(context, lambda s, q=query: spc.chart(s, person, q, as_of), runs)
        first = p50_p95_max(samples[:5])[0]
        _row(name, f"{name:<44}{points:>8}{first:>8.1f}", p50_p95_max(samples), over)
    return over


def scan_spc(context: ServerContext, as_of: datetime) -> None:
    with context.db.read_session() as session:
        lab_id = session.scalars(select(Lab.id)).one()
        started = time.perf_counter()
        found = spc.find_violations(session, lab_id, as_of)
        seconds = time.perf_counter() - started
    charts = {finding.chart.key.text for finding in found}
    print(
        f"  SPC scan of every chart: {seconds:.2f} s, "
        f"{len(found)} violations on {len(charts)} charts"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=200_000)
    parser.add_argument("--days", type=float, default=365)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="sqlite")
    parser.add_argument("--runs", type=int, default=20, help="≥ 20 to see a plan flip")
    parser.add_argument("--keep", action="store_true", help="keep the generated databases")
    parser.add_argument("--database", help="measure this kept data set instead")
    parser.add_argument("--data-dir", type=Path, help="the kept data set's data directory")
    args = parser.parse_args()
    if args.database:
        measure_again(args)
        return
    for backend in ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]:
        measure(args, backend)


if __name__ == "__main__":
    main()
