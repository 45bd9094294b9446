"""Beyond messages: promises, plans, grace, actions, and cure reversing each action."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from adapters.actions import read_registry
from dunning.bootstrap import Runtime
from dunning.db.models import Customer
from dunning.db.tables import ACCOUNT, ACTION, OUTBOX, PLAN, PROMISE
from dunning.services import lifecycle
from dunning.services.daily import Outreach
from dunning.services.daily.run import run_daily_outreach
from dunning.services.imports.files import record_payments
from sandbox import agency_ledger, core_banking_ledger
from tests.factories import OPEN_FOR_ALL, add_account
from tests.helpers import outreach_at

D = OPEN_FOR_ALL.date()


def day(n: int) -> date:
    return D + timedelta(days=n)


@pytest.fixture
def env(runtime: Runtime) -> Iterator[Outreach]:
    parts = outreach_at(runtime)
    yield parts
    parts.close()


def run(env: Outreach, day: date) -> dict[str, Any]:
    """The daily run of `day`, its clock at that day's contact window."""
    moment = datetime.combine(day, OPEN_FOR_ALL.time(), tzinfo=UTC)
    parts = outreach_at(env.runtime, moment)
    try:
        return run_daily_outreach(parts, day)
    finally:
        parts.close()


def pay(env: Outreach, account_id: int, amount_minor: int, day: date, ref: str) -> None:
    with env.runtime.unit_of_work() as c:
        record_payments(
            c,
            [
                {
                    "external_id": ref,
                    "account_id": account_id,
                    "amount_minor": amount_minor,
                    "paid_on": day,
                    "method": "app",
                }
            ],
        )
        lifecycle.review_treatments(c, day, None, account_ids=[account_id])


def rows(env: Outreach, table: Any, account_id: int) -> list[Any]:
    with env.runtime.engine.connect() as c:
        return list(
            c.execute(select(table).where(table.c.account_id == account_id).order_by(table.c.id))
        )


def external(env: Outreach, account_id: int) -> str:
    with env.runtime.engine.connect() as c:
        return str(
            c.execute(select(ACCOUNT.c.external_id).where(ACCOUNT.c.id == account_id)).scalar_one()
        )


def test_promise_kept_pauses_reminders_then_resolves(env: Outreach) -> None:
    with env.runtime.unit_of_work() as c:
        account = add_account(c, dpd=3, as_of=D, amount_minor=100_00)
        c.execute(
            PROMISE.insert().values(
                account_id=account,
                amount_minor=60_00,
                promised_on=day(5),
                channel="phone",
                created_by="agent",
                created_at=OPEN_FOR_ALL - timedelta(days=1),
            )
        )
    run(env, D)
    (held,) = rows(env, OUTBOX, account)
    assert (held.status, held.suppression) == ("held", "promise_to_pay")
    pay(env, account, 60_00, day(1), "P1")
    summary = run(env, day(4))  # DPD 7: an SMS is due, and the promise is now kept
    assert summary["lifecycle"]["promises"] == {"kept": 1, "broken": 0}
    (promise,) = rows(env, PROMISE, account)
    assert (promise.status, promise.resolved_on) == ("kept", day(4))
    latest = rows(env, OUTBOX, account)[-1]
    assert (latest.step_id, latest.status) == ("early-sms", "sent")


def test_promise_broken_resumes_the_cadence_with_a_broken_promise_message(
    env: Outreach,
) -> None:
    with env.runtime.unit_of_work() as c:
        account = add_account(c, dpd=3, as_of=D)
        c.execute(
            PROMISE.insert().values(
                account_id=account,
                amount_minor=120_00,
                promised_on=day(1),
                channel="phone",
                created_by="agent",
                created_at=OPEN_FOR_ALL - timedelta(days=1),
            )
        )
    run(env, D)
    summary = run(env, day(2))
    assert summary["lifecycle"]["promises"] == {"kept": 0, "broken": 1}
    (promise,) = rows(env, PROMISE, account)
    assert promise.status == "broken"
    messages = {m.step_id: m for m in rows(env, OUTBOX, account)}
    broken = messages["broken-promise"]
    assert broken.status == "sent" and broken.template_id == "sms/early/broken_promise.en-US"
    assert "120.00" in broken.body
    assert run(env, day(2))["this_run"]["new_messages"] == 0  # once, however often it runs


def test_plan_pauses_the_cadence_sends_its_letter_and_completes(env: Outreach) -> None:
    with env.runtime.unit_of_work() as c:
        account = add_account(c, dpd=10, as_of=D, amount_minor=90_00)
    with env.runtime.unit_of_work() as c:
        plan_id = lifecycle.create_plan(
            c,
            external(env, account),
            instalments=3,
            every_days=30,
            first_due_on=day(3),
            user="agent",
            note=None,
            today=D,
            policy=env.strategy.plans,
        )
    run(env, day(4))  # DPD 14: the cadence's SMS is due, but the plan holds it
    messages = {m.step_id: m for m in rows(env, OUTBOX, account)}
    assert (messages["early-sms"].status, messages["early-sms"].suppression) == (
        "held",
        "payment_plan",
    )
    letter = messages[f"plan-{plan_id}-confirmation"]
    assert letter.status == "sent" and letter.template_id == "letter/plan/confirmation.en-US"
    run(env, day(30))  # a reminder 3 days before the second instalment (D+33)
    assert f"plan-{plan_id}-2-reminder" in {m.step_id for m in rows(env, OUTBOX, account)}
    for n, paid_on in enumerate((day(3), day(33), day(63))):
        pay(env, account, 30_00, paid_on, f"PP{n}")
    summary = run(env, day(64))
    assert summary["lifecycle"]["plans"] == {"completed": 1, "broken": 0}
    (plan,) = rows(env, PLAN, account)
    assert plan.status == "completed"


def test_plan_broken_after_missed_instalments_resumes_the_cadence(env: Outreach) -> None:
    with env.runtime.unit_of_work() as c:
        account = add_account(c, dpd=5, as_of=D, amount_minor=90_00)
    with env.runtime.unit_of_work() as c:
        lifecycle.create_plan(
            c,
            external(env, account),
            instalments=3,
            every_days=7,
            first_due_on=day(1),
            user="agent",
            note=None,
            today=D,
            policy=env.strategy.plans,
        )
    summary = run(env, day(9))  # instalments of D+1 and D+8 missed: broken (break_after 2)
    assert summary["lifecycle"]["plans"] == {"completed": 0, "broken": 1}
    (plan,) = rows(env, PLAN, account)
    assert (plan.status, plan.resolved_on) == ("broken", day(9))
    messages = [m for m in rows(env, OUTBOX, account) if m.as_of == day(9)]
    assert [(m.step_id, m.status) for m in messages] == [("early-sms", "sent")]  # DPD 14


def test_grace_period_suppresses_then_the_cadence_returns(env: Outreach) -> None:
    with env.runtime.unit_of_work() as c:
        account = add_account(c, dpd=3, as_of=D)
    with env.runtime.unit_of_work() as c:
        lifecycle.add_grace(
            c,
            external(env, account),
            "grace",
            day(5),
            "job loss",
            "agent",
            D,
            env.strategy.grace.max_days,
        )
    run(env, day(4))  # DPD 7
    run(env, day(11))  # DPD 14, grace over
    found = [(m.as_of, m.status, m.suppression) for m in rows(env, OUTBOX, account)]
    assert found == [(day(4), "held", "grace"), (day(11), "sent", None)]


def test_actions_go_once_and_cure_reverses_each_of_them(env: Outreach) -> None:
    state_dir = env.runtime.project.state_dir
    with env.runtime.unit_of_work() as c:
        frozen = add_account(c, dpd=31, as_of=D)
        placed = add_account(c, dpd=45, as_of=D, jurisdiction="CN")
        reported = add_account(c, dpd=61, as_of=D)
    summary = run(env, D)
    actions = {
        a.account_id: a
        for a in (
            *rows(env, ACTION, frozen),
            *rows(env, ACTION, placed),
            *rows(env, ACTION, reported),
        )
    }
    assert {(a.kind, a.status) for a in actions.values()} == {
        ("credit_freeze", "done"),
        ("agency_placement", "done"),
        ("registry_report", "done"),
    }
    assert actions[placed].cost_minor == 18_00  # 15% of the 120.00 overdue
    assert summary["this_run"]["dispatch"]["actions"]["done"] == 3
    line = core_banking_ledger(state_dir).credit_line(external(env, frozen))
    assert line is not None and line.state == "frozen" and line.limit_minor == 0
    (placement,) = agency_ledger(state_dir).placements(external(env, placed))
    assert placement.state == "open" and placement.agency == "huaxin"
    assert [r.record_type for r in read_registry(state_dir / "registry")] == ["REPORT"]
    rerun = run(env, D)  # exactly once: the rerun does nothing new
    assert rerun["this_run"]["dispatch"]["actions"].get("done", 0) == 0
    assert len(rows(env, ACTION, placed)) == 1

    # A waiting message of the cured account is cancelled, not sent.
    with env.runtime.unit_of_work() as c:
        c.execute(
            update(OUTBOX)
            .where(OUTBOX.c.account_id == frozen)
            .values(status="planned", not_before=OPEN_FOR_ALL + timedelta(hours=12))
        )
    for account in (frozen, placed, reported):
        pay(env, account, 120_00, day(1), f"CURE{account}")
    reversals = {
        a.kind: a
        for account in (frozen, placed, reported)
        for a in rows(env, ACTION, account)
        if a.reverses_id is not None
    }
    assert set(reversals) == {"credit_restore", "agency_recall", "registry_correction"}
    assert all(a.status == "planned" for a in reversals.values())
    assert {m.status for m in rows(env, OUTBOX, frozen)} == {"cancelled"}
    run(env, day(1))
    line = core_banking_ledger(state_dir).credit_line(external(env, frozen))
    assert line is not None and line.state == "restored" and line.limit_minor > 0
    (placement,) = agency_ledger(state_dir).placements(external(env, placed))
    assert (placement.state, placement.recall_reason) == ("recalled", "cured")
    registry = read_registry(state_dir / "registry")
    assert [r.record_type for r in registry] == ["REPORT", "CORRECTION"]
    assert registry[1].corrects == f"{D.isoformat()}/{registry[0].line_id}"


def test_stops_hold_actions_and_a_dispute_recalls_a_placement(env: Outreach) -> None:
    with env.runtime.unit_of_work() as c:
        disputed = add_account(c, dpd=45, as_of=D, dispute_open=True)
        placed = add_account(c, dpd=45, as_of=D)
    run(env, D)
    (held,) = rows(env, ACTION, disputed)
    assert (held.kind, held.status, held.suppression) == ("agency_placement", "held", "dispute")
    with env.runtime.unit_of_work() as c:
        c.execute(
            update(Customer.__table__)  # type: ignore[attr-defined]
            .where(
                Customer.__table__.c.id
                == select(ACCOUNT.c.customer_id)  # type: ignore[attr-defined]
                .where(ACCOUNT.c.id == placed)
                .scalar_subquery()
            )
            .values(dispute_open=True)
        )
    run(env, day(1))
    kinds = [(a.kind, a.status) for a in rows(env, ACTION, placed)]
    assert kinds == [("agency_placement", "done"), ("agency_recall", "done")]
    (placement,) = agency_ledger(env.runtime.project.state_dir).placements(external(env, placed))
    assert placement.recall_reason == "dispute"
