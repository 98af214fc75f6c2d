"""Outbox drain: a station offline for a shift, then the server back (#15: 2,000 events ≤30 s).

    .venv/bin/python -m benchmarks.outbox_drain [--events 2000] [--backend sqlite|postgresql]

The demo lab is served, stock single-vision jobs are ordered (edging is their first stage),
and the server is stopped. The real station stack (`StationCore`: outbox and uplink, no
screen) of EDGE-1 then records its operator's sign-in and a start and a complete for each job
while the server is down, as a shift's scans would be. The server starts again; the time from
its first answer until the outbox holds nothing queued is the drain. Baseline, same run: the
same number of events for other jobs posted by a bare client in batches of the station's
batch size, one request after the other (the server's own pace, no station in the way).
Afterwards the server's stored events are counted against the outbox's.
"""

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.ingest import create_jobs, database
from station.core import StationCore
from station.settings import StationSettings, UplinkSettings
from station.wire import Action, SignAction
from tests.liveserver import LiveServer

STATION, STAGE, BADGE = "EDGE-1", "edging", "B1001"
STOCK_SINGLE_VISION = (("SV", False, 1.0),)
DRAIN_LIMIT_SECONDS = 600.0


def _station(server: LiveServer, data_dir: Path) -> StationCore:
    return StationCore(
        StationSettings(
            name=STATION,
            stage=STAGE,
            server_url=server.url,
            token=server.token(STATION),
            data_dir=data_dir,
            scanners=[],
            uplink=UplinkSettings(backoff_base_seconds=0.2, backoff_cap_seconds=1.0),
        )
    )


async def _drain(server: LiveServer, jobs: list[str], data_dir: Path) -> tuple[float, int]:
    """Records the shift offline, starts the server and times the drain; (seconds, events)."""
    core = _station(server, data_dir)
    await core.start()
    try:
        core.outbox.record_sign(SignAction.sign_in, BADGE)
        for job in jobs:
            core.outbox.record(job, Action.start, operator_badge=BADGE)
            core.outbox.record(job, Action.complete, operator_badge=BADGE)
        recorded = core.outbox.counts()["queued"]
        server.start()
        started = time.monotonic()
        core.uplink.wake()
        while core.outbox.counts()["queued"] and time.monotonic() - started < DRAIN_LIMIT_SECONDS:
            await asyncio.sleep(0.05)
        drained = time.monotonic() - started
        counts = core.outbox.counts()
    finally:
        await core.stop()
    print(f"  outbox after the drain: {counts}")
    return drained, recorded


def _baseline(server: LiveServer, jobs: list[str], batch_size: int) -> tuple[float, int]:
    """The same events for other jobs, posted in batches one request after another; what a
    batch's answer does not cover (the server's work per request is bounded) goes again."""
    headers = {"Authorization": f"Bearer {server.token('EDGE-2')}"}
    events = []
    for action, job in [("sign_in", None)] + [(a, j) for j in jobs for a in ("start", "complete")]:
        now = datetime.now(UTC).isoformat()
        body = {"event_uuid": str(uuid.uuid4()), "sequence": len(events) + 1, "action": action}
        body |= {"operator_badge": BADGE, "created_at": now, "sent_at": now}
        events.append(body | ({"job": job} if job else {}))
    started = time.monotonic()
    sent = 0
    with httpx.Client(base_url=server.url, timeout=60) as http:
        while sent < len(events) and time.monotonic() - started < DRAIN_LIMIT_SECONDS:
            batch = {"events": events[sent : sent + batch_size]}
            answer = http.post("/api/events/batch", json=batch, headers=headers)
            if answer.status_code != 503:  # 503: nothing stored, the same batch again
                answer.raise_for_status()
                sent += len(answer.json()["results"])
    return time.monotonic() - started, sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000, help="job events in the shift")
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    args = parser.parse_args()
    batch_size = UplinkSettings().batch_size
    with tempfile.TemporaryDirectory(prefix="lenstrack-drain-") as temp:
        root = Path(temp)
        server = LiveServer(root / "server")
        with database(args.backend, root, "drain") as url:
            server.env["LENSTRACK_DATABASE_URL"] = url
            server.cli("seed-demo", "--jobs", "0")
            server.start()
            try:
                count = args.events // 2
                made = create_jobs(server, "D", 2 * count, STOCK_SINGLE_VISION)
                shift, other = [j.number for j in made[:count]], [j.number for j in made[count:]]
                baseline_seconds, baseline_events = _baseline(server, other, batch_size)
                server.token(STATION)
            finally:
                server.stop()
            drain_seconds, recorded = asyncio.run(_drain(server, shift, root / "station"))
            server.stop()
            engine = create_engine(url)
            with engine.connect() as connection:
                stored = connection.scalar(
                    text(
                        "SELECT count(*) FROM stage_event e JOIN station s ON s.id = e.station_id"
                        " WHERE s.name = :name"
                    ),
                    {"name": STATION},
                )
            engine.dispose()
    print(f"{args.backend}, batches of {batch_size}:")
    print(
        f"  station outbox drain       {recorded:>6} events  {drain_seconds:>6.1f} s"
        f"  {recorded / drain_seconds:>6.0f} events/s  ({stored} job events stored)"
    )
    print(
        f"  bare client, same batches  {baseline_events:>6} events  {baseline_seconds:>6.1f} s"
        f"  {baseline_events / baseline_seconds:>6.0f} events/s"
    )


if __name__ == "__main__":
    main()
