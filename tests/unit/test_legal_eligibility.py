"""The eligibility table: every reason an account is not escalated, and the account that is."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from dunning.config import LegalConfig, load_file
from dunning.legal.eligibility import (
    Candidate,
    FinalDemandLetter,
    Refusal,
    assess,
    limitation_ends,
)
from dunning.types import Suppression

REPO = Path(__file__).resolve().parents[2]
AS_OF = date(2026, 11, 24)


@pytest.fixture(scope="module")
def config() -> LegalConfig:
    return load_file(REPO / "config" / "legal.yaml", LegalConfig, REPO)


def passing(**changes: Any) -> Candidate:
    """A CN account that clears every rule: DPD 120, 20,000 yuan, demand delivered 40 days ago."""
    base = Candidate(
        account_id=1,
        jurisdiction="CN",
        region="上海市",
        currency="CNY",
        product="cash-loan",
        tier="late",
        dpd=120,
        oldest_due_on=AS_OF - timedelta(days=120),
        claim_minor=20_000_00,
        last_payment_on=None,
        stops=frozenset(),
        promise_active=False,
        final_demand=FinalDemandLetter(
            outbox_id=7,
            letter_date=AS_OF - timedelta(days=40),
            receipt_date=AS_OF - timedelta(days=38),
        ),
    )
    return replace(base, **changes)


REFUSALS: list[tuple[str, dict[str, Any], str]] = [
    ("open case", {"open_case": True}, "already_escalated"),
    ("withdrawn 10 days ago", {"withdrawn_on": AS_OF - timedelta(days=10)}, "recently_withdrawn"),
    ("no rules for JP", {"jurisdiction": "JP", "currency": "JPY"}, "no_legal_rules"),
    ("CN account in USD", {"currency": "USD"}, "currency_mismatch"),
    ("deceased", {"stops": frozenset({Suppression.DECEASED})}, "stop.deceased"),
    ("bankruptcy", {"stops": frozenset({Suppression.BANKRUPTCY})}, "stop.bankruptcy"),
    ("attorney", {"stops": frozenset({Suppression.ATTORNEY})}, "stop.attorney"),
    ("cease request", {"stops": frozenset({Suppression.CEASE_REQUEST})}, "stop.cease_request"),
    ("dispute", {"stops": frozenset({Suppression.DISPUTE})}, "stop.dispute"),
    ("hardship", {"hardship_hold": True}, "hardship_hold"),
    (
        "default over 3 years ago",
        {"dpd": 1200, "oldest_due_on": AS_OF - timedelta(days=1200)},
        "time_barred",
    ),
    (
        "inside the filing margin",
        {"dpd": 1080, "oldest_due_on": AS_OF - timedelta(days=1080)},
        "time_barred",
    ),
    ("DPD 89", {"dpd": 89}, "dpd_below_minimum"),
    ("1,999.99 yuan", {"claim_minor": 1_999_99}, "balance_below_minimum"),
    ("promise to pay", {"promise_active": True}, "promise_active"),
    ("payment plan", {"blocked_by": ("plan_active",)}, "plan_active"),
    ("grace period", {"blocked_by": ("grace_active", "plan_active")}, "grace_active"),
    ("no final demand", {"final_demand": None}, "no_final_demand"),
    (
        "final demand 29 days ago",
        {"final_demand": FinalDemandLetter(7, AS_OF - timedelta(days=29), AS_OF)},
        "final_demand_too_recent",
    ),
    ("5,000 yuan: cost eats the recovery", {"claim_minor": 5_000_00}, "not_worth_it"),
]


@pytest.mark.parametrize(("case", "changes", "reason"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_each_reason_to_refuse(
    config: LegalConfig, case: str, changes: dict[str, Any], reason: str
) -> None:
    result = assess(passing(**changes), config, AS_OF)
    assert (result.eligible, result.reason) == (False, reason)


def test_every_reason_id_is_in_the_table() -> None:
    assert {r[2] for r in REFUSALS} == {r.value for r in Refusal}


def test_the_account_that_passes(config: LegalConfig) -> None:
    result = assess(passing(), config, AS_OF)
    assert (result.eligible, result.reason) == (True, None)
    assert result.costs is not None
    assert (result.costs.expected_recovery_minor, result.costs.legal_cost_minor) == (
        7_000_00,
        2_200_00,
    )
    assert result.limitation_ends_on == date(2029, 7, 27)  # default date + 3 years


def test_us_account_passes_and_a_later_payment_restarts_limitation(config: LegalConfig) -> None:
    us = passing(jurisdiction="US", currency="USD", region="CA", claim_minor=8_000_00)
    assert assess(us, config, AS_OF).eligible
    rules = config.jurisdictions["US"]
    paid = replace(us, last_payment_on=AS_OF - timedelta(days=30))
    assert limitation_ends(us, rules) == date(2030, 7, 27)  # California: 4 years
    assert limitation_ends(paid, rules) == date(2030, 10, 25)


def test_time_barred_us_debt_is_never_sued(config: LegalConfig) -> None:
    # Illinois falls back to the 3-year default; the default was 3 years and 1 day ago.
    old = passing(
        jurisdiction="US",
        currency="USD",
        region="IL",
        claim_minor=8_000_00,
        dpd=1097,
        oldest_due_on=AS_OF - timedelta(days=1097),
    )
    assert assess(old, config, AS_OF).reason == "time_barred"


def test_first_failing_rule_wins(config: LegalConfig) -> None:
    both = passing(dpd=60, stops=frozenset({Suppression.DISPUTE}), final_demand=None)
    assert assess(both, config, AS_OF).reason == "stop.dispute"


def test_wait_counts_from_the_receipt_when_configured(config: LegalConfig) -> None:
    late_receipt = passing(
        final_demand=FinalDemandLetter(7, AS_OF - timedelta(days=40), AS_OF - timedelta(days=5))
    )
    assert assess(late_receipt, config, AS_OF).eligible
    by_receipt = config.model_copy(
        update={"final_demand": config.final_demand.model_copy(update={"count_from": "receipt"})}
    )
    assert assess(late_receipt, by_receipt, AS_OF).reason == "final_demand_too_recent"
    no_receipt = passing(final_demand=FinalDemandLetter(7, AS_OF - timedelta(days=40), None))
    assert assess(no_receipt, by_receipt, AS_OF).reason == "final_demand_too_recent"


def test_withdrawal_cooldown_ends(config: LegalConfig) -> None:
    long_ago = passing(withdrawn_on=AS_OF - timedelta(days=90))
    assert assess(long_ago, config, AS_OF).eligible
