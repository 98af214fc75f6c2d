"""The station's local SQLite store: the event outbox and the job-card cache.

Every event is committed here (WAL, synchronous=FULL: survives a power cut) before anything
else happens, so a scan is never lost to a network or server failure. The local sequence is
the table's AUTOINCREMENT key, allocated by the insert itself: monotonic and never reused.
The sequence on the wire is that plus a base learned once from the server, so a station whose
outbox was recreated continues the server's numbering instead of repeating it.
"""

import json
import sqlite3
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import TypeAdapter

from station.wire import (
    Action,
    BreakageDetail,
    EventIn,
    EventResult,
    InspectionIn,
    JobCard,
    JobState,
    ShipmentIn,
    SignAction,
    TimelineEntry,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_uuid TEXT NOT NULL UNIQUE,
    job TEXT NOT NULL,
    action TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'sent', 'rejected')),
    reply TEXT
);
CREATE INDEX IF NOT EXISTS events_state_seq ON events (state, seq);
CREATE INDEX IF NOT EXISTS events_job_seq ON events (job, seq);
CREATE TABLE IF NOT EXISTS cards (
    job_number TEXT PRIMARY KEY,
    tray_number TEXT,
    card TEXT NOT NULL,
    timeline TEXT NOT NULL,
    as_of_seq INTEGER NOT NULL,
    fetched_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS cards_tray ON cards (tray_number);
"""

EventState = Literal["queued", "sent", "rejected"]


class OutboxWriteFailed(Exception):
    """The event could not be committed (disk full, read-only, I/O error): nothing was
    recorded, so the scan must be refused, never confirmed."""


_timeline = TypeAdapter(list[TimelineEntry])
_action = TypeAdapter(Action | SignAction)
# A sign-in or sign-out names no job: its `job` column (NOT NULL, older than sign-ins) holds
# this, and the event on the wire none.
NO_JOB = ""


@dataclass(frozen=True)
class OutboxEvent:
    seq: int
    event_uuid: uuid.UUID
    job: str  # NO_JOB for a sign-in or sign-out
    action: Action | SignAction
    # operator_badge, reason_code, to_stage, override_reason, note; breakage, inspection and
    # shipment as JSON objects
    fields: dict[str, Any]
    created_at: datetime
    state: EventState
    error: str | None

    def wire(self, sequence_base: int, sent_at: datetime) -> EventIn:
        return EventIn(
            event_uuid=self.event_uuid,
            sequence=sequence_base + self.seq,
            job=self.job or None,
            action=self.action,
            created_at=self.created_at,
            sent_at=sent_at,
            **self.fields,
        )

    @property
    def subject(self) -> str:
        """What the event is about, as people read it: the job scanned, or the badge."""
        return self.job or str(self.fields.get("operator_badge"))


@dataclass(frozen=True)
class CachedCard:
    card: JobCard
    timeline: list[TimelineEntry]
    as_of_seq: int  # local events up to this one are reflected in the card's state
    fetched_at: datetime


def _event(row: sqlite3.Row) -> OutboxEvent:
    reply = json.loads(row["reply"]) if row["reply"] else {}
    error = reply.get("error") or {}
    return OutboxEvent(
        seq=row["seq"],
        event_uuid=uuid.UUID(row["event_uuid"]),
        job=row["job"],
        action=_action.validate_python(row["action"]),
        fields=json.loads(row["payload"]),
        created_at=datetime.fromisoformat(row["created_at"]),
        state=row["state"],
        error=f"{error['field']}: {error['message']}" if error else None,
    )


class Outbox:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    # -- events --

    def record(
        self,
        job: str,
        action: Action,
        *,
        operator_badge: str | None,
        reason_code: str | None = None,
        to_stage: str | None = None,
        override_reason: str | None = None,
        note: str | None = None,
        breakage: BreakageDetail | None = None,
        inspection: InspectionIn | None = None,
        shipment: ShipmentIn | None = None,
        now: datetime | None = None,
    ) -> OutboxEvent:
        """Commit one event; its UUID is made here, at scan time, and never changes.
        OutboxWriteFailed if it could not be committed."""
        fields = {
            "operator_badge": operator_badge,
            "reason_code": reason_code,
            "to_stage": to_stage,
            "override_reason": override_reason,
            "note": note,
            "breakage": None if breakage is None else breakage.model_dump(mode="json"),
            "inspection": None if inspection is None else inspection.model_dump(mode="json"),
            "shipment": None if shipment is None else shipment.model_dump(mode="json"),
        }
        return self._insert(job, action, fields, now)

    def record_sign(
        self, action: SignAction, operator_badge: str, *, now: datetime | None = None
    ) -> OutboxEvent:
        """Commit an operator's sign-in or sign-out. It takes the next sequence number and is
        sent in order like a job event, so the server learns who was signed in here before
        the events that follow. OutboxWriteFailed if it could not be committed."""
        return self._insert(NO_JOB, action, {"operator_badge": operator_badge}, now)

    def _insert(
        self,
        job: str,
        action: Action | SignAction,
        fields: dict[str, Any],
        now: datetime | None,
    ) -> OutboxEvent:
        created_at = now or datetime.now(UTC)
        event_uuid = uuid.uuid4()
        try:
            row = self._db.execute(
                "INSERT INTO events (event_uuid, job, action, payload, created_at)"
                " VALUES (?, ?, ?, ?, ?) RETURNING *",
                (str(event_uuid), job, action.value, json.dumps(fields), created_at.isoformat()),
            ).fetchone()
        except (sqlite3.Error, OSError) as error:
            raise OutboxWriteFailed(str(error)) from error
        return _event(row)

    def queued(self, limit: int) -> list[OutboxEvent]:
        rows = self._db.execute(
            "SELECT * FROM events WHERE state = 'queued' ORDER BY seq LIMIT ?", (limit,)
        )
        return [_event(row) for row in rows]

    def mark(self, results: list[EventResult]) -> None:
        """Store the server's answers; stored and duplicate both mean the server has it."""
        with self._transaction():
            for result in results:
                state = "rejected" if result.status == "rejected" else "sent"
                self._db.execute(
                    "UPDATE events SET state = ?, reply = ? WHERE event_uuid = ?",
                    (state, result.model_dump_json(), str(result.event_uuid)),
                )

    def reject(self, event: OutboxEvent, field: str, message: str) -> None:
        """For an event the server refused to even parse (422): kept, shown, never resent."""
        reply = {"error": {"field": field, "message": message}}
        self._db.execute(
            "UPDATE events SET state = 'rejected', reply = ? WHERE seq = ?",
            (json.dumps(reply), event.seq),
        )

    def counts(self) -> dict[EventState, int]:
        rows = self._db.execute("SELECT state, count(*) FROM events GROUP BY state")
        found = {state: count for state, count in rows}
        return {state: found.get(state, 0) for state in ("queued", "sent", "rejected")}

    def rejected(self, limit: int = 50) -> list[OutboxEvent]:
        rows = self._db.execute(
            "SELECT * FROM events WHERE state = 'rejected' ORDER BY seq DESC LIMIT ?", (limit,)
        )
        return [_event(row) for row in rows]

    def events_for_job(self, codes: set[str], after_seq: int = 0) -> list[OutboxEvent]:
        marks = ",".join("?" * len(codes))
        rows = self._db.execute(
            f"SELECT * FROM events WHERE job IN ({marks}) AND seq > ? ORDER BY seq",
            (*codes, after_seq),
        )
        return [_event(row) for row in rows]

    def replied_through(self) -> int:
        """Highest local sequence the server has answered (events are sent in order)."""
        row = self._db.execute("SELECT max(seq) FROM events WHERE state != 'queued'").fetchone()
        return row[0] or 0

    def all_uuids(self) -> list[uuid.UUID]:
        return [uuid.UUID(row[0]) for row in self._db.execute("SELECT event_uuid FROM events")]

    # -- sequence base and reference data --

    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, key: str, value: str) -> None:
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    @property
    def sequence_base(self) -> int | None:
        value = self.get_meta("sequence_base")
        return None if value is None else int(value)

    def set_sequence_base_once(self, server_last_sequence: int) -> int:
        """The first answer wins forever: renumbering sent events would break gap detection."""
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES ('sequence_base', ?) ON CONFLICT DO NOTHING",
            (str(server_last_sequence),),
        )
        base = self.sequence_base
        assert base is not None
        return base

    # -- job cards --

    def put_card(self, card: JobCard, timeline: list[TimelineEntry], as_of_seq: int) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO cards VALUES (?, ?, ?, ?, ?, ?)",
            (
                card.job_number,
                card.tray_number,
                card.model_dump_json(),
                _timeline.dump_json(timeline).decode(),
                as_of_seq,
                datetime.now(UTC).isoformat(),
            ),
        )

    def card(self, code: str) -> CachedCard | None:
        """By job number, else the most recently fetched card carrying that tray number."""
        row = self._db.execute(
            "SELECT * FROM cards WHERE job_number = ? OR tray_number = ?"
            " ORDER BY job_number = ? DESC, fetched_at DESC LIMIT 1",
            (code, code, code),
        ).fetchone()
        if row is None:
            return None
        return CachedCard(
            card=JobCard.model_validate_json(row["card"]),
            timeline=_timeline.validate_json(row["timeline"]),
            as_of_seq=row["as_of_seq"],
            fetched_at=datetime.fromisoformat(row["fetched_at"]),
        )

    def apply_job_state(self, state: JobState, seq: int) -> None:
        """A reply's job state is the server's truth after event `seq`: newer than the card."""
        cached = self.card(state.job_number)
        if cached is None or cached.as_of_seq >= seq:
            return
        stages = {stage.code: stage for stage in cached.card.route_stages}
        card = cached.card.model_copy(
            update={"current_stage": stages.get(state.stage or ""), "status": state.status}
        )
        self._db.execute(
            "UPDATE cards SET card = ?, as_of_seq = ? WHERE job_number = ?",
            (card.model_dump_json(), seq, card.job_number),
        )

    def _transaction(self) -> "_Transaction":
        return _Transaction(self._db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *_: object) -> None:
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")
