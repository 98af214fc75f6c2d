"""Webhook management and the delivery log through the API: validation and store scoping."""

import ipaddress

import httpx
import pytest
from sqlalchemy import select

from server.models import EventAction, JobUpdate, StoreWebhook
from server.notify import outbound
from server.notify.worker import DeliveryWorker
from server.schemas import JobUpdateOut
from tests.server.conftest import Floor, Lab

URL = "https://north.example/lenstrack"
SECRET = "north-secret-0123456789"


@pytest.fixture(autouse=True)
def public_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """north.example resolves to a public address (the tests have no DNS)."""
    monkeypatch.setattr(
        outbound, "resolve", lambda _host, _port: [ipaddress.ip_address("93.184.215.14")]
    )


async def test_store_staff_add_list_and_remove_their_own_webhooks(
    lab: Lab, client: httpx.AsyncClient
) -> None:
    await lab.log_in(client, "north", "demo-store-pass")
    given = await client.post("/api/stores/me/webhooks", json={"url": URL, "secret": SECRET})
    assert given.status_code == 201, given.text
    assert given.json()["secret"] == SECRET
    assert given.json()["kinds"] == ["flag_raised", "flag_cleared", "job_ready"]
    generated = await client.post(
        "/api/stores/me/webhooks", json={"url": URL, "kinds": ["job_ready", "job_ready"]}
    )
    assert generated.status_code == 201
    assert len(generated.json()["secret"]) >= 32
    assert generated.json()["kinds"] == ["job_ready"]

    listed = (await client.get("/api/stores/me/webhooks")).json()
    assert [hook["id"] for hook in listed] == [given.json()["id"], generated.json()["id"]]
    assert all("secret" not in hook for hook in listed)  # shown once, at creation

    removed = await client.delete(f"/api/stores/me/webhooks/{given.json()['id']}")
    assert removed.status_code == 204
    listed = (await client.get("/api/stores/me/webhooks")).json()
    assert [hook["active"] for hook in listed] == [False, True]
    again = await client.delete(f"/api/stores/me/webhooks/{given.json()['id']}")
    assert again.status_code == 404


async def test_a_bad_webhook_is_a_422_naming_the_field(lab: Lab, client: httpx.AsyncClient) -> None:
    await lab.log_in(client, "north", "demo-store-pass")
    cases = [
        ({"url": "ftp://north.example/x"}, "url"),
        ({"url": "https://user:pw@north.example/x"}, "url"),
        ({"url": "not a url"}, "url"),
        ({"url": URL, "secret": "too-short"}, "secret"),
        ({"url": URL, "kinds": ["job_changed"]}, "kinds.0"),
        ({"url": URL, "kinds": []}, "kinds"),
    ]
    for body, field in cases:
        response = await client.post("/api/stores/me/webhooks", json=body)
        assert response.status_code == 422, body
        assert response.json()["detail"][0]["field"] == field, body
    with lab.context.db.session() as session:
        assert session.scalars(select(StoreWebhook)).all() == []


async def test_another_store_is_not_found_and_the_lab_floor_is_forbidden(
    lab: Lab, client: httpx.AsyncClient
) -> None:
    await lab.log_in(client, "north", "demo-store-pass")
    north_hook = (await client.post("/api/stores/me/webhooks", json={"url": URL})).json()["id"]
    assert (await client.get("/api/stores/NORTH/webhooks")).status_code == 200  # own code

    await lab.log_in(client, "south", "demo-store-pass")
    assert (await client.get("/api/stores/me/webhooks")).json() == []
    assert (await client.get("/api/stores/NORTH/webhooks")).status_code == 404
    assert (await client.get("/api/stores/NORTH/deliveries")).status_code == 404
    posted = await client.post("/api/stores/NORTH/webhooks", json={"url": URL})
    assert posted.status_code == 404
    assert (await client.delete(f"/api/stores/me/webhooks/{north_hook}")).status_code == 404
    assert (await client.delete(f"/api/stores/NORTH/webhooks/{north_hook}")).status_code == 404

    await lab.log_in(client, "tech1", "demo-tech-pass")
    assert (await client.get("/api/stores/NORTH/webhooks")).status_code == 403
    station = lab.station_headers("EDGE-1")
    assert (await client.get("/api/stores/me/webhooks", headers=station)).status_code == 403


async def test_a_lab_manager_manages_any_store_by_code(lab: Lab, client: httpx.AsyncClient) -> None:
    await lab.log_in(client, "manager", "demo-manager-pass")
    assert (await client.get("/api/stores/me/webhooks")).status_code == 404  # no own store
    created = await client.post("/api/stores/SOUTH/webhooks", json={"url": URL})
    assert created.status_code == 201
    listed = (await client.get("/api/stores/SOUTH/webhooks")).json()
    assert [hook["id"] for hook in listed] == [created.json()["id"]]
    assert (await client.get("/api/stores/NOPE/webhooks")).status_code == 404
    deleted = await client.delete(f"/api/stores/SOUTH/webhooks/{created.json()['id']}")
    assert deleted.status_code == 204


async def test_the_delivery_log_shows_only_the_callers_store_newest_first(
    lab: Lab, floor: Floor, client: httpx.AsyncClient
) -> None:
    for user in ("north", "south"):
        await lab.log_in(client, user, "demo-store-pass")
        assert (await client.post("/api/stores/me/webhooks", json={"url": URL})).is_success
    for number, store in (("J1", "NORTH"), ("J2", "SOUTH"), ("J3", "NORTH")):
        lab.make_job(number, store=store)
        floor.send("EDGE-1", number, EventAction.hold, reason_code="H-FRAME")
    worker = DeliveryWorker(lab.context)
    with lab.context.db.session() as session:
        updates = [JobUpdateOut.model_validate(row) for row in session.scalars(select(JobUpdate))]
    for update in updates:
        worker.enqueue(update)

    await lab.log_in(client, "north", "demo-store-pass")
    page = (await client.get("/api/stores/me/deliveries")).json()
    assert page["total"] == 2
    assert [item["job_number"] for item in page["items"]] == ["J3", "J1"]
    assert all(item["status"] == "pending" for item in page["items"])
    second = (await client.get("/api/stores/me/deliveries?limit=1&offset=1")).json()
    assert [item["job_number"] for item in second["items"]] == ["J1"]
    assert (await client.get("/api/stores/me/deliveries?limit=0")).status_code == 422

    await lab.log_in(client, "manager", "demo-manager-pass")
    south = (await client.get("/api/stores/SOUTH/deliveries")).json()
    assert [item["job_number"] for item in south["items"]] == ["J2"]
