"""payment.applied_*_minor: what a payment paid down of each balance, as it was allocated

An account's balances (principal, interest, fees, penalty) are kept as of now. A past business
date (a backfill, `accounts tiers --as-of`, a legal run for an earlier date) needs them as of
that date: the balances now plus what the payments made after it paid down. A payment pays
penalty first, then fees, interest and principal, so how much of it went to each balance
depends on the balances when it was recorded; the import records that split here. Payments from
before this revision have none (null): a past date adds them back to principal.

Revision ID: 0014_payment_applied
Revises: 0013_run_heartbeat

"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_payment_applied"
down_revision = "0013_run_heartbeat"
branch_labels = None
depends_on = None

COLUMNS = (
    "applied_penalty_minor",
    "applied_fees_minor",
    "applied_interest_minor",
    "applied_principal_minor",
)


def upgrade() -> None:
    with op.batch_alter_table("payment", schema=None) as batch_op:
        for name in COLUMNS:
            batch_op.add_column(sa.Column(name, sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("payment", schema=None) as batch_op:
        for name in reversed(COLUMNS):
            batch_op.drop_column(name)
