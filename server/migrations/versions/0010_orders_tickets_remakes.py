"""orders in, tickets out: the lab's catalogue, frame traces, DCS labels, ticket printing,
cancels, remakes linked to their original, change requests and the per-value change history

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 14:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("lab") as table:
        table.add_column(sa.Column("catalogue", sa.JSON(), nullable=True))
    with op.batch_alter_table("job") as table:
        table.add_column(sa.Column("entered_by_id", sa.Integer(), nullable=True))
        table.add_column(sa.Column("trace", sa.JSON(), nullable=True))
        table.add_column(sa.Column("dcs_labels", sa.JSON(), nullable=True))
        table.add_column(sa.Column("ticket_printed_at", sa.DateTime(), nullable=True))
        table.add_column(sa.Column("cancelled_at", sa.DateTime(), nullable=True))
        table.add_column(sa.Column("cancel_reason", sa.String(200), nullable=True))
        table.add_column(sa.Column("remake_of_id", sa.Integer(), nullable=True))
        table.add_column(sa.Column("remake_class", sa.String(24), nullable=True))
        table.add_column(sa.Column("remake_reason", sa.String(200), nullable=True))
        table.create_foreign_key("fk_job_entered_by", "person", ["entered_by_id"], ["id"])
        table.create_foreign_key("fk_job_remake_of", "job", ["remake_of_id"], ["id"])
        table.create_index("ix_job_remake_of_id", ["remake_of_id"])
    # Jobs made before tickets existed are on the floor already: the first "print new" must
    # not print the whole lab's work in progress.
    op.execute("UPDATE job SET ticket_printed_at = created_at")
    op.create_table(
        "change_request",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("job_id", sa.Integer(), sa.ForeignKey("job.id"), nullable=False),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(24), nullable=False),
        sa.Column("requested_by_id", sa.Integer(), sa.ForeignKey("person.id"), nullable=True),
        sa.Column("requested_at", sa.DateTime(), nullable=False),
        sa.Column("decided_by_id", sa.Integer(), sa.ForeignKey("person.id"), nullable=True),
        sa.Column("decided_at", sa.DateTime(), nullable=True),
        sa.Column("decline_reason", sa.String(200), nullable=True),
        sa.Column("return_stage_id", sa.Integer(), sa.ForeignKey("stage.id"), nullable=True),
    )
    op.create_index("ix_change_request_job_id", "change_request", ["job_id"])
    op.create_table(
        "job_change",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("job_id", sa.Integer(), sa.ForeignKey("job.id"), nullable=False),
        sa.Column("field", sa.String(64), nullable=False),
        sa.Column("old_value", sa.JSON(), nullable=True),
        sa.Column("new_value", sa.JSON(), nullable=True),
        sa.Column("person_id", sa.Integer(), sa.ForeignKey("person.id"), nullable=True),
        sa.Column("changed_at", sa.DateTime(), nullable=False),
        sa.Column(
            "change_request_id", sa.Integer(), sa.ForeignKey("change_request.id"), nullable=True
        ),
    )
    op.create_index("ix_job_change_job_id", "job_change", ["job_id"])


def downgrade() -> None:
    op.drop_table("job_change")
    op.drop_table("change_request")
    with op.batch_alter_table("job") as table:
        table.drop_index("ix_job_remake_of_id")
        table.drop_constraint("fk_job_remake_of", type_="foreignkey")
        table.drop_constraint("fk_job_entered_by", type_="foreignkey")
        for column in (
            "remake_reason",
            "remake_class",
            "remake_of_id",
            "cancel_reason",
            "cancelled_at",
            "ticket_printed_at",
            "dcs_labels",
            "trace",
            "entered_by_id",
        ):
            table.drop_column(column)
    with op.batch_alter_table("lab") as table:
        table.drop_column("catalogue")
