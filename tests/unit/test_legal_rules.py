"""config/legal.yaml and the cost-benefit rule: fee schedules, worked examples, bad config."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from dunning.config import LegalConfig, load_file
from dunning.config.legal import CourtFees
from dunning.errors import ConfigError
from dunning.legal.costs import cost_benefit, court_fee, to_minor

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def config() -> LegalConfig:
    return load_file(REPO / "config" / "legal.yaml", LegalConfig, REPO)


@pytest.mark.parametrize(
    ("claim", "fee"),
    [
        ("0.01", "50"),
        ("10000", "50"),
        ("10000.01", "50.00025"),
        ("50000", "1050"),  # 50 + 40,000 x 2.5%
        ("100000", "2300"),  # 50 + 90,000 x 2.5%
        ("150000", "3300"),  # 2,300 + 50,000 x 2%
        ("300000", "5800"),  # 2,300 + 2,000 + 100,000 x 1.5%
        ("20000000", "141800"),  # every bracket up to 20,000,000
        ("30000000", "191800"),  # every bracket, then 10,000,000 x 0.5%
    ],
)
def test_cn_court_fees_are_progressive(config: LegalConfig, claim: str, fee: str) -> None:
    schedule = config.jurisdictions["CN"].court_fees
    assert court_fee(Decimal(claim), schedule) == Decimal(fee)


@pytest.mark.parametrize(
    ("claim", "fee"),
    [("1", "50"), ("1500", "50"), ("1500.01", "100"), ("12500", "225"), ("99999", "400")],
)
def test_us_filing_fees_are_flat_by_bracket(config: LegalConfig, claim: str, fee: str) -> None:
    assert court_fee(Decimal(claim), config.jurisdictions["US"].court_fees) == Decimal(fee)


def test_worked_examples_of_docs_legal_md(config: LegalConfig) -> None:
    cn, us = config.jurisdictions["CN"], config.jurisdictions["US"]
    # CN, 20,000 yuan: recovery 7,000; court 300 + lawyer 1,900 = 2,200; net 4,800 >= 500.
    big = cost_benefit(20_000_00, cn, tier="late", product="cash-loan")
    assert (big.expected_recovery_minor, big.court_fee_minor, big.lawyer_fee_minor) == (
        7_000_00,
        300_00,
        1_900_00,
    )
    assert (big.legal_cost_minor, big.net_minor, big.worth_it) == (2_200_00, 4_800_00, True)
    # CN, 5,000 yuan: recovery 1,750; cost 50 + 1,600; net 100 < 500.
    small = cost_benefit(5_000_00, cn, tier="late", product="cash-loan")
    assert (small.net_minor, small.worth_it) == (100_00, False)
    # US, $8,000: recovery 2,400; cost 225 + 900; net 1,275 >= 250.
    usd = cost_benefit(8_000_00, us, tier="late", product="personal-loan")
    assert (usd.legal_cost_minor, usd.net_minor, usd.worth_it) == (1_125_00, 1_275_00, True)
    # US, $3,000: recovery 900; cost 100 + 650; net 150 < 250.
    assert cost_benefit(3_000_00, us, tier="late", product="personal-loan").net_minor == 150_00


def test_amounts_stay_exact_and_round_half_up() -> None:
    assert to_minor(Decimal("0.005"), "USD") == 1
    assert to_minor(Decimal("0.0049"), "USD") == 0
    assert to_minor(Decimal("1234"), "JPY") == 1234
    schedule = CourtFees.model_validate(
        {"method": "progressive", "brackets": [{"up_to": 10, "fixed": 1}, {"rate": 0.1}]}
    )
    assert isinstance(court_fee(Decimal("20.10"), schedule), Decimal)
    assert court_fee(Decimal("20.10"), schedule) == Decimal("2.010")


def test_recovery_rate_by_product_then_tier_then_default(config: LegalConfig) -> None:
    rules = config.jurisdictions["CN"].model_copy(
        update={
            "recovery_rate": config.jurisdictions["CN"].recovery_rate.model_copy(
                update={"by_product": {"consumer-credit": Decimal("0.2")}}
            )
        }
    )
    assert rules.recovery_rate.for_account("late", "consumer-credit") == Decimal("0.2")
    assert rules.recovery_rate.for_account("late", "cash-loan") == Decimal("0.35")
    assert rules.recovery_rate.for_account("middle", "cash-loan") == Decimal("0.35")


def test_rates_from_yaml_floats_are_the_decimals_written(config: LegalConfig) -> None:
    assert config.jurisdictions["CN"].court_fees.brackets[1].rate == Decimal("0.025")
    assert config.jurisdictions["US"].recovery_rate.default == Decimal("0.3")


def test_us_limitation_by_state(config: LegalConfig) -> None:
    us = config.jurisdictions["US"]
    assert (us.limitation_years_for("CA"), us.limitation_years_for("IL")) == (4, 3)
    assert us.limitation_years_for(None) == 3


@pytest.mark.parametrize(
    ("yaml_text", "key", "reason"),
    [
        (
            "jurisdictions:\n  CN:\n    currency: CNY\n    min_balance: 1\n"
            "    limitation_years: 3\n"
            "    recovery_rate: {default: 1.5}\n"
            "    court_fees: {method: flat, brackets: [{fixed: 50}]}\n",
            "jurisdictions.CN.recovery_rate.default",
            "less than or equal to 1",
        ),
        (
            "jurisdictions:\n  CN:\n    currency: CNY\n    min_balance: 1\n"
            "    limitation_years: 3\n"
            "    recovery_rate: {default: 0.3}\n"
            "    court_fees: {method: flat, brackets: [{up_to: 10, fixed: 50}]}\n",
            "jurisdictions.CN.court_fees",
            "the last bracket must have no up_to",
        ),
        (
            "jurisdictions:\n  CN:\n    currency: XXY\n    min_balance: 1\n"
            "    limitation_years: 3\n"
            "    recovery_rate: {default: 0.3}\n"
            "    court_fees: {method: flat, brackets: [{fixed: 50}]}\n",
            "jurisdictions.CN",
            "not an ISO 4217 code",
        ),
        (
            "jurisdictions:\n  CN:\n    currency: CNY\n    min_balance: 1\n"
            "    limitation_years: 3\n"
            "    recovery_rate: {default: 0.3, by_tier: {late: 0.12345}}\n"
            "    court_fees: {method: flat, brackets: [{fixed: 50}]}\n",
            "jurisdictions.CN.recovery_rate",
            "by_tier.late: at most 4 decimal places",
        ),
        ("final_demand: {steps: [], templates: []}\n", "final_demand", "at least one step"),
        ("min_dpd: 90\n", "min_dpd", "Extra inputs are not permitted"),
    ],
)
def test_bad_config_names_file_key_and_reason(
    tmp_path: Path, yaml_text: str, key: str, reason: str
) -> None:
    path = tmp_path / "config" / "legal.yaml"
    path.parent.mkdir()
    path.write_text(yaml_text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_file(path, LegalConfig, tmp_path)
    (problem,) = caught.value.problems
    assert problem.file == "config/legal.yaml"
    assert problem.key == key
    assert reason in problem.reason
