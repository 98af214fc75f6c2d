"""store milestone messages (settings, store managers) and shipments

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-04 19:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import server.models

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("stage", schema=None) as batch_op:
        batch_op.add_column(sa.Column("carriers", sa.JSON(), nullable=True))
    with op.batch_alter_table("person", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "store_manager", sa.Boolean(), server_default=sa.text("false"), nullable=False
            )
        )
    op.create_table(
        "store_notification_setting",
        sa.Column("store_id", sa.Integer(), nullable=False),
        sa.Column("milestones", sa.JSON(), nullable=False),
        sa.Column("email_mode", sa.String(length=16), nullable=False),
        sa.Column("digest_hour", sa.SmallInteger(), nullable=False),
        sa.Column("updated_at", server.models.UTCDateTime(), nullable=False),
        sa.Column("updated_by_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["store_id"], ["store.id"]),
        sa.ForeignKeyConstraint(["updated_by_id"], ["person.id"]),
        sa.PrimaryKeyConstraint("store_id"),
    )
    op.create_table(
        "shipment",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("carrier", sa.String(length=40), nullable=False),
        sa.Column("tracking_number", sa.String(length=64), nullable=False),
        sa.Column("box", sa.String(length=40), nullable=True),
        sa.Column("shipped_at", server.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["event_id"], ["stage_event.id"]),
        sa.ForeignKeyConstraint(["job_id"], ["job.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id"),
    )
    op.create_index("ix_shipment_job_id", "shipment", ["job_id"])
    op.create_index("ix_job_update_job", "job_update", ["job_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_job_update_job", table_name="job_update")
    op.drop_index("ix_shipment_job_id", table_name="shipment")
    op.drop_table("shipment")
    op.drop_table("store_notification_setting")
    with op.batch_alter_table("person", schema=None) as batch_op:
        batch_op.drop_column("store_manager")
    with op.batch_alter_table("stage", schema=None) as batch_op:
        batch_op.drop_column("carriers")
