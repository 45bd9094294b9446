"""account_action: an index through which a batch claims only its own actions

The action dispatcher claims the due actions of a range of account ids. With only the
(status, kind) index, each batch read every planned action of the day: quadratic in the size
of the book (1M accounts on SQLite: 23 ms a claim, twice a batch). (status, account_id) serves
the claims, and every query that (status, kind) served through its status prefix.

Revision ID: 0011_action_batch_index
Revises: 0010_outbox_batch_indexes

"""

from __future__ import annotations

from alembic import op

revision = "0011_action_batch_index"
down_revision = "0010_outbox_batch_indexes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("account_action", schema=None) as batch_op:
        batch_op.drop_index("ix_action_due")
        batch_op.create_index("ix_action_status_account", ["status", "account_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("account_action", schema=None) as batch_op:
        batch_op.drop_index("ix_action_status_account")
        batch_op.create_index("ix_action_due", ["status", "kind"], unique=False)
