"""The demo's month: history, the events of a lender's day, and what each flow makes of them.

A freshly seeded population has no past, so the demo first runs the daily outreach for the day
`HISTORY_DAYS` before the demo date (final demand letters go out, lines are frozen, accounts
are placed and reported) and reconciles receipts. Then, as between two runs at a lender, a few
customers act: one pays what they promised, one frozen account pays everything it owes, one
agrees a payment plan. The demo date's run then shows promises kept and broken, a plan's
letter, and the cure reversing a freeze; the legal flow opens cases whose packets verify.
Every step is idempotent, so running the demo again changes nothing.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import exists, func, select

from dunning.db.tables import ACCOUNT, ACTION, CUSTOMER, PAYMENT, PLAN, PROMISE, RUN
from dunning.services import lifecycle
from dunning.services.daily import DAILY_OUTREACH, Outreach, poll_receipts, run_daily_outreach
from dunning.services.delinquency import overdue_by_account
from dunning.services.imports.files import record_payments

HISTORY_DAYS = 30
EVENT_PREFIX = "DEMO-EVENT-"
STOPS = (
    "deceased",
    "bankruptcy",
    "attorney_on_file",
    "cease_communication",
    "dispute_open",
    "hardship_hold",
)


def history_day(as_of: date) -> date:
    return as_of - timedelta(days=HISTORY_DAYS)


def run_history(outreach: Outreach, as_of: date) -> dict[str, Any] | None:
    """The daily outreach of the history day and its receipts, unless already done."""
    day = history_day(as_of)
    with outreach.runtime.engine.connect() as connection:
        done = connection.execute(
            select(RUN.c.id).where(
                RUN.c.flow == DAILY_OUTREACH, RUN.c.as_of == day, RUN.c.status == "completed"
            )
        ).first()
    if done is not None:
        return None
    summary = run_daily_outreach(outreach, day)
    poll_receipts(outreach)
    return summary


def _overdue(connection: Any, account_id: int, as_of: date) -> int:
    overdue = overdue_by_account(as_of, account_id, account_id)
    return int(connection.execute(select(overdue.c.overdue_minor)).scalar() or 0)


def stage_events(outreach: Outreach, as_of: date) -> dict[str, Any]:
    """A kept promise, a cure of a frozen account, a new payment plan (once each)."""
    events: dict[str, Any] = {}
    with outreach.runtime.unit_of_work() as connection:
        staged = connection.execute(
            select(func.count()).where(PAYMENT.c.external_id.like(f"{EVENT_PREFIX}%"))
        ).scalar_one()
        if staged:
            return {"already_staged": True}
        # A customer pays the amount promised, before the date: the promise is kept.
        promise = connection.execute(
            select(PROMISE.c.account_id, PROMISE.c.amount_minor)
            .where(PROMISE.c.status == "active", PROMISE.c.promised_on >= as_of)
            .order_by(PROMISE.c.id)
            .limit(1)
        ).first()
        payments = []
        if promise is not None:
            payments.append(
                {
                    "external_id": f"{EVENT_PREFIX}PROMISE",
                    "account_id": promise[0],
                    "amount_minor": promise[1],
                    "paid_on": as_of,
                    "method": "app",
                }
            )
            events["promise_paid_account"] = promise[0]
        # A frozen account pays everything overdue: it cures, and the freeze is reversed.
        frozen = connection.execute(
            select(ACTION.c.account_id)
            .where(ACTION.c.kind == "credit_freeze", ACTION.c.status == "done")
            .order_by(ACTION.c.id)
            .limit(1)
        ).first()
        if frozen is not None:
            owed = _overdue(connection, frozen[0], as_of)
            if owed:
                payments.append(
                    {
                        "external_id": f"{EVENT_PREFIX}CURE",
                        "account_id": frozen[0],
                        "amount_minor": owed,
                        "paid_on": as_of,
                        "method": "bank",
                    }
                )
                events["cured_account"] = frozen[0]
        if payments:
            record_payments(connection, payments)
            lifecycle.review_treatments(
                connection, as_of, None, account_ids=[p["account_id"] for p in payments]
            )
    with outreach.runtime.unit_of_work() as connection:
        # A customer who cannot pay agrees a plan (协商分期还款) for what is overdue.
        has_plan = connection.execute(select(PLAN.c.id).limit(1)).first()
        if has_plan is None:
            overdue = overdue_by_account(as_of)
            candidate = connection.execute(
                select(ACCOUNT.c.external_id)
                .join(overdue, overdue.c.account_id == ACCOUNT.c.id)
                .join(CUSTOMER, CUSTOMER.c.id == ACCOUNT.c.customer_id)
                .where(
                    ACCOUNT.c.status == "open",
                    overdue.c.oldest_due_on >= as_of - timedelta(days=20),
                    *(CUSTOMER.c[flag].is_(False) for flag in STOPS),
                    ~exists().where(
                        PROMISE.c.account_id == ACCOUNT.c.id, PROMISE.c.status == "active"
                    ),
                )
                .order_by(ACCOUNT.c.id)
                .limit(1)
            ).first()
            if candidate is not None:
                events["plan"] = lifecycle.create_plan(
                    connection,
                    candidate[0],
                    instalments=3,
                    every_days=30,
                    first_due_on=as_of + timedelta(days=7),
                    user="agent.demo",
                    note="3 monthly instalments agreed by phone",
                    today=as_of,
                    policy=outreach.strategy.plans,
                )
    return events


def action_counts(outreach: Outreach) -> dict[str, dict[str, int]]:
    """Actions by kind and status, for the demo's report."""
    counts: dict[str, dict[str, int]] = {}
    with outreach.runtime.engine.connect() as connection:
        for kind, status, n in connection.execute(
            select(ACTION.c.kind, ACTION.c.status, func.count()).group_by(
                ACTION.c.kind, ACTION.c.status
            )
        ):
            counts.setdefault(kind, {})[status] = n
    return counts
