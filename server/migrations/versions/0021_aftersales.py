"""after-sales (issue #17): tickets with SLA clocks and messages, follow-ups after delivery,
patient status links, the lab's after-sales settings and a job's "contact declined"

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-04 19:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("lab") as table:
        table.add_column(sa.Column("aftersales", sa.JSON(), nullable=True))
    with op.batch_alter_table("job") as table:
        table.add_column(
            sa.Column("contact_declined", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.create_table(
        "aftersales_ticket",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("job_id", sa.Integer(), sa.ForeignKey("job.id"), nullable=False),
        sa.Column("ticket_class", sa.String(24), nullable=False),
        sa.Column("subject", sa.String(120), nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("opened_by_id", sa.Integer(), sa.ForeignKey("person.id"), nullable=False),
        sa.Column("owner_id", sa.Integer(), sa.ForeignKey("person.id"), nullable=True),
        sa.Column("opened_at", sa.DateTime(), nullable=False),
        sa.Column("first_response_due_at", sa.DateTime(), nullable=False),
        sa.Column("resolution_due_at", sa.DateTime(), nullable=False),
        sa.Column("first_response_at", sa.DateTime(), nullable=True),
        sa.Column("resolved_at", sa.DateTime(), nullable=True),
        sa.Column("resolution", sa.String(24), nullable=True),
        sa.Column("resolution_note", sa.String(500), nullable=True),
        sa.Column("reopened_count", sa.Integer(), nullable=False),
        sa.Column("remake_id", sa.Integer(), sa.ForeignKey("job.id"), nullable=True),
    )
    op.create_index("ix_aftersales_ticket_job_id", "aftersales_ticket", ["job_id"])
    op.create_index("ix_aftersales_ticket_status", "aftersales_ticket", ["status"])
    op.create_table(
        "ticket_message",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "ticket_id",
            sa.Integer(),
            sa.ForeignKey("aftersales_ticket.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("author_id", sa.Integer(), sa.ForeignKey("person.id"), nullable=True),
        sa.Column("from_lab", sa.Boolean(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("written_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_ticket_message_ticket_id", "ticket_message", ["ticket_id"])
    op.create_table(
        "follow_up",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("job_id", sa.Integer(), sa.ForeignKey("job.id"), nullable=False),
        sa.Column("days_after", sa.SmallInteger(), nullable=False),
        sa.Column("due_at", sa.DateTime(), nullable=False),
        sa.Column("done_at", sa.DateTime(), nullable=True),
        sa.Column("done_by_id", sa.Integer(), sa.ForeignKey("person.id"), nullable=True),
        sa.Column("outcome", sa.String(24), nullable=True),
        sa.Column("score", sa.SmallInteger(), nullable=True),
        sa.Column("note", sa.String(500), nullable=True),
        sa.Column("ticket_id", sa.Integer(), sa.ForeignKey("aftersales_ticket.id"), nullable=True),
        sa.UniqueConstraint("job_id", "days_after"),
    )
    op.create_index("ix_follow_up_due", "follow_up", ["done_at", "due_at"])
    op.create_table(
        "patient_link",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("job_id", sa.Integer(), sa.ForeignKey("job.id"), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_by_id", sa.Integer(), sa.ForeignKey("person.id"), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
    )
    op.create_index("ix_patient_link_job_id", "patient_link", ["job_id"])


def downgrade() -> None:
    op.drop_table("patient_link")
    op.drop_table("follow_up")
    op.drop_table("ticket_message")
    op.drop_table("aftersales_ticket")
    with op.batch_alter_table("job") as table:
        table.drop_column("contact_declined")
    with op.batch_alter_table("lab") as table:
        table.drop_column("aftersales")
