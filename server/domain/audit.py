"""The audit trail: every change to orders, prescriptions, people, tokens and the lab's
configuration, and every view of a prescription by store staff, appended with who, what, when
and from where, hash-chained so that an edited or deleted entry is detected (`verify`).

Changes are captured centrally, from each write session's flushes (`install`), in the
transaction that makes them: nothing is half-written, and no code path that changes an
audited row can forget to say so. Production writes (events, flags, the feed, deliveries,
log-in sessions) are not audited: they are a record of their own and far too many.

Who and from where: a request's client address is set for the whole request (`RequestOrigin`
middleware) and the principal when it is authenticated (`identify`); a page's later actions
run `acting_as` the actor captured when the page was opened; anything else (the `lenstrack`
command, the server's own work) is the operating-system user who runs the process.

Personal data — the patient reference and prescription values — appear as field names only,
never as values: the trail must not become a copy of patient data that a purge cannot reach.
"""

import getpass
import hashlib
import json
import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from sqlalchemy import (
    Connection,
    CursorResult,
    Result,
    Select,
    event,
    func,
    insert,
    inspect,
    or_,
    select,
    text,
)
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import (
    ORMExecuteState,
    Session,
    SessionTransaction,
    UOWTransaction,
    sessionmaker,
)

from server.domain.auth import LAB_ROLES, LabPrincipal, PersonPrincipal, Principal
from server.models import (
    AuditEntry,
    Breakage,
    ChangeRequest,
    ChangeState,
    Job,
    Lab,
    LabToken,
    Person,
    PrescriptionEye,
    ProductionLine,
    ReasonCode,
    Route,
    RouteStep,
    Stage,
    Station,
    StationToken,
    Store,
    StoreWebhook,
    utcnow,
)

log = logging.getLogger(__name__)

GENESIS_HASH = "0" * 64  # the prev_hash of the first entry
# pg_advisory_xact_lock key ("LTAU"): one appender at a time, so the chain never forks.
CHAIN_LOCK_KEY = 0x4C544155

# The audited tables and the name an entry gives them (actions "<name>.create" etc.).
AUDITED: dict[type[Any], str] = {
    Lab: "lab",
    ProductionLine: "line",
    Stage: "stage",
    Route: "route",
    RouteStep: "route_step",
    ReasonCode: "reason_code",
    Store: "store",
    Station: "station",
    StationToken: "station_token",
    LabToken: "lab_token",
    Person: "person",
    StoreWebhook: "webhook",
    Job: "job",
    ChangeRequest: "change_request",
    Breakage: "breakage",
}
# A job's production state, moved by station events and sweeps, is the event log's to record;
# every other column is the order (an edit, a cancel) and is audited.
JOB_PRODUCTION_STATE = frozenset(
    {
        "current_stage_id",
        "status",
        "status_before_hold",
        "is_active",
        "rework_count",
        "breakage_count",
        "state_changed_at",
        "eta",
        "flag_rank",
        "ready_for_pickup_at",
        "delivered_at",
        "ticket_printed_at",
    }
)
# Rows a station's event creates (a breakage booked at a stage): production, not audited;
# a later change to one (a manager's reversal) is.
PRODUCTION_RECORDS: tuple[type[Any], ...] = (Breakage,)
# A record's name in `detail`, when it has one that is not personal data.
LABEL_ATTRIBUTES = ("job_number", "username", "code", "name")
DECISIONS = {ChangeState.accepted: "accept", ChangeState.declined: "decline"}
# The days an entry filter may name (the input bounds of every date the server takes).
FIRST_DAY, LAST_DAY = date(1970, 1, 1), date(2099, 12, 31)


@dataclass(frozen=True)
class Actor:
    """Who makes a change: kind "person", "station", "lab_token", "system" or "anonymous"."""

    kind: str
    id: int | None
    name: str
    source: str  # the client's address, or "local" for a process on the server itself
    lab_id: int | None = None

    @classmethod
    def of(cls, principal: Principal, source: str) -> "Actor":
        if isinstance(principal, PersonPrincipal):
            return cls("person", principal.person_id, principal.name, source, principal.lab_id)
        if isinstance(principal, LabPrincipal):
            kind = "lab_token" if principal.token_id is not None else "system"
            return cls(kind, principal.token_id, principal.name, source, principal.lab_id)
        return cls("station", principal.station_id, principal.name, source, principal.lab_id)


@cache
def local_actor() -> Actor:
    """Whoever runs this process on the server: the `lenstrack` command's operator."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no login name (a container without a passwd entry)
        user = f"uid {os.getuid()}"
    return Actor("system", None, user, "local")


class _Origin:
    """One request's caller, mutable: the authenticating dependency runs in a worker thread
    with a copy of the request's context variables, which share this object."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.actor: Actor | None = None


_request_origin: ContextVar[_Origin | None] = ContextVar("lenstrack_audit_origin", default=None)
_acting: ContextVar[Actor | None] = ContextVar("lenstrack_audit_actor", default=None)


def current_actor() -> Actor:
    acting = _acting.get()
    if acting is not None:
        return acting
    origin = _request_origin.get()
    if origin is None:
        return local_actor()
    return origin.actor or Actor("anonymous", None, "anonymous", origin.source)


def actor_for(principal: Principal) -> Actor:
    """`principal`, from where the current request comes."""
    return Actor.of(principal, current_actor().source)


@contextmanager
def request_origin(source: str) -> Iterator[None]:
    """For one request: changes it makes come from `source` (see `identify`)."""
    token = _request_origin.set(_Origin(source[:64]))
    try:
        yield
    finally:
        _request_origin.reset(token)


def identify(principal: Principal) -> None:
    """The current request's caller is `principal` (a no-op outside a request)."""
    origin = _request_origin.get()
    if origin is not None:
        origin.actor = Actor.of(principal, origin.source)


@contextmanager
def acting_as(actor: Actor) -> Iterator[None]:
    token = _acting.set(actor)
    try:
        yield
    finally:
        _acting.reset(token)


# Recording -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    action: str
    subject: str
    lab_id: int | None
    detail: dict[str, Any]


def _changed_columns(row: Any) -> set[str]:
    # Only an attribute set since load has a committed value kept: the others cannot have
    # changed, so a job moved by an event is not checked column by column (~40 of them).
    state = inspect(row)
    columns = state.mapper.column_attrs
    return {
        key
        for key in state.committed_state
        if key in columns and state.attrs[key].history.has_changes()
    }


def _label(row: Any) -> dict[str, Any]:
    for attribute in LABEL_ATTRIBUTES:
        value = getattr(row, attribute, None)
        if isinstance(value, str):
            return {attribute: value}
    return {}


def _lab_of(session: Session, row: Any) -> int | None:
    if isinstance(row, Lab):
        return row.id
    if isinstance(row, ChangeRequest | Breakage):
        return session.get_one(Job, row.job_id).lab_id
    if isinstance(row, StationToken):
        return session.get_one(Station, row.station_id).lab_id
    return getattr(row, "lab_id", None)  # None: the actor's lab


def _update_action(row: Any, name: str, fields: set[str]) -> str:
    if isinstance(row, ChangeRequest) and "state" in fields and row.state in DECISIONS:
        return f"change_request.{DECISIONS[row.state]}"
    if isinstance(row, Breakage) and "reversed_at" in fields and row.reversed_at is not None:
        return "breakage.reverse"
    if isinstance(row, StationToken | LabToken) and "revoked_at" in fields and row.revoked_at:
        return f"{name}.revoke"
    if isinstance(row, Job) and "cancelled_at" in fields and row.cancelled_at is not None:
        return "job.cancel"
    return f"{name}.update"


def _flush_changes(session: Session) -> list[Change]:
    """What this flush changes in audited rows; called after it, with the ids assigned."""
    changes: list[Change] = []
    rx_fields: dict[int, set[str]] = {}  # job id → "right.sph", ...
    created_jobs = {row.id for row in session.new if isinstance(row, Job)}
    for row in [*session.new, *session.dirty, *session.deleted]:
        if isinstance(row, PrescriptionEye):
            if row.job_id not in created_jobs:  # a new job's Rx is part of job.create
                side = "right" if row.eye == "R" else "left"
                columns = _changed_columns(row) if row in session.dirty else {"eye"}
                rx_fields.setdefault(row.job_id, set()).update(f"{side}.{c}" for c in columns)
            continue
        name = AUDITED.get(type(row))
        if name is None:
            continue
        subject = f"{name}:{row.id}"
        if row in session.new:
            if not isinstance(row, PRODUCTION_RECORDS):
                changes.append(
                    Change(f"{name}.create", subject, _lab_of(session, row), _label(row))
                )
        elif row in session.deleted:
            changes.append(Change(f"{name}.delete", subject, _lab_of(session, row), _label(row)))
        elif session.is_modified(row, include_collections=False):
            fields = _changed_columns(row)
            if isinstance(row, Job):
                fields -= JOB_PRODUCTION_STATE
            if fields:
                action = _update_action(row, name, fields)
                detail = {**_label(row), "fields": sorted(fields)}
                changes.append(Change(action, subject, _lab_of(session, row), detail))
    for job_id, fields in rx_fields.items():  # merged with the job's other fields (_merged)
        job = session.get_one(Job, job_id)
        detail = {**_label(job), "fields": sorted(fields)}
        changes.append(Change("job.update", f"job:{job_id}", job.lab_id, detail))
    return changes


PENDING = "lenstrack.audit_pending"  # session.info: changes flushed, appended at commit


@dataclass(frozen=True)
class _Pending:
    savepoint: SessionTransaction | None  # the innermost one it was flushed in
    actor: Actor
    change: Change


def _note(session: Session, changes: list[Change]) -> None:
    savepoint = session.get_nested_transaction()
    actor = current_actor()
    session.info.setdefault(PENDING, []).extend(_Pending(savepoint, actor, c) for c in changes)


def record(session: Session, changes: list[Change]) -> None:
    """Changes no flush sees (an UPDATE statement's rows by id, a key rotation), appended at
    the session's commit like the flushed ones."""
    _note(session, changes)


def _after_flush(session: Session, _flush_context: UOWTransaction) -> None:
    _note(session, _flush_changes(session))


# An UPDATE or DELETE statement's execution option: its caller `record`s what it changes,
# record by record, so the one entry of `_bulk_write` would only repeat it without the ids.
RECORDED_BY_CALLER = "lenstrack_audit_recorded_by_caller"


def _bulk_write(state: ORMExecuteState) -> Result[Any] | None:
    """An UPDATE or DELETE statement on an audited table loads no rows, so no flush sees it:
    recorded as one entry naming the table and how many rows it changed."""
    if not (state.is_update or state.is_delete) or state.bind_mapper is None:
        return None
    if state.execution_options.get(RECORDED_BY_CALLER, False):
        return None
    name = AUDITED.get(state.bind_mapper.class_)
    if name is None:
        return None
    result = state.invoke_statement()
    verb = "update" if state.is_update else "delete"
    rows = result.rowcount if isinstance(result, CursorResult) else None
    _note(state.session, [Change(f"{name}.{verb}", name, None, {"rows": rows})])
    return result


def _merged(pending: list[_Pending]) -> list[tuple[Actor, Change]]:
    """One entry per record, action and actor: an edit flushed in steps is one change."""
    merged: dict[object, tuple[Actor, Change]] = {}
    for item in pending:
        change = item.change
        if "fields" not in change.detail:  # a create, delete or UPDATE statement: as it is
            merged[id(item)] = (item.actor, change)
            continue
        key = (item.actor, change.action, change.subject)
        if key in merged:
            earlier = merged[key][1]
            fields = sorted({*earlier.detail["fields"], *change.detail["fields"]})
            change = replace(earlier, detail={**earlier.detail, "fields": fields})
        merged[key] = (item.actor, change)
    return list(merged.values())


def _before_commit(session: Session) -> None:
    if session.in_nested_transaction():  # a savepoint released: its changes wait for the commit
        return
    session.flush()
    pending = session.info.pop(PENDING, [])
    if pending:
        # Last thing before COMMIT: on PostgreSQL the chain's lock is held for a moment only.
        append(session.connection(), _merged(pending))


def _within(savepoint: SessionTransaction | None, rolled_back: SessionTransaction) -> bool:
    while savepoint is not None:
        if savepoint is rolled_back:
            return True
        savepoint = savepoint.parent
    return False


def rolled_back_savepoint(previous: SessionTransaction) -> SessionTransaction | None:
    """What a soft rollback (`after_soft_rollback`'s `previous`) undid: a savepoint, or None
    for the whole transaction. A flush that fails rolls back from its own inner subtransaction
    (not nested), which undoes the savepoint it is in, or the transaction if none is."""
    while not previous.nested and previous.parent is not None:
        previous = previous.parent
    return previous if previous.nested else None


def _after_soft_rollback(session: Session, previous: SessionTransaction) -> None:
    """What was flushed inside a transaction or savepoint rolled back never happened."""
    pending = session.info.get(PENDING)
    savepoint = rolled_back_savepoint(previous)
    if pending and savepoint is not None:
        session.info[PENDING] = [item for item in pending if not _within(item.savepoint, savepoint)]
    elif pending:
        del session.info[PENDING]


def install(session_factory: sessionmaker[Session]) -> None:
    """Audit every write session this factory makes."""
    event.listen(session_factory, "after_flush", _after_flush)
    event.listen(session_factory, "do_orm_execute", _bulk_write)
    event.listen(session_factory, "before_commit", _before_commit)
    event.listen(session_factory, "after_soft_rollback", _after_soft_rollback)


# The chain -----------------------------------------------------------------------------

# What an entry's hash covers: every column but the id and the hashes.
ENTRY_CONTENT = (
    "lab_id",
    "at",
    "actor_kind",
    "actor_id",
    "actor_name",
    "source",
    "action",
    "subject",
    "detail",
)


def entry_hash(entry: dict[str, Any], prev_hash: str) -> str:
    """SHA-256 over the entry's canonical JSON: its content and the hash before it."""
    content = {column: entry[column] for column in ENTRY_CONTENT}
    content |= {"at": entry["at"].astimezone(UTC).isoformat(), "prev_hash": prev_hash}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def append(connection: Connection, entries: Sequence[tuple[Actor, Change]]) -> None:
    """Appends the entries at the chain's head, in the caller's transaction."""
    if connection.dialect.name == "postgresql":
        # Held to the end of the transaction: the next appender reads the head we wrote.
        # (On SQLite every writer holds the database's write lock from BEGIN IMMEDIATE.)
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CHAIN_LOCK_KEY})
    head = select(AuditEntry.hash).order_by(AuditEntry.id.desc()).limit(1)
    prev_hash = connection.scalar(head) or GENESIS_HASH
    at = utcnow()
    for actor, change in entries:
        row: dict[str, Any] = {
            "lab_id": change.lab_id if change.lab_id is not None else actor.lab_id,
            "at": at,
            "actor_kind": actor.kind,
            "actor_id": actor.id,
            "actor_name": actor.name[:120],
            "source": actor.source,
            "action": change.action,
            "subject": change.subject,
            "detail": change.detail,
        }
        row["prev_hash"] = prev_hash
        row["hash"] = prev_hash = entry_hash(row, prev_hash)
        # One statement per entry: the ids must follow the chain.
        connection.execute(insert(AuditEntry), row)


def log_prescription_view(
    session_factory: sessionmaker[Session], principal: Principal, job_id: int
) -> None:
    """Logs that `principal` saw the job's prescription, if outside the lab (store staff).

    Call it after the read's transaction ended: it appends in a short transaction of its
    own. A failure to log (the write lock busy for too long) is reported, not raised: the
    answer or page was given already.
    """
    if not isinstance(principal, PersonPrincipal) or principal.role in LAB_ROLES:
        return
    actor = actor_for(principal)
    change = Change("prescription.view", f"job:{job_id}", principal.lab_id, {})
    try:
        with session_factory() as session, session.begin():
            append(session.connection(), [(actor, change)])
    except SQLAlchemyError:
        log.exception("could not log a prescription view of job %d by %s", job_id, actor.name)


# Reading and verifying -----------------------------------------------------------------


class EntryFilter(BaseModel):
    """Which entries to list; every criterion given must hold."""

    model_config = ConfigDict(frozen=True)

    who: str | None = Field(None, max_length=120, description="part of the actor's name, any case")
    action: str | None = Field(
        None, max_length=48, pattern=r"^[a-z_]+(\.[a-z_]+)?$", description="job.update, or job"
    )
    subject: str | None = Field(None, max_length=64, description="one record, e.g. job:42")
    since: date | None = Field(None, ge=FIRST_DAY, le=LAST_DAY, description="from this UTC day")
    until: date | None = Field(None, ge=FIRST_DAY, le=LAST_DAY, description="to this UTC day")

    @field_validator("who", "action", "subject", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("until")
    @classmethod
    def _until_not_before_since(cls, until: date | None, info: ValidationInfo) -> date | None:
        since = info.data.get("since")
        if until is not None and since is not None and until < since:
            raise ValueError("must not be before since")
        return until


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


def _filtered(statement: Select[tuple[AuditEntry]], only: EntryFilter) -> Select[tuple[AuditEntry]]:
    if only.who is not None:
        name = func.lower(AuditEntry.actor_name)
        statement = statement.where(name.contains(only.who.lower(), autoescape=True))
    if only.action is not None:  # "job" is every job.* action
        prefix = AuditEntry.action.startswith(f"{only.action}.", autoescape=True)
        statement = statement.where(or_(AuditEntry.action == only.action, prefix))
    if only.subject is not None:
        statement = statement.where(AuditEntry.subject == only.subject)
    if only.since is not None:
        statement = statement.where(AuditEntry.at >= _day_start(only.since))
    if only.until is not None:
        statement = statement.where(AuditEntry.at < _day_start(only.until + timedelta(days=1)))
    return statement


def entries(
    session: Session, *, since: datetime | None = None, subject: str | None = None
) -> Iterator[AuditEntry]:
    statement = select(AuditEntry).order_by(AuditEntry.id)
    if since is not None:
        statement = statement.where(AuditEntry.at >= since)
    if subject is not None:
        statement = statement.where(AuditEntry.subject == subject)
    yield from session.scalars(statement.execution_options(yield_per=500))


def lab_entries(
    session: Session, lab_id: int, only: EntryFilter, before_id: int | None, limit: int
) -> list[AuditEntry]:
    """Up to `limit` entries of one lab (and those of no lab: the operator's key rotations,
    UPDATE statements), newest first, older than entry `before_id` if given."""
    statement = select(AuditEntry).where(
        or_(AuditEntry.lab_id == lab_id, AuditEntry.lab_id.is_(None))
    )
    if before_id is not None:
        statement = statement.where(AuditEntry.id < before_id)
    statement = _filtered(statement, only).order_by(AuditEntry.id.desc()).limit(limit)
    return list(session.scalars(statement))


@dataclass(frozen=True)
class Verdict:
    checked: int
    head: str  # the last entry's hash: note it elsewhere to detect a cut-off tail
    bad_id: int | None = None
    problem: str = ""


def verify(session: Session) -> Verdict:
    """Walks the chain from the first entry; the first entry whose content or link does not
    match names where it was edited, or where entries before it were deleted."""
    prev_hash = GENESIS_HASH
    checked = 0
    for entry in entries(session):
        if entry.prev_hash != prev_hash:
            problem = "does not follow the entry before it (an entry was deleted or edited)"
            return Verdict(checked, prev_hash, entry.id, problem)
        content = {column: getattr(entry, column) for column in ENTRY_CONTENT}
        if entry_hash(content, entry.prev_hash) != entry.hash:
            return Verdict(checked, prev_hash, entry.id, "its content does not match its hash")
        prev_hash = entry.hash
        checked += 1
    return Verdict(checked, prev_hash)


def as_json(entry: AuditEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        **{column: getattr(entry, column) for column in ENTRY_CONTENT},
        "at": entry.at.isoformat(),
        "hash": entry.hash,
    }
