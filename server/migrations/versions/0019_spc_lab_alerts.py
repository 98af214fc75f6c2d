"""SPC: lab alerts raised by control-chart rule violations, and the inspection indexes the
charts read by (server/domain/spc.py)

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-04 19:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import server.models

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# name -> (table, columns); each read that needs it is named in server/models.py.
INDEXES = {
    "ix_inspection_station_at": ("inspection", ["station_id", "inspected_at"]),
    "ix_inspection_at": ("inspection", ["inspected_at"]),
}


def upgrade() -> None:
    op.create_table(
        "lab_alert",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("lab_id", sa.Integer(), nullable=False),
        sa.Column("chart", sa.String(length=200), nullable=False),
        sa.Column("measure", sa.String(length=16), nullable=False),
        sa.Column("station_id", sa.Integer(), nullable=False),
        sa.Column("rule", sa.SmallInteger(), nullable=False),
        sa.Column("side", sa.String(length=8), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("point_at", server.models.UTCDateTime(), nullable=False),
        sa.Column("message", sa.String(length=300), nullable=False),
        sa.Column("raised_at", server.models.UTCDateTime(), nullable=False),
        sa.Column("acknowledged_at", server.models.UTCDateTime(), nullable=True),
        sa.Column("acknowledged_by_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["lab_id"], ["lab.id"]),
        sa.ForeignKeyConstraint(["station_id"], ["station.id"]),
        sa.ForeignKeyConstraint(["job_id"], ["job.id"]),
        sa.ForeignKeyConstraint(["acknowledged_by_id"], ["person.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "uq_lab_alert_open",
        "lab_alert",
        ["lab_id", "chart", "rule"],
        unique=True,
        sqlite_where=sa.text("acknowledged_at IS NULL"),
        postgresql_where=sa.text("acknowledged_at IS NULL"),
    )
    op.create_index("ix_lab_alert_chart_rule", "lab_alert", ["lab_id", "chart", "rule", "point_at"])
    for name, (table, columns) in INDEXES.items():
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, (table, _) in INDEXES.items():
        op.drop_index(name, table_name=table)
    op.drop_index("ix_lab_alert_chart_rule", table_name="lab_alert")
    op.drop_index("uq_lab_alert_open", table_name="lab_alert")
    op.drop_table("lab_alert")
