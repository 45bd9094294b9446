"""Select: the batch's delinquent accounts due a step today, with everything deciding and rendering
need, in one set-based query.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    and_,
    cast,
    exists,
    false,
    func,
    or_,
    select,
)

from dunning.config import Strategy
from dunning.db.ranges import in_accounts
from dunning.db.tables import ACCOUNT, CUSTOMER, PAYMENT, PLAN, PROMISE
from dunning.domain.decide import (
    AccountState,
    ContactState,
)
from dunning.services.delinquency import delinquency
from dunning.services.lifecycle.grace import grace_in_force
from dunning.services.lifecycle.treatments import treatment_in_force
from dunning.types import ActionKind, Channel, PromiseStatus


@dataclass(slots=True)
class BatchRow:
    account_id: int
    account_external_id: str
    customer_id: int
    jurisdiction: str
    currency: str
    dpd: int
    tier: str | None
    overdue_minor: int
    oldest_due_on: date
    product: str
    agreement_ref: str | None
    opened_on: date
    principal_minor: int
    interest_minor: int
    fees_minor: int
    penalty_minor: int
    name: str
    locale: str
    time_zone: str | None
    phone: str | None
    push_token: str | None
    email: str | None
    address_line1: str | None
    address_line2: str | None
    city: str | None
    region: str | None
    postal_code: str | None
    country: str | None
    sms_consent: bool
    push_consent: bool
    letter_consent: bool
    email_consent: bool
    sms_opted_out: bool
    push_opted_out: bool
    letter_opted_out: bool
    email_opted_out: bool
    push_token_dead: bool
    """A push provider said the device token is dead: no push contact point."""
    address_returned: bool
    """A letter to the address came back: no letter contact point."""
    deceased: bool
    bankruptcy: bool
    attorney_on_file: bool
    cease_communication: bool
    dispute_open: bool
    hardship_hold: bool
    promise_active: bool
    payments_since_minor: int
    customer_external_id: str
    credit_limit_minor: int
    grace: bool
    hardship_grace: bool
    plan_id: int | None
    plan_broken: bool
    broken_promise_minor: int | None
    broken_promise_on: date | None
    frozen: bool
    placed: bool

    def account_state(self, *, ignore_plan: bool = False) -> AccountState:
        return AccountState(
            dpd=self.dpd,
            deceased=self.deceased,
            bankruptcy=self.bankruptcy,
            attorney_on_file=self.attorney_on_file,
            cease_communication=self.cease_communication,
            dispute_open=self.dispute_open,
            hardship_hold=self.hardship_hold or self.hardship_grace,
            promise_active=self.promise_active,
            grace=self.grace,
            plan_active=self.plan_id is not None and not ignore_plan,
        )

    def contact_state(self) -> ContactState:
        points = set()
        if self.phone:
            points.add(Channel.SMS)
        if self.push_token and not self.push_token_dead:
            points.add(Channel.PUSH)
        if self.address_line1 and (self.city or self.postal_code) and not self.address_returned:
            points.add(Channel.LETTER)
        if self.email:
            points.add(Channel.EMAIL)
        consents = {
            channel
            for channel, given in (
                (Channel.SMS, self.sms_consent),
                (Channel.PUSH, self.push_consent),
                (Channel.LETTER, self.letter_consent),
                (Channel.EMAIL, self.email_consent),
            )
            if given
        }
        opted_out = {
            channel
            for channel, out in (
                (Channel.SMS, self.sms_opted_out),
                (Channel.PUSH, self.push_opted_out),
                (Channel.LETTER, self.letter_opted_out),
                (Channel.EMAIL, self.email_opted_out),
            )
            if out
        }
        return ContactState(frozenset(points), frozenset(consents), frozenset(opted_out))

    def recipient(self, channel: Channel) -> str | None:
        if channel == Channel.SMS:
            return self.phone
        if channel == Channel.PUSH:
            return self.push_token
        if channel == Channel.EMAIL:
            return self.email
        return "\n".join(self.address_lines(with_name=True))

    def address(self) -> dict[str, Any]:
        """The postal address as fields, for mail houses that take fields (Lob). PII."""
        return {
            "name": self.name,
            "lines": [line for line in (self.address_line1, self.address_line2) if line],
            "city": self.city,
            "region": self.region,
            "postal_code": self.postal_code,
            "country": self.country,
        }

    def address_lines(self, *, with_name: bool = False) -> list[str]:
        if self.locale.startswith("zh"):
            # Chinese addresses run from the largest unit down: postcode, city, street, name.
            lines = [
                f"{self.postal_code or ''} {self.city or ''}".strip(),
                self.address_line1 or "",
                self.address_line2 or "",
            ]
            if with_name:
                lines.append(self.name)
            return [line for line in lines if line]
        city_line = " ".join(
            part
            for part in (f"{self.city}," if self.city else None, self.region, self.postal_code)
            if part
        )
        lines = [self.address_line1 or "", self.address_line2 or "", city_line]
        if with_name:
            lines.insert(0, self.name)
        return [line for line in lines if line]


def due_today(dpd: ColumnElement[int], strategy: Strategy) -> ColumnElement[bool]:
    """SQL: a cadence step (message or action) of some tier falls on this DPD."""
    clauses: list[ColumnElement[bool]] = []
    for tier in strategy.tiers:
        for step in tier.cadence:
            if step.days:
                clauses.append(dpd.in_(step.days))
            first = step.first_repeat(tier.dpd.min)
            if first is not None and step.every is not None:
                repeat = and_(dpd >= first, (dpd - first) % step.every == 0)
                last = step.until if step.until is not None else tier.dpd.max
                clauses.append(and_(repeat, dpd <= last) if last is not None else repeat)
    return or_(*clauses) if clauses else false()


def tier_counts(
    connection: Connection, as_of: date, strategy: Strategy, lo: int, hi: int
) -> Counter[str]:
    """The batch's delinquent accounts by tier (all of them, due today or not)."""
    d = delinquency(as_of, strategy, lo, hi)
    query = (
        select(d.tier, func.count())
        .select_from(d.overdue)
        .join(ACCOUNT, ACCOUNT.c.id == d.overdue.c.account_id)
        .where(ACCOUNT.c.status == "open", in_accounts(ACCOUNT.c.id, lo, hi))
        .group_by(d.tier)
    )
    return Counter({tier: int(n) for tier, n in connection.execute(query) if tier is not None})


def select_batch(
    connection: Connection, as_of: date, strategy: Strategy, lo: int, hi: int
) -> list[BatchRow]:
    """The batch's delinquent accounts with everything deciding and rendering need."""
    d = delinquency(as_of, strategy, lo, hi)
    # DPD and the step due are as of the run's date; the amounts a message states are those
    # owed today. For a backfilled day they differ when the customer paid since, and a message
    # sent today must never ask for money already paid (a false statement of the debt).
    a, c, overdue = ACCOUNT.c, CUSTOMER.c, d.overdue.c
    # Every table read is bounded by the batch's range (see in_accounts).
    promise_active = exists().where(
        PROMISE.c.account_id == a.id,
        in_accounts(PROMISE.c.account_id, lo, hi),
        PROMISE.c.status == PromiseStatus.ACTIVE.value,
        PROMISE.c.promised_on >= as_of,
    )
    payments_since = (
        select(cast(func.coalesce(func.sum(PAYMENT.c.amount_minor), 0), BigInteger))
        .where(
            PAYMENT.c.account_id == a.id,
            in_accounts(PAYMENT.c.account_id, lo, hi),
            # Every payment since, to today: the notice's amounts are today's (see above).
            PAYMENT.c.paid_on >= overdue.oldest_due_on,
        )
        .scalar_subquery()
    )
    plan_id = (
        select(func.max(PLAN.c.id))
        .where(
            PLAN.c.account_id == a.id,
            in_accounts(PLAN.c.account_id, lo, hi),
            PLAN.c.status == "active",
        )
        .scalar_subquery()
    )
    plan_broken = exists().where(
        PLAN.c.account_id == a.id,
        in_accounts(PLAN.c.account_id, lo, hi),
        PLAN.c.status == "broken",
    )
    broken = (
        select(PROMISE.c.amount_minor, PROMISE.c.promised_on)
        .where(
            PROMISE.c.account_id == a.id,
            in_accounts(PROMISE.c.account_id, lo, hi),
            PROMISE.c.status == PromiseStatus.BROKEN.value,
            PROMISE.c.resolved_on == as_of,
        )
        .order_by(PROMISE.c.id.desc())
        .limit(1)
    )
    broken_today = exists().where(
        PROMISE.c.account_id == a.id,
        in_accounts(PROMISE.c.account_id, lo, hi),
        PROMISE.c.status == PromiseStatus.BROKEN.value,
        PROMISE.c.resolved_on == as_of,
    )
    in_force = treatment_in_force
    query = (
        select(
            a.id,
            a.external_id,
            a.customer_id,
            a.jurisdiction,
            a.currency,
            d.dpd,
            d.tier,
            overdue.owed_now_minor.label("overdue_minor"),
            overdue.oldest_due_on,
            a.product,
            a.agreement_ref,
            a.opened_on,
            a.principal_minor,
            a.interest_minor,
            a.fees_minor,
            a.penalty_minor,
            c.name,
            c.locale,
            c.time_zone,
            c.phone,
            c.push_token,
            c.email,
            c.address_line1,
            c.address_line2,
            c.city,
            c.region,
            c.postal_code,
            c.country,
            c.sms_consent,
            c.push_consent,
            c.letter_consent,
            c.email_consent,
            c.sms_opted_out_at.is_not(None),
            c.push_opted_out_at.is_not(None),
            c.letter_opted_out_at.is_not(None),
            c.email_opted_out_at.is_not(None),
            c.push_token_invalid_at.is_not(None),
            c.address_invalid_at.is_not(None),
            c.deceased,
            c.bankruptcy,
            c.attorney_on_file,
            c.cease_communication,
            c.dispute_open,
            c.hardship_hold,
            promise_active,
            payments_since,
            c.external_id,
            a.credit_limit_minor,
            grace_in_force(as_of, "grace", lo, hi),
            grace_in_force(as_of, "hardship", lo, hi),
            plan_id,
            plan_broken,
            broken.with_only_columns(PROMISE.c.amount_minor).scalar_subquery(),
            broken.with_only_columns(PROMISE.c.promised_on).scalar_subquery(),
            in_force(ActionKind.CREDIT_FREEZE, lo, hi),
            in_force(ActionKind.AGENCY_PLACEMENT, lo, hi),
        )
        .select_from(d.overdue)
        .join(ACCOUNT, a.id == overdue.account_id)
        .join(CUSTOMER, c.id == a.customer_id)
        # Most accounts have nothing due on a given day: only those that may are loaded.
        .where(
            a.status == "open",
            in_accounts(a.id, lo, hi),
            or_(due_today(d.dpd, strategy), plan_id.is_not(None), plan_broken, broken_today),
        )
        .order_by(a.id)
    )
    return [BatchRow(*row) for row in connection.execute(query)]
