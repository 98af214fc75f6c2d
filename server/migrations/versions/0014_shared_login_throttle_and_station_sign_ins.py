"""log-in throttle counters shared by server processes; operators' station sign-ins

Failed and in-flight log-ins and lockouts move from each process's memory into the database
(`login_subject`, `login_attempt`), so several server processes count together. Stations
send each operator sign-in and sign-out through their outbox (`station_sign_in`), and the
server accepts a job event only from an operator signed in at that station then.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04 15:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "login_subject",
        sa.Column("scope", sa.String(16), primary_key=True),
        sa.Column("subject_digest", sa.String(64), primary_key=True),
        sa.Column("locked_until", sa.DateTime(), nullable=True),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_login_subject_expires_at", "login_subject", ["expires_at"])
    op.create_table(
        "login_attempt",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("subject_digest", sa.String(64), nullable=False),
        sa.Column("failed", sa.Boolean(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_login_attempt_subject", "login_attempt", ["scope", "subject_digest"])
    op.create_index("ix_login_attempt_expires_at", "login_attempt", ["expires_at"])
    op.create_table(
        "station_sign_in",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("event_uuid", sa.Uuid(), nullable=False, unique=True),
        sa.Column("station_id", sa.Integer(), sa.ForeignKey("station.id"), nullable=False),
        sa.Column("station_sequence", sa.BigInteger(), nullable=False),
        sa.Column("person_id", sa.Integer(), sa.ForeignKey("person.id"), nullable=False),
        sa.Column("action", sa.String(24), nullable=False),
        sa.Column("device_created_at", sa.DateTime(), nullable=False),
        sa.Column("server_received_at", sa.DateTime(), nullable=False),
    )
    op.create_index(
        "ix_station_sign_in_operator",
        "station_sign_in",
        ["station_id", "person_id", "device_created_at"],
    )
    op.create_index(
        "ix_station_sign_in_station_sequence", "station_sign_in", ["station_id", "station_sequence"]
    )


def downgrade() -> None:
    op.drop_index("ix_station_sign_in_station_sequence", table_name="station_sign_in")
    op.drop_index("ix_station_sign_in_operator", table_name="station_sign_in")
    op.drop_table("station_sign_in")
    op.drop_index("ix_login_attempt_expires_at", table_name="login_attempt")
    op.drop_index("ix_login_attempt_subject", table_name="login_attempt")
    op.drop_table("login_attempt")
    op.drop_index("ix_login_subject_expires_at", table_name="login_subject")
    op.drop_table("login_subject")
