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

from sqlalchemy import Table, Text, column, delete, or_, select, table, update
from sqlalchemy.orm import Session

from server.crypto import DataCipher, Encrypted, new_key, read_keys, write_keys
from server.db import Database
from server.domain.changes import EYES
from server.models import Base, ChangeRequest, Job, JobChange, JobStatus, PrescriptionEye

BATCH = 200
# Re-encryption passes before a rotation gives up dropping the old keys (a process still
# on them kept writing with them).
ROTATION_PASSES = 3
# Order fields (JobCreate names, heads of JobChange paths) that are personal data.
PERSONAL_FIELDS = frozenset({"patient_ref", *EYES})
FINISHED = (JobStatus.completed, JobStatus.cancelled)

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
            name: cipher.reencrypt(token)
            for name in names
            if (token := getattr(row, name)) is not None and not cipher.is_current(token)
        }
        if stale:
            session.execute(update(raw).where(raw.c.id == row.id).values(stale))
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


@dataclass(frozen=True)
class Rotation:
    rewritten: int  # values re-encrypted
    old_keys_dropped: bool  # False: a pass still found old tokens; run it again


def rotate_data_keys(key_file: Path, database_url: str) -> Rotation:
    """A new key first in `key_file`, every value re-encrypted with it, then the old keys
    dropped once a pass finds nothing left under them. Interrupted, the file keeps every
    key (old values still decrypt) and running it again finishes the work."""
    cipher = DataCipher([new_key(), *read_keys(key_file)])
    write_keys(key_file, cipher.keys)
    database = Database(database_url, cipher)
    try:
        rewritten = 0
        for _ in range(ROTATION_PASSES):
            count = reencrypt_all(database.session, cipher)
            rewritten += count
            if count == 0:
                write_keys(key_file, cipher.keys[:1])
                return Rotation(rewritten, old_keys_dropped=True)
    finally:
        database.dispose()
    return Rotation(rewritten, old_keys_dropped=False)


def purge_cutoff(now: datetime, retention_days: int) -> datetime:
    return now - timedelta(days=retention_days)


def purgeable_job_ids(session: Session, cutoff: datetime, limit: int | None = None) -> list[int]:
    """Jobs finished (shipped or cancelled) before `cutoff`, with nothing since (a pickup
    marked later counts as use), whose personal data is still stored."""
    last_use = [Job.state_changed_at, Job.ready_for_pickup_at, Job.delivered_at]
    query = select(Job.id).where(
        Job.status.in_(FINISHED),
        Job.personal_data_purged_at.is_(None),
        *(or_(moment.is_(None), moment < cutoff) for moment in last_use),
    )
    return list(session.scalars(query.order_by(Job.id).limit(limit)))


def purge_jobs(session: Session, job_ids: list[int], now: datetime) -> None:
    """Forgets the personal data of `job_ids` (see the module docstring)."""
    session.execute(
        update(Job)
        .where(Job.id.in_(job_ids))
        .values(patient_ref=None, dcs_labels=None, personal_data_purged_at=now)
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
    open_session: OpenSession, now: datetime, retention_days: int, dry_run: bool = False
) -> int:
    """Purges every job past retention (none when `retention_days` is 0: kept forever);
    returns the jobs purged, or those a dry run would purge."""
    if retention_days == 0:
        return 0
    cutoff = purge_cutoff(now, retention_days)
    if dry_run:
        with open_session() as session:
            return len(purgeable_job_ids(session, cutoff))
    purged = 0
    while True:  # a purged job is marked, so each round takes the next ones
        with open_session() as session:
            job_ids = purgeable_job_ids(session, cutoff, limit=BATCH)
            if job_ids:
                purge_jobs(session, job_ids, now)
        if not job_ids:
            return purged
        purged += len(job_ids)
