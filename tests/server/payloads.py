"""JSON bodies and small helpers shared by the HTTP API tests."""

import uuid
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import func, select

from server.db import Database
from server.models import Base, utcnow


def job_body(job_number: str = "J100", **overrides: Any) -> dict[str, Any]:
    """A valid order for a stock single-vision job of store NORTH."""
    now = utcnow()
    body: dict[str, Any] = {
        "job_number": job_number,
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
