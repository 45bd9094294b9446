"""Providers: where each message is sent, what the vendor billed, shared rates, replies

- outbox_message.provider: the provider (config/channels.yaml) a message goes through, set
  before each send, so its receipts and in-doubt lookups go to the vendor that has it;
- outbox_message.vendor: the template's vendor metadata and rendered parameters (Aliyun's
  registered template code and TemplateParam);
- outbox_message.segments / price / price_unit: what the vendor billed, when it says;
- provider_pace: an account-wide rate limit per provider, shared by every dispatcher;
- inbound_reply: each customer reply a vendor pushed, recorded once per vendor id;
- customer.sms_opt_out_source: who recorded an SMS opt-out.

Revision ID: 0016_providers
Revises: 0015_suppression

"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0016_providers"
down_revision = "0015_suppression"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox_message", schema=None) as batch_op:
        batch_op.add_column(sa.Column("provider", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("vendor", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("segments", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("price", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("price_unit", sa.String(length=3), nullable=True))
    with op.batch_alter_table("customer", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sms_opt_out_source", sa.String(length=64), nullable=True))
    op.create_table(
        "provider_pace",
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("next_free", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("provider"),
    )
    op.create_table(
        "inbound_reply",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("received_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("recorded_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("meaning", sa.String(length=16), nullable=False),
        sa.Column("customers", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ux_inbound_reply_event", "inbound_reply", ["provider", "event_id"], unique=True
    )


def downgrade() -> None:
    op.drop_index("ux_inbound_reply_event", table_name="inbound_reply")
    op.drop_table("inbound_reply")
    op.drop_table("provider_pace")
    with op.batch_alter_table("customer", schema=None) as batch_op:
        batch_op.drop_column("sms_opt_out_source")
    with op.batch_alter_table("outbox_message", schema=None) as batch_op:
        for column in ("price_unit", "price", "segments", "vendor", "provider"):
            batch_op.drop_column(column)
