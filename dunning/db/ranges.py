"""Account-id ranges in SQL: every batch query is bounded by its batch's range."""

from __future__ import annotations

from sqlalchemy import (
    ColumnElement,
    and_,
    true,
)


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
