"""lab alerts e-mailed to lab managers: person.email, the alert's value and limits, and the
notification outbox keyed on a lab alert as well as on a store's feed entry

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-04 22:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FIGURES = ("value", "centre_line", "lower_limit", "upper_limit")


def upgrade() -> None:
    with op.batch_alter_table("person", schema=None) as batch_op:
        batch_op.add_column(sa.Column("email", sa.String(length=254), nullable=True))
    with op.batch_alter_table("lab_alert", schema=None) as batch_op:
        for name in FIGURES:
            batch_op.add_column(sa.Column(name, sa.Double(), nullable=True))
    with op.batch_alter_table("notification_delivery", schema=None) as batch_op:
        batch_op.alter_column(
            "job_update_id",
            existing_type=sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        )
        batch_op.add_column(sa.Column("lab_alert_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            "fk_notification_delivery_lab_alert", "lab_alert", ["lab_alert_id"], ["id"]
        )
        batch_op.create_unique_constraint(
            "uq_notification_delivery_alert", ["channel", "destination_id", "lab_alert_id"]
        )
        batch_op.create_check_constraint(
            "notification_delivery_update_or_alert",
            "(job_update_id IS NULL) <> (lab_alert_id IS NULL)",
        )


def downgrade() -> None:
    # The alert e-mails have no feed entry to be keyed on: their log goes.
    op.execute("DELETE FROM notification_delivery WHERE lab_alert_id IS NOT NULL")
    with op.batch_alter_table("notification_delivery", schema=None) as batch_op:
        batch_op.drop_constraint("notification_delivery_update_or_alert", type_="check")
        batch_op.drop_constraint("uq_notification_delivery_alert", type_="unique")
        batch_op.drop_constraint("fk_notification_delivery_lab_alert", type_="foreignkey")
        batch_op.drop_column("lab_alert_id")
        batch_op.alter_column(
            "job_update_id",
            existing_type=sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        )
    with op.batch_alter_table("lab_alert", schema=None) as batch_op:
        for name in reversed(FIGURES):
            batch_op.drop_column(name)
    with op.batch_alter_table("person", schema=None) as batch_op:
        batch_op.drop_column("email")
