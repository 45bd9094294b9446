"""outbox_message.subject: text, as the message's body is

A push notification's title is rendered from its template and the customer's data (a name
can be 200 characters), so its length is the gateway's to judge, as the body's is. As
VARCHAR(255), PostgreSQL refused a longer title and the batch planning it failed (SQLite
does not enforce the length, so only PostgreSQL installations saw it).

Revision ID: 0012_outbox_subject_text
Revises: 0011_action_batch_index

"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0012_outbox_subject_text"
down_revision = "0011_action_batch_index"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox_message", schema=None) as batch_op:
        batch_op.alter_column(
            "subject",
            existing_type=sqlmodel.sql.sqltypes.AutoString(length=255),
            type_=sa.Text(),
            existing_nullable=True,
        )


def downgrade() -> None:
    with op.batch_alter_table("outbox_message", schema=None) as batch_op:
        batch_op.alter_column(
            "subject",
            existing_type=sa.Text(),
            type_=sqlmodel.sql.sqltypes.AutoString(length=255),
            existing_nullable=True,
        )
