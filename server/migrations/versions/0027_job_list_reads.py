"""job lists at 1 M jobs: a status's jobs in list order, the lab's or a store's, and a
store's jobs in list order (benchmarks/scale.py)

A store's name the lab too (its lists filter by both): a first page's bounded count reads the
index alone. ix_job_store_status goes: ix_job_store_undelivered (0017) starts with its columns.
On PostgreSQL CREATE INDEX locks the job table against writes while it builds (some seconds at
a million jobs): stations' events wait that long, so upgrade outside the lab's hours.

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-05 21:20:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0027"
down_revision: str | None = "0026"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# name -> (table, columns); each read that needs it is named in server/models.py.
INDEXES = {
    "ix_job_lab_status_promised": ("job", ["lab_id", "status", "promised_at", "id"]),
    "ix_job_store_lab_promised": ("job", ["store_id", "lab_id", "promised_at", "id"]),
    "ix_job_store_status_promised": ("job", ["store_id", "lab_id", "status", "promised_at", "id"]),
}
REPLACED = ("ix_job_store_status", "job", ["store_id", "status"])


def upgrade() -> None:
    for name, (table, columns) in INDEXES.items():
        op.create_index(name, table, columns)
    op.drop_index(REPLACED[0], table_name=REPLACED[1])


def downgrade() -> None:
    op.create_index(*REPLACED)
    for name, (table, _) in INDEXES.items():
        op.drop_index(name, table_name=table)
