"""breakage details

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 01:31:35.455771
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import server.models

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "breakage",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("stage_id", sa.Integer(), nullable=False),
        sa.Column("station_id", sa.Integer(), nullable=False),
        sa.Column("reason_code", sa.String(length=32), nullable=False),
        sa.Column(
            "part",
            sa.Enum("lens", "frame", name="breakagepart", native_enum=False, length=24),
            nullable=False,
        ),
        sa.Column("eyes", sa.String(length=2), nullable=False),
        sa.Column("shift", sa.String(length=32), nullable=True),
        sa.Column("cost", sa.Double(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("replacement_blanks", sa.JSON(), nullable=False),
        sa.Column("occurred_at", server.models.UTCDateTime(), nullable=False),
        sa.Column("reversed_at", server.models.UTCDateTime(), nullable=True),
        sa.Column("reversed_by_id", sa.Integer(), nullable=True),
        sa.Column("reversal_reason", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["stage_event.id"],
        ),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["job.id"],
        ),
        sa.ForeignKeyConstraint(
            ["reversed_by_id"],
            ["person.id"],
        ),
        sa.ForeignKeyConstraint(
            ["stage_id"],
            ["stage.id"],
        ),
        sa.ForeignKeyConstraint(
            ["station_id"],
            ["station.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id"),
    )
    with op.batch_alter_table("breakage", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_breakage_job_id"), ["job_id"], unique=False)

    with op.batch_alter_table("lab", schema=None) as batch_op:
        # Server defaults fill the labs that exist already; `config load` sets the real values.
        batch_op.add_column(
            sa.Column("timezone", sa.String(length=64), nullable=False, server_default="UTC")
        )
        batch_op.add_column(
            sa.Column("shifts", sa.JSON(), nullable=False, server_default=sa.text("'[]'"))
        )
        batch_op.add_column(
            sa.Column("breakage_costs", sa.JSON(), nullable=False, server_default=sa.text("'{}'"))
        )


def downgrade() -> None:
    with op.batch_alter_table("lab", schema=None) as batch_op:
        batch_op.drop_column("breakage_costs")
        batch_op.drop_column("shifts")
        batch_op.drop_column("timezone")

    with op.batch_alter_table("breakage", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_breakage_job_id"))

    op.drop_table("breakage")
