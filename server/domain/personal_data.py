"""Patient data over time: rotation to a new data key, and the retention purge.

The purge forgets who a finished job was for and what was prescribed (patient reference,
prescription, raw DCS labels, personal values in changes) and keeps the anonymous production
record: job number, route, events, stage times, inspections, defects and breakages.

Both work in batches, one transaction each: on SQLite a transaction holds the one write lock,
and stations must not wait for a whole lab's rows.
"""

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from time import monotonic, sleep

from sqlalchemy import Table, Text, column, delete, or_, select, table, text, update
from sqlalchemy.orm import Session

from server.crypto import DataCipher, Encrypted, key_id, new_key, open_cipher, write_keys
from server.db import Database
from server.domain import audit
from server.domain.changes import EYES
from server.models import Base, ChangeRequest, Job, JobChange, JobStatus, PrescriptionEye

BATCH = 200
# Re-encryption passes before a rotation gives up dropping the old keys (a process still
# on them kept writing with them).
ROTATION_PASSES = 3
# On PostgreSQL, how long a rotation waits for transactions begun before the new key file
# (`_settle`); past it, the old keys are kept and a later run drops them.
SETTLE_TIMEOUT_SECONDS = 60.0
SETTLE_POLL_SECONDS = 0.05
# Order fields (JobCreate names, heads of JobChange paths) that are personal data.
PERSONAL_FIELDS = frozenset({"patient_ref", *EYES})
FINISHED = (JobStatus.completed, JobStatus.cancelled)
# What a purged job's `job.purge` entry says was forgotten.
PURGED = ["patient_ref", "prescription", "dcs_labels", "personal change values"]

OpenSession = Callable[[], AbstractContextManager[Session]]


def encrypted_columns() -> Iterator[tuple[Table, list[str]]]:
    """Each table with encrypted columns, and their names: read from the models, so a
    column encrypted later is rotated too."""
    for model_table in Base.metadata.sorted_tables:
        names = [c.name for c in model_table.columns if isinstance(c.type, Encrypted)]
        if names:
            yield model_table, names


def reencrypt_batch(
    session: Session, cipher: DataCipher, model_table: Table, names: list[str], after_id: int
) -> tuple[int | None, int]:
    """Re-encrypts, with the current key, the tokens of up to BATCH rows with an id above
    `after_id`; returns the last id seen (None: no rows left) and the values rewritten.
    Tokens are handled as text: nothing is decrypted into Python values and back."""
    raw = table(model_table.name, column("id"), *(column(name, Text) for name in names))
    rows = session.execute(
        select(raw).where(raw.c.id > after_id).order_by(raw.c.id).limit(BATCH)
    ).all()
    rewritten = 0
    for row in rows:
        stale = {
            name: fresh
            for name in names
            if (token := getattr(row, name)) is not None
            and (fresh := cipher.reencrypted_if_stale(token)) is not None
        }
        if stale:
            # Only if unchanged since read: a server may have written the row meanwhile (with
            # the new key: see `_settle`), and its value must stay.
            unchanged = [raw.c[name] == getattr(row, name) for name in stale]
            statement = update(raw).where(raw.c.id == row.id, *unchanged).values(stale)
            if session.connection().execute(statement).rowcount:
                rewritten += len(stale)
    return (rows[-1].id if rows else None), rewritten


def reencrypt_all(open_session: OpenSession, cipher: DataCipher) -> int:
    """Every encrypted value under the current key; returns the values rewritten. Safe to
    run again (current tokens are left alone) and to interrupt (each batch commits)."""
    rewritten = 0
    for model_table, names in encrypted_columns():
        last_id: int | None = 0
        while last_id is not None:
            with open_session() as session:
                last_id, count = reencrypt_batch(session, cipher, model_table, names, last_id)
            rewritten += count
    return rewritten


def _settle(database: Database, timeout_seconds: float) -> bool:
    """Waits until every transaction begun before now has ended; whether they did in time.

    Servers encrypt with the new key once the key file is replaced (DataCipher checks it
    before each value), but a transaction that encrypted a value just before may commit it
    later, after a pass went by its row: dropping the old key then would lose that value.
    On SQLite, writers queue for the one write lock, so a pass already waits for them.
    """
    if database.dialect != "postgresql":
        return True
    with database.engine.connect() as connection:
        moment = connection.scalar(text("SELECT clock_timestamp()"))
    older = text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND backend_type = 'client backend' AND pid <> pg_backend_pid() AND xact_start < :moment"
    )
    deadline = monotonic() + timeout_seconds
    while True:
        with database.engine.connect() as connection:  # a new snapshot of the activity each time
            if not connection.scalar(older, {"moment": moment}):
                return True
        if monotonic() > deadline:
            return False
        sleep(SETTLE_POLL_SECONDS)


@dataclass(frozen=True)
class Rotation:
    rewritten: int  # values re-encrypted
    old_keys_dropped: bool  # False: a pass still found old tokens; run it again


def rotate_data_keys(key_file: Path, database_url: str) -> Rotation:
    """A new key first in `key_file`, every value re-encrypted with it, then the old keys
    dropped once a pass finds nothing left under them. Interrupted, the file keeps every
    key (old values still decrypt) and running it again finishes the work. Servers running
    meanwhile take up the new file (see DataCipher). The rotation is audited: which keys,
    by key id, and how many values were rewritten."""
    old_keys = open_cipher(key_file, database_url).keys
    cipher = DataCipher([new_key(), *old_keys])
    write_keys(key_file, cipher.keys)
    database = Database(database_url, cipher)
    try:
        settled = _settle(database, SETTLE_TIMEOUT_SECONDS)
        rewritten = 0
        for _ in range(ROTATION_PASSES):
            count = reencrypt_all(database.session, cipher)
            rewritten += count
            if count == 0:
                break
        rotation = Rotation(rewritten, old_keys_dropped=settled and count == 0)
        if rotation.old_keys_dropped:
            write_keys(key_file, cipher.keys[:1])
        detail = {
            "new_key": key_id(cipher.keys[0]),
            "old_keys": [key_id(key) for key in old_keys],
            "values_reencrypted": rotation.rewritten,
            "old_keys_dropped": rotation.old_keys_dropped,
        }
        with database.session() as session:
            audit.record(session, [audit.Change("data_keys.rotate", "data_keys", None, detail)])
    finally:
        database.dispose()
    return rotation


def purge_cutoff(now: datetime, retention_days: int) -> datetime:
    return now - timedelta(days=retention_days)


def purgeable_job_ids(
    session: Session, cutoff: datetime, limit: int | None = None, among: list[int] | None = None
) -> list[int]:
    """Jobs finished (shipped or cancelled) before `cutoff`, with nothing since (a pickup
    marked later counts as use), whose personal data is still stored; only `among` these ids
    if given."""
    last_use = [Job.state_changed_at, Job.ready_for_pickup_at, Job.delivered_at]
    query = select(Job.id).where(
        Job.status.in_(FINISHED),
        Job.personal_data_purged_at.is_(None),
        *(or_(moment.is_(None), moment < cutoff) for moment in last_use),
    )
    if among is not None:
        query = query.where(Job.id.in_(among))
    return list(session.scalars(query.order_by(Job.id).limit(limit)))


def purge_jobs(session: Session, job_ids: list[int], now: datetime) -> None:
    """Forgets the personal data of `job_ids` (see the module docstring); the audit trail
    gets a `job.purge` entry per job, at this transaction's commit."""
    purged = session.execute(
        select(Job.id, Job.lab_id, Job.job_number).where(Job.id.in_(job_ids)).order_by(Job.id)
    )
    audit.record(
        session,
        [
            audit.Change(
                "job.purge", f"job:{job_id}", lab_id, {"job_number": job_number, "fields": PURGED}
            )
            for job_id, lab_id, job_number in purged
        ],
    )
    session.execute(
        update(Job)
        .where(Job.id.in_(job_ids))
        .values(patient_ref=None, dcs_labels=None, personal_data_purged_at=now)
        .execution_options(**{audit.RECORDED_BY_CALLER: True})
    )
    session.execute(delete(PrescriptionEye).where(PrescriptionEye.job_id.in_(job_ids)))
    personal_path = or_(
        JobChange.field.in_(PERSONAL_FIELDS),
        *(JobChange.field.startswith(f"{field}.") for field in PERSONAL_FIELDS),
    )
    session.execute(
        update(JobChange)
        .where(JobChange.job_id.in_(job_ids), personal_path)
        .values(old_value=None, new_value=None)
    )
    for request in session.scalars(select(ChangeRequest).where(ChangeRequest.job_id.in_(job_ids))):
        kept = {key: value for key, value in request.changes.items() if key not in PERSONAL_FIELDS}
        if kept != request.changes:
            request.changes = kept


def purge_expired(
    open_session: OpenSession,
    open_read_session: OpenSession,
    now: datetime,
    retention_days: int,
    dry_run: bool = False,
) -> int:
    """Purges every job past retention (none when `retention_days` is 0: kept forever);
    returns the jobs purged, or those a dry run would purge. The jobs are searched for in a
    read session (at 1 M jobs the search reads every finished job: 160 ms that held writers
    when it ran in the write), then checked again by id in the write that purges them."""
    if retention_days == 0:
        return 0
    cutoff = purge_cutoff(now, retention_days)
    if dry_run:
        with open_read_session() as session:
            return len(purgeable_job_ids(session, cutoff))
    purged = 0
    while True:  # a purged job is marked, so each round takes the next ones
        with open_read_session() as session:
            found = purgeable_job_ids(session, cutoff, limit=BATCH)
        if not found:
            return purged
        with open_session() as session:
            # Used or reopened since it was found: kept (the next search no longer finds it).
            job_ids = purgeable_job_ids(session, cutoff, among=found)
            if job_ids:
                purge_jobs(session, job_ids, now)
        purged += len(job_ids)
