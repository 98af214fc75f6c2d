"""Station latency: keyboard-wedge scan → the job's card visible on the station page.

    .venv/bin/python -m benchmarks.station_latency [--scans 30]

Seeds the demo lab and serves it in a subprocess, starts one station app (subprocess, temp
dirs) and opens its page in headless Chromium; signs in with a badge burst, then sends wedge
bursts for jobs waiting at edging. The page notes the Enter keydown that ends each burst and,
with a MutationObserver, the moment a job card showing that number is on screen, both on
`performance.now()`. Scans: each job's first scan (card fetched from the server), then
scans alternating between two jobs already on cards (alternating: a repeat of the last code
within 2 s is a double read). Baselines from the same run: the station's own requests per
scan, timed from Python (lookup alone, lookup + timeline). No assertions; bounded in scans
and time; the load average is printed beside the figures.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import Page, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo's `tests` helpers
from benchmarks.figures import p50_p95_max
from tests.chromium import launch_chromium
from tests.liveserver import LiveServer, serving_demo_lab
from tests.station.test_browser import running_station

CARD_TIMEOUT_MS = 10_000
WATCH = """code => {
  window.__latency = null;
  let sentAt = null;
  const onKey = event => { if (event.key === "Enter") sentAt = performance.now(); };
  document.addEventListener("keydown", onKey, true);
  const shown = () => [...document.querySelectorAll(".jobno")].some(
    element => element.textContent.trim() === code && element.offsetParent !== null);
  const observer = new MutationObserver(() => {
    if (sentAt !== null && shown()) {
      window.__latency = performance.now() - sentAt;
      observer.disconnect();
      document.removeEventListener("keydown", onKey, true);
    }
  });
  observer.observe(document.body, {subtree: true, childList: true, characterData: true});
}"""


def wedge_scan(page: Page, code: str) -> float | None:
    """Milliseconds from the burst's Enter to the card with `code` on screen; None if the
    card did not show within CARD_TIMEOUT_MS (e.g. a burst too slow to count as a scan)."""
    page.evaluate(WATCH, code)
    page.keyboard.type(code, delay=5)
    page.keyboard.press("Enter")
    try:
        page.wait_for_function("window.__latency !== null", timeout=CARD_TIMEOUT_MS)
    except PlaywrightTimeout:
        return None
    return float(page.evaluate("window.__latency"))


def request_times(
    server: LiveServer, jobs: list[str]
) -> tuple[list[float | None], list[float | None]]:
    """What the station asks per scan: lookup alone, and lookup + timeline (ms)."""
    lookup: list[float | None] = []
    both: list[float | None] = []
    headers = {"Authorization": f"Bearer {server.token('EDGE-1')}"}
    with httpx.Client(base_url=server.url, headers=headers) as client:
        for job in jobs:
            started = time.perf_counter()
            card = client.get(f"/api/jobs/lookup/{job}").raise_for_status().json()
            lookup.append((time.perf_counter() - started) * 1000)
            client.get(f"/api/jobs/{card['id']}/timeline").raise_for_status()
            both.append((time.perf_counter() - started) * 1000)
    return lookup, both


def jobs_waiting(server: LiveServer, count: int) -> list[str]:
    headers = {"Authorization": f"Bearer {server.token('EDGE-1')}"}
    params = {"stage": "edging", "status": "queued", "limit": count}
    page = httpx.get(f"{server.url}/api/jobs", params=params, headers=headers).json()
    return [job["job_number"] for job in page["items"]]


def _line(name: str, samples: list[float | None]) -> str:
    values = [value for value in samples if value is not None]
    missed = f"  missed {len(samples) - len(values)}" if len(values) < len(samples) else ""
    if not values:
        return f"{name:34} no samples{missed}"
    p50, p95, most = p50_p95_max(values)
    return (
        f"{name:34} n={len(values):3}  p50 {p50:6.1f} ms"
        f"  p95 {p95:6.1f} ms  max {most:6.1f} ms{missed}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scans", type=int, default=30, help="scans per series (≤100)")
    args = parser.parse_args()
    scans = max(2, min(args.scans, 100))
    load_before = os.getloadavg()
    with (
        tempfile.TemporaryDirectory(prefix="station-latency-") as temp,
        serving_demo_lab(Path(temp) / "server", jobs=200) as server,
    ):
        station_root = Path(temp) / "station"
        station_root.mkdir()
        with running_station(server, station_root, "EDGE-1", "edging") as url:
            jobs = jobs_waiting(server, scans + 2)
            cold_jobs, warm_jobs = jobs[:-2], jobs[-2:]
            with sync_playwright() as playwright:
                browser = launch_chromium(playwright)
                page = browser.new_page(viewport={"width": 1024, "height": 768})
                page.goto(url)
                page.get_by_text("Scan your badge to sign in").wait_for(timeout=CARD_TIMEOUT_MS)
                page.keyboard.type("B1001", delay=5)
                page.keyboard.press("Enter")
                page.get_by_text("Hello Tom Baker").wait_for(timeout=CARD_TIMEOUT_MS)
                cold = [wedge_scan(page, job) for job in cold_jobs]
                for job in warm_jobs:
                    wedge_scan(page, job)  # their cards are now cached
                warm = [wedge_scan(page, warm_jobs[i % 2]) for i in range(scans)]
                browser.close()
            lookup, lookup_timeline = request_times(server, cold_jobs)
    load_after = os.getloadavg()
    print(f"station scan → job card visible, one local station, {os.cpu_count()} cores")
    print(_line("wedge scan, first scan of a job", cold))
    print(_line("wedge scan, job already on a card", warm))
    print(_line("baseline: GET lookup (Python)", lookup))
    print(_line("baseline: lookup + timeline (Py)", lookup_timeline))
    print("load average (1/5/15 min) before: {:.2f} {:.2f} {:.2f}".format(*load_before))
    print("load average (1/5/15 min) after:  {:.2f} {:.2f} {:.2f}".format(*load_after))


if __name__ == "__main__":
    main()
