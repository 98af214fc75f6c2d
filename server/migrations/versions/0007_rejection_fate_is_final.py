"""a rejected event's UUID is unique and keeps the HTTP status it was refused with

Before, a resend of a rejected event was judged again: each attempt added a rejection row,
and one could even be stored once the job had moved. The earliest rejection of a UUID is its
fate; a UUID that was stored afterwards keeps the stored event (the job's history was built
on it) and loses its rejection rows.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 08:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "DELETE FROM rejected_event WHERE event_uuid IN (SELECT event_uuid FROM stage_event)"
    )
    op.execute(
        "DELETE FROM rejected_event WHERE id NOT IN"
        " (SELECT min(id) FROM rejected_event GROUP BY event_uuid)"
    )
    with op.batch_alter_table("rejected_event") as table:
        table.add_column(
            sa.Column("status_code", sa.SmallInteger(), server_default="422", nullable=False)
        )
        table.drop_index("ix_rejected_event_event_uuid")
        table.create_index("ix_rejected_event_event_uuid", ["event_uuid"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("rejected_event") as table:
        table.drop_index("ix_rejected_event_event_uuid")
        table.create_index("ix_rejected_event_event_uuid", ["event_uuid"], unique=False)
        table.drop_column("status_code")
