"""indexes for a stage's job list and a store's undelivered jobs at 1 M jobs (benchmarks/scale.py)

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-04 19:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# name -> (table, columns); each read that needs it is named in server/models.py.
INDEXES = {
    "ix_job_stage_promised": ("job", ["current_stage_id", "promised_at", "id"]),
    "ix_job_store_undelivered": ("job", ["store_id", "status", "delivered_at"]),
}


def upgrade() -> None:
    for name, (table, columns) in INDEXES.items():
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, (table, _) in INDEXES.items():
        op.drop_index(name, table_name=table)
