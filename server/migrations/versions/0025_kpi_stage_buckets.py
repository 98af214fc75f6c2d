"""kpi_stage_bucket: the KPI stage times counted per value bucket, lab-local day and month;
the SPC walk's inspection indexes in its order to the id

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-05 01:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.orm import Session

revision: str = "0025"
down_revision: str | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEYS = (
    ("lab_stage", "lab_id", "stage_id"),
    ("lab_station", "lab_id", "station_id"),
    ("lab_operator", "lab_id", "operator_id"),
    ("store_stage", "store_id", "stage_id"),
)
# The SPC walk's indexes: before, after.
INSPECTION_INDEXES = {
    "ix_inspection_station_at": (
        ["station_id", "inspected_at"],
        ["station_id", "inspected_at", "id"],
    ),
    "ix_inspection_at": (["inspected_at"], ["inspected_at", "id"]),
}


def upgrade() -> None:
    from server.domain.kpis import record_stage_times, value_bucket
    from server.models import KpiStageTime

    bind = op.get_bind()
    op.drop_index("ix_kpi_stage_time_lab", "kpi_stage_time")
    op.drop_index("ix_kpi_stage_time_store", "kpi_stage_time")
    # -1: a duration unknown; the others' buckets worked out below.
    op.add_column(
        "kpi_stage_time",
        sa.Column("bucket", sa.Integer(), server_default=sa.text("-1"), nullable=False),
    )
    seconds = KpiStageTime.seconds
    op.execute(
        sa.update(KpiStageTime)
        .values(bucket=value_bucket(seconds, bind.dialect.name))
        .where(seconds.is_not(None))
    )
    op.create_table(
        "kpi_stage_bucket",
        sa.Column("lab_id", sa.Integer(), sa.ForeignKey("lab.id"), nullable=False),
        sa.Column("store_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(24), nullable=False),
        sa.Column("dimension", sa.String(24), nullable=False),
        sa.Column("whole_month", sa.Boolean(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("key_id", sa.Integer(), nullable=False),
        sa.Column("bucket", sa.Integer(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "lab_id", "store_id", "action", "dimension", "whole_month", "day", "key_id", "bucket"
        ),
        sqlite_with_rowid=False,
    )
    # The times of events 0024 left unrecorded (a database migrated from before it), recorded
    # as the ingest does. Counted by 0030, which counts every time in its rows (this table's
    # rows then were the model's of the day, which today's code does not write).
    record_stage_times(Session(bind=bind), counted=False)
    # After the backfill: built once, not row by row.
    for name, scope, key in KEYS:
        op.create_index(
            f"ix_kpi_stage_time_{name}",
            "kpi_stage_time",
            [scope, "action", key, "bucket", "at", "seconds", "job_id"],
        )
    op.create_index("ix_kpi_stage_time_job", "kpi_stage_time", ["job_id"])
    if bind.dialect.name == "postgresql":
        op.execute("ANALYZE kpi_stage_time")  # the planner's statistics of the filled table
    for name, (_before, after) in INSPECTION_INDEXES.items():
        op.drop_index(name, "inspection")
        op.create_index(name, "inspection", after)


def downgrade() -> None:
    for name, (before, _after) in INSPECTION_INDEXES.items():
        op.drop_index(name, "inspection")
        op.create_index(name, "inspection", before)
    op.drop_table("kpi_stage_bucket")
    op.drop_index("ix_kpi_stage_time_job", "kpi_stage_time")
    for name, _scope, _key in KEYS:
        op.drop_index(f"ix_kpi_stage_time_{name}", "kpi_stage_time")
    with op.batch_alter_table("kpi_stage_time") as batch:
        batch.drop_column("bucket")
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
