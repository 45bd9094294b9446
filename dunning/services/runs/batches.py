"""Batches: ranges of open account ids of `batch_size` accounts, the unit of every run's work."""

from __future__ import annotations

from sqlalchemy import Connection, func, select

from dunning.db.ranges import in_accounts
from dunning.db.tables import ACCOUNT

Batch = tuple[int, int]


def account_batches(
    connection: Connection, batch_size: int, lo: int | None = None, hi: int | None = None
) -> list[Batch]:
    """Ranges of open account ids holding `batch_size` accounts each (the last may hold fewer),
    among the ids lo..hi if given (a shard), else among all.

    Boundaries come from one windowed query over the primary key, so nothing loads the whole
    population into memory.
    """
    numbered = (
        select(ACCOUNT.c.id, func.row_number().over(order_by=ACCOUNT.c.id).label("n"))
        .where(ACCOUNT.c.status == "open")
        .where(in_accounts(ACCOUNT.c.id, lo, hi))
        .subquery()
    )
    starts = [
        row[0]
        for row in connection.execute(
            select(numbered.c.id)
            .where((numbered.c.n - 1) % batch_size == 0)
            .order_by(numbered.c.id)
        )
    ]
    if not starts:
        return []
    if hi is None:
        hi = int(connection.execute(select(func.max(ACCOUNT.c.id))).scalar_one())
    ends = [start - 1 for start in starts[1:]] + [hi]
    return list(zip(starts, ends, strict=True))
