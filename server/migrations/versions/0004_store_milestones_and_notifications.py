"""store milestones and notifications

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 01:46:29.603586
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import server.models

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "store_webhook",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("store_id", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(length=500), nullable=False),
        sa.Column("secret", sa.String(length=200), nullable=False),
        sa.Column("kinds", sa.JSON(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", server.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["store_id"],
            ["store.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("store_webhook", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_store_webhook_store_id"), ["store_id"], unique=False)

    op.create_table(
        "notification_delivery",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("destination_id", sa.Integer(), nullable=False),
        sa.Column(
            "job_update_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "delivered",
                "failed",
                name="deliverystatus",
                native_enum=False,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", server.models.UTCDateTime(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("created_at", server.models.UTCDateTime(), nullable=False),
        sa.Column("delivered_at", server.models.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_update_id"],
            ["job_update.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("channel", "destination_id", "job_update_id"),
    )
    with op.batch_alter_table("notification_delivery", schema=None) as batch_op:
        batch_op.create_index(
            "ix_notification_delivery_due", ["status", "next_attempt_at"], unique=False
        )

    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("ready_for_pickup_at", server.models.UTCDateTime(), nullable=True)
        )
        batch_op.add_column(sa.Column("delivered_at", server.models.UTCDateTime(), nullable=True))

    with op.batch_alter_table("store", schema=None) as batch_op:
        batch_op.add_column(sa.Column("notify_email", sa.String(length=254), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("store", schema=None) as batch_op:
        batch_op.drop_column("notify_email")

    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.drop_column("delivered_at")
        batch_op.drop_column("ready_for_pickup_at")

    with op.batch_alter_table("notification_delivery", schema=None) as batch_op:
        batch_op.drop_index("ix_notification_delivery_due")

    op.drop_table("notification_delivery")
    with op.batch_alter_table("store_webhook", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_store_webhook_store_id"))

    op.drop_table("store_webhook")
