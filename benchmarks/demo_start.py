"""`make demo` from a fresh clone, as a new user runs it, on a busy machine.

    .venv/bin/python -m benchmarks.demo_start [--runs 5] [--idle-runs 1] [--keep]

Each run clones this repository's HEAD into a temporary folder and runs `make demo` there
(venv, seeding, server, stations, floor simulator), with one CPU-bound process per core
running beside it (the idle runs, the baseline, have none). A run counts as up once the demo
prints its URLs and every one of them answers; it is then stopped with Ctrl-C. Prints, per
run: up or not, seconds to the venv, to the end of seeding and to "running", and the load
average. Bounded: each run gives up after --timeout seconds.
"""

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
URL = re.compile(r"http://127\.0\.0\.1:\d+/\S*")


@dataclass
class Run:
    loaded: bool
    up: bool
    venv_s: float | None
    seeded_s: float | None
    running_s: float | None
    urls: int
    load_average: float
    tail: str


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=10):
            return True
    except urllib.error.HTTPError as error:
        return error.code < 500
    except OSError:
        return False


def _hogs(loaded: bool) -> list[subprocess.Popen[bytes]]:
    if not loaded:
        return []
    return [
        subprocess.Popen([sys.executable, "-c", "while True: pass"])
        for _ in range(os.cpu_count() or 2)
    ]


def one_run(loaded: bool, timeout: float, keep: bool) -> Run:
    folder = Path(tempfile.mkdtemp(prefix="lenstrack-demo-"))
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(folder)], check=True)
    env = {key: value for key, value in os.environ.items() if not key.startswith("LENSTRACK_")}
    marks: dict[str, float] = {}
    hogs = _hogs(loaded)
    started = time.monotonic()
    output = folder / "make-demo.out"
    with output.open("wb") as sink:
        demo = subprocess.Popen(
            ["make", "demo"],
            cwd=folder,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        while time.monotonic() - started < timeout and demo.poll() is None:
            text = output.read_text(errors="replace")
            for mark, needle in (
                ("venv", "seeding the demo lab ("),
                ("seeded", "seeded in "),
                ("running", "demo is running"),
            ):
                if needle in text and mark not in marks:
                    marks[mark] = time.monotonic() - started
            if "running" in marks:
                break
            time.sleep(0.5)
        load = os.getloadavg()[0]
        text = output.read_text(errors="replace")
        urls = URL.findall(text.split("demo is running", 1)[-1]) if "running" in marks else []
        up = bool(urls) and all(_answers(url) for url in urls)
    finally:
        for hog in hogs:
            hog.kill()
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGINT)
            try:
                demo.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(demo.pid, signal.SIGKILL)
    tail = "\n".join(text.splitlines()[-15:])
    if not keep:
        subprocess.run(["rm", "-rf", str(folder)], check=False)
    return Run(
        loaded,
        up,
        marks.get("venv"),
        marks.get("seeded"),
        marks.get("running"),
        len(urls),
        load,
        tail,
    )


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs with a CPU hog per core")
    parser.add_argument("--idle-runs", type=int, default=1, help="baseline runs without load")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per run at most")
    parser.add_argument("--keep", action="store_true", help="keep each run's clone")
    args = parser.parse_args()
    runs = [one_run(False, args.timeout, args.keep) for _ in range(args.idle_runs)]
    runs += [one_run(True, args.timeout, args.keep) for _ in range(args.runs)]
    print(
        f"{'run':4} {'load':6} {'up':4} {'venv s':>7} {'seeded s':>9} {'running s':>10} "
        f"{'URLs':>5} {'loadavg':>8}"
    )
    for number, run in enumerate(runs, 1):
        print(
            f"{number:<4} {'hogs' if run.loaded else 'idle':6} {'yes' if run.up else 'NO':4} "
            f"{_seconds(run.venv_s):>7} {_seconds(run.seeded_s):>9} "
            f"{_seconds(run.running_s):>10} {run.urls:>5} {run.load_average:>8.2f}"
        )
    for number, run in enumerate(runs, 1):
        if not run.up:
            print(f"\nrun {number} did not come up; the end of its output:\n{run.tail}")
    return 0 if all(run.up for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
