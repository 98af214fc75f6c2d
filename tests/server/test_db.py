"""The session factory: writers take SQLite's write lock up front, readers never wait for it."""

from sqlalchemy import func, select

from server.db import Database
from server.models import Lab


def test_a_reader_is_not_held_up_by_a_writer_and_sees_only_committed_rows(db: Database) -> None:
    with db.session() as writer:
        writer.add(Lab(code="WRITING", name="Uncommitted lab"))
        writer.flush()  # the writer holds the write lock (SQLite: since BEGIN IMMEDIATE)
        # Same thread: a reader that queued for the lock would fail after busy_timeout with
        # 'database is locked' (as the pages did while the flag sweep ran).
        with db.read_session() as reader:
            seen = reader.scalar(select(func.count()).where(Lab.code == "WRITING"))
    assert seen == 0
    with db.read_session() as reader:
        assert reader.scalar(select(func.count()).where(Lab.code == "WRITING")) == 1
