"""Amounts as of an earlier date, from the command line: a payment made after the date counts in
neither the overdue amount nor the balances of a report or a legal run for that date
(`accounts tiers --as-of`, `run legal --as-of`), as it already did not count in the DPD; a
backfilled day's message, sent today, states what is owed today."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from dunning.bootstrap import Runtime
from dunning.cli._common import STATE
from dunning.db.models import Account
from tests.helpers import invoke, write_csv
from tests.integration.test_legal_escalation import AS_OF, add_eligible, documents

pytestmark = pytest.mark.usefixtures("env")

PAID_ON = "2026-11-10"
"""The one payment, 60.00: it pays the fees (25.00), the interest (10.00) and 25.00 of
principal, and 60.00 of the first instalment (due 2026-10-01)."""


def _import(capsys: pytest.CaptureFixture[str], kind: str, path: Path) -> None:
    result = invoke(capsys, "import", kind, str(path))
    assert result.code == 0, result.err


def _book(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """One US account: 100.00 due on the 1st of October, November and December."""
    _import(
        capsys,
        "customers",
        write_csv(
            tmp_path / "customers.csv",
            ["external_id", "name", "locale", "time_zone", "address_line1", "city", "region",
             "postal_code", "country"],
            [["C1", "Ann Lee", "en-US", "America/Chicago", "1 Main St", "Chicago", "IL",
              "60601", "US"]],
        ),
    )  # fmt: skip
    _import(
        capsys,
        "accounts",
        write_csv(
            tmp_path / "accounts.csv",
            ["external_id", "customer_external_id", "product", "currency", "jurisdiction",
             "principal", "interest", "fees", "opened_on"],
            [["A1", "C1", "loan", "USD", "US", "1000.00", "10.00", "25.00", "2026-09-01"]],
        ),
    )  # fmt: skip
    _import(
        capsys,
        "instalments",
        write_csv(
            tmp_path / "instalments.csv",
            ["account_external_id", "seq", "due_on", "amount_due"],
            [["A1", n, f"2026-{month}-01", "100.00"] for n, month in ((1, 10), (2, 11), (3, 12))],
        ),
    )


def _pay(capsys: pytest.CaptureFixture[str], tmp_path: Path, account: str, amount: str) -> None:
    _import(
        capsys,
        "payments",
        write_csv(
            tmp_path / f"payments-{account}.csv",
            ["external_id", "account_external_id", "amount", "paid_on"],
            [[f"P-{account}", account, amount, PAID_ON]],
        ),
    )


def _tiers(capsys: pytest.CaptureFixture[str], day: str) -> list[dict[str, Any]]:
    result = invoke(capsys, "accounts", "tiers", "--as-of", day, "--json")
    assert result.code == 0, result.err
    tiers: list[dict[str, Any]] = result.json()["tiers"]
    return tiers


def test_tiers_of_an_earlier_date_leave_out_a_payment_made_after_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _book(capsys, tmp_path)
    before_payment = _tiers(capsys, "2026-11-05")
    assert [(t["tier"], t["accounts"], t["overdue"]) for t in before_payment] == [
        ("middle", 1, "200.00")  # DPD 35: October's and November's instalments
    ]
    _pay(capsys, tmp_path, "A1", "60.00")
    assert _tiers(capsys, "2026-11-05") == before_payment
    assert [(t["tier"], t["overdue"]) for t in _tiers(capsys, "2026-11-20")] == [
        ("middle", "140.00")  # DPD 50, after the payment
    ]
    table = invoke(capsys, "accounts", "tiers", "--as-of", "2026-11-05")
    assert "$200.00" in table.out and "$140.00" not in table.out


def test_a_backfilled_days_letter_states_what_is_owed_today_and_dates_from_today(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """2026-11-01 is DPD 31: the middle tier's letter, with the balances and the validation
    notice. Run on 2026-11-24, after the payment of 2026-11-10 was imported, the step is the
    one due on the 1st, but the letter goes out on the 24th: it states what is owed then
    (asking for the $100.00 owed on the 1st would misstate the debt), and its pay-by date and
    dispute deadline count from the 24th (from the 1st, the customer would lose 23 days)."""
    _book(capsys, tmp_path)
    _pay(capsys, tmp_path, "A1", "60.00")
    monkeypatch.setattr(STATE, "clock", lambda: datetime(2026, 11, 24, 15, 0, tzinfo=UTC))
    ran = invoke(capsys, "run", "daily", "--as-of", "2026-11-01", "--in-process", "--json")
    assert ran.code == 0, ran.err
    listed = invoke(capsys, "outbox", "list", "--as-of", "2026-11-01", "--unmask", "--json").json()
    (letter,) = [m for m in listed if m["channel"] == "letter"]
    assert (letter["tier"], letter["step_id"]) == ("middle", "middle-letter")
    body = " ".join(letter["body"].split())
    assert "Please pay $40.00 by December 1, 2026" in body  # October's, less the payment
    assert "$975.00" in body  # the balance today: principal only, fees and interest paid
    # The notice itemizes from the oldest unpaid due date: $1,035.00 then, $60.00 paid since.
    assert "$1,035.00" in body and "$60.00" in body
    assert "January 1, 2027" in body  # 5 business days (Thanksgiving skipped) + 30 days
    assert "$100.00" not in body and "$1,000.00" not in body


def test_a_legal_run_for_an_earlier_date_claims_what_was_owed_then(
    capsys: pytest.CaptureFixture[str], runtime: Runtime, tmp_path: Path
) -> None:
    with runtime.unit_of_work() as c:
        account_id = add_eligible(c, documents(runtime))  # a claim of 20,000.00 on AS_OF
        (account,) = c.execute(
            select(Account.__table__.c.external_id).where(  # type: ignore[attr-defined]
                Account.__table__.c.id == account_id  # type: ignore[attr-defined]
            )
        ).one()
    _import(
        capsys,
        "payments",
        write_csv(
            tmp_path / "payments.csv",
            ["external_id", "account_external_id", "amount", "paid_on"],
            [["P-1", account, "500.00", str(AS_OF + timedelta(days=3))]],
        ),
    )
    ran = invoke(capsys, "run", "legal", "--as-of", AS_OF.isoformat(), "--in-process", "--json")
    assert ran.code == 0, ran.err
    assert ran.json()["accounts"]["by_outcome"] == {"opened": 1, "refused": 0}
    shown = invoke(capsys, "cases", "show", "1", "--json").json()
    assert shown["claim"] == "20000.00"  # 19,500.00 is owed now
