"""the WIP board at 1 M jobs: each stage's active jobs, oldest first, from a partial index

A column reads its oldest cards and its count from the index alone (views.wip_column): by
ix_job_stage_promised the last stage's read passed every finished job (a year's, left there).

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-06 01:05:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0029"
down_revision: str | None = "0028"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = "ix_job_lab_wip"
INDEXES = (NAME,)  # the hot-read indexes benchmarks.scale can measure without


def upgrade() -> None:
    # SQLite takes a partial index only for the query's own term, which it writes `is_active = 1`.
    op.create_index(
        NAME,
        "job",
        ["lab_id", "current_stage_id", "state_changed_at", "id"],
        sqlite_where=sa.text("is_active = 1"),
        postgresql_where=sa.text("is_active"),
    )


def downgrade() -> None:
    op.drop_index(NAME, table_name="job")
