"""The dates a message states, from its policy pack: pay by `messages.pay_by_days` later; the
validation notice's dispute deadline `dispute_period_days` after the assumed receipt,
`receipt_business_days` business days after sending (weekends and the calendar's public
holidays not counted, as Reg F 1006.34(b)(5) reads)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from dunning.config.compliance import CompliancePack, MessageRules, ValidationNoticeRules
from dunning.config.packs import load_packs
from dunning.domain.calendar import add_business_days
from dunning.rendering import SAMPLE_AS_OF, SAMPLE_DEADLINES, Deadlines, sample_context


@pytest.fixture(scope="module")
def packs(repo_dir: Path) -> dict[str, CompliancePack]:
    return load_packs(repo_dir / "config", repo_dir)


def test_business_days_skip_weekends_and_holidays() -> None:
    friday = date(2025, 6, 13)
    assert add_business_days(friday, 1) == date(2025, 6, 16)
    assert add_business_days(friday, 5) == date(2025, 6, 20)
    assert add_business_days(friday, 5, {date(2025, 6, 19)}) == date(2025, 6, 23)
    assert add_business_days(friday, 0) == friday


@pytest.mark.parametrize(
    ("sent_on", "pay_by", "dispute_by"),
    [
        # Monday 9 June 2025: Monday 16 June is the fifth business day.
        (date(2025, 6, 9), date(2025, 6, 16), date(2025, 7, 16)),
        # Monday 16 June 2025: Juneteenth (Thursday 19) is no business day, so the 24th.
        (date(2025, 6, 16), date(2025, 6, 23), date(2025, 7, 24)),
        # Tuesday 24 November 2026: Thanksgiving (Thursday 26), so 2 December.
        (date(2026, 11, 24), date(2026, 12, 1), date(2027, 1, 1)),
        # Friday 26 December 2025: New Year's Day (Thursday 1 January), so 5 January.
        (date(2025, 12, 26), date(2026, 1, 2), date(2026, 2, 4)),
    ],
)
def test_the_us_pack_dates(
    packs: dict[str, CompliancePack], sent_on: date, pay_by: date, dispute_by: date
) -> None:
    assert packs["US"].deadlines(sent_on) == Deadlines(pay_by=pay_by, dispute_by=dispute_by)


def test_the_cn_pack_has_no_validation_notice(packs: dict[str, CompliancePack]) -> None:
    assert packs["CN"].validation_notice is None
    assert packs["CN"].deadlines(date(2025, 6, 16)) == Deadlines(date(2025, 6, 23), None)


def test_other_periods(packs: dict[str, CompliancePack]) -> None:
    pack = packs["US"].model_copy(
        update={
            "messages": MessageRules(pay_by_days=14),
            "validation_notice": ValidationNoticeRules(
                receipt_business_days=3, dispute_period_days=45, holiday_calendar="US"
            ),
        }
    )
    # Monday 16 June 2025: the 17th, 18th and (Juneteenth skipped) 20th; then 45 days.
    assert pack.deadlines(date(2025, 6, 16)) == Deadlines(date(2025, 6, 30), date(2025, 8, 4))


def test_sample_deadlines_are_the_shipped_packs(packs: dict[str, CompliancePack]) -> None:
    """Samples made without a pack (tests, the rendering reference) state what the shipped
    packs would; lint and previews pass the pack's own."""
    assert set(SAMPLE_DEADLINES) == set(packs)
    for jurisdiction, pack in packs.items():
        assert SAMPLE_DEADLINES[jurisdiction] == pack.deadlines(SAMPLE_AS_OF)


def test_a_sample_carries_the_notice_the_deadlines_give(packs: dict[str, CompliancePack]) -> None:
    us = sample_context("en-US", "middle", deadlines=packs["US"].deadlines)
    assert us.validation is not None and us.validation.dispute_by == date(2025, 7, 24)
    cn_like = packs["US"].model_copy(update={"validation_notice": None})
    without = sample_context("en-US", "middle", deadlines=cn_like.deadlines)
    assert without.validation is None and without.pay_by == date(2025, 6, 23)
    assert sample_context("en-GB", "middle", jurisdiction="GB").validation is None
