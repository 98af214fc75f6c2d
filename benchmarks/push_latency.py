"""Push latency: station event → the job's row changed on every open store page.

    .venv/bin/python -m benchmarks.push_latency [--pages 50] [--events 20] [--browsers 1]
        [--processes N]

Seeds the demo lab (30 jobs) and serves it in a subprocess, opens store pages for NORTH in
headless Chromium (several contexts, each logged in once), then posts station events for
NORTH jobs one at a time. Each page watches the job's row with a MutationObserver and notes
when it first changed, on the machine's wall clock (performance.timeOrigin + now()), which the
send time is taken on too. Baselines from the same run: the bare POST round trip, and the same
measurement with one page open, and the split of the time: event → the page's socket message
(server, network, a busy renderer) and message → DOM (the browser), with the CPU the server and
all Chromium processes spent per event. The 50 pages stand in for 50 store PCs but share this
machine's cores with the server, so the 50-page run is repeated with Chromium at nice 19: the
browsers then take the CPU the server leaves, as they would on their own machines, while
their own rendering still counts in the figure. No assertions; bounded in events and time.

With `--processes N` the same runs are made twice on PostgreSQL, each on a database of its
own: one `lenstrack serve` (the baseline), then `lenstrack serve-group --processes N` with
every page and event going through HAProxy (events round-robin over the processes, each page
pinned to one). Each run also reports the resident memory (RSS, from /proc) of the server's
processes with all pages open: the server processes, HAProxy and the serve-group supervisor.
"""

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from playwright.sync_api import Browser, Error, Page, sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.figures import p50_p95_max
from tests.chromium import launch_chromium, log_in
from tests.conftest import _postgres_database
from tests.liveserver import LiveServer, serving_demo_lab, station_at_stage
from tests.server.test_serve_group import serving_group

PAGES_PER_CONTEXT = 10
OPEN_TIMEOUT_MS = 120_000  # a page opened while others load a busy machine may take long
SEEDED_JOBS = 30
WAIT_SECONDS = 5.0
FIRST_LOOK_SECONDS = 0.5
ARM = """jobId => {
  window.__changedAt = null;
  window.__messageAt = null;
  if (!window.__listening && window.socket) {
    // A row's change arrives as a component method call (run_javascript), others as updates.
    for (const kind of ['update', 'run_javascript']) {
      window.socket.on(kind, () => {
        window.__messageAt ??= performance.timeOrigin + performance.now();
      });
    }
    window.__listening = true;
  }
  if (window.__observer) window.__observer.disconnect();
  const row = document.querySelector(`[data-job-id='${jobId}']`);
  if (!row) return false;
  window.__observer = new MutationObserver(() => {
    window.__changedAt ??= performance.timeOrigin + performance.now();
  });
  window.__observer.observe(row, {subtree: true, childList: true, attributes: true,
                                  characterData: true});
  return true;
}"""
# NiceGUI's root component renders every element of the page, so any NiceGUI element update
# re-renders the whole tree: this times that (median of 20) on one page. A job row's change is
# a component method call instead (server/pages/job_rows.py), which re-renders that row alone.
RERENDER = """async () => {
  const app = document.getElementById('app').__vue_app__;
  const root = (app._instance ?? app._container._vnode.component).proxy;
  const times = [];
  for (let i = 0; i < 20; i++) {
    const started = performance.now();
    root.$forceUpdate();
    await Vue.nextTick();
    times.push(performance.now() - started);
  }
  times.sort((a, b) => a - b);
  return [times[10], document.querySelectorAll('#app [id^=c]').length];
}"""
STOP_BEFORE = {"final_qc", "shipping"}  # completing QC needs an inspection; stay before it


@dataclass
class Step:
    job_id: int
    job_number: str
    station: str
    action: str


def _steps(http: httpx.Client, server: LiveServer) -> Iterator[Step]:
    """Start and complete NORTH jobs stage by stage: every event changes the job's row."""
    stations = station_at_stage()
    http.post(
        f"{server.url}/api/auth/login", json={"username": "north", "password": "demo-store-pass"}
    ).raise_for_status()
    listed = http.get(f"{server.url}/api/jobs", params={"active": "true", "limit": 500}).json()
    for summary in listed["items"]:
        if summary["status"] == "on_hold":
            continue
        job = http.get(f"{server.url}/api/jobs/{summary['id']}").json()
        route = [stage["code"] for stage in job["route_stages"]]
        position, status = route.index(job["current_stage"]["code"]), job["status"]
        while route[position] not in STOP_BEFORE:
            station = stations[route[position]]
            if status == "queued":
                yield Step(job["id"], job["job_number"], station, "start")
                status = "in_progress"
            else:
                yield Step(job["id"], job["job_number"], station, "complete")
                position, status = position + 1, "queued"


def _open_pages(browsers: list[Browser], server: LiveServer, count: int, pages: list[Page]) -> None:
    while len(pages) < count:
        browser = browsers[len(pages) // PAGES_PER_CONTEXT % len(browsers)]
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        context.set_default_timeout(OPEN_TIMEOUT_MS)
        first = context.new_page()
        log_in(first, server.url, "north", "demo-store-pass")
        for page in [first] + [context.new_page() for _ in range(PAGES_PER_CONTEXT - 1)]:
            if len(pages) == count:
                page.close()
                continue
            page.goto(f"{server.url}/store")
            page.wait_for_selector("[data-job-id]")
            pages.append(page)


def _evaluate(page: Page, script: str, argument: object = None) -> object:
    """None if the page is reloading (NiceGUI reloads a page whose client it dropped)."""
    try:
        return page.evaluate(script, argument)
    except Error:
        return None


@dataclass
class Samples:
    """Per (event, page): sent → first message on the page's socket → row changed."""

    to_dom: list[float] = field(default_factory=list)
    to_message: list[float] = field(default_factory=list)
    message_to_dom: list[float] = field(default_factory=list)
    posts: list[float] = field(default_factory=list)
    missed: int = 0
    server_cpu_ms: float = 0.0  # per event
    browser_cpu_ms: float = 0.0


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes so far (Linux /proc)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def _process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (Linux /proc)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except (FileNotFoundError, ProcessLookupError):
        return []
    return [pid, *(tree_pid for child in children for tree_pid in _process_tree(int(child)))]


def _server_pids(server: LiveServer) -> list[int]:
    assert server.process is not None
    return _process_tree(server.process.pid)


def _rss_mb(pids: list[int]) -> dict[str, float]:
    """Resident memory (VmRSS) in MB by part: `server` (each `lenstrack serve`), `haproxy`, and
    `supervisor` (the serve-group command itself, the first pid when it has children)."""
    parts: dict[str, float] = {}
    for index, pid in enumerate(pids):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if fields["Name"].strip() == "haproxy":
            part = "haproxy"
        else:
            part = "supervisor" if index == 0 and len(pids) > 1 else "server"
        parts[part] = parts.get(part, 0.0) + int(fields["VmRSS"].split()[0]) / 1024
    return parts


def _chromium_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0", 1)[0]
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if b"chromium" in command:
            pids.append(int(entry.name))
    return pids


def _measure(
    pages: list[Page], server: LiveServer, http: httpx.Client, steps: Iterator[Step], events: int
) -> Samples:
    """Latencies in ms; a page whose row did not change within WAIT_SECONDS counts as missed."""
    samples = Samples()
    server_pids = _server_pids(server)
    browsers = _chromium_pids()
    server_cpu, browser_cpu = _cpu_seconds(server_pids), _cpu_seconds(browsers)
    for _ in range(events):
        step = next(steps)
        server.token(step.station)  # the CLI takes a second: not inside the measurement
        armed = [page for page in pages if _evaluate(page, ARM, step.job_id)]
        sent_at = time.time() * 1000
        response = server.send(http, step.station, step.job_number, step.action)
        samples.posts.append(time.time() * 1000 - sent_at)
        response.raise_for_status()
        deadline = time.monotonic() + WAIT_SECONDS
        waiting = armed
        # The pages time themselves; asking 50 renderers every few ms would steal the CPU the
        # measurement is about, so the first look comes after most pages are done.
        time.sleep(FIRST_LOOK_SECONDS)
        while waiting and time.monotonic() < deadline:
            still = []
            for page in waiting:
                seen = _evaluate(page, "[window.__changedAt, window.__messageAt]")
                changed, message = seen if isinstance(seen, list) else (None, None)
                if changed is None:
                    still.append(page)
                    continue
                samples.to_dom.append(float(changed) - sent_at)
                if message is not None:
                    samples.to_message.append(float(message) - sent_at)
                    samples.message_to_dom.append(float(changed) - float(message))
            waiting = still
            if waiting:
                time.sleep(0.1)
        samples.missed += len(waiting) + len(pages) - len(armed)
        time.sleep(0.2)  # let the server settle between events
    samples.server_cpu_ms = (_cpu_seconds(server_pids) - server_cpu) * 1000 / events
    samples.browser_cpu_ms = (_cpu_seconds(browsers) - browser_cpu) * 1000 / events
    return samples


def _line(name: str, values: list[float]) -> str:
    if not values:
        return f"{name:<28} no samples"
    p50, p95, most = p50_p95_max(values)
    return f"{name:<28} n={len(values):<5} p50={p50:7.1f} ms  p95={p95:7.1f} ms  max={most:7.1f} ms"


@dataclass
class Run:
    """One server setup measured: 1 page, N pages, N pages with Chromium at nice 19."""

    name: str
    one: Samples
    many: Samples
    niced: Samples
    pages: int
    rss_mb: dict[str, float]  # by part, with the N pages open
    server_processes: int
    rerender_ms: float
    elements: int


def _run(name: str, server: LiveServer, processes: int, args: argparse.Namespace) -> Run:
    with sync_playwright() as playwright, httpx.Client(timeout=10) as http:
        browsers = [launch_chromium(playwright) for _ in range(args.browsers)]
        try:
            steps = _steps(http, server)
            pages: list[Page] = []
            _open_pages(browsers, server, 1, pages)
            one = _measure(pages, server, http, steps, args.events)
            rerender_ms, elements = pages[0].evaluate(RERENDER)
            started = time.monotonic()
            _open_pages(browsers, server, args.pages, pages)
            print(f"{name}: opened {len(pages)} store pages in {time.monotonic() - started:.1f} s")
            many = _measure(pages, server, http, steps, args.events)
            rss_mb = _rss_mb(_server_pids(server))
            for pid in _chromium_pids():
                os.setpriority(os.PRIO_PROCESS, pid, 19)
            niced = _measure(pages, server, http, steps, args.events)
        finally:
            for browser in browsers:
                browser.close()
    return Run(name, one, many, niced, len(pages), rss_mb, processes, rerender_ms, elements)


def _report(run: Run) -> None:
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"== {run.name} (load average now {load} on {os.cpu_count()} cores)")
    print(_line("POST round trip (1 page)", run.one.posts))
    print(_line("POST round trip (N pages)", run.many.posts))
    print(_line("event → DOM, 1 page", run.one.to_dom) + f"  missed={run.one.missed}")
    print(_line(f"event → DOM, {run.pages} pages", run.many.to_dom) + f"  missed={run.many.missed}")
    niced = f"event → DOM, {run.pages}, nice 19"
    print(_line(niced, run.niced.to_dom) + f"  missed={run.niced.missed}")
    print("where the time goes (the page's socket gets the message, then the row changes):")
    print(_line("  event → message, 1 page", run.one.to_message))
    print(_line("  message → DOM, 1 page", run.one.message_to_dom))
    print(_line(f"  event → message, {run.pages} pages", run.many.to_message))
    print(_line(f"  message → DOM, {run.pages} pages", run.many.message_to_dom))
    print(_line(f"  event → message, {run.pages}, nice 19", run.niced.to_message))
    print(_line(f"  message → DOM, {run.pages}, nice 19", run.niced.message_to_dom))
    for name, samples in (
        ("1 page", run.one),
        (f"{run.pages} pages", run.many),
        ("nice 19", run.niced),
    ):
        print(
            f"  CPU per event, {name:<9} server {samples.server_cpu_ms:6.1f} ms, "
            f"Chromium (all processes) {samples.browser_cpu_ms:6.1f} ms"
        )
    parts = ", ".join(f"{part} {mb:.0f} MB" for part, mb in sorted(run.rss_mb.items()))
    print(
        f"  RSS with {run.pages} pages open: {sum(run.rss_mb.values()):.0f} MB "
        f"({parts}; {run.server_processes} server process(es))"
    )
    print(
        f"  a NiceGUI element update re-renders one page's whole tree ({run.elements} elements) "
        f"in {run.rerender_ms:.1f} ms ({run.pages} pages ≈ {run.pages * run.rerender_ms:.0f} ms "
        f"of renderer CPU); a row change re-renders one row; {os.cpu_count()} cores shared with "
        "the server"
    )


@contextmanager
def _serving_postgres(root: Path, processes: int) -> Iterator[LiveServer]:
    """The demo lab on a PostgreSQL database of its own: `lenstrack serve` for one process,
    else `lenstrack serve-group`."""
    for database_url in _postgres_database("push_latency"):
        if processes > 1:
            with serving_group(root, database_url, processes, SEEDED_JOBS) as server:
                yield server
        else:
            server = LiveServer(root)
            server.env["LENSTRACK_DATABASE_URL"] = database_url
            server.cli("seed-demo", "--jobs", str(SEEDED_JOBS))
            server.start()
            try:
                yield server
            finally:
                server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=50)
    parser.add_argument("--events", type=int, default=20)
    parser.add_argument(
        "--browsers", type=int, default=1, help="Chromium processes to spread the pages over"
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=0,
        help="also run `serve-group` with this many processes behind HAProxy (PostgreSQL)",
    )
    args = parser.parse_args()
    print(f"events per run: {args.events}; a page that did not change within {WAIT_SECONDS} s")
    print("counts as missed")
    with tempfile.TemporaryDirectory(prefix="push-latency-") as data_dir:
        if not args.processes:
            with serving_demo_lab(Path(data_dir), jobs=SEEDED_JOBS) as server:
                _report(_run("SQLite, 1 process", server, 1, args))
            return
        for processes in (1, args.processes):
            name = f"PostgreSQL, {processes} process(es)" + (
                " behind HAProxy" if processes > 1 else ""
            )
            with _serving_postgres(Path(data_dir) / f"processes-{processes}", processes) as server:
                _report(_run(name, server, processes, args))


if __name__ == "__main__":
    main()
