"""Tables beyond messages: grace periods, payment plans, and actions with their effects."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from dunning.db.models import utcnow


class GracePeriod(SQLModel, table=True):
    """A grace period or hardship hold on an account: no messages, no escalation, until a date."""

    __tablename__ = "grace_period"

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id", index=True)
    kind: str = Field(max_length=16)  # grace | hardship
    starts_on: date
    ends_on: date = Field(description="the last day it applies (inclusive)")
    reason: str = Field(max_length=500)
    granted_by: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow)
    revoked_at: datetime | None = None


class PaymentPlan(SQLModel, table=True):
    """A negotiated instalment plan (协商分期还款) restructuring the overdue amount."""

    __tablename__ = "payment_plan"

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id", index=True)
    status: str = Field(default="active", max_length=16)  # active | completed | broken | cancelled
    created_on: date
    created_by: str = Field(max_length=64)
    note: str | None = Field(default=None, max_length=500)
    restructured_minor: int = Field(sa_type=BigInteger)
    currency: str = Field(max_length=3)
    instalments: int
    every_days: int = Field(default=30)
    first_due_on: date
    missed_allowed: int = Field(description="missed plan instalments that break the plan")
    resolved_on: date | None = None
    created_at: datetime = Field(default_factory=utcnow)


class PlanInstalment(SQLModel, table=True):
    __tablename__ = "plan_instalment"
    __table_args__ = (UniqueConstraint("plan_id", "seq", name="uq_plan_instalment_seq"),)

    id: int | None = Field(default=None, primary_key=True)
    plan_id: int = Field(foreign_key="payment_plan.id")
    seq: int
    due_on: date
    amount_minor: int = Field(sa_type=BigInteger)


class AccountAction(SQLModel, table=True):
    """One treatment that is not a message (freeze, placement, registry report, reversals).

    status: planned -> sending -> done | failed; or held (with reason) or cancelled.
    """

    __tablename__ = "account_action"
    __table_args__ = (
        Index("ix_action_status_account", "status", "account_id"),
        Index("ix_action_account", "account_id", "kind"),
    )

    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str = Field(max_length=64, unique=True)
    run_id: int | None = Field(default=None, foreign_key="run.id")
    account_id: int = Field(foreign_key="account.id")
    as_of: date
    kind: str = Field(max_length=32)
    step_id: str | None = Field(default=None, max_length=48)
    reverses_id: int | None = Field(default=None, description="the action this one reverses")
    status: str = Field(default="planned", max_length=16)
    suppression: str | None = Field(default=None, max_length=48)
    payload: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    reference: str | None = Field(default=None, max_length=128)
    cost_minor: int | None = Field(
        default=None, sa_type=BigInteger, description="expected cost, e.g. an agency's commission"
    )
    attempts: int = 0
    claim_token: str | None = Field(default=None, max_length=40)
    claimed_until: datetime | None = None
    last_error: str | None = Field(default=None, max_length=500)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    done_at: datetime | None = None
