"""The demo hook: the demo population, a daily outreach 30 days before the demo date (which
mails the final demand letters), receipts, the demo date's outreach, then the legal flow: legal
cases open, and their packets verify."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dunning.bootstrap import Runtime
from dunning.demo.population import seed_population
from dunning.legal.packets import build_case_packet
from dunning.legal.service import run_legal_escalation
from dunning.legal.verify import verify_packet
from dunning.rendering import LetterPrinter
from dunning.services.daily import poll_receipts, run_daily_outreach
from tests.helpers import outreach_at
from tests.integration.test_legal_escalation import AS_OF, cases

DEMO_DAY = AS_OF
LETTER_DAY = DEMO_DAY - timedelta(days=30)


@pytest.fixture
def demo_day(runtime: Runtime) -> Iterator[Runtime]:
    with runtime.unit_of_work() as c:
        seed_population(c, accounts=3000, seed=42, as_of=DEMO_DAY)
    for day in (LETTER_DAY, DEMO_DAY):
        moment = datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=1)
        parts = outreach_at(runtime, moment)
        run_daily_outreach(parts, day)
        poll_receipts(parts)
        parts.close()
    yield runtime


def test_the_demo_population_yields_cases_with_packets_that_verify(
    demo_day: Runtime, tmp_path: Path
) -> None:
    summary = run_legal_escalation(demo_day, DEMO_DAY)
    # Seed 42's book, with both days' outreach at a fixed moment: these exact cases and refusals.
    assert summary["accounts"] == {
        "considered": 612,
        "by_outcome": {"opened": 11, "refused": 601},
        "by_jurisdiction": {
            "CN": {"considered": 288, "opened": 3},
            "US": {"considered": 324, "opened": 8},
        },
    }
    assert summary["refused_by_reason"] == {
        "balance_below_minimum": 16,
        "dpd_below_minimum": 124,
        "hardship_hold": 2,
        "no_final_demand": 421,
        "promise_active": 13,
        "stop.attorney": 3,
        "stop.bankruptcy": 2,
        "stop.cease_request": 8,
        "stop.deceased": 5,
        "stop.dispute": 7,
    }
    assert summary["opened_claims"] == {"CNY": "45713.12", "USD": "70937.45"}
    assert summary["cases_by_status"] == {"proposed": 11}
    printer = LetterPrinter()
    opened = cases(demo_day)
    assert len(opened) == 11
    for case in opened:
        result = build_case_packet(demo_day, case["id"], tmp_path, printer=printer)
        check = verify_packet(result.path)
        assert check.ok, check.as_dict()
    assert run_legal_escalation(demo_day, DEMO_DAY)["accounts"]["by_outcome"]["opened"] == 0
