"""Beyond messages: promises to pay, payment plans, grace periods, and cure.

Each daily run first brings these up to date for its date (promises kept or broken, plans
completed or broken), and reviews accounts with treatments in force: an account that has
cured gets its credit line restored, its placement recalled and its registry report
corrected; a placed account with a dispute or a payment plan is recalled. Payments recorded
between runs trigger the same cure review at once.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Connection, and_, exists, func, select, update

from dunning.config.strategy import PlanPolicy
from dunning.db.lifecycle_models import AccountAction, GracePeriod, PaymentPlan, PlanInstalment
from dunning.db.models import Account, Customer, Payment, PromiseToPay, utcnow
from dunning.db.outreach_models import OutboxMessage
from dunning.db.sql import chunked, insert_ignoring_conflicts
from dunning.domain.money import parse_amount, to_decimal
from dunning.errors import DunningError, NotFound
from dunning.services.delinquency import in_accounts, overdue_by_account
from dunning.services.optouts import hold_suppressed
from dunning.types import ActionKind, OutboxStatus, PromiseStatus, Suppression

ACCOUNT = Account.__table__  # type: ignore[attr-defined]
CUSTOMER = Customer.__table__  # type: ignore[attr-defined]
PAYMENT = Payment.__table__  # type: ignore[attr-defined]
PROMISE = PromiseToPay.__table__  # type: ignore[attr-defined]
GRACE = GracePeriod.__table__  # type: ignore[attr-defined]
PLAN = PaymentPlan.__table__  # type: ignore[attr-defined]
PLAN_LINE = PlanInstalment.__table__  # type: ignore[attr-defined]
ACTION = AccountAction.__table__  # type: ignore[attr-defined]
OUTBOX = OutboxMessage.__table__  # type: ignore[attr-defined]

FORWARD = (ActionKind.CREDIT_FREEZE, ActionKind.AGENCY_PLACEMENT, ActionKind.REGISTRY_REPORT)
REVERSAL = {
    ActionKind.CREDIT_FREEZE: ActionKind.CREDIT_RESTORE,
    ActionKind.AGENCY_PLACEMENT: ActionKind.AGENCY_RECALL,
    ActionKind.REGISTRY_REPORT: ActionKind.REGISTRY_CORRECTION,
}
IN_FORCE = ("planned", "sending", "done")
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


# Grace periods ----------------------------------------------------------------------------


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


# Payment plans ------------------------------------------------------------------------------


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


# Cure and treatments in force -------------------------------------------------------------


def treatment_in_force(kind: ActionKind, lo: int, hi: int) -> Any:
    """SQL condition: the account (ACCOUNT.c.id, one of the batch lo..hi) has a `kind` action
    done and not reversed. A reversal is on its forward action's account."""
    forward = ACTION.alias("forward_in_force")
    return exists().where(
        forward.c.account_id == ACCOUNT.c.id,
        forward.c.kind == kind.value,
        _in_force(forward, lo, hi),
    )


def _in_force(forward: Any, lo: int | None = None, hi: int | None = None) -> Any:
    """SQL condition: the `forward` action row (of an account lo..hi) is done and no reversal
    has undone it yet. A reversal is on its forward action's account."""
    reversal = ACTION.alias("reversal")
    return and_(
        in_accounts(forward.c.account_id, lo, hi),
        forward.c.kind.in_([k.value for k in FORWARD]),
        forward.c.status == "done",
        ~exists().where(
            reversal.c.reverses_id == forward.c.id,
            reversal.c.account_id == forward.c.account_id,
            in_accounts(reversal.c.account_id, lo, hi),
            reversal.c.status.in_(IN_FORCE),
        ),
    )


def treatments_in_force(
    connection: Connection, account_ids: Sequence[int] | None = None
) -> list[Any]:
    """Done forward actions (freeze, placement, report) that no reversal has undone yet."""
    forward = ACTION.alias("forward")
    columns = (
        forward.c.id,
        forward.c.account_id,
        forward.c.kind,
        forward.c.reference,
        forward.c.payload,
    )
    if account_ids is None:
        return list(connection.execute(select(*columns).where(_in_force(forward))))
    ids = sorted(set(account_ids))
    if not ids:
        return []
    query = select(*columns).where(
        _in_force(forward, ids[0], ids[-1]), forward.c.account_id.in_(ids)
    )
    return list(connection.execute(query))


def review_treatments(
    connection: Connection,
    as_of: date,
    run_id: int | None,
    account_ids: Sequence[int] | None = None,
) -> dict[str, int]:
    """Plan reversals: all of them for cured accounts; a recall for disputes and plans.

    Also cancels the cured accounts' messages still waiting to go out. Reviews the given
    accounts, or every account with a treatment in force, CHUNK accounts at a time.
    """
    totals = {"cured": 0, "reversals": 0, "cancelled_messages": 0}
    if account_ids is not None:
        chunks: Iterable[Sequence[int]] = chunked(sorted(set(account_ids)), CHUNK)
    else:
        chunks = _accounts_in_force(connection)
    for chunk in chunks:
        for key, value in _review_accounts(connection, as_of, run_id, chunk).items():
            totals[key] += value
    return totals


def _accounts_in_force(connection: Connection) -> Iterator[Sequence[int]]:
    """Ids of the accounts with a treatment in force, ascending, CHUNK at a time.

    Read a range of account ids at a time, each query bounded by its range (see in_accounts):
    paging by "ids after the last" made every page compute the whole book's treatments."""
    forward = ACTION.alias("forward")
    top = connection.execute(select(func.max(ACTION.c.account_id))).scalar() or 0
    span = CHUNK * 50
    for lo in range(0, top + 1, span):
        ids = connection.execute(
            select(forward.c.account_id)
            .where(_in_force(forward, lo, lo + span - 1))
            .group_by(forward.c.account_id)
            .order_by(forward.c.account_id)
        ).scalars()
        yield from chunked(list(ids), CHUNK)


def _review_accounts(
    connection: Connection, as_of: date, run_id: int | None, account_ids: Sequence[int]
) -> dict[str, int]:
    """review_treatments for one chunk of accounts (ascending ids)."""
    treatments = treatments_in_force(connection, account_ids)
    candidates = sorted(set(account_ids))
    if not candidates:
        return {"cured": 0, "reversals": 0, "cancelled_messages": 0}
    delinquent: set[int] = set()
    dispute: set[int] = set()
    planned: set[int] = set()
    externals: dict[int, str] = {}
    overdue = overdue_by_account(as_of, candidates[0], candidates[-1])
    for chunk in chunked(candidates, 900):
        delinquent.update(
            r[0]
            for r in connection.execute(
                select(overdue.c.account_id).where(overdue.c.account_id.in_(chunk))
            )
        )
        for account_id, external_id, disputed, has_plan in connection.execute(
            select(
                ACCOUNT.c.id,
                ACCOUNT.c.external_id,
                CUSTOMER.c.dispute_open,
                exists().where(PLAN.c.account_id == ACCOUNT.c.id, PLAN.c.status == "active"),
            )
            .join(CUSTOMER, CUSTOMER.c.id == ACCOUNT.c.customer_id)
            .where(ACCOUNT.c.id.in_(chunk))
        ):
            externals[account_id] = external_id
            if disputed:
                dispute.add(account_id)
            if has_plan:
                planned.add(account_id)
    cured = [a for a in candidates if a not in delinquent]
    now = utcnow()
    from dunning.services.outreach import idempotency_key

    rows = []
    for treatment in treatments:
        account_id = treatment.account_id
        kind = ActionKind(treatment.kind)
        reason = None
        if account_id not in delinquent:
            reason = "cured"
        elif kind == ActionKind.AGENCY_PLACEMENT and account_id in dispute:
            reason = "dispute"
        elif kind == ActionKind.AGENCY_PLACEMENT and account_id in planned:
            reason = "payment_plan"
        if reason is None:
            continue
        reverse = REVERSAL[kind]
        rows.append(
            {
                "idempotency_key": idempotency_key(
                    externals[account_id], as_of, f"reverse-{treatment.id}", reverse.value
                ),
                "run_id": run_id,
                "account_id": account_id,
                "as_of": as_of,
                "kind": reverse.value,
                "step_id": None,
                "reverses_id": treatment.id,
                "status": "planned",
                "payload": reversal_payload(reverse, treatment, reason, as_of),
                "attempts": 0,
                "created_at": now,
                "updated_at": now,
            }
        )
    insert_ignoring_conflicts(connection, ACTION, rows, "idempotency_key")
    cancelled = 0
    for chunk in chunked(cured, 900):
        cancelled += (
            connection.execute(
                update(OUTBOX)
                .where(
                    OUTBOX.c.account_id.in_(chunk), OUTBOX.c.status == OutboxStatus.PLANNED.value
                )
                .values(
                    status=OutboxStatus.CANCELLED.value,
                    hold_reason=Suppression.PAID.value,
                    final_at=now,
                    updated_at=now,
                )
            ).rowcount
            or 0
        )
        connection.execute(
            update(ACTION)
            .where(
                ACTION.c.account_id.in_(chunk),
                ACTION.c.status == "planned",
                ACTION.c.kind.in_([k.value for k in FORWARD]),
            )
            .values(status="cancelled", hold_reason=Suppression.PAID.value, updated_at=now)
        )
    return {"cured": len(cured), "reversals": len(rows), "cancelled_messages": cancelled}


def reversal_payload(kind: ActionKind, treatment: Any, reason: str, as_of: date) -> dict[str, Any]:
    """Only what the other side needs to undo what it did."""
    original = treatment.payload or {}
    if kind == ActionKind.CREDIT_RESTORE:
        return {
            "restore_limit_minor": original.get("credit_limit_minor"),
            "currency": original.get("currency"),
            "reason": reason,
        }
    if kind == ActionKind.AGENCY_RECALL:
        return {
            "agency": original.get("agency"),
            "placement_reference": treatment.reference,
            "reason": reason,
        }
    return {
        "report_date": as_of.isoformat(),
        "customer_ref": original.get("customer_ref"),
        "report_reference": treatment.reference,
        "status": "current" if reason == "cured" else reason,
        "reason": reason,
    }
