"""Legal escalation on a real database: every refusal recorded, cases opened once, review flags,
transitions with history, and the whole chain from a real final demand letter."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, select, update

from dunning.bootstrap import Runtime
from dunning.db.documents import DocumentStore
from dunning.db.tables import (
    ACCOUNT,
    CASE,
    CUSTOMER,
    EVENT,
    OUTBOX,
    PAYMENT,
    PLAN,
    REVIEW,
    RUN,
)
from dunning.errors import InvalidTransition
from dunning.legal.cases import list_cases, list_reviews, show_case, transition_case
from dunning.legal.service import run_legal_escalation
from tests.factories import add_account

AS_OF = date(2026, 11, 24)

_keys = itertools.count(1)


def documents(runtime: Runtime) -> DocumentStore:
    return DocumentStore(runtime.project.state_dir / "documents")


def set_balance(connection: Connection, account_id: int, principal_minor: int) -> None:
    """The whole balance becomes `principal_minor` (interest, fees and penalty zero)."""
    connection.execute(
        update(ACCOUNT)
        .where(ACCOUNT.c.id == account_id)
        .values(principal_minor=principal_minor, interest_minor=0, fees_minor=0, penalty_minor=0)
    )


def add_message(
    connection: Connection,
    store: DocumentStore,
    account_id: int,
    *,
    letter_date: date,
    status: str = "delivered",
    step_id: str = "late-letter",
    channel: str = "letter",
    template: str = "final_demand",
    pdf: bytes | None = None,
) -> int:
    """An outbox message as the daily outreach leaves it: a run, the stored letter PDF, the send
    answer and (for final statuses) the gateway's receipt."""
    account = connection.execute(
        select(ACCOUNT.c.customer_id, CUSTOMER.c.locale)
        .join(CUSTOMER, CUSTOMER.c.id == ACCOUNT.c.customer_id)
        .where(ACCOUNT.c.id == account_id)
    ).one()
    run_id = connection.execute(
        RUN.insert().values(flow="daily-outreach", as_of=letter_date, status="completed")
    ).inserted_primary_key[0]
    key = f"test-{next(_keys):06d}"
    path = digest = None
    if channel == "letter":
        content = pdf if pdf is not None else f"%PDF-1.7 final demand {key}".encode()
        path, digest = store.put(letter_date, key, content)
    sent_at = datetime.combine(letter_date, datetime.min.time(), UTC) + timedelta(hours=2)
    folder = "late" if step_id.startswith("late") else "middle"
    outbox_id = connection.execute(
        OUTBOX.insert().values(
            idempotency_key=key,
            run_id=run_id,
            account_id=account_id,
            customer_id=account.customer_id,
            as_of=letter_date,
            tier=folder,
            step_id=step_id,
            channel=channel,
            template_id=f"{channel}/{folder}/{template}.{account.locale}",
            template_hash="ab" * 32,
            locale=account.locale,
            recipient="+8613812345678" if channel == "sms" else "1 Main St\nChicago",
            body="text",
            document_path=path,
            document_sha256=digest,
            status=status,
            gateway_message_id=f"gw-{key}",
            sent_at=sent_at,
            final_at=sent_at + timedelta(hours=20) if status != "sent" else None,
        )
    ).inserted_primary_key[0]
    connection.execute(
        EVENT.insert().values(
            outbox_id=outbox_id, status="sent", source="send", occurred_at=sent_at
        )
    )
    if status in {"delivered", "failed", "undeliverable"}:
        connection.execute(
            EVENT.insert().values(
                outbox_id=outbox_id,
                status=status,
                source="poll",
                occurred_at=sent_at + timedelta(hours=20),
                event_id=f"evt-{key}",
            )
        )
    return int(outbox_id)


def add_eligible(
    connection: Connection,
    store: DocumentStore,
    *,
    jurisdiction: str = "CN",
    balance_minor: int = 20_000_00,
    dpd: int = 120,
    demand_days_ago: int = 40,
    **customer: Any,
) -> int:
    """An account that clears every rule of config/legal.yaml on AS_OF."""
    account_id = add_account(
        connection, dpd=dpd, as_of=AS_OF, jurisdiction=jurisdiction, **customer
    )
    set_balance(connection, account_id, balance_minor)
    add_message(connection, store, account_id, letter_date=AS_OF - timedelta(days=demand_days_ago))
    return account_id


def reviews(runtime: Runtime, run_id: int) -> dict[int, tuple[bool, str | None]]:
    with runtime.engine.connect() as c:
        rows = c.execute(
            select(REVIEW.c.account_id, REVIEW.c.eligible, REVIEW.c.reason).where(
                REVIEW.c.run_id == run_id
            )
        )
        return {account_id: (eligible, reason) for account_id, eligible, reason in rows}


def cases(runtime: Runtime) -> list[dict[str, Any]]:
    with runtime.engine.connect() as c:
        return [dict(r._mapping) for r in c.execute(select(CASE).order_by(CASE.c.id))]


def test_every_account_considered_gets_its_outcome(runtime: Runtime) -> None:
    store = documents(runtime)
    with runtime.unit_of_work() as c:
        plan: dict[str, int] = {
            "eligible-cn": add_eligible(c, store),
            "eligible-us": add_eligible(c, store, jurisdiction="US", balance_minor=8_000_00),
            "dpd-75": add_eligible(c, store, dpd=75),
            "small": add_eligible(c, store, balance_minor=1_500_00),
            "dispute": add_eligible(c, store, dispute_open=True),
            "bankruptcy": add_eligible(
                c, store, jurisdiction="US", bankruptcy=True, balance_minor=8_000_00
            ),
            "hardship": add_eligible(c, store, hardship_hold=True),
            "time-barred": add_eligible(c, store, dpd=1200),
            "not-worth-it": add_eligible(c, store, balance_minor=5_000_00),
            "too-recent": add_eligible(c, store, demand_days_ago=10),
        }
        plan["promise"] = add_account(c, dpd=120, as_of=AS_OF, jurisdiction="CN", promise=True)
        set_balance(c, plan["promise"], 20_000_00)
        add_message(c, store, plan["promise"], letter_date=AS_OF - timedelta(days=40))
        plan["plan"] = add_eligible(c, store)
        c.execute(
            PLAN.insert().values(
                account_id=plan["plan"],
                status="active",
                created_on=AS_OF,
                created_by="agent",
                restructured_minor=20_000_00,
                currency="CNY",
                instalments=6,
                first_due_on=AS_OF + timedelta(days=30),
                missed_allowed=1,
            )
        )
        plan["no-letter"] = add_account(c, dpd=120, as_of=AS_OF, jurisdiction="CN")
        set_balance(c, plan["no-letter"], 20_000_00)
        plan["letter-failed"] = add_account(c, dpd=120, as_of=AS_OF, jurisdiction="CN")
        set_balance(c, plan["letter-failed"], 20_000_00)
        add_message(
            c,
            store,
            plan["letter-failed"],
            letter_date=AS_OF - timedelta(days=40),
            status="undeliverable",
        )
        plan["other-letter"] = add_account(c, dpd=120, as_of=AS_OF, jurisdiction="CN")
        set_balance(c, plan["other-letter"], 20_000_00)
        add_message(
            c,
            store,
            plan["other-letter"],
            letter_date=AS_OF - timedelta(days=80),
            step_id="middle-letter",
            template="notice",
        )
        early = add_account(c, dpd=20, as_of=AS_OF, jurisdiction="CN")

    summary = run_legal_escalation(runtime, AS_OF)

    got = {name: reviews(runtime, summary["run_id"])[i] for name, i in plan.items()}
    assert got == {
        "eligible-cn": (True, None),
        "eligible-us": (True, None),
        "dpd-75": (False, "dpd_below_minimum"),
        "small": (False, "balance_below_minimum"),
        "dispute": (False, "stop.dispute"),
        "bankruptcy": (False, "stop.bankruptcy"),
        "hardship": (False, "hardship_hold"),
        "time-barred": (False, "time_barred"),
        "not-worth-it": (False, "not_worth_it"),
        "too-recent": (False, "final_demand_too_recent"),
        "promise": (False, "promise_active"),
        "plan": (False, "plan_active"),
        "no-letter": (False, "no_final_demand"),
        "letter-failed": (False, "no_final_demand"),
        "other-letter": (False, "no_final_demand"),
    }
    assert early not in reviews(runtime, summary["run_id"])  # early tier: not considered
    assert summary["accounts"]["considered"] == 15
    assert summary["accounts"]["by_outcome"] == {"opened": 2, "refused": 13}
    assert summary["refused_by_reason"]["no_final_demand"] == 3
    assert summary["opened_claims"] == {"CNY": "20000.00", "USD": "8000.00"}
    assert summary["cases_by_status"] == {"proposed": 2}
    opened = cases(runtime)
    assert [(c["account_id"], c["status"], c["claim_minor"]) for c in opened] == [
        (plan["eligible-cn"], "proposed", 20_000_00),
        (plan["eligible-us"], "proposed", 8_000_00),
    ]
    cn = opened[0]
    assert (cn["expected_recovery_minor"], cn["court_fee_minor"], cn["lawyer_fee_minor"]) == (
        7_000_00,
        300_00,
        1_900_00,
    )
    with runtime.engine.connect() as c:
        run = c.execute(select(RUN).where(RUN.c.id == summary["run_id"])).one()
        listed = list_reviews(c, as_of=AS_OF, reason="not_worth_it")
    assert (run.flow, run.status, run.summary) == ("legal-escalation", "completed", summary)
    assert listed["by_reason"]["opened"] == 2
    assert [r["account_id"] for r in listed["reviews"]] == [plan["not-worth-it"]]
    assert "王伟" not in str(summary) and "Ann Lee" not in str(summary)


def test_rerunning_the_same_date_opens_no_second_case(runtime: Runtime) -> None:
    store = documents(runtime)
    with runtime.unit_of_work() as c:
        account = add_eligible(c, store)
    first = run_legal_escalation(runtime, AS_OF)
    second = run_legal_escalation(runtime, AS_OF)
    assert first["accounts"]["by_outcome"]["opened"] == 1
    assert second["accounts"]["by_outcome"]["opened"] == 0
    assert second["refused_by_reason"] == {"already_escalated": 1}
    assert [c["account_id"] for c in cases(runtime)] == [account]
    # The next day too; and a closed (settled) case still blocks a new one.
    with runtime.unit_of_work() as c:
        case_id = cases(runtime)[0]["id"]
        for target in ("approved", "filed", "settled"):
            transition_case(c, case_id, target, user="ana", note="step", on=AS_OF)
    third = run_legal_escalation(runtime, AS_OF + timedelta(days=1))
    assert third["refused_by_reason"] == {"already_escalated": 1}
    assert len(cases(runtime)) == 1


def test_a_withdrawn_case_can_be_proposed_again_after_the_cooldown(runtime: Runtime) -> None:
    store = documents(runtime)
    with runtime.unit_of_work() as c:
        add_eligible(c, store)
    run_legal_escalation(runtime, AS_OF)
    with runtime.unit_of_work() as c:
        transition_case(c, cases(runtime)[0]["id"], "withdrawn", user="ana", note="hold", on=AS_OF)
    soon = run_legal_escalation(runtime, AS_OF + timedelta(days=30))
    assert soon["refused_by_reason"] == {"recently_withdrawn": 1}
    later = run_legal_escalation(runtime, AS_OF + timedelta(days=90))
    assert later["accounts"]["by_outcome"]["opened"] == 1
    assert [c["status"] for c in cases(runtime)] == ["withdrawn", "proposed"]


def test_a_payment_or_a_dispute_flags_a_proposed_case_for_review(runtime: Runtime) -> None:
    store = documents(runtime)
    with runtime.unit_of_work() as c:
        paid = add_eligible(c, store)
        disputed = add_eligible(c, store)
        quiet = add_eligible(c, store)
    run_legal_escalation(runtime, AS_OF)
    by_account = {c["account_id"]: c["id"] for c in cases(runtime)}
    with runtime.unit_of_work() as c:
        c.execute(
            PAYMENT.insert().values(
                external_id="P-1", account_id=paid, amount_minor=500_00, paid_on=AS_OF, method="app"
            )
        )
        customer = c.execute(select(ACCOUNT.c.customer_id).where(ACCOUNT.c.id == disputed))
        c.execute(
            update(CUSTOMER).where(CUSTOMER.c.id == customer.scalar_one()).values(dispute_open=True)
        )
    summary = run_legal_escalation(runtime, AS_OF + timedelta(days=1))
    assert summary["review"] == {
        "flagged": 2,
        "by_reason": {"payment_received": 1, "stop.dispute": 1},
    }
    flagged = {c["account_id"]: (c["needs_review"], c["review_reason"]) for c in cases(runtime)}
    assert flagged == {
        paid: (True, "payment_received"),
        disputed: (True, "stop.dispute"),
        quiet: (False, None),
    }
    # Flagging again the next day adds no second history entry.
    run_legal_escalation(runtime, AS_OF + timedelta(days=2))
    with runtime.engine.connect() as c:
        listed = list_cases(c, needs_review=True)
        kinds = [e["kind"] for e in show_case(c, by_account[paid])["history"]]
    assert {r["id"] for r in listed} == {by_account[paid], by_account[disputed]}
    assert kinds == ["transition", "review"]
    # A flagged case is not approved until someone says they reviewed it.
    with runtime.unit_of_work() as c, pytest.raises(InvalidTransition, match="--reviewed"):
        transition_case(c, by_account[paid], "approved", user="ana", note="go", on=AS_OF)
    with runtime.unit_of_work() as c:
        data = transition_case(
            c,
            by_account[paid],
            "approved",
            user="ana",
            note="paid 500, rest due",
            on=AS_OF + timedelta(days=2),
            reviewed=True,
        )
    assert (data["status"], data["needs_review"], data["review_reason"]) == (
        "approved",
        False,
        None,
    )
    assert data["history"][-1]["note"] == "paid 500, rest due [reviewed: payment_received]"
    # The payment reviewed does not flag it again.
    again = run_legal_escalation(runtime, AS_OF + timedelta(days=3))
    assert again["review"]["by_reason"] == {}


def test_transitions_are_kept_in_the_history_and_invalid_ones_refused(runtime: Runtime) -> None:
    store = documents(runtime)
    with runtime.unit_of_work() as c:
        add_eligible(c, store)
    run_legal_escalation(runtime, AS_OF)
    case_id = cases(runtime)[0]["id"]
    with runtime.unit_of_work() as c, pytest.raises(InvalidTransition, match="cannot become filed"):
        transition_case(c, case_id, "filed", user="ana", note="skip approval", on=AS_OF)
    with runtime.unit_of_work() as c:
        transition_case(c, case_id, "approved", user="ana", note="worth it", on=AS_OF)
        with pytest.raises(InvalidTransition, match="before the case's last date"):
            transition_case(c, case_id, "filed", user="bo", note="x", on=AS_OF - timedelta(days=1))
        transition_case(
            c, case_id, "filed", user="bo", note="court ref 2026-123", on=AS_OF + timedelta(days=5)
        )
        data = transition_case(
            c, case_id, "judgment", user="bo", note="won", on=AS_OF + timedelta(days=60)
        )
    assert (data["approved_on"], data["filed_on"], data["closed_on"]) == (
        "2026-11-24",
        "2026-11-29",
        "2027-01-23",
    )
    assert [(e["from_status"], e["to_status"], e["user"]) for e in data["history"]] == [
        (None, "proposed", "legal-escalation"),
        ("proposed", "approved", "ana"),
        ("approved", "filed", "bo"),
        ("filed", "judgment", "bo"),
    ]
    assert data["customer"] == {"name": "王*"}
    with runtime.engine.connect() as c:
        assert show_case(c, case_id, unmask=True)["customer"]["phone"] == "+8613812345678"
    assert cases(runtime)[0]["open_account_id"] is None
    with runtime.unit_of_work() as c, pytest.raises(InvalidTransition, match="case is closed"):
        transition_case(c, case_id, "withdrawn", user="bo", note="x", on=AS_OF)


def test_schedulers_call_it_with_a_stop_check(runtime: Runtime) -> None:
    from dunning.services.daily import RunStopped

    store = documents(runtime)
    with runtime.unit_of_work() as c:
        add_eligible(c, store)
    with pytest.raises(RunStopped, match="after 0 of 1 batches"):
        run_legal_escalation(runtime, AS_OF, lambda: True)
    summary = run_legal_escalation(runtime, AS_OF, lambda: False)
    assert summary["accounts"]["by_outcome"]["opened"] == 1
    with runtime.engine.connect() as c:
        statuses = c.execute(select(RUN.c.status).where(RUN.c.flow == "legal-escalation"))
        assert [s for (s,) in statuses] == ["failed", "completed"]
