"""Tables of legal escalation: legal cases, their history, and every account the flow reviewed."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import BigInteger, Index, Numeric, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from dunning.db.models import utcnow


class LegalCase(SQLModel, table=True):
    """An account escalated to legal, with its claim as of the day it was proposed.

    status: proposed -> approved -> filed -> judgment | settled | withdrawn (dunning.legal.
    lifecycle). `open_account_id` equals `account_id` while the case is open and is null once it
    is closed: its unique constraint allows one open case per account on any backend.
    """

    __tablename__ = "legal_case"
    __table_args__ = (
        UniqueConstraint("open_account_id", name="uq_legal_case_open_account"),
        Index("ix_legal_case_status", "status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id", index=True)
    customer_id: int = Field(foreign_key="customer.id")
    open_account_id: int | None = Field(default=None, foreign_key="account.id")
    run_id: int = Field(foreign_key="run.id", description="the legal run that proposed it")
    status: str = Field(default="proposed", max_length=16)
    jurisdiction: str = Field(max_length=8)
    currency: str = Field(max_length=3)
    proposed_on: date
    approved_on: date | None = None
    filed_on: date | None = None
    closed_on: date | None = None
    # The claim as of proposed_on, from the account's booked balances.
    dpd: int
    oldest_due_on: date
    principal_minor: int = Field(sa_type=BigInteger)
    interest_minor: int = Field(sa_type=BigInteger)
    fees_minor: int = Field(sa_type=BigInteger)
    penalty_minor: int = Field(sa_type=BigInteger)
    claim_minor: int = Field(sa_type=BigInteger)
    recovery_rate: Decimal = Field(sa_type=Numeric(6, 4))
    expected_recovery_minor: int = Field(sa_type=BigInteger)
    court_fee_minor: int = Field(sa_type=BigInteger)
    lawyer_fee_minor: int = Field(sa_type=BigInteger)
    limitation_ends_on: date
    final_demand_outbox_id: int = Field(foreign_key="outbox_message.id")
    last_payment_id: int = Field(
        default=0, description="the account's newest payment id when proposed (0: none)"
    )
    needs_review: bool = False
    review_reason: str | None = Field(default=None, max_length=200)
    packet_sha256: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class LegalCaseEvent(SQLModel, table=True):
    """The case history: every transition (who, when, why) and every review flag."""

    __tablename__ = "legal_case_event"

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="legal_case.id", index=True)
    kind: str = Field(max_length=16)  # transition | review
    from_status: str | None = Field(default=None, max_length=16)
    to_status: str | None = Field(default=None, max_length=16)
    occurred_on: date = Field(description="business date of the event")
    user: str = Field(max_length=64)
    note: str = Field(sa_type=Text)
    recorded_at: datetime = Field(default_factory=utcnow)


class LegalReview(SQLModel, table=True):
    """One account considered by one legal run: eligible (and its case) or the reason not."""

    __tablename__ = "legal_review"
    __table_args__ = (
        UniqueConstraint("run_id", "account_id", name="uq_legal_review_run_account"),
        Index("ix_legal_review_as_of_reason", "as_of", "reason"),
    )

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="run.id")
    account_id: int = Field(foreign_key="account.id", index=True)
    as_of: date
    jurisdiction: str = Field(max_length=8)
    currency: str = Field(max_length=3)
    dpd: int
    eligible: bool
    reason: str | None = Field(default=None, max_length=48)
    claim_minor: int = Field(sa_type=BigInteger)
    expected_recovery_minor: int | None = Field(default=None, sa_type=BigInteger)
    legal_cost_minor: int | None = Field(default=None, sa_type=BigInteger)
    case_id: int | None = Field(default=None, foreign_key="legal_case.id")
