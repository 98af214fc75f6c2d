"""inspections

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 01:49:41.439677
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import server.models

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "inspection",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("station_id", sa.Integer(), nullable=False),
        sa.Column("operator_id", sa.Integer(), nullable=True),
        sa.Column("profile", sa.String(length=64), nullable=False),
        sa.Column(
            "design",
            sa.Enum("SV", "MF", "PAL", name="lensdesign", native_enum=False, length=24),
            nullable=False,
        ),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("ordered", sa.JSON(), nullable=False),
        sa.Column("measured", sa.JSON(), nullable=False),
        sa.Column("cosmetic", sa.JSON(), nullable=False),
        sa.Column("inspected_at", server.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["stage_event.id"],
        ),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["job.id"],
        ),
        sa.ForeignKeyConstraint(
            ["operator_id"],
            ["person.id"],
        ),
        sa.ForeignKeyConstraint(
            ["station_id"],
            ["station.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id"),
        sa.UniqueConstraint("job_id", "attempt"),
    )
    with op.batch_alter_table("inspection", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_inspection_job_id"), ["job_id"], unique=False)

    op.create_table(
        "inspection_check",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("inspection_id", sa.Integer(), nullable=False),
        sa.Column("eye", sa.String(length=1), nullable=True),
        sa.Column("field", sa.String(length=32), nullable=False),
        sa.Column("ordered", sa.Double(), nullable=False),
        sa.Column("measured", sa.Double(), nullable=False),
        sa.Column("deviation", sa.Double(), nullable=False),
        sa.Column("tolerance", sa.Double(), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["inspection_id"], ["inspection.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("inspection_check", schema=None) as batch_op:
        batch_op.create_index("ix_inspection_check_field", ["field", "eye"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_inspection_check_inspection_id"), ["inspection_id"], unique=False
        )

    op.create_table(
        "inspection_defect",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("inspection_id", sa.Integer(), nullable=False),
        sa.Column("eye", sa.String(length=1), nullable=True),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(["inspection_id"], ["inspection.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("inspection_defect", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_inspection_defect_inspection_id"), ["inspection_id"], unique=False
        )

    with op.batch_alter_table("store", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tolerance_profile", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("store", schema=None) as batch_op:
        batch_op.drop_column("tolerance_profile")

    with op.batch_alter_table("inspection_defect", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_inspection_defect_inspection_id"))

    op.drop_table("inspection_defect")
    with op.batch_alter_table("inspection_check", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_inspection_check_inspection_id"))
        batch_op.drop_index("ix_inspection_check_field")

    op.drop_table("inspection_check")
    with op.batch_alter_table("inspection", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_inspection_job_id"))

    op.drop_table("inspection")
