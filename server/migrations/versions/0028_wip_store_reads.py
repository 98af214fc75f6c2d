"""a job's worst open flag (job.flag_rank) and the store list's indexes read a tone at a time

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-05 21:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0028"
down_revision: str | None = "0027"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FLAGGED = "flag_rank IS NOT NULL"
UNFLAGGED_OPEN = "delivered_at IS NULL AND flag_rank IS NULL"
# name -> (columns, where); each read that needs it is named in server/models.py.
INDEXES = {
    "ix_job_lab_flagged": (["lab_id", "flag_rank", "promised_at", "id"], FLAGGED),
    "ix_job_lab_unflagged_open": (["lab_id", "status", "promised_at", "id"], UNFLAGGED_OPEN),
    "ix_job_store_flagged": (["store_id", "lab_id", "flag_rank", "promised_at", "id"], FLAGGED),
    "ix_job_store_unflagged_open": (
        ["store_id", "lab_id", "status", "promised_at", "id"],
        UNFLAGGED_OPEN,
    ),
}
# flags.RED_FLAGS and AMBER_FLAGS, ranked 0 and 1, as they stand at this revision.
BACKFILL = """
UPDATE job SET flag_rank = CASE
    WHEN EXISTS (SELECT 1 FROM job_flag f WHERE f.job_id = job.id AND f.cleared_at IS NULL
                 AND f.kind IN ('late', 'breakage', 'rework')) THEN 0
    ELSE 1 END
WHERE id IN (SELECT job_id FROM job_flag WHERE cleared_at IS NULL)
"""


def upgrade() -> None:
    with op.batch_alter_table("job") as table:
        table.add_column(sa.Column("flag_rank", sa.SmallInteger(), nullable=True))
    # Only the jobs with an open flag (a few per open job at most): every other job has none.
    op.execute(BACKFILL)
    for name, (columns, where) in INDEXES.items():
        op.create_index(
            name, "job", columns, sqlite_where=sa.text(where), postgresql_where=sa.text(where)
        )


def downgrade() -> None:
    for name in INDEXES:
        op.drop_index(name, table_name="job")
    with op.batch_alter_table("job") as table:
        table.drop_column("flag_rank")
