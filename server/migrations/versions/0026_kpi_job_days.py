"""kpi_job_day: the KPIs' job counts (finished, on time, reworked, late by cause, first QC
inspections) per store, lab-local day and month, counted from the jobs by 0030

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-05 21:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0026"
down_revision: str | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COUNTS = (
    "finished",
    "on_time",
    "reworked",
    "late_breakage",
    "late_rework",
    "late_hold",
    "late_flow",
    "inspected",
    "passed",
)


def upgrade() -> None:
    op.create_table(
        "kpi_job_day",
        sa.Column("lab_id", sa.Integer(), sa.ForeignKey("lab.id"), nullable=False),
        sa.Column("dimension", sa.String(24), nullable=False),
        sa.Column("whole_month", sa.Boolean(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("store_id", sa.Integer(), sa.ForeignKey("store.id"), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in COUNTS),
        sa.PrimaryKeyConstraint("lab_id", "dimension", "whole_month", "day", "store_id", "key"),
        sqlite_with_rowid=False,
    )
    # Counted by 0030 (these rows were the model's of the day, which today's code does not
    # write).


def downgrade() -> None:
    op.drop_table("kpi_job_day")
