"""webhook delivery log: network errors of older versions become "could not deliver"

Before the security hardening of issue #14 the delivery log kept each failed webhook attempt's network
error ("ConnectError: [Errno 111] Connection refused", "ReadTimeout: ..."), which tells a
store which addresses and ports answer on the lab's network. The code now writes "could not
deliver" for all of them (server/notify/outcome.py); this rewrites the older rows alike.
Kept: a receiver's answer ("HTTP 503") and the worker's own reasons. The particulars are not
kept anywhere, so the downgrade leaves the rows as they are.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04 16:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Written here, not imported: a migration must keep doing what it did when the code changes.
NOT_DELIVERED = "could not deliver"
WORKER_REASONS = ("webhook removed", "webhook removed or deactivated")
RECEIVER_ANSWER = "HTTP ___"  # LIKE: "HTTP " and a status code


def upgrade() -> None:
    delivery = sa.table(
        "notification_delivery", sa.column("channel", sa.String), sa.column("last_error", sa.Text)
    )
    op.execute(
        delivery.update()
        .where(
            delivery.c.channel == "webhook",
            delivery.c.last_error.is_not(None),
            delivery.c.last_error.not_in([NOT_DELIVERED, *WORKER_REASONS]),
            delivery.c.last_error.not_like(RECEIVER_ANSWER),
        )
        .values(last_error=NOT_DELIVERED)
    )


def downgrade() -> None:
    """Nothing to undo: the detailed errors are gone for good, as intended."""
