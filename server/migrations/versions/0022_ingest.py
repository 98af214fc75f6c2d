"""station_sequence_mark: how far each station's sequence numbers all reached the server

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-04 19:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Empty to begin with: a station without a row has its gaps read from 1, as before.
    op.create_table(
        "station_sequence_mark",
        sa.Column("station_id", sa.Integer(), sa.ForeignKey("station.id"), primary_key=True),
        sa.Column("received_through", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("station_sequence_mark")
