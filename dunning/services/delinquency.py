"""DPD, tier, overdue amount and balances for every account, set-based in SQL for any as-of date.

Every amount is the one as of that date: a payment dated after it is not counted (a backfill,
`accounts tiers --as-of`, a legal run for an earlier date all see the account as it was).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    Date,
    Select,
    Subquery,
    and_,
    case,
    cast,
    func,
    literal,
    or_,
    select,
)

from dunning.config import Strategy
from dunning.db.ranges import in_accounts
from dunning.db.sql import days_between
from dunning.db.tables import ACCOUNT, INSTALMENT, PAYMENT


def _least(a: ColumnElement[int], b: ColumnElement[int]) -> ColumnElement[int]:
    return case((a <= b, a), else_=b)  # LEAST on PostgreSQL, min() on SQLite: CASE on both


def _greatest(a: ColumnElement[int], b: ColumnElement[int]) -> ColumnElement[int]:
    return case((a >= b, a), else_=b)


def _money_sum(value: ColumnElement[int]) -> ColumnElement[int]:
    # PostgreSQL sums BIGINT to NUMERIC (a Decimal in Python): money stays integer.
    return cast(func.coalesce(func.sum(value), 0), BigInteger)


def _paid_after(as_of: date, lo: int | None, hi: int | None) -> Subquery:
    """Accounts with payments dated after `as_of`, with what taking them back needs.

    Only these accounts (none, for today's date) run the per-account lookups: the money they
    paid in all, and what their instalments hold in all and on those not yet due on `as_of`.
    """
    p, i = PAYMENT.c, INSTALMENT.c
    later = (
        select(p.account_id.label("account_id"), _money_sum(p.amount_minor).label("after"))
        .where(p.paid_on > as_of, in_accounts(p.account_id, lo, hi))
        .group_by(p.account_id)
        .subquery("later")
    )
    every = PAYMENT.alias("every")
    account = later.c.account_id
    lines = and_(i.account_id == account, in_accounts(i.account_id, lo, hi))
    payments_total = select(_money_sum(every.c.amount_minor)).where(
        every.c.account_id == account, in_accounts(every.c.account_id, lo, hi)
    )
    allocated_total = select(_money_sum(i.amount_paid_minor)).where(lines)
    on_later_lines = select(_money_sum(i.amount_paid_minor)).where(
        lines, i.due_on >= as_of, or_(i.paid_on.is_(None), i.paid_on > as_of)
    )
    return select(
        account.label("account_id"),
        later.c.after,
        payments_total.scalar_subquery().label("payments_total"),
        allocated_total.scalar_subquery().label("allocated_total"),
        on_later_lines.scalar_subquery().label("on_later_lines"),
    ).subquery("paid_after")


def overdue_by_account(as_of: date, lo: int | None = None, hi: int | None = None) -> Subquery:
    """One row per account with an instalment unpaid as of `as_of`: oldest due date, amount.

    Unpaid as of D: due before D, and not fully paid by D (paid_on null or after D). The amount
    (`overdue_minor`) is what was unpaid on those instalments as of D: payments dated after D
    are taken back off (see domain.delinquency.overdue_amount, the reference this computes the
    same as); `owed_now_minor` is what is unpaid on them today.
    """
    i = INSTALMENT.c
    unpaid = and_(
        i.due_on < as_of,
        or_(i.paid_on.is_(None), i.paid_on > as_of),
        in_accounts(i.account_id, lo, hi),
    )
    lines = (
        select(
            i.account_id.label("account_id"),
            func.min(i.due_on).label("oldest_due_on"),
            _money_sum(i.amount_due_minor - i.amount_paid_minor).label("owed_now"),
            _money_sum(i.amount_paid_minor).label("paid_on_these"),
            _money_sum(case((i.paid_on.is_not(None), i.amount_paid_minor), else_=0)).label(
                "completed_after"
            ),
        )
        .where(unpaid)
        .group_by(i.account_id)
        .subquery("unpaid_lines")
    )
    later = _paid_after(as_of, lo, hi)
    allocated_after = later.c.after - _greatest(
        literal(0, BigInteger), later.c.payments_total - later.c.allocated_total
    )
    taken_back = case(
        (
            func.coalesce(later.c.after, 0) > 0,
            _least(
                lines.c.paid_on_these,
                _greatest(literal(0, BigInteger), allocated_after - later.c.on_later_lines),
            ),
        ),
        else_=lines.c.completed_after,
    )
    return (
        select(
            lines.c.account_id,
            lines.c.oldest_due_on,
            cast(lines.c.owed_now + taken_back, BigInteger).label("overdue_minor"),
            # What is still unpaid today on the instalments overdue as of D: what a message
            # sent today may ask for (a backfilled day's message never asks for money the
            # customer paid since).
            lines.c.owed_now.label("owed_now_minor"),
        )
        .select_from(lines.outerjoin(later, later.c.account_id == lines.c.account_id))
        .subquery("overdue")
    )


def balances_as_of(as_of: date, lo: int | None = None, hi: int | None = None) -> Subquery:
    """What payments dated after `as_of` paid down of each balance, per account that has any.

    The account's balances are kept as of now; as of an earlier date they were these amounts
    higher (what each payment paid down is recorded with it: migration 0014). A payment
    recorded before that has no split and is added back to principal. Interest, fees and
    penalty charged after `as_of` are in the balances as imported: no history says when.
    """
    p = PAYMENT.c
    return (
        select(
            p.account_id.label("account_id"),
            *(
                _money_sum(p[f"applied_{name}_minor"]).label(name)
                for name in ("penalty", "fees", "interest")
            ),
            _money_sum(func.coalesce(p.applied_principal_minor, p.amount_minor)).label("principal"),
        )
        .where(p.paid_on > as_of, in_accounts(p.account_id, lo, hi))
        .group_by(p.account_id)
        .subquery("paid_since")
    )


@dataclass(frozen=True)
class Balances:
    """An account's balances as of a date: the columns to select, outer-joined by `join`."""

    paid_since: Subquery
    principal: ColumnElement[int]
    interest: ColumnElement[int]
    fees: ColumnElement[int]
    penalty: ColumnElement[int]

    @property
    def total(self) -> ColumnElement[int]:
        return self.principal + self.interest + self.fees + self.penalty

    def join(self, left: Any) -> Any:
        """`left` (a join that has the account table) with the payments since outer-joined."""
        return left.outerjoin(self.paid_since, self.paid_since.c.account_id == ACCOUNT.c.id)


def account_balances(as_of: date, lo: int | None = None, hi: int | None = None) -> Balances:
    since = balances_as_of(as_of, lo, hi)
    a = ACCOUNT.c

    def added(name: str) -> ColumnElement[int]:
        return cast(a[f"{name}_minor"] + func.coalesce(since.c[name], 0), BigInteger)

    return Balances(since, added("principal"), added("interest"), added("fees"), added("penalty"))


def dpd_expression(as_of: date, oldest_due_on: ColumnElement[date]) -> ColumnElement[int]:
    return days_between(literal(as_of, Date), oldest_due_on)


def tier_expression(dpd: ColumnElement[int], strategy: Strategy) -> ColumnElement[str | None]:
    whens = []
    for tier in strategy.tiers:
        condition = dpd >= tier.dpd.min
        if tier.dpd.max is not None:
            condition = and_(condition, dpd <= tier.dpd.max)
        whens.append((condition, literal(tier.name)))
    return case(*whens, else_=None)


@dataclass(frozen=True)
class Delinquency:
    """The pieces of the delinquency query, for callers that select more columns with it."""

    overdue: Subquery
    dpd: ColumnElement[int]
    tier: ColumnElement[str | None]


def delinquency(
    as_of: date, strategy: Strategy, lo: int | None = None, hi: int | None = None
) -> Delinquency:
    overdue = overdue_by_account(as_of, lo, hi)
    dpd = dpd_expression(as_of, overdue.c.oldest_due_on)
    return Delinquency(overdue, dpd, tier_expression(dpd, strategy))


def delinquent_accounts(
    as_of: date, strategy: Strategy, lo: int | None = None, hi: int | None = None
) -> Select[tuple[int, str, str, int, str | None, int]]:
    """Open accounts with DPD >= 1: id, jurisdiction, currency, DPD, tier, overdue amount."""
    d = delinquency(as_of, strategy, lo, hi)
    return (
        select(
            ACCOUNT.c.id,
            ACCOUNT.c.jurisdiction,
            ACCOUNT.c.currency,
            d.dpd.label("dpd"),
            d.tier.label("tier"),
            d.overdue.c.overdue_minor,
        )
        .join(d.overdue, d.overdue.c.account_id == ACCOUNT.c.id)
        .where(ACCOUNT.c.status == "open", in_accounts(ACCOUNT.c.id, lo, hi))
        .order_by(ACCOUNT.c.id)
    )


@dataclass(frozen=True)
class TierCount:
    tier: str
    jurisdiction: str
    currency: str
    accounts: int
    overdue_minor: int


def tier_population(connection: Connection, as_of: date, strategy: Strategy) -> list[TierCount]:
    """Overdue accounts counted by tier and jurisdiction, in tier order."""
    rows = delinquent_accounts(as_of, strategy).order_by(None).subquery("delinquent")
    query = select(
        rows.c.tier,
        rows.c.jurisdiction,
        rows.c.currency,
        func.count().label("accounts"),
        cast(func.sum(rows.c.overdue_minor), BigInteger).label("overdue_minor"),
    ).group_by(rows.c.tier, rows.c.jurisdiction, rows.c.currency)
    order = {tier.name: index for index, tier in enumerate(strategy.tiers)}
    result = [
        TierCount(tier, jurisdiction, currency, int(accounts), int(overdue or 0))
        for tier, jurisdiction, currency, accounts, overdue in connection.execute(query)
    ]
    return sorted(result, key=lambda c: (order.get(c.tier, len(order)), c.jurisdiction, c.currency))


def account_dpd(connection: Connection, account_id: int, as_of: date) -> int:
    overdue = overdue_by_account(as_of, account_id, account_id)
    value = connection.execute(
        select(dpd_expression(as_of, overdue.c.oldest_due_on)).select_from(overdue)
    ).scalar()
    return int(value or 0)
