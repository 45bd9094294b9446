"""legal: cases, case events, reviews

Revision ID: 0005_legal
Revises: 0002_outreach
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0005_legal"
down_revision = "0002_outreach"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "legal_case",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("open_account_id", sa.Integer(), nullable=True),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("jurisdiction", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("currency", sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
        sa.Column("proposed_on", sa.Date(), nullable=False),
        sa.Column("approved_on", sa.Date(), nullable=True),
        sa.Column("filed_on", sa.Date(), nullable=True),
        sa.Column("closed_on", sa.Date(), nullable=True),
        sa.Column("dpd", sa.Integer(), nullable=False),
        sa.Column("oldest_due_on", sa.Date(), nullable=False),
        sa.Column("principal_minor", sa.BigInteger(), nullable=False),
        sa.Column("interest_minor", sa.BigInteger(), nullable=False),
        sa.Column("fees_minor", sa.BigInteger(), nullable=False),
        sa.Column("penalty_minor", sa.BigInteger(), nullable=False),
        sa.Column("claim_minor", sa.BigInteger(), nullable=False),
        sa.Column("recovery_rate", sa.Numeric(precision=6, scale=4), nullable=False),
        sa.Column("expected_recovery_minor", sa.BigInteger(), nullable=False),
        sa.Column("court_fee_minor", sa.BigInteger(), nullable=False),
        sa.Column("lawyer_fee_minor", sa.BigInteger(), nullable=False),
        sa.Column("limitation_ends_on", sa.Date(), nullable=False),
        sa.Column("final_demand_outbox_id", sa.Integer(), nullable=False),
        sa.Column("last_payment_id", sa.Integer(), nullable=False),
        sa.Column("needs_review", sa.Boolean(), nullable=False),
        sa.Column("review_reason", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("packet_sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["account.id"],
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer.id"],
        ),
        sa.ForeignKeyConstraint(
            ["final_demand_outbox_id"],
            ["outbox_message.id"],
        ),
        sa.ForeignKeyConstraint(
            ["open_account_id"],
            ["account.id"],
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["run.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("open_account_id", name="uq_legal_case_open_account"),
    )
    with op.batch_alter_table("legal_case", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_legal_case_account_id"), ["account_id"], unique=False)
        batch_op.create_index("ix_legal_case_status", ["status"], unique=False)

    op.create_table(
        "legal_case_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("from_status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
        sa.Column("to_status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
        sa.Column("occurred_on", sa.Date(), nullable=False),
        sa.Column("user", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("recorded_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["legal_case.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("legal_case_event", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_legal_case_event_case_id"), ["case_id"], unique=False)

    op.create_table(
        "legal_review",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("jurisdiction", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("currency", sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
        sa.Column("dpd", sa.Integer(), nullable=False),
        sa.Column("eligible", sa.Boolean(), nullable=False),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=48), nullable=True),
        sa.Column("claim_minor", sa.BigInteger(), nullable=False),
        sa.Column("expected_recovery_minor", sa.BigInteger(), nullable=True),
        sa.Column("legal_cost_minor", sa.BigInteger(), nullable=True),
        sa.Column("case_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["account.id"],
        ),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["legal_case.id"],
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["run.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id", "account_id", name="uq_legal_review_run_account"),
    )
    with op.batch_alter_table("legal_review", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_legal_review_account_id"), ["account_id"], unique=False
        )
        batch_op.create_index("ix_legal_review_as_of_reason", ["as_of", "reason"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("legal_review", schema=None) as batch_op:
        batch_op.drop_index("ix_legal_review_as_of_reason")
        batch_op.drop_index(batch_op.f("ix_legal_review_account_id"))

    op.drop_table("legal_review")
    with op.batch_alter_table("legal_case_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_legal_case_event_case_id"))

    op.drop_table("legal_case_event")
    with op.batch_alter_table("legal_case", schema=None) as batch_op:
        batch_op.drop_index("ix_legal_case_status")
        batch_op.drop_index(batch_op.f("ix_legal_case_account_id"))

    op.drop_table("legal_case")
