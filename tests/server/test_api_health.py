"""`GET /api/health`: what stations probe while they wait to resend, and monitors poll."""

from pathlib import Path

import httpx

from server.app import create_api
from server.context import ServerContext
from server.settings import Settings


async def test_health_answers_without_log_in(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/health")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


async def test_health_is_503_naming_the_database_when_it_cannot_be_read(tmp_path: Path) -> None:
    not_a_database = tmp_path / "lenstrack.db"
    not_a_database.mkdir()  # SQLite cannot open a folder
    context = ServerContext(Settings(database_url=f"sqlite:///{not_a_database}", data_dir=tmp_path))
    transport = httpx.ASGITransport(app=create_api(context))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.get("/api/health")
    finally:
        context.db.dispose()
    assert response.status_code == 503
    assert response.json()["detail"][0]["field"] == "database"
