"""The tables as SQLAlchemy Core objects, for set-based queries; importing this module also
completes SQLModel.metadata (every module that defines tables is imported).

    from dunning.db.tables import ACCOUNT, OUTBOX
    select(OUTBOX.c.id).where(OUTBOX.c.account_id == ACCOUNT.c.id)
"""

from __future__ import annotations

from sqlalchemy import Table

from dunning.db.legal_models import LegalCase, LegalCaseEvent, LegalReview
from dunning.db.lifecycle_models import AccountAction, GracePeriod, PaymentPlan, PlanInstalment
from dunning.db.models import Account, Customer, Instalment, Payment, PromiseToPay
from dunning.db.outreach_models import (
    DeliveryEvent,
    InboundReply,
    OutboxMessage,
    ProviderPace,
    Run,
    WebhookNonce,
)

# SQLModel declares __table__ on each table class at runtime; mypy does not see it.
CUSTOMER: Table = Customer.__table__  # type: ignore[attr-defined]
ACCOUNT: Table = Account.__table__  # type: ignore[attr-defined]
INSTALMENT: Table = Instalment.__table__  # type: ignore[attr-defined]
PAYMENT: Table = Payment.__table__  # type: ignore[attr-defined]
PROMISE: Table = PromiseToPay.__table__  # type: ignore[attr-defined]
GRACE: Table = GracePeriod.__table__  # type: ignore[attr-defined]
PLAN: Table = PaymentPlan.__table__  # type: ignore[attr-defined]
PLAN_LINE: Table = PlanInstalment.__table__  # type: ignore[attr-defined]
ACTION: Table = AccountAction.__table__  # type: ignore[attr-defined]
RUN: Table = Run.__table__  # type: ignore[attr-defined]
OUTBOX: Table = OutboxMessage.__table__  # type: ignore[attr-defined]
EVENT: Table = DeliveryEvent.__table__  # type: ignore[attr-defined]
NONCE: Table = WebhookNonce.__table__  # type: ignore[attr-defined]
PACE: Table = ProviderPace.__table__  # type: ignore[attr-defined]
REPLY: Table = InboundReply.__table__  # type: ignore[attr-defined]
CASE: Table = LegalCase.__table__  # type: ignore[attr-defined]
CASE_EVENT: Table = LegalCaseEvent.__table__  # type: ignore[attr-defined]
REVIEW: Table = LegalReview.__table__  # type: ignore[attr-defined]
