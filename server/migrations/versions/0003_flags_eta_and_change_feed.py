"""flags eta and change feed

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 01:34:36.068587
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import server.models

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "stage_time",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("route_id", sa.Integer(), nullable=False),
        sa.Column("stage_id", sa.Integer(), nullable=False),
        sa.Column("median_minutes", sa.Double(), nullable=False),
        sa.Column("samples", sa.Integer(), nullable=False),
        sa.Column("updated_at", server.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["route_id"],
            ["route.id"],
        ),
        sa.ForeignKeyConstraint(
            ["stage_id"],
            ["stage.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("route_id", "stage_id"),
    )
    op.create_table(
        "job_flag",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "late",
                "at_risk",
                "stalled",
                "on_hold",
                "rework",
                "breakage",
                name="flagkind",
                native_enum=False,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("reason", sa.String(length=300), nullable=False),
        sa.Column("raised_at", server.models.UTCDateTime(), nullable=False),
        sa.Column("cleared_at", server.models.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["job.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("job_flag", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_job_flag_job_id"), ["job_id"], unique=False)
        batch_op.create_index(
            "uq_job_flag_open",
            ["job_id", "kind"],
            unique=True,
            sqlite_where=sa.text("cleared_at IS NULL"),
            postgresql_where=sa.text("cleared_at IS NULL"),
        )

    op.create_table(
        "job_update",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("store_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("created_at", server.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["job.id"],
        ),
        sa.ForeignKeyConstraint(
            ["store_id"],
            ["store.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("job_update", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_job_update_store_id"), ["store_id"], unique=False)

    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.add_column(sa.Column("eta", server.models.UTCDateTime(), nullable=True))

    with op.batch_alter_table("stage", schema=None) as batch_op:
        batch_op.add_column(sa.Column("capacity", sa.Integer(), nullable=False, server_default="1"))


def downgrade() -> None:
    with op.batch_alter_table("stage", schema=None) as batch_op:
        batch_op.drop_column("capacity")

    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.drop_column("eta")

    with op.batch_alter_table("job_update", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_job_update_store_id"))

    op.drop_table("job_update")
    with op.batch_alter_table("job_flag", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_job_flag_open",
            sqlite_where=sa.text("cleared_at IS NULL"),
            postgresql_where=sa.text("cleared_at IS NULL"),
        )
        batch_op.drop_index(batch_op.f("ix_job_flag_job_id"))

    op.drop_table("job_flag")
    op.drop_table("stage_time")
