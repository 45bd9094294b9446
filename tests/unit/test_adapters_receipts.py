"""The mock gateways' receipt simulation: deterministic, at the configured rates and delay."""

from __future__ import annotations

from collections import Counter

import pytest

from adapters import DeliveryStatus
from dunning.config.channels import ReceiptSimulation
from sandbox import LedgerRow, outcome_for, receipt_for


def row(key: str, accepted_at: float = 1000.0) -> LedgerRow:
    return LedgerRow(
        channel="sms",
        idempotency_key=key,
        id=f"sms_{key}",
        recipient="+13125551234",
        subject=None,
        body="hi",
        document_sha256=None,
        document_size=None,
        metadata={},
        accepted_at=accepted_at,
        submissions=1,
        receipt_pushed_at=None,
    )


def test_outcome_is_a_function_of_the_key() -> None:
    rates = ReceiptSimulation()
    keys = [f"acct-{i}:2026-11-23:early-sms:sms" for i in range(200)]
    assert [outcome_for(k, rates) for k in keys] == [outcome_for(k, rates) for k in keys]


@pytest.mark.parametrize(
    ("delivered", "failed", "undeliverable"), [(0.95, 0.03, 0.02), (0.5, 0.25, 0.25)]
)
def test_outcomes_come_at_the_configured_rates(
    delivered: float, failed: float, undeliverable: float
) -> None:
    rates = ReceiptSimulation(delivered=delivered, failed=failed, undeliverable=undeliverable)
    n = 20_000
    counts = Counter(outcome_for(f"key-{i}", rates) for i in range(n))
    # Binomial standard deviation at n = 20,000 is under 0.4 points; allow about 3.
    assert counts[DeliveryStatus.DELIVERED] / n == pytest.approx(delivered, abs=0.011)
    assert counts[DeliveryStatus.FAILED] / n == pytest.approx(failed, abs=0.01)
    assert counts[DeliveryStatus.UNDELIVERABLE] / n == pytest.approx(undeliverable, abs=0.01)
    assert DeliveryStatus.PENDING not in counts


def test_all_delivered_when_so_configured() -> None:
    rates = ReceiptSimulation(delivered=1.0, failed=0.0, undeliverable=0.0)
    assert {outcome_for(f"k{i}", rates) for i in range(1000)} == {DeliveryStatus.DELIVERED}


def test_pending_until_the_delay_then_final_with_a_stable_event_id() -> None:
    rates = ReceiptSimulation(delivered=0.0, failed=0.0, undeliverable=1.0, delay_seconds=60)
    accepted = row("k1", accepted_at=1000.0)
    early = receipt_for(accepted, rates, now=1059.9)
    assert early.status == DeliveryStatus.PENDING and early.event_id is None
    late = receipt_for(accepted, rates, now=1060.0)
    assert late.status == DeliveryStatus.UNDELIVERABLE
    assert late.occurred_at == 1060.0
    assert late.reason == "handset unreachable"
    assert late.event_id == receipt_for(accepted, rates, now=99_999.0).event_id
    assert late.event_id is not None and late.event_id.startswith("evt_")
