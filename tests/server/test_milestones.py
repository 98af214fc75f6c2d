"""After the route: the store marks a pair ready for pickup, then delivered to the patient."""

import httpx
from sqlalchemy import select

from server.models import EventAction, JobUpdate
from tests.server.conftest import Floor, Lab


async def test_the_store_marks_its_shipped_job_ready_then_delivered(
    lab: Lab, floor: Floor, client: httpx.AsyncClient
) -> None:
    job_id = lab.make_job("J1", store="NORTH")
    await lab.log_in(client, "north", "demo-store-pass")
    too_early = await client.post(f"/api/jobs/{job_id}/ready-for-pickup")
    assert too_early.status_code == 409
    assert "has not left the lab" in too_early.json()["detail"][0]["message"]
    assert (await client.post(f"/api/jobs/{job_id}/delivered")).status_code == 409

    floor.ship("J1")
    ready = await client.post(f"/api/jobs/{job_id}/ready-for-pickup")
    assert ready.status_code == 200, ready.text
    assert ready.json()["ready_for_pickup_at"] is not None
    assert (await client.post(f"/api/jobs/{job_id}/ready-for-pickup")).status_code == 409
    delivered = await client.post(f"/api/jobs/{job_id}/delivered")
    assert delivered.status_code == 200
    assert delivered.json()["delivered_at"] is not None
    with lab.context.db.session() as session:
        kinds = list(session.scalars(select(JobUpdate.kind).where(JobUpdate.job_id == job_id)))
    assert kinds[-2:] == ["job_ready", "job_delivered"]


async def test_another_store_and_the_lab_floor_cannot_mark_it(
    lab: Lab, floor: Floor, client: httpx.AsyncClient
) -> None:
    job_id = lab.make_job("J1", store="NORTH")
    floor.ship("J1")
    await lab.log_in(client, "south", "demo-store-pass")
    assert (await client.post(f"/api/jobs/{job_id}/ready-for-pickup")).status_code == 404
    await lab.log_in(client, "tech1", "demo-tech-pass")
    assert (await client.post(f"/api/jobs/{job_id}/ready-for-pickup")).status_code == 403
    response = await client.post(
        f"/api/jobs/{job_id}/ready-for-pickup", headers=lab.station_headers("SHIP-1")
    )
    assert response.status_code == 403


async def test_job_reads_carry_eta_and_open_flags(
    lab: Lab, floor: Floor, client: httpx.AsyncClient
) -> None:
    job_id = lab.make_job("J1")
    floor.send("EDGE-1", "J1", EventAction.hold, reason_code="H-FRAME")
    await lab.log_in(client, "manager", "demo-manager-pass")
    job = (await client.get(f"/api/jobs/{job_id}")).json()
    assert job["eta"] is not None
    assert [(f["kind"], f["reason"]) for f in job["flags"]] == [
        ("on_hold", "On hold at Edging: waiting for frame.")
    ]
    listed = (await client.get("/api/jobs")).json()["items"]
    assert [f["kind"] for f in listed[0]["flags"]] == ["on_hold"]
