"""Payment plans (negotiated instalments): created, followed instalment by instalment, completed or
broken, and re-ageing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Connection, select, update

from dunning.config.strategy import PlanPolicy
from dunning.db.models import utcnow
from dunning.db.sql import chunked
from dunning.db.tables import ACCOUNT, PLAN, PLAN_LINE
from dunning.domain.money import to_decimal
from dunning.errors import NotFound
from dunning.services.contact.stops import hold_suppressed
from dunning.services.delinquency import overdue_by_account
from dunning.services.lifecycle._common import CHUNK, LifecycleError, account_id_for
from dunning.services.lifecycle.promises import _payments_by_account


@dataclass(frozen=True)
class PlanLine:
    seq: int
    due_on: date
    amount_minor: int


def split_plan(
    total_minor: int, instalments: int, first_due_on: date, every_days: int
) -> list[PlanLine]:
    """Equal instalments, the remainder on the last one, so they add up to the total exactly."""
    base = total_minor // instalments
    lines = [
        PlanLine(n + 1, first_due_on + timedelta(days=n * every_days), base)
        for n in range(instalments)
    ]
    last = lines[-1]
    lines[-1] = PlanLine(last.seq, last.due_on, base + total_minor - base * instalments)
    return lines


def create_plan(
    connection: Connection,
    account: str,
    *,
    instalments: int,
    every_days: int,
    first_due_on: date,
    user: str,
    note: str | None,
    today: date,
    policy: PlanPolicy,
) -> int:
    """Restructure the account's overdue amount into `instalments` plan instalments."""
    if not 1 <= instalments <= policy.max_instalments:
        raise LifecycleError(f"instalments: between 1 and {policy.max_instalments}")
    if first_due_on < today:
        raise LifecycleError(f"first_due_on: {first_due_on} is in the past")
    account_id, _, currency = account_id_for(connection, account)
    active = connection.execute(
        select(PLAN.c.id).where(PLAN.c.account_id == account_id, PLAN.c.status == "active")
    ).first()
    if active is not None:
        raise LifecycleError(f"account {account} already has an active plan ({active[0]})")
    overdue = overdue_by_account(today, account_id, account_id)
    total = connection.execute(select(overdue.c.overdue_minor)).scalar()
    if not total:
        raise LifecycleError(f"account {account} has nothing overdue to restructure")
    result = connection.execute(
        PLAN.insert().values(
            account_id=account_id,
            status="active",
            created_on=today,
            created_by=user,
            note=note,
            restructured_minor=int(total),
            currency=currency,
            instalments=instalments,
            every_days=every_days,
            first_due_on=first_due_on,
            missed_allowed=policy.break_after_missed,
            created_at=utcnow(),
        )
    )
    plan_id = int(result.inserted_primary_key[0])  # type: ignore[index]
    connection.execute(
        PLAN_LINE.insert(),
        [
            {
                "plan_id": plan_id,
                "seq": line.seq,
                "due_on": line.due_on,
                "amount_minor": line.amount_minor,
            }
            for line in split_plan(int(total), instalments, first_due_on, every_days)
        ],
    )
    # The cadence follows the plan from now: what waits to go under the old one is held.
    hold_suppressed(connection, [account_id], utcnow())
    return plan_id


@dataclass(frozen=True)
class PlanState:
    plan_id: int
    account_id: int
    created_on: date
    lines: tuple[PlanLine, ...]
    paid_minor: int
    missed: tuple[PlanLine, ...]

    @property
    def complete(self) -> bool:
        return self.paid_minor >= sum(line.amount_minor for line in self.lines)


def plan_states(
    connection: Connection, as_of: date, plan_ids: Sequence[int] | None = None
) -> list[PlanState]:
    """Each active plan's payments since it began, and the instalments missed as of a date."""
    query = select(PLAN.c.id, PLAN.c.account_id, PLAN.c.created_on).where(PLAN.c.status == "active")
    if plan_ids is not None:
        query = query.where(PLAN.c.id.in_(list(plan_ids)))
    plans = connection.execute(query).all()
    if not plans:
        return []
    lines: dict[int, list[PlanLine]] = defaultdict(list)
    for chunk in chunked([p.id for p in plans], 900):
        for plan_id, seq, due_on, amount in connection.execute(
            select(
                PLAN_LINE.c.plan_id, PLAN_LINE.c.seq, PLAN_LINE.c.due_on, PLAN_LINE.c.amount_minor
            )
            .where(PLAN_LINE.c.plan_id.in_(chunk))
            .order_by(PLAN_LINE.c.plan_id, PLAN_LINE.c.seq)
        ):
            lines[plan_id].append(PlanLine(seq, due_on, amount))
    payments = _payments_by_account(connection, [p.account_id for p in plans])
    states = []
    for plan in plans:
        paid = sum(
            amount
            for day, amount in payments.get(plan.account_id, [])
            if plan.created_on <= day <= as_of
        )
        cumulative = 0
        missed = []
        for line in lines[plan.id]:
            cumulative += line.amount_minor
            if line.due_on < as_of and paid < cumulative:
                missed.append(line)
        states.append(
            PlanState(
                plan.id,
                plan.account_id,
                plan.created_on,
                tuple(lines[plan.id]),
                paid,
                tuple(missed),
            )
        )
    return states


def evaluate_plans(connection: Connection, as_of: date, policy: PlanPolicy) -> dict[str, int]:
    """Complete plans paid in full; break plans with too many missed instalments."""
    counts = {"completed": 0, "broken": 0}
    last_id = 0
    while True:
        ids = list(
            connection.execute(
                select(PLAN.c.id)
                .where(PLAN.c.status == "active", PLAN.c.id > last_id)
                .order_by(PLAN.c.id)
                .limit(CHUNK)
            ).scalars()
        )
        if not ids:
            return counts
        last_id = ids[-1]
        completed, broken = [], []
        for state in plan_states(connection, as_of, ids):
            if state.complete:
                completed.append(state.plan_id)
            elif len(state.missed) >= policy.break_after_missed:
                broken.append(state.plan_id)
        for done, status in ((completed, "completed"), (broken, "broken")):
            if done:
                connection.execute(
                    update(PLAN).where(PLAN.c.id.in_(done)).values(status=status, resolved_on=as_of)
                )
        counts["completed"] += len(completed)
        counts["broken"] += len(broken)


def reaged_since(
    connection: Connection, account_ids: Sequence[int], policy: PlanPolicy
) -> dict[int, date]:
    """For `reage`: accounts whose plan broke count DPD from the first missed plan instalment."""
    if policy.on_break != "reage" or not account_ids:
        return {}
    found: dict[int, date] = {}
    for chunk in chunked(list(account_ids), 900):
        rows = connection.execute(
            select(PLAN.c.account_id, PLAN.c.id, PLAN.c.created_on, PLAN.c.resolved_on)
            .where(PLAN.c.account_id.in_(chunk), PLAN.c.status == "broken")
            .order_by(PLAN.c.id)
        ).all()
        for account_id, plan_id, _, resolved_on in rows:
            state_lines = connection.execute(
                select(PLAN_LINE.c.due_on, PLAN_LINE.c.amount_minor)
                .where(PLAN_LINE.c.plan_id == plan_id)
                .order_by(PLAN_LINE.c.seq)
            ).all()
            paid = sum(
                amount
                for day, amount in _payments_by_account(connection, [account_id]).get(
                    account_id, []
                )
                if day <= resolved_on
            )
            cumulative = 0
            for due_on, amount in state_lines:
                cumulative += amount
                if paid < cumulative:
                    found[account_id] = due_on
                    break
    return found


def plan_view(connection: Connection, plan_id: int, as_of: date) -> dict[str, Any]:
    plan = connection.execute(
        select(PLAN, ACCOUNT.c.external_id)
        .join(ACCOUNT, ACCOUNT.c.id == PLAN.c.account_id)
        .where(PLAN.c.id == plan_id)
    ).first()
    if plan is None:
        raise NotFound(f"no payment plan {plan_id}")
    states = {s.plan_id: s for s in plan_states(connection, as_of, [plan_id])}
    lines = connection.execute(
        select(PLAN_LINE).where(PLAN_LINE.c.plan_id == plan_id).order_by(PLAN_LINE.c.seq)
    ).all()
    state = states.get(plan_id)
    missed = {line.seq for line in state.missed} if state else set()

    def money(minor: int) -> str:
        return str(to_decimal(minor, plan.currency))

    return {
        "id": plan.id,
        "account": plan.external_id,
        "status": plan.status,
        "created_on": plan.created_on.isoformat(),
        "created_by": plan.created_by,
        "restructured": money(plan.restructured_minor),
        "currency": plan.currency,
        "paid": money(state.paid_minor) if state else None,
        "instalments": [
            {
                "seq": line.seq,
                "due_on": line.due_on.isoformat(),
                "amount": money(line.amount_minor),
                "missed": line.seq in missed,
            }
            for line in lines
        ],
        "break_after_missed": plan.missed_allowed,
        "resolved_on": plan.resolved_on.isoformat() if plan.resolved_on else None,
    }
