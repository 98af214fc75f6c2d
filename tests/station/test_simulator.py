"""The floor simulator against a REAL server: jobs move through two stages by pty scans, a
server outage in the middle loses and duplicates no event, and a simulated QC station judges
its lensmeter's readings and passes or fails the jobs."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from station.simulator import FloorSettings, FloorSimulator, SimulatedStationConfig
from tests.liveserver import LiveServer
from tests.station.conftest import until

MOVE_TIMEOUT = 90.0
QC_TIMEOUT = 240.0  # failed jobs go round edging and fitting again before QC sees them
STATIONS = [
    SimulatedStationConfig(name="EDGE-2", stage="edging", standard_minutes=1),
    SimulatedStationConfig(name="FIT-2", stage="fitting", standard_minutes=1),
]
QC = SimulatedStationConfig(name="QC-2", stage="final_qc", standard_minutes=1)


def _floor(
    server: LiveServer,
    tmp_path: Path,
    jobs: set[str],
    stations: list[SimulatedStationConfig] = STATIONS,
    qc_fail_chance: float = 0.0,
) -> FloorSettings:
    tokens = tmp_path / "tokens"
    tokens.mkdir()
    for station in stations:
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
        qc_fail_chance=qc_fail_chance,
        only_jobs=jobs,
        seed=4,
        stations=stations,
    )


@asynccontextmanager
async def simulated_floor(
    server: LiveServer, tmp_path: Path, jobs: set[str], **floor: Any
) -> AsyncIterator[FloorSimulator]:
    """The floor simulator working `jobs` until the block ends."""
    simulator = FloorSimulator(_floor(server, tmp_path, jobs, **floor))
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.stop()


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
    async with simulated_floor(live_server, tmp_path, jobs) as simulator:
        await until(lambda: past_fitting(live_server, jobs), MOVE_TIMEOUT, every=1.0)
    edge, fit = simulator.stations
    assert edge.tally.completed >= 2 and fit.tally.completed >= 2


async def test_pulling_the_network_mid_floor_loses_and_duplicates_nothing(
    live_server: LiveServer, tmp_path: Path
) -> None:
    jobs = new_jobs_at_edging(live_server, 4)
    async with simulated_floor(live_server, tmp_path, jobs) as simulator:
        outboxes = [station.core.outbox for station in simulator.stations]
        # Two scans sent, besides each station's sign-in (sent first).
        sent = 2 + len(outboxes)
        await until(lambda: sum(o.counts()["sent"] for o in outboxes) >= sent, MOVE_TIMEOUT)
        live_server.stop()
        # Operators keep scanning: events now wait in the outboxes.
        await until(lambda: sum(o.counts()["queued"] for o in outboxes) >= 2, MOVE_TIMEOUT)
        await asyncio.sleep(3)
        live_server.start()
        await until(lambda: past_fitting(live_server, jobs), MOVE_TIMEOUT, every=1.0)
        await until(lambda: not any(o.counts()["queued"] for o in outboxes), MOVE_TIMEOUT)
        local = {s.name: set(s.core.outbox.all_uuids()) for s in simulator.stations}
    for name, uuids in local.items():
        stored, rejected = live_server.stored_and_rejected(name, uuids)
        assert uuids - set(stored) - set(rejected) == set(), f"{name}: missing on the server"
        duplicated = [key for key, n in (stored + rejected).items() if n > 1]
        assert duplicated == [], f"{name}: duplicated"


def inspections(server: LiveServer, jobs: set[str]) -> list[dict[str, Any]]:
    """Every inspection the server stored for these jobs, as it judged them."""
    try:
        with _api(server) as api:
            ids = [api.get(f"/api/jobs/lookup/{job}").json()["id"] for job in jobs]
            return [i for id in ids for i in api.get(f"/api/jobs/{id}/inspections").json()]
    except (httpx.HTTPError, KeyError):
        return []


def passed_and_failed(server: LiveServer, jobs: set[str]) -> bool:
    outcomes = {inspection["passed"] for inspection in inspections(server, jobs)}
    return outcomes == {True, False}


async def test_a_simulated_qc_station_judges_and_passes_or_fails(
    live_server: LiveServer, tmp_path: Path
) -> None:
    """QC-2 measures each job with its lensmeter on a pty, judges it with Z80.1 and sends the
    inspection: a pass moves the job to shipping, a fail sends it back with a defect for the
    eye out of tolerance. A failed job comes round again, so both outcomes happen."""
    jobs = new_jobs_at_edging(live_server, 2)
    async with simulated_floor(
        live_server, tmp_path, jobs, stations=[*STATIONS, QC], qc_fail_chance=0.5
    ) as simulator:
        await until(lambda: passed_and_failed(live_server, jobs), QC_TIMEOUT, every=1.0)
    qc = simulator.stations[-1]
    assert qc.tally.completed >= 1 and qc.tally.failed >= 1
    judged = inspections(live_server, jobs)
    assert {inspection["station"] for inspection in judged} == {"QC-2"}
    for inspection in judged:
        assert {check["eye"] for check in inspection["checks"]} >= {"R", "L"}
        failed_eyes = {c["eye"] for c in inspection["checks"] if not c["passed"]}
        defects = {(d["eye"], d["code"]) for d in inspection["defects"]}
        assert defects == {(eye, "D-POWER") for eye in failed_eyes}
        assert inspection["passed"] == (not failed_eyes)
