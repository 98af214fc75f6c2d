"""patient data encrypted at rest; retention purge mark on jobs

Patient references, prescriptions, raw DCS labels, change values and webhook secrets become
Fernet tokens (text) of their JSON form, encrypted with the data keys that `lenstrack db
upgrade` passes (server.crypto); downgrade decrypts them back into their old types.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 18:40:00
"""

import json
from collections.abc import Sequence
from typing import Any, NamedTuple

import sqlalchemy as sa
from alembic import op

from server.crypto import Encrypted

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


class Personal(NamedTuple):
    name: str
    old_type: Any  # the column's type before this revision
    old_nullable: bool
    kind: type  # what the encrypted value reads back as


PERSONAL_COLUMNS: dict[str, list[Personal]] = {
    # A purged job has no patient reference: nullable from now on.
    "job": [
        Personal("patient_ref", sa.String(64), False, str),
        Personal("dcs_labels", sa.JSON(), True, object),
    ],
    "prescription_eye": [
        Personal("sph", sa.Double(), False, float),
        Personal("cyl", sa.Double(), False, float),
        Personal("axis", sa.Integer(), True, int),
        Personal("add", sa.Double(), True, float),
        Personal("prism", sa.Double(), True, float),
        Personal("prism_base", sa.String(8), True, str),
        Personal("mono_pd", sa.Double(), True, float),
        Personal("fitting_height", sa.Double(), True, float),
        Personal("center_thickness", sa.Double(), True, float),
        Personal("verify_sph", sa.Double(), True, float),
        Personal("verify_cyl", sa.Double(), True, float),
        Personal("verify_axis", sa.Integer(), True, int),
    ],
    "change_request": [Personal("changes", sa.JSON(), False, object)],
    "job_change": [
        Personal("old_value", sa.JSON(), True, object),
        Personal("new_value", sa.JSON(), True, object),
    ],
    "store_webhook": [Personal("secret", sa.String(200), False, str)],
}
NOW_NULLABLE = {"patient_ref"}
POSTGRES_CAST = {sa.Double: "double precision", sa.Integer: "integer", sa.JSON: "json"}


def _table(table_name: str, types: dict[str, Any]) -> sa.TableClause:
    columns = [sa.column(name, type_) for name, type_ in types.items()]
    return sa.table(table_name, sa.column("id", sa.Integer()), *columns)


def _read(table: sa.TableClause) -> list[dict[str, Any]]:
    """Every row in memory: a lab's few hundred thousand rows at most, read once."""
    return [row._asdict() for row in op.get_bind().execute(sa.select(table))]


def _write(table: sa.TableClause, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    names = [name for name in rows[0] if name != "id"]
    statement = (
        sa.update(table)
        .where(table.c.id == sa.bindparam("row_id"))
        .values({name: sa.bindparam(name) for name in names})
    )
    parameters = [{**{name: row[name] for name in names}, "row_id": row["id"]} for row in rows]
    op.get_bind().execute(statement, parameters)


def _as_text(column: Personal, value: Any) -> str | None:
    """A decrypted value as text its old column type casts from."""
    if value is None:
        return "" if column.name == "patient_ref" else None  # a purged job's, NOT NULL before
    return json.dumps(value) if isinstance(column.old_type, sa.JSON) else str(value)


def upgrade() -> None:
    with op.batch_alter_table("job") as batch:
        batch.add_column(sa.Column("personal_data_purged_at", sa.DateTime(), nullable=True))
    for table_name, columns in PERSONAL_COLUMNS.items():
        rows = _read(_table(table_name, {c.name: c.old_type for c in columns}))
        with op.batch_alter_table(table_name) as batch:
            for column in columns:
                batch.alter_column(
                    column.name,
                    type_=sa.Text(),
                    existing_type=column.old_type,
                    nullable=column.old_nullable or column.name in NOW_NULLABLE,
                    existing_nullable=column.old_nullable,
                )
        _write(_table(table_name, {c.name: Encrypted(c.kind) for c in columns}), rows)


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table_name, columns in PERSONAL_COLUMNS.items():
        rows = _read(_table(table_name, {c.name: Encrypted(c.kind) for c in columns}))
        plain = [
            {"id": row["id"], **{c.name: _as_text(c, row[c.name]) for c in columns}} for row in rows
        ]
        _write(_table(table_name, {c.name: sa.Text() for c in columns}), plain)
        with op.batch_alter_table(table_name) as batch:
            for column in columns:
                cast = POSTGRES_CAST.get(type(column.old_type))
                batch.alter_column(
                    column.name,
                    type_=column.old_type,
                    existing_type=sa.Text(),
                    nullable=column.old_nullable,
                    existing_nullable=column.old_nullable or column.name in NOW_NULLABLE,
                    postgresql_using=f'"{column.name}"::{cast}' if postgres and cast else None,
                )
    with op.batch_alter_table("job") as batch:
        batch.drop_column("personal_data_purged_at")
