"""Grace periods and hardship holds: while one is in force, reminders stop."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import Connection, exists

from dunning.db.models import utcnow
from dunning.db.ranges import in_accounts
from dunning.db.tables import ACCOUNT, GRACE
from dunning.services.contact.stops import hold_suppressed
from dunning.services.lifecycle._common import LifecycleError, account_id_for


def add_grace(
    connection: Connection,
    account: str,
    kind: str,
    until: date,
    reason: str,
    user: str,
    today: date,
    max_days: int,
) -> int:
    if kind not in ("grace", "hardship"):
        raise LifecycleError("kind: use grace or hardship")
    if until < today:
        raise LifecycleError(f"until: {until} is in the past")
    if (until - today).days + 1 > max_days:
        raise LifecycleError(f"until: longer than the {max_days} days config/strategy.yaml allows")
    if not reason.strip():
        raise LifecycleError("reason: a grace period needs a reason")
    account_id, _, _ = account_id_for(connection, account)
    now = utcnow()
    result = connection.execute(
        GRACE.insert().values(
            account_id=account_id,
            kind=kind,
            starts_on=today,
            ends_on=until,
            reason=reason,
            granted_by=user,
            created_at=now,
        )
    )
    # In force at once: the account's waiting messages and forward actions are held now.
    hold_suppressed(connection, [account_id], now)
    return int(result.inserted_primary_key[0])  # type: ignore[index]


def grace_in_force(as_of: date, kind: str, lo: int, hi: int) -> Any:
    """SQL condition: the account (ACCOUNT.c.id, one of the batch lo..hi) has a grace period of
    `kind` covering as_of."""
    return exists().where(
        GRACE.c.account_id == ACCOUNT.c.id,
        in_accounts(GRACE.c.account_id, lo, hi),
        GRACE.c.kind == kind,
        GRACE.c.starts_on <= as_of,
        GRACE.c.ends_on >= as_of,
        GRACE.c.revoked_at.is_(None),
    )
