"""The baseline `benchmarks/ingest.py` compares LensTrack with: the plainest ingest endpoint
one would write, one FastAPI route that inserts one row per request through SQLAlchemy and
commits it. No lookups, no job state, no flags; same database settings as LensTrack (WAL and
synchronous=FULL on SQLite), so the difference is LensTrack's own work.

    NAIVE_DATABASE_URL=sqlite:///tmp/naive.db .venv/bin/python -m uvicorn \
        benchmarks.naive_ingest:app --port 8090
"""

import os
import uuid
from datetime import datetime
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel
from sqlalchemy import DateTime, String, Uuid, create_engine, event
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

URL = os.environ.get("NAIVE_DATABASE_URL", "sqlite:///naive.db")


class Base(DeclarativeBase):
    pass


class NaiveEvent(Base):
    __tablename__ = "naive_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    event_uuid: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True)
    job: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class EventBody(BaseModel):
    event_uuid: uuid.UUID
    job: str
    action: str
    created_at: datetime


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


if URL.startswith("sqlite"):
    engine = create_engine(URL, connect_args={"check_same_thread": False})
    event.listen(engine, "connect", _sqlite_pragmas)
else:
    engine = create_engine(URL, pool_size=20, max_overflow=10)
Base.metadata.create_all(engine)
app = FastAPI()


@app.post("/events", status_code=201)
def post_event(body: EventBody) -> dict[str, int]:
    with Session(engine) as session, session.begin():
        row = NaiveEvent(
            event_uuid=body.event_uuid, job=body.job, action=body.action, created_at=body.created_at
        )
        session.add(row)
        session.flush()
        return {"id": row.id}
