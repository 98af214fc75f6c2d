"""ordered centre thickness and freeform verification powers per eye

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 20:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (
    ("center_thickness", sa.Double()),
    ("verify_sph", sa.Double()),
    ("verify_cyl", sa.Double()),
    ("verify_axis", sa.Integer()),
)


def upgrade() -> None:
    with op.batch_alter_table("prescription_eye") as table:
        for name, kind in COLUMNS:
            table.add_column(sa.Column(name, kind, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("prescription_eye") as table:
        for name, _ in reversed(COLUMNS):
            table.drop_column(name)
