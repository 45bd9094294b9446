"""Letters and push: structured addresses, dead device tokens, returned addresses

- outbox_message.address: a letter's postal address as fields (name, lines, city, region,
  postal_code, country), planned with the letter, for mail houses that take fields (Lob);
- customer.push_token_invalid_at: a push provider said the device token is dead (FCM
  UNREGISTERED, JPush's invalid registration id): not tried again until a new token arrives;
- customer.address_invalid_at: a letter came back returned to sender: later letters to the
  address are held until a new one arrives.

Revision ID: 0017_letters_and_push
Revises: 0016_providers

"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0017_letters_and_push"
down_revision = "0016_providers"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox_message", schema=None) as batch_op:
        batch_op.add_column(sa.Column("address", sa.JSON(), nullable=True))
    with op.batch_alter_table("customer", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("push_token_invalid_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )
        batch_op.add_column(
            sa.Column("address_invalid_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("customer", schema=None) as batch_op:
        batch_op.drop_column("address_invalid_at")
        batch_op.drop_column("push_token_invalid_at")
    with op.batch_alter_table("outbox_message", schema=None) as batch_op:
        batch_op.drop_column("address")
