"""Actions: treatments that are not messages, planned by cadence or cure, sent exactly once.

They follow the outbox's discipline: a row with an idempotency key exists before anything is
sent; a dispatcher claims rows under a lease and a claim token; the request carries the key so
the other side deduplicates; answers are recorded only on rows that still hold the claim.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, and_, bindparam, or_, select, update

from adapters.actions.base import TARGET, ActionAdapter, ActionRequest, ActionResult
from adapters.base import SendOutcome
from dunning.db.claims import new_token
from dunning.db.models import utcnow
from dunning.db.ranges import in_accounts
from dunning.db.tables import ACCOUNT, ACTION
from dunning.domain.decide import CUSTOMER_STOPS
from dunning.services.contact.stops import stops_in_force
from dunning.types import ActionKind

if TYPE_CHECKING:
    pass


ActionAdapterFactory = Callable[[str], ActionAdapter]
"""Builds the adapter for a target ("credit_line", "agency", "registry")."""

STOP_REASONS = {flag: reason.value for flag, reason in CUSTOMER_STOPS}
"""The customer's stop flags and the rule each records (the action dispatcher applies these and
every other stop, through optouts.stops_in_force)."""
RETRY_DELAY = timedelta(minutes=5)


@dataclass
class ActionReport:
    claimed: int = 0
    done: int = 0
    duplicates: int = 0
    failed: int = 0
    retry: int = 0
    held: Counter[str] = field(default_factory=Counter)
    by_kind: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "claimed": self.claimed,
            "done": self.done,
            "duplicates": self.duplicates,
            "failed": self.failed,
            "retry": self.retry,
            "held_by_suppression": dict(self.held),
            "done_by_kind": dict(self.by_kind),
            "seconds": round(self.seconds, 3),
        }


def _claim(
    engine: Engine,
    now: datetime,
    lease: timedelta,
    limit: int,
    token: str,
    account_lo: int | None,
    account_hi: int | None,
) -> tuple[list[tuple[Any, str]], list[str]]:
    """Claim due actions; return those to perform (with the account's external id) and the
    reasons of those held because a stop arrived since they were planned."""
    a = ACTION.c
    due = or_(
        and_(a.status == "planned", or_(a.claimed_until.is_(None), a.claimed_until <= now)),
        and_(a.status == "sending", a.claimed_until < now),
    )
    pick = (
        select(a.id)
        .where(due, in_accounts(a.account_id, account_lo, account_hi))
        .order_by(a.id)
        .limit(limit)
    )
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            pick = pick.with_for_update(skip_locked=True)
        rows = connection.execute(
            update(ACTION)
            .where(a.id.in_(pick.scalar_subquery()))
            .values(
                status="sending",
                claim_token=token,
                claimed_until=now + lease,
                attempts=a.attempts + 1,
                updated_at=now,
            )
            .returning(
                a.id,
                a.idempotency_key,
                a.kind,
                a.account_id,
                a.as_of,
                a.payload,
                a.attempts,
                a.reverses_id,
            )
        ).all()
        if not rows:
            return [], []
        # Forward actions obey the stops at the moment they go, every stop the daily run
        # applies (a dispute, a promise to pay or a payment plan may have arrived since).
        externals: dict[int, str] = dict(
            connection.execute(
                select(ACCOUNT.c.id, ACCOUNT.c.external_id).where(
                    ACCOUNT.c.id.in_({row.account_id for row in rows})
                )
            ).all()
        )
        stops = stops_in_force(connection, [(row.account_id, row.as_of) for row in rows], now)
        held: list[dict[str, Any]] = []
        ready: list[tuple[Any, str]] = []
        for row in rows:
            stop = stops[(row.account_id, row.as_of)].first()
            if stop is not None and row.reverses_id is None:
                held.append({"_id": row.id, "reason": stop.value})
            else:
                ready.append((row, externals[row.account_id]))
        if held:
            connection.execute(
                update(ACTION)
                .where(a.id == bindparam("_id"))
                .values(
                    status="held",
                    suppression=bindparam("reason"),
                    claim_token=None,
                    claimed_until=None,
                    updated_at=now,
                ),
                held,
            )
    return ready, [h["reason"] for h in held]


async def _perform(
    factory: ActionAdapterFactory, requests: Sequence[ActionRequest]
) -> list[ActionResult]:
    by_target: dict[str, list[ActionRequest]] = defaultdict(list)
    for request in requests:
        by_target[TARGET[request.kind]].append(request)

    async def one(target: str, batch: list[ActionRequest]) -> list[ActionResult]:
        results: list[ActionResult] = []
        async with factory(target) as adapter:
            size = max(1, adapter.max_batch)
            for start in range(0, len(batch), size):
                results.extend(await adapter.perform(batch[start : start + size]))
        return results

    groups = await asyncio.gather(*(one(t, b) for t, b in by_target.items()))
    return [result for group in groups for result in group]


def dispatch_actions(
    engine: Engine,
    factory: ActionAdapterFactory,
    *,
    clock: Callable[[], datetime] = utcnow,
    lease: timedelta = timedelta(seconds=120),
    max_attempts: int = 8,
    chunk: int = 1000,
    account_lo: int | None = None,
    account_hi: int | None = None,
) -> ActionReport:
    """Claim, perform and record due actions until none is left."""
    report = ActionReport()
    started = time.perf_counter()
    while True:
        token = new_token()
        rows, held = _claim(engine, clock(), lease, chunk, token, account_lo, account_hi)
        if not rows and not held:
            break
        report.held.update(held)
        report.claimed += len(rows) + len(held)
        if not rows:
            continue
        requests = [
            ActionRequest(
                row.idempotency_key, ActionKind(row.kind), external, row.as_of, row.payload
            )
            for row, external in rows
        ]
        results = {r.idempotency_key: r for r in asyncio.run(_perform(factory, requests))}
        now = clock()
        updates = []
        for row, _ in rows:
            result = results.get(row.idempotency_key) or ActionResult(
                row.idempotency_key, SendOutcome.RETRY, reason="the adapter gave no answer"
            )
            values: dict[str, Any] = {
                "_id": row.id,
                "_token": token,
                "reference": None,
                "last_error": None,
                "done_at": None,
                "claimed_until": None,
            }
            if result.outcome == SendOutcome.ACCEPTED:
                values.update(status="done", reference=result.reference, done_at=now)
                report.done += 1
                report.duplicates += int(result.duplicate)
                report.by_kind[row.kind] += 1
            elif result.outcome == SendOutcome.REJECTED or row.attempts >= max_attempts:
                values.update(status="failed", last_error=(result.reason or "rejected")[:500])
                report.failed += 1
            else:
                # Back to planned, not claimable before the retry delay (claimed_until is
                # reused as "not before" for planned actions).
                values.update(
                    status="planned",
                    claimed_until=now + RETRY_DELAY,
                    last_error=(result.reason or "transient error")[:500],
                )
                report.retry += 1
            updates.append(values)
        a = ACTION.c
        with engine.begin() as connection:
            connection.execute(
                update(ACTION)
                .where(
                    a.id == bindparam("_id"),
                    a.claim_token == bindparam("_token"),
                    a.status == "sending",
                )
                .values(
                    status=bindparam("status"),
                    reference=bindparam("reference"),
                    last_error=bindparam("last_error"),
                    done_at=bindparam("done_at"),
                    claimed_until=bindparam("claimed_until"),
                    claim_token=None,
                    updated_at=now,
                ),
                updates,
            )
    report.seconds = time.perf_counter() - started
    return report
