"""Promises to pay: recorded, and each day kept or broken by the payments made."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import date

from sqlalchemy import Connection, select, update

from dunning.db.models import utcnow
from dunning.db.sql import chunked
from dunning.db.tables import PAYMENT, PROMISE
from dunning.domain.money import parse_amount
from dunning.services.contact.stops import hold_suppressed
from dunning.services.lifecycle._common import CHUNK, LifecycleError, account_id_for
from dunning.types import PromiseStatus


def add_promise(
    connection: Connection,
    account: str,
    amount: str,
    promised_on: date,
    channel: str,
    user: str,
    today: date,
) -> int:
    account_id, _, currency = account_id_for(connection, account)
    try:
        minor = parse_amount(amount, currency)
    except ValueError as exc:
        raise LifecycleError(f"amount: {exc}") from None
    if minor <= 0:
        raise LifecycleError("amount: must be more than zero")
    if promised_on < today:
        raise LifecycleError(f"promised_on: {promised_on} is in the past")
    connection.execute(
        update(PROMISE)
        .where(PROMISE.c.account_id == account_id, PROMISE.c.status == PromiseStatus.ACTIVE.value)
        .values(status=PromiseStatus.CANCELLED.value, resolved_on=today)
    )
    now = utcnow()
    result = connection.execute(
        PROMISE.insert().values(
            account_id=account_id,
            amount_minor=minor,
            promised_on=promised_on,
            channel=channel,
            created_by=user,
            created_at=now,
            status=PromiseStatus.ACTIVE.value,
        )
    )
    # Reminders pause from now, not from the next daily run: the waiting ones are held.
    hold_suppressed(connection, [account_id], now)
    return int(result.inserted_primary_key[0])  # type: ignore[index]


def resolve_promises(connection: Connection, as_of: date) -> dict[str, int]:
    """Mark active promises kept (paid in full since made) or broken (their date has passed)."""
    counts = {"kept": 0, "broken": 0}
    last_id = 0
    while True:
        promises = connection.execute(
            select(
                PROMISE.c.id,
                PROMISE.c.account_id,
                PROMISE.c.amount_minor,
                PROMISE.c.promised_on,
                PROMISE.c.created_at,
            )
            .where(PROMISE.c.status == PromiseStatus.ACTIVE.value, PROMISE.c.id > last_id)
            .order_by(PROMISE.c.id)
            .limit(CHUNK)
        ).all()
        if not promises:
            return counts
        last_id = promises[-1].id
        paid = _payments_by_account(connection, [p.account_id for p in promises])
        kept, broken = [], []
        for promise in promises:
            made_on = promise.created_at.date()
            total = sum(
                amount
                for day, amount in paid.get(promise.account_id, [])
                if made_on <= day <= min(promise.promised_on, as_of)
            )
            if total >= promise.amount_minor:
                kept.append(promise.id)
            elif promise.promised_on < as_of:
                broken.append(promise.id)
        for ids, status in ((kept, PromiseStatus.KEPT), (broken, PromiseStatus.BROKEN)):
            if ids:
                connection.execute(
                    update(PROMISE)
                    .where(PROMISE.c.id.in_(ids))
                    .values(status=status.value, resolved_on=as_of)
                )
        counts["kept"] += len(kept)
        counts["broken"] += len(broken)


def _payments_by_account(
    connection: Connection, accounts: Iterable[int]
) -> dict[int, list[tuple[date, int]]]:
    found: dict[int, list[tuple[date, int]]] = defaultdict(list)
    for chunk in chunked(sorted(set(accounts)), 900):
        for account_id, paid_on, amount in connection.execute(
            select(PAYMENT.c.account_id, PAYMENT.c.paid_on, PAYMENT.c.amount_minor).where(
                PAYMENT.c.account_id.in_(chunk)
            )
        ):
            found[account_id].append((paid_on, amount))
    return found
