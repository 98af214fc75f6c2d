"""Push latency: station event → the job's row changed on every open store page.

    .venv/bin/python benchmarks/push_latency.py [--pages 50] [--events 20] [--browsers 1]

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
"""

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from playwright.sync_api import Browser, Error, Page, sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.figures import p50_p95_max
from tests.chromium import launch_chromium, log_in
from tests.liveserver import LiveServer, serving_demo_lab, station_at_stage

PAGES_PER_CONTEXT = 10
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
    assert server.process is not None
    server_pid = server.process.pid
    browsers = _chromium_pids()
    server_cpu, browser_cpu = _cpu_seconds([server_pid]), _cpu_seconds(browsers)
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
    samples.server_cpu_ms = (_cpu_seconds([server_pid]) - server_cpu) * 1000 / events
    samples.browser_cpu_ms = (_cpu_seconds(browsers) - browser_cpu) * 1000 / events
    return samples


def _line(name: str, values: list[float]) -> str:
    if not values:
        return f"{name:<28} no samples"
    p50, p95, most = p50_p95_max(values)
    return f"{name:<28} n={len(values):<5} p50={p50:7.1f} ms  p95={p95:7.1f} ms  max={most:7.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=50)
    parser.add_argument("--events", type=int, default=20)
    parser.add_argument(
        "--browsers", type=int, default=1, help="Chromium processes to spread the pages over"
    )
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="push-latency-") as data_dir,
        serving_demo_lab(Path(data_dir), jobs=30) as server,
        sync_playwright() as playwright,
        httpx.Client(timeout=10) as http,
    ):
        browsers = [launch_chromium(playwright) for _ in range(args.browsers)]
        try:
            steps = _steps(http, server)
            pages: list[Page] = []
            _open_pages(browsers, server, 1, pages)
            one = _measure(pages, server, http, steps, args.events)
            rerender_ms, elements = pages[0].evaluate(RERENDER)
            started = time.monotonic()
            _open_pages(browsers, server, args.pages, pages)
            print(f"opened {len(pages)} store pages in {time.monotonic() - started:.1f} s")
            many = _measure(pages, server, http, steps, args.events)
            for pid in _chromium_pids():
                os.setpriority(os.PRIO_PROCESS, pid, 19)
            niced = _measure(pages, server, http, steps, args.events)
        finally:
            for browser in browsers:
                browser.close()
    print(f"events per run: {args.events}; a page that did not change within {WAIT_SECONDS} s")
    print("counts as missed")
    print(_line("POST round trip (1 page)", one.posts))
    print(_line("POST round trip (N pages)", many.posts))
    print(_line("event → DOM, 1 page", one.to_dom) + f"  missed={one.missed}")
    print(_line(f"event → DOM, {len(pages)} pages", many.to_dom) + f"  missed={many.missed}")
    print(_line(f"event → DOM, {len(pages)}, nice 19", niced.to_dom) + f"  missed={niced.missed}")
    print("where the time goes (the page's socket gets the message, then the row changes):")
    print(_line("  event → message, 1 page", one.to_message))
    print(_line("  message → DOM, 1 page", one.message_to_dom))
    print(_line(f"  event → message, {len(pages)} pages", many.to_message))
    print(_line(f"  message → DOM, {len(pages)} pages", many.message_to_dom))
    print(_line(f"  event → message, {len(pages)}, nice 19", niced.to_message))
    print(_line(f"  message → DOM, {len(pages)}, nice 19", niced.message_to_dom))
    for name, samples in (("1 page", one), (f"{len(pages)} pages", many), ("nice 19", niced)):
        print(
            f"  CPU per event, {name:<9} server {samples.server_cpu_ms:6.1f} ms, "
            f"Chromium (all processes) {samples.browser_cpu_ms:6.1f} ms"
        )
    print(
        f"  a NiceGUI element update re-renders one page's whole tree ({elements} elements) in "
        f"{rerender_ms:.1f} ms ({len(pages)} pages ≈ {len(pages) * rerender_ms:.0f} ms of renderer "
        f"CPU); a row change re-renders one row; {os.cpu_count()} cores shared with the server"
    )


if __name__ == "__main__":
    main()
