"""outbox: indexes through which a batch reads only its own rows

Claims, the count of a batch's new messages and the print stage's pick filter on a range of
account ids and a date or status. With only a date index, each batch scanned the whole day's
outbox: quadratic in the size of the book.

Revision ID: 0010_outbox_batch_indexes
Revises: 0009_outbox_customer

"""

from __future__ import annotations

from alembic import op

revision = "0010_outbox_batch_indexes"
down_revision = "0009_outbox_customer"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox_message", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_as_of")
        batch_op.create_index("ix_outbox_as_of_account", ["as_of", "account_id"], unique=False)
        batch_op.create_index("ix_outbox_status_account", ["status", "account_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("outbox_message", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_status_account")
        batch_op.drop_index("ix_outbox_as_of_account")
        batch_op.create_index("ix_outbox_as_of", ["as_of"], unique=False)
