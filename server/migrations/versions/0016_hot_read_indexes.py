"""indexes for the hot reads at a year's size (1 M jobs, 12 M events; benchmarks/scale.py)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04 16:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# name -> (table, columns); each read that needs it is named in server/models.py.
INDEXES = {
    "ix_job_lab_promised": ("job", ["lab_id", "promised_at", "id"]),
    "ix_job_lab_active_promised": ("job", ["lab_id", "is_active", "promised_at", "id"]),
    "ix_job_store_promised": ("job", ["store_id", "promised_at", "id"]),
    "ix_job_store_active_promised": ("job", ["store_id", "is_active", "promised_at", "id"]),
    "ix_stage_event_action_at": ("stage_event", ["action", "corrected_at"]),
    "ix_job_flag_raised": ("job_flag", ["raised_at", "id"]),
}


def upgrade() -> None:
    for name, (table, columns) in INDEXES.items():
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, (table, _) in INDEXES.items():
        op.drop_index(name, table_name=table)
