"""kpi_stage_time: each start's queue time and each completion's cycle time, for the KPIs

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-04 22:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "kpi_stage_time",
        sa.Column(
            "event_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            sa.ForeignKey("stage_event.id"),
            primary_key=True,
        ),
        sa.Column("lab_id", sa.Integer(), sa.ForeignKey("lab.id"), nullable=False),
        sa.Column("store_id", sa.Integer(), sa.ForeignKey("store.id"), nullable=False),
        sa.Column("job_id", sa.Integer(), sa.ForeignKey("job.id"), nullable=False),
        sa.Column("stage_id", sa.Integer(), sa.ForeignKey("stage.id"), nullable=False),
        sa.Column("station_id", sa.Integer(), sa.ForeignKey("station.id"), nullable=False),
        sa.Column("operator_id", sa.Integer(), sa.ForeignKey("person.id"), nullable=True),
        sa.Column("action", sa.String(24), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("seconds", sa.Double(), nullable=True),
    )
    # The history's times are recorded by 0025's backfill: the ingest's statement, which it
    # runs, writes columns 0025 adds.
    op.create_index(
        "ix_kpi_stage_time_lab",
        "kpi_stage_time",
        ["lab_id", "action", "at", "stage_id", "station_id", "operator_id", "seconds", "job_id"],
    )
    op.create_index(
        "ix_kpi_stage_time_store",
        "kpi_stage_time",
        ["store_id", "action", "at", "stage_id", "seconds", "job_id"],
    )


def downgrade() -> None:
    op.drop_table("kpi_stage_time")
