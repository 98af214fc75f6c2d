"""KPI count rows per ISO week beside day and month (models.KpiSpan)

A week's queue-time percentiles read ~25k day rows at 1 M jobs (queue times spread over most
value buckets every day); a week row holds each bucket once. Both count tables are rebuilt
with a `span` column in place of `whole_month` and counted again from their sources, the
recorded stage times and the jobs, as the bulk seed counts them (0025 and 0026 left that to
this revision).

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-06 04:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.orm import Session

revision: str = "0030"
down_revision: str | None = "0029"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JOB_COUNTS = (
    "finished",
    "on_time",
    "reworked",
    "late_breakage",
    "late_rework",
    "late_hold",
    "late_flow",
    "inspected",
    "passed",
)
# table -> (its columns before the span, the span's, after it; its counts)
TABLES = {
    "kpi_stage_bucket": (
        ["lab_id", "store_id", "action", "dimension"],
        ["day", "key_id", "bucket"],
        ["count"],
    ),
    "kpi_job_day": (["lab_id", "dimension"], ["day", "store_id", "key"], list(JOB_COUNTS)),
}
COLUMN_TYPES: dict[str, sa.types.TypeEngine[object]] = {
    "lab_id": sa.Integer(),
    "store_id": sa.Integer(),
    "action": sa.String(24),
    "dimension": sa.String(24),
    "day": sa.Date(),
    "key_id": sa.Integer(),
    "bucket": sa.Integer(),
    "key": sa.String(64),
}
# (table, column) -> what it refers to
FOREIGN_KEYS = {
    ("kpi_stage_bucket", "lab_id"): "lab.id",
    ("kpi_job_day", "lab_id"): "lab.id",
    ("kpi_job_day", "store_id"): "store.id",
}


def _column(table: str, name: str) -> sa.Column[object]:
    refers = FOREIGN_KEYS.get((table, name))
    foreign_key = [sa.ForeignKey(refers)] if refers else []
    return sa.Column(name, COLUMN_TYPES[name], *foreign_key, nullable=False)


def _create(table: str, span: sa.Column[object]) -> None:
    before, after, counts = TABLES[table]
    op.create_table(
        table,
        *(_column(table, name) for name in before),
        span,
        *(_column(table, name) for name in after),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in counts),
        sa.PrimaryKeyConstraint(*before, span.name, *after),
        sqlite_with_rowid=False,
    )


def upgrade() -> None:
    from server.domain.kpis import count_every_stage_time, recount_jobs

    bind = op.get_bind()
    for table in TABLES:
        op.drop_table(table)
        _create(table, sa.Column("span", sa.String(24), nullable=False))
    session = Session(bind=bind)
    count_every_stage_time(session)
    for lab_id in session.scalars(sa.text("SELECT id FROM lab ORDER BY id")):
        recount_jobs(session, lab_id)
    if bind.dialect.name == "postgresql":
        for table in TABLES:
            op.execute(f"ANALYZE {table}")  # the planner's statistics of the filled tables


def downgrade() -> None:
    # The day and month rows kept as 0029's code wrote them; the week rows dropped.
    for table, (before, after, counts) in TABLES.items():
        op.execute(f"CREATE TEMPORARY TABLE kept AS SELECT * FROM {table} WHERE span <> 'week'")
        op.drop_table(table)
        _create(table, sa.Column("whole_month", sa.Boolean(), nullable=False))
        columns = ", ".join([*before, *after, *counts])
        op.execute(
            f"INSERT INTO {table} ({columns}, whole_month) "
            f"SELECT {columns}, span = 'month' FROM kept"
        )
        op.execute("DROP TABLE kept")
