"""After a run has drained: compare every station's log and outbox with the server's tables.

Checks, each reported with up to a few examples:

- accounting: each attempt in a station's log was committed (`ok`), refused (`Outbox.record`
  raised) or cut off by a SIGKILL (its note tells whether it reached the outbox); a committed
  scan is in the outbox, a refused one is nowhere (outbox, `stage_event`, `rejected_event`);
- 0 lost: every UUID in every outbox is stored (`stage_event`, or `station_sign_in` for the
  poster's sign-ins) or rejected on the server; no job event is rejected as made by an
  operator not signed in at its station (each poster signs in first);
- 0 duplicated: a UUID at most once stored and at most once in `rejected_event`, and never
  in both;
- the outbox agrees with the server: 'sent' ⇔ stored, 'rejected' ⇔ in `rejected_event`,
  nothing left 'queued'; the server holds no event of a station that its outbox lacks;
- per-station order: a station's stored events have increasing `station_sequence` in `id`
  (insertion) order;
- job state = its history: the stored events, in `id` order, replayed through
  `server.domain.events.ingest_event` into a fresh database holding the same jobs, must each
  be stored again and must leave every job in the state the server has (stage, status, status
  before a hold, active, rework and breakage counts). Per job, `id` order is the order the
  server applied them: an event is inserted while its job's row is locked. The sign-ins are
  replayed first: they scope job events by the time they were made, not by arrival.
"""

import json
import sqlite3
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from server.crypto import DataCipher, new_key
from server.db import Database
from server.domain.auth import StationPrincipal
from server.domain.errors import DomainError
from server.domain.events import ingest_event
from server.models import Job, Person, RejectedEvent, Stage, StageEvent, Station, StationSignIn
from server.schemas import EventIn
from tests.reliability.lab import prepare_lab, sqlite_url
from tests.reliability.poster import read_log

EXAMPLES = 3


@dataclass(frozen=True)
class StationFiles:
    outbox: Path
    log: Path


@dataclass(frozen=True)
class StoredEvent:
    id: int
    event_uuid: uuid.UUID
    station: str
    sequence: int
    replay: EventIn  # the event as its station sent it, rebuilt from the row


@dataclass(frozen=True)
class OutboxRow:
    seq: int
    event_uuid: uuid.UUID
    state: str
    note: str | None
    signs: bool  # a sign-in or sign-out, which is no attempt of the log


@dataclass
class Findings:
    figures: dict[str, dict[str, int]] = field(default_factory=dict)  # per station
    violations: list[str] = field(default_factory=list)

    def require(self, what: str, bad: Iterable[object]) -> None:
        """One violation line for `what` if there are any `bad` items, with a few examples."""
        items = list(bad)
        if items:
            shown = ", ".join(str(item) for item in items[:EXAMPLES])
            more = f" (+{len(items) - EXAMPLES} more)" if len(items) > EXAMPLES else ""
            self.violations.append(f"{what}: {len(items)} — {shown}{more}")


JobState = tuple[str | None, str, str | None, bool, int, int]


def read_outbox(path: Path) -> list[OutboxRow]:
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT seq, event_uuid, state, payload, job FROM events ORDER BY seq")
        return [
            OutboxRow(seq, uuid.UUID(value), state, json.loads(payload).get("note"), job == "")
            for seq, value, state, payload, job in rows
        ]


def queued(path: Path) -> int:
    """Events still waiting in an outbox (0 for an outbox not made yet)."""
    if not path.exists():
        return 0
    with sqlite3.connect(path, timeout=10) as db:
        return db.execute("SELECT count(*) FROM events WHERE state = 'queued'").fetchone()[0]


def _stored_events(session: Session) -> list[StoredEvent]:
    to_stage = aliased(Stage)
    rows = session.execute(
        select(StageEvent, Station.name, Job.job_number, Person.badge_code, to_stage.code)
        .join(Station, Station.id == StageEvent.station_id)
        .join(Job, Job.id == StageEvent.job_id)
        .outerjoin(Person, Person.id == StageEvent.operator_id)
        .outerjoin(to_stage, to_stage.id == StageEvent.to_stage_id)
        .order_by(StageEvent.id)
    )
    return [
        _stored(
            event.id,
            event.event_uuid,
            station,
            event.station_sequence,
            # Breakage and inspection details live in their own tables; the posters send none.
            job=job,
            action=event.action,
            operator_badge=badge,
            reason_code=event.reason_code,
            to_stage=to_stage_code,
            override_reason=event.override_reason,
            note=event.note,
            created_at=event.device_created_at,
            sent_at=event.device_sent_at,
        )
        for event, station, job, badge, to_stage_code in rows
    ]


def _stored_sign_ins(session: Session) -> list[StoredEvent]:
    rows = session.execute(
        select(StationSignIn, Station.name, Person.badge_code)
        .join(Station, Station.id == StationSignIn.station_id)
        .join(Person, Person.id == StationSignIn.person_id)
        .order_by(StationSignIn.id)
    )
    return [
        _stored(
            sign_in.id,
            sign_in.event_uuid,
            station,
            sign_in.station_sequence,
            action=sign_in.action,
            operator_badge=badge,
            created_at=sign_in.device_created_at,
            sent_at=sign_in.device_created_at,
        )
        for sign_in, station, badge in rows
    ]


def _stored(
    row_id: int, event_uuid: uuid.UUID, station: str, sequence: int, **replay: Any
) -> StoredEvent:
    """A stored row as the checker compares it, with the event a station would resend."""
    return StoredEvent(
        id=row_id,
        event_uuid=event_uuid,
        station=station,
        sequence=sequence,
        replay=EventIn(event_uuid=event_uuid, sequence=sequence, **replay),
    )


def _job_states(session: Session, jobs: list[str]) -> dict[str, JobState]:
    rows = session.execute(
        select(
            Job.job_number,
            Stage.code,
            Job.status,
            Job.status_before_hold,
            Job.is_active,
            Job.rework_count,
            Job.breakage_count,
        )
        .outerjoin(Stage, Stage.id == Job.current_stage_id)
        .where(Job.job_number.in_(jobs))
    )
    return {
        number: (stage, str(status), before and str(before), active, rework, breakage)
        for number, stage, status, before, active, rework, breakage in rows
    }


def check(
    database_url: str, stations: dict[str, StationFiles], jobs: list[str], scratch: Path
) -> Findings:
    found = Findings()
    server = Database(database_url)
    try:
        with server.read_session() as session:
            stored = _stored_events(session)
            sign_ins = _stored_sign_ins(session)
            rejected_rows = session.execute(
                select(
                    RejectedEvent.event_uuid,
                    Station.name,
                    RejectedEvent.payload,
                    RejectedEvent.field,
                )
                .join(Station, Station.id == RejectedEvent.station_id)
                .order_by(RejectedEvent.id)
            ).all()
            server_jobs = _job_states(session, jobs)
    finally:
        server.dispose()

    stored_count = Counter(event.event_uuid for event in [*stored, *sign_ins])
    rejected_count = Counter(value for value, _, _, _ in rejected_rows)
    found.require("stored twice", _repeated(stored_count))
    found.require("rejected twice in rejected_event", _repeated(rejected_count))
    found.require("both stored and rejected", sorted(set(stored_count) & set(rejected_count)))
    notes_on_server = {event.replay.note for event in stored} | {
        payload.get("note") for _, _, payload, _ in rejected_rows
    }
    found.require(
        "rejected: its operator not signed in at the station",
        [value for value, _, _, field in rejected_rows if field == "operator_badge"],
    )
    for name, files in stations.items():
        ours_stored = {e.event_uuid for e in [*stored, *sign_ins] if e.station == name}
        ours_rejected = {value for value, station, _, _ in rejected_rows if station == name}
        _check_station(found, name, files, ours_stored, ours_rejected, notes_on_server)
        sequences = [event.sequence for event in stored if event.station == name]
        found.require(
            f"{name}: stored out of station order (sequence after a higher one)",
            [b for a, b in pairwise(sequences) if b <= a],
        )
    _check_replay(found, [*sign_ins, *stored], server_jobs, jobs, scratch)
    return found


def _repeated(counts: Counter[uuid.UUID]) -> list[str]:
    return [f"{key} ×{n}" for key, n in counts.items() if n > 1]


def _check_station(
    found: Findings,
    name: str,
    files: StationFiles,
    stored: set[uuid.UUID],
    rejected: set[uuid.UUID],
    notes_on_server: set[str | None],
) -> None:
    records = read_log(files.log)
    tried = {r["n"]: r["note"] for r in records if "note" in r}
    ok = {r["n"]: uuid.UUID(r["ok"]) for r in records if "ok" in r}
    refused = {r["n"] for r in records if "refused" in r}
    outbox = read_outbox(files.outbox) if files.outbox.exists() else []
    by_uuid = {row.event_uuid: row for row in outbox}
    by_note = {row.note: row for row in outbox}
    cut_off = set(tried) - set(ok) - refused
    recorded_cut_off = {n for n in cut_off if tried[n] in by_note}
    local = set(by_uuid)
    states: dict[str, set[uuid.UUID]] = defaultdict(set)
    for row in outbox:
        states[row.state].add(row.event_uuid)

    found.require(
        f"{name}: scan acknowledged but not in the outbox (lost at the station)",
        sorted(n for n, value in ok.items() if value not in by_uuid),
    )
    found.require(
        f"{name}: refused scan recorded anyway",
        sorted(n for n in refused if tried.get(n) in by_note or tried.get(n) in notes_on_server),
    )
    found.require(
        f"{name}: outbox rows no attempt made",
        [row.seq for row in outbox if not row.signs and row.note not in set(tried.values())],
    )
    found.require(
        f"{name}: lost (in the outbox, on the server in neither table)",
        sorted(local - stored - rejected, key=str),
    )
    found.require(
        f"{name}: on the server but not in the station's outbox",
        sorted((stored | rejected) - local, key=str),
    )
    found.require(f"{name}: still queued at the end", sorted(states["queued"], key=str))
    found.require(f"{name}: outbox 'sent' but not stored", sorted(states["sent"] - stored, key=str))
    found.require(
        f"{name}: stored but outbox not 'sent'", sorted((stored & local) - states["sent"], key=str)
    )
    found.require(
        f"{name}: outbox 'rejected' but not in rejected_event",
        sorted(states["rejected"] - rejected, key=str),
    )
    found.require(
        f"{name}: in rejected_event but outbox not 'rejected'",
        sorted((rejected & local) - states["rejected"], key=str),
    )
    found.figures[name] = {
        "attempts": len(tried),
        "recorded": len(outbox),
        "refused": len(refused),
        "cut off": len(cut_off),
        "cut off, committed": len(recorded_cut_off),
        "stored": len(stored & local),
        "rejected": len(rejected & local),
    }


def _check_replay(
    found: Findings,
    stored: list[StoredEvent],
    server_jobs: dict[str, JobState],
    jobs: list[str],
    scratch: Path,
) -> None:
    url = sqlite_url(scratch / "replay.db")
    cipher = DataCipher([new_key()])
    prepare_lab(url, jobs, stations=[], cipher=cipher)
    replay = Database(url, cipher)
    refused: list[str] = []
    try:
        with replay.session() as session:
            principals = {
                station.name: StationPrincipal(
                    station.id, station.lab_id, station.stage_id, station.name
                )
                for station in session.scalars(select(Station))
            }
            for event in stored:
                try:
                    result = ingest_event(session, principals[event.station], event.replay)
                except DomainError as error:
                    refused.append(f"#{event.id} {event.replay.action}: {error.message}")
                    continue
                if result.status != "stored":
                    refused.append(f"#{event.id} {event.replay.action}: {result.status}")
            replayed = _job_states(session, jobs)
    finally:
        replay.dispose()
    found.require("stored event not stored again on replay", refused)
    found.require(
        "job state differs from its replayed history (server ≠ replay)",
        [
            f"{job}: {server_jobs.get(job)} ≠ {replayed.get(job)}"
            for job in jobs
            if server_jobs.get(job) != replayed.get(job)
        ],
    )


def as_text(rows: dict[str, dict[str, Any]]) -> str:
    """Per-station figures as aligned lines."""
    keys = sorted({key for figures in rows.values() for key in figures}, key=_FIGURE_ORDER.index)
    lines = ["station  " + "  ".join(f"{key:>10}" for key in keys)]
    for name, figures in rows.items():
        lines.append(f"{name:7}  " + "  ".join(f"{figures.get(key, 0):>10}" for key in keys))
    return "\n".join(lines)


_FIGURE_ORDER = [
    "attempts",
    "recorded",
    "refused",
    "cut off",
    "cut off, committed",
    "stored",
    "rejected",
]
