"""outbox_message.hold_reason and account_action.hold_reason are called `suppression`

One word for why a message or an action is not sent, in the code, the database, the CLI and
the docs (docs/glossary.md): the values are the same rule ids as before.

Revision ID: 0015_suppression
Revises: 0014_payment_applied

"""

from __future__ import annotations

from alembic import op

revision = "0015_suppression"
down_revision = "0014_payment_applied"
branch_labels = None
depends_on = None

TABLES = ("outbox_message", "account_action")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column("hold_reason", new_column_name="suppression")


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column("suppression", new_column_name="hold_reason")
