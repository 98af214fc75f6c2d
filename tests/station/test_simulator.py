"""The floor simulator against a REAL server: jobs move through two stages by pty scans, and
a server outage in the middle loses and duplicates no event."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from station.simulator import FloorSettings, FloorSimulator, SimulatedStationConfig
from tests.station.conftest import LiveServer, until

MOVE_TIMEOUT = 90.0
STATIONS = [
    SimulatedStationConfig(name="EDGE-2", stage="edging", standard_minutes=1),
    SimulatedStationConfig(name="FIT-2", stage="fitting", standard_minutes=1),
]


def _floor(server: LiveServer, tmp_path: Path, jobs: set[str]) -> FloorSettings:
    tokens = tmp_path / "tokens"
    tokens.mkdir()
    for station in STATIONS:
        (tokens / f"{station.name}.token").write_text(server.token(station.name))
    return FloorSettings(
        server_url=server.url,
        tokens_dir=tokens,
        data_dir=tmp_path / "floor",
        speed=60,
        pause_seconds=0.2,
        idle_seconds=0.5,
        hold_chance=0,
        breakage_chance=0,
        only_jobs=jobs,
        seed=4,
        stations=STATIONS,
    )


def _api(server: LiveServer) -> httpx.Client:
    token = server.token("EDGE-2")
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"})


def new_jobs_at_edging(server: LiveServer, count: int) -> set[str]:
    """Stock single-vision jobs made for this test (they start at edging), so the test does
    not depend on what other tests left of the shared seeded lab."""
    now = datetime.now(UTC)
    jobs = {f"SIM{uuid.uuid4().hex[:8].upper()}" for _ in range(count)}
    with httpx.Client(base_url=server.url) as api:
        login = api.post(
            "/api/auth/login", json={"username": "manager", "password": "demo-manager-pass"}
        )
        login.raise_for_status()
        for job in jobs:
            created = api.post(
                "/api/jobs",
                json={
                    "job_number": job,
                    "store_code": "NORTH",
                    "patient_ref": "P-SIM",
                    "ordered_at": now.isoformat(),
                    "promised_at": (now + timedelta(days=2)).isoformat(),
                    "lens_design": "SV",
                    "lens_material": "CR-39",
                    "lens_index": 1.5,
                    "surfaced": False,
                    "right": {"sph": -1.0},
                    "left": {"sph": -1.25},
                },
            )
            assert created.status_code == 201, created.text
            assert created.json()["current_stage"]["code"] == "edging"
    return jobs


def past_fitting(server: LiveServer, jobs: set[str]) -> bool:
    """Every job was completed at edging and at fitting: it waits at final QC."""
    try:
        with _api(server) as api:
            replies = [api.get(f"/api/jobs/lookup/{job}") for job in jobs]
    except httpx.HTTPError:
        return False  # the server is being restarted
    if any(reply.status_code != 200 for reply in replies):
        return False  # starting up
    cards = [reply.json() for reply in replies]
    return all((c["current_stage"] or {}).get("code") == "final_qc" for c in cards)


async def test_simulated_operators_move_jobs_through_two_stages(
    live_server: LiveServer, tmp_path: Path
) -> None:
    jobs = new_jobs_at_edging(live_server, 2)
    simulator = FloorSimulator(_floor(live_server, tmp_path, jobs))
    await simulator.start()
    try:
        await until(lambda: past_fitting(live_server, jobs), MOVE_TIMEOUT, every=1.0)
    finally:
        await simulator.stop()
    edge, fit = simulator.stations
    assert edge.tally.completed >= 2 and fit.tally.completed >= 2


async def test_pulling_the_network_mid_floor_loses_and_duplicates_nothing(
    live_server: LiveServer, tmp_path: Path
) -> None:
    jobs = new_jobs_at_edging(live_server, 4)
    simulator = FloorSimulator(_floor(live_server, tmp_path, jobs))
    await simulator.start()
    outboxes = [station.core.outbox for station in simulator.stations]
    try:
        await until(lambda: sum(o.counts()["sent"] for o in outboxes) >= 2, MOVE_TIMEOUT)
        live_server.stop()
        # Operators keep scanning: events now wait in the outboxes.
        await until(lambda: sum(o.counts()["queued"] for o in outboxes) >= 2, MOVE_TIMEOUT)
        await asyncio.sleep(3)
        live_server.start()
        await until(lambda: past_fitting(live_server, jobs), MOVE_TIMEOUT, every=1.0)
        await until(lambda: not any(o.counts()["queued"] for o in outboxes), MOVE_TIMEOUT)
        local = {s.name: set(s.core.outbox.all_uuids()) for s in simulator.stations}
    finally:
        await simulator.stop()
    for name, uuids in local.items():
        stored, rejected = live_server.stored_and_rejected(name, uuids)
        assert uuids - set(stored) - set(rejected) == set(), f"{name}: missing on the server"
        duplicated = [key for key, n in (stored + rejected).items() if n > 1]
        assert duplicated == [], f"{name}: duplicated"
