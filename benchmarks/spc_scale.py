"""The SPC page's queries at a lab's size (server/domain/spc.py).

    PYTHONPATH=. nice .venv/bin/python benchmarks/spc_scale.py [--jobs 200000] [--days 365]
        [--backend sqlite|postgresql|both] [--runs 20] [--keep]

Per backend it builds the data set as benchmarks/kpi_scale.py does (a fresh database at head,
the demo lab, `--jobs` jobs over `--days` by `server.domain.bulk_seed`, with its planted drift
on EDGE-2), then times one chart as the page draws it — an inspecting station's, a machine's
(the lenses it processed last before QC), narrowed to a shift and to a material, and as X̄/R —
`--runs` times each, and prints p50/p95/max beside a bare primary-key SELECT measured in the
same run. Target: each ≤ 50 ms p95. Then it times one whole scan (`find_violations`: every
chart of the lab, as the sweeper runs it every 10 minutes) and counts what it found.
"""

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from sqlalchemy import select, text

from benchmarks.figures import p50_p95_max
from benchmarks.kpi_scale import row_counts, time_ms
from benchmarks.scale import TARGET_MS, fresh_database, generate
from server import migrate
from server.context import ServerContext
from server.domain import spc
from server.domain.auth import PersonPrincipal
from server.models import Lab, Person, Role, utcnow
from server.settings import Settings

CHARTS = {
    "inspecting station QC-1": spc.ChartQuery(measure="sph", station="QC-1"),
    "machine EDGE-2 (drifting)": spc.ChartQuery(measure="sph", station="EDGE-2"),
    "machine GEN-1, axis": spc.ChartQuery(measure="axis", station="GEN-1"),
    "machine EDGE-2, late shift": spc.ChartQuery(measure="sph", station="EDGE-2", shift="late"),
    "machine EDGE-2, CR-39": spc.ChartQuery(measure="sph", station="EDGE-2", material="CR-39"),
    "machine EDGE-2, X̄/R": spc.ChartQuery(measure="sph", station="EDGE-2", kind="xbar_r"),
}


def measure(args: argparse.Namespace, backend: str) -> None:
    print(f"\n=== {backend}: {args.jobs:,} jobs over {args.days:g} days ===")
    with fresh_database(backend, "spc", args.keep) as url:
        migrate.upgrade(url)
        data_dir = Path(tempfile.mkdtemp(prefix="lenstrack-spc-data-"))
        context = ServerContext(Settings(database_url=url, data_dir=data_dir, secret_key="spc"))
        try:
            generate(context, args.jobs, args.days)
            report(context, args.runs)
        finally:
            context.close()
            shutil.rmtree(data_dir)


def report(context: ServerContext, runs: int) -> None:
    counts = row_counts(context)
    print("  rows: " + ", ".join(f"{table} {rows:,}" for table, rows in counts.items()))
    with context.db.read_session() as session:
        manager = session.scalars(select(Person).where(Person.role == Role.lab_manager)).one()
        person = PersonPrincipal(
            manager.id, manager.lab_id, manager.role, manager.store_id, manager.name
        )
        lab_id = session.scalars(select(Lab.id)).one()
    baseline = p50_p95_max(
        time_ms(context, lambda s: s.execute(text("SELECT id FROM job WHERE id = 1")).all(), runs)
    )
    print(f"  primary-key SELECT baseline: p50 {baseline[0]:.2f} ms, p95 {baseline[1]:.2f} ms")
    print(f"\n  {'chart (ms)':<34}{'points':>8}{'p50':>8}{'p95':>8}{'max':>8}")
    now = utcnow()
    over = []
    for name, query in CHARTS.items():
        with context.db.read_session() as session:
            points = len(spc.chart(session, person, query, now).points)
        figures = p50_p95_max(
            time_ms(context, lambda s, q=query: spc.chart(s, person, q, now), runs)
        )
        flag = "  OVER" if figures[1] > TARGET_MS else ""
        if flag:
            over.append(name)
        print(
            f"  {name:<34}{points:>8}{figures[0]:>8.1f}{figures[1]:>8.1f}{figures[2]:>8.1f}{flag}"
        )
    print(f"\n  over {TARGET_MS:.0f} ms p95: {', '.join(over) or 'none'}")
    with context.db.read_session() as session:
        started = time.perf_counter()
        found = spc.find_violations(session, lab_id, now)
        seconds = time.perf_counter() - started
    charts = {finding.chart.key.text for finding in found}
    print(
        f"  scan of every chart: {seconds:.2f} s, {len(found)} violations on {len(charts)} charts"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=200_000)
    parser.add_argument("--days", type=float, default=365)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="sqlite")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--keep", action="store_true", help="keep the generated databases")
    args = parser.parse_args()
    for backend in ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]:
        measure(args, backend)


if __name__ == "__main__":
    main()
