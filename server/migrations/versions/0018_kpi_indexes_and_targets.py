"""KPI targets per lab, and the indexes the KPI aggregates read by (server/domain/kpis.py)

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-04 19:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# name -> (table, columns); each read that needs it is named in server/models.py.
INDEXES = {
    "ix_job_lab_status_changed": ("job", ["lab_id", "status", "state_changed_at"]),
    "ix_job_store_status_changed": ("job", ["store_id", "status", "state_changed_at"]),
    "ix_inspection_attempt_at": ("inspection", ["attempt", "inspected_at"]),
    "ix_breakage_occurred": ("breakage", ["occurred_at"]),
}


def upgrade() -> None:
    with op.batch_alter_table("lab") as batch:
        batch.add_column(sa.Column("kpi_targets", sa.JSON(), nullable=True))
    for name, (table, columns) in INDEXES.items():
        op.create_index(name, table, columns)
    # Remakes of a period: a few in a hundred jobs, so only they are indexed.
    only_remakes = sa.text("remake_of_id IS NOT NULL")
    op.create_index(
        "ix_job_remake_ordered",
        "job",
        ["lab_id", "ordered_at"],
        sqlite_where=only_remakes,
        postgresql_where=only_remakes,
    )


def downgrade() -> None:
    op.drop_index("ix_job_remake_ordered", table_name="job")
    for name, (table, _) in INDEXES.items():
        op.drop_index(name, table_name=table)
    with op.batch_alter_table("lab") as batch:
        batch.drop_column("kpi_targets")
