"""Beyond messages: promises to pay, payment plans, grace periods, and cure.

Each daily run first brings these up to date for its date (promises kept or broken, plans
completed or broken), and reviews accounts with treatments in force: an account that has
cured gets its credit line restored, its placement recalled and its registry report
corrected; a placed account with a dispute or a payment plan is recalled. Payments recorded
between runs trigger the same cure review at once.
"""

from __future__ import annotations

from sqlalchemy import Connection, select

from dunning.db.tables import (
    ACCOUNT,
)
from dunning.errors import DunningError, NotFound

CHUNK = 1000
"""Promises, plans and accounts under review are read this many at a time: memory stays flat
however many of them a large book has."""


class LifecycleError(DunningError):
    pass


def account_id_for(connection: Connection, reference: str) -> tuple[int, str, str]:
    """(id, external id, currency) of an account named by external id."""
    row = connection.execute(
        select(ACCOUNT.c.id, ACCOUNT.c.external_id, ACCOUNT.c.currency).where(
            ACCOUNT.c.external_id == reference
        )
    ).first()
    if row is None:
        raise NotFound(f"no account {reference}")
    return int(row[0]), str(row[1]), str(row[2])


# Promises to pay ------------------------------------------------------------------------


# Grace periods ----------------------------------------------------------------------------


# Payment plans ------------------------------------------------------------------------------


# Cure and treatments in force -------------------------------------------------------------
