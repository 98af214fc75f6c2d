"""inspection stages (force QA): a stage may pass jobs only with a judged inspection

Every existing stage starts as an ordinary one; `lenstrack config load` flags the stages the
lab config marks `inspection = true`.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("stage") as table:
        table.add_column(
            sa.Column("inspection", sa.Boolean(), server_default=sa.text("false"), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("stage") as table:
        table.drop_column("inspection")
