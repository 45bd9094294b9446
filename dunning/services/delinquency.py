"""DPD and tier for every account, computed set-based in SQL for any as-of date."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

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
    true,
)

from dunning.config import Strategy
from dunning.db.models import Account, Instalment
from dunning.db.sql import days_between

ACCOUNT = Account.__table__  # type: ignore[attr-defined]
INSTALMENT = Instalment.__table__  # type: ignore[attr-defined]


def in_accounts(column: ColumnElement[int], lo: int | None, hi: int | None) -> ColumnElement[bool]:
    """SQL condition: an account id column inside the batch lo..hi (either end may be open).

    Batch queries bound every table they read by the range, the account table and each
    correlated lookup alike: PostgreSQL does not carry a range across a join, and may run a
    correlated lookup once for all rows (a hashed subplan), so an unbounded one reads the whole
    book for every batch (at 1M accounts: a scan of the account table per batch).
    """
    bounds = []
    if lo is not None:
        bounds.append(column >= lo)
    if hi is not None:
        bounds.append(column <= hi)
    return and_(true(), *bounds)


def overdue_by_account(as_of: date, lo: int | None = None, hi: int | None = None) -> Subquery:
    """One row per account with an instalment unpaid as of `as_of`: oldest due date, amount.

    Unpaid as of D: due before D, and not fully paid by D (paid_on null or after D).
    """
    i = INSTALMENT.c
    unpaid = and_(
        i.due_on < as_of,
        or_(i.paid_on.is_(None), i.paid_on > as_of),
        in_accounts(i.account_id, lo, hi),
    )
    # Outstanding today on what was past due then (see domain.delinquency.overdue_amount).
    outstanding = i.amount_due_minor - i.amount_paid_minor
    return (
        select(
            i.account_id.label("account_id"),
            func.min(i.due_on).label("oldest_due_on"),
            # PostgreSQL sums BIGINT to NUMERIC (a Decimal in Python): money stays integer.
            cast(func.sum(outstanding), BigInteger).label("overdue_minor"),
        )
        .where(unpaid)
        .group_by(i.account_id)
        .subquery("overdue")
    )


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
