"""JSON bodies and small helpers shared by the HTTP API tests."""

import uuid
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import func, select

from server.db import Database
from server.models import Base, utcnow


def job_body(job_number: str | None = "J100", **overrides: Any) -> dict[str, Any]:
    """A valid order for a stock single-vision job of store NORTH; `job_number=None` leaves
    the number out, as store staff must (the lab assigns it)."""
    now = utcnow()
    body: dict[str, Any] = {
        "store_code": "NORTH",
        "patient_ref": "P-100",
        "ordered_at": (now - timedelta(hours=1)).isoformat(),
        "promised_at": (now + timedelta(days=2)).isoformat(),
        "lens_design": "SV",
        "lens_material": "CR-39",
        "lens_index": 1.5,
        "surfaced": False,
        "right": {"sph": -1.25, "cyl": -0.5, "axis": 90, "mono_pd": 31.5},
        "left": {"sph": -1.0},
    }
    if job_number is not None:
        body["job_number"] = job_number
    body.update(overrides)
    return body


def event_body(job: str, sequence: int, action: str = "start", **overrides: Any) -> dict[str, Any]:
    """A valid station event, made now, for the given job or tray number."""
    now = utcnow().isoformat()
    body: dict[str, Any] = {
        "event_uuid": str(uuid.uuid4()),
        "sequence": sequence,
        "job": job,
        "action": action,
        "operator_badge": "B1001",
        "created_at": now,
        "sent_at": now,
    }
    body.update(overrides)
    return body


def count_rows(db: Database, model: type[Base]) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def field_errors(response: httpx.Response) -> dict[str, str]:
    """The `{"detail": [{"field", "message"}]}` body as field → message, checking its shape."""
    detail = response.json()["detail"]
    assert isinstance(detail, list) and detail, response.text
    for item in detail:
        assert set(item) == {"field", "message"}, item
        assert isinstance(item["field"], str) and item["field"], item
        assert isinstance(item["message"], str) and item["message"], item
    return {item["field"]: item["message"] for item in detail}


STOCK_SV_STATIONS = ("EDGE-1", "FIT-1", "QC-1", "SHIP-1")
# Final QC (QC-1) is an inspection stage: its pass carries job_body's lenses, measured as ordered.
QC_PASS = {
    "QC-1": {
        "inspection": {
            "measured": {"R": {"sph": -1.25, "cyl": -0.5, "axis": 90}, "L": {"sph": -1.0}}
        }
    }
}


async def run_route(
    client: httpx.AsyncClient,
    headers: dict[str, dict[str, str]],
    code: str,
    stations: tuple[str, ...] = STOCK_SV_STATIONS,
    badge: str = "B1001",
) -> None:
    """Starts and completes the job at each station in turn, one batch per station.

    `headers` maps a station name to its bearer header.
    """
    for station in stations:
        batch = {
            "events": [
                event_body(code, 1, "start", operator_badge=badge),
                event_body(code, 2, "complete", operator_badge=badge, **QC_PASS.get(station, {})),
            ]
        }
        response = await client.post("/api/events/batch", json=batch, headers=headers[station])
        assert response.status_code == 200, response.text
        statuses = [result["status"] for result in response.json()["results"]]
        assert statuses == ["stored", "stored"], response.text
