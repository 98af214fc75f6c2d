"""Reliability under faults (issue #11), long form of `tests/reliability/`.

    .venv/bin/python -m benchmarks.reliability [--rounds 10] [--backend sqlite|postgresql]
        [--scenarios server-kill,link-cut,…] [--rate 5] [--seed 0] [--keep]

Runs each scenario with the very harness the tests use (`tests.reliability.harness`): a real
`lenstrack serve`, three headless station processes posting at `--rate` scans per second
each, and `--rounds` faults — the server SIGKILLed, PostgreSQL restarted (postgresql only),
one station's link cut by a proxy, a station SIGKILLed mid-commit, a station's outbox disk
full. Then everything drains and the checks run. Prints per scenario what was scanned,
refused, stored and rejected, the faults injected, the time to drain after the last one, and
every violation; exits 1 if there was any (or if a run itself failed). PostgreSQL is the
local server (LENSTRACK_TEST_POSTGRES_URL), a throwaway database per run; the PostgreSQL
restart needs `pg_ctlcluster` and the disk-full scenario root (tmpfs); a scenario this
machine cannot run is reported as skipped. No assertions on speed; every wait is bounded.
A run's directory (server and station logs, databases) is kept when it found a violation.
"""

import argparse
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo's `tests` helpers
from tests.reliability.harness import SCENARIOS, Plan, Report, Unavailable, run_scenario

SUMMED = ("attempts", "recorded", "refused", "cut off", "stored", "rejected")


def summary_line(report: Report) -> str:
    totals = {key: sum(f.get(key, 0) for f in report.figures.values()) for key in SUMMED}
    return (
        f"{report.scenario:17} {sum(report.faults.values()):>6} "
        + " ".join(f"{totals[key]:>8}" for key in SUMMED)
        + f" {report.seconds.get('drain', 0):>7.1f} {report.seconds.get('total', 0):>7.1f}"
        + f" {len(report.violations):>10}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10, help="faults per scenario")
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--scenarios", help="comma-separated (default: all for the backend)")
    parser.add_argument("--rate", type=float, default=5.0, help="scans per second per station")
    parser.add_argument("--round-seconds", type=float, default=3.0)
    parser.add_argument("--jobs", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the run directories")
    args = parser.parse_args()
    if not 1 <= args.rounds <= 1000:
        parser.error("--rounds must be 1…1000")
    names = args.scenarios.split(",") if args.scenarios else list(SCENARIOS)
    unknown = [name for name in names if name not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenarios {unknown}; known: {', '.join(SCENARIOS)}")

    plan = Plan(
        backend=args.backend,
        rounds=args.rounds,
        round_seconds=args.round_seconds,
        rate=args.rate,
        jobs=args.jobs,
        seed=args.seed,
    )
    print(
        f"reliability: {args.backend}, {args.rounds} rounds of {args.round_seconds:.1f} s, "
        f"{args.rate:g} scans/s per station, {args.jobs} jobs, seed {args.seed}; "
        f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    reports: list[Report] = []
    skipped: list[str] = []
    failed: list[str] = []
    for name in names:
        scenario = SCENARIOS[name]
        if args.backend not in scenario.backends:
            skipped.append(f"{name}: runs on {', '.join(scenario.backends)} only")
            continue
        root = Path(tempfile.mkdtemp(prefix=f"lenstrack-reliability-{name}-"))
        print(f"\n== {name}: {scenario.description}  ({root})", flush=True)
        started = time.monotonic()
        try:
            report = run_scenario(scenario, plan, root)
        except Unavailable as error:
            shutil.rmtree(root, ignore_errors=True)
            skipped.append(f"{name}: {error}")
            print(f"skipped: {error}")
            continue
        except Exception as error:  # the harness itself failed: say so, run the next one
            traceback.print_exc()
            failed.append(f"{name}: {type(error).__name__}: {error} (kept in {root})")
            continue
        reports.append(report)
        print(report.describe())
        print(f"({time.monotonic() - started:.1f} s, load {os.getloadavg()[0]:.2f})", flush=True)
        if args.keep or report.violations:
            print(f"logs and databases kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)

    print("\nscenario          faults " + " ".join(f"{key[:8]:>8}" for key in SUMMED), end="")
    print("  drain s  total s  violations")
    for report in reports:
        print(summary_line(report))
    for line in skipped:
        print(f"skipped {line}")
    for line in failed:
        print(f"FAILED {line}")
    return 1 if failed or any(report.violations for report in reports) else 0


if __name__ == "__main__":
    sys.exit(main())
