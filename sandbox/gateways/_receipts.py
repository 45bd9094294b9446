"""Simulated delivery receipts: each accepted message's deterministic outcome and its timing.

A message is pending until accepted_at + delay_seconds; then its outcome is fixed by a hash of
its idempotency key against the configured rates, so the same key always ends the same way
(reproducible tests) and a population ends at the configured proportions.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from adapters.base import DeliveryStatus
from dunning.config.channels import ReceiptSimulation
from sandbox.gateways._ledger import LedgerRow
from sandbox.gateways._wire import RECEIPT_REASONS


def outcome_for(idempotency_key: str, rates: ReceiptSimulation) -> DeliveryStatus:
    """The final status this key will reach: a uniform draw in [0, 1) from its SHA-256."""
    digest = hashlib.sha256(idempotency_key.encode()).digest()
    draw = int.from_bytes(digest[:8], "big") / 2**64
    if draw < rates.delivered:
        return DeliveryStatus.DELIVERED
    if draw < rates.delivered + rates.failed:
        return DeliveryStatus.FAILED
    return DeliveryStatus.UNDELIVERABLE


@dataclass(frozen=True)
class Receipt:
    status: DeliveryStatus
    occurred_at: float
    reason: str | None
    event_id: str | None


def receipt_for(row: LedgerRow, rates: ReceiptSimulation, now: float) -> Receipt:
    """What the gateway knows about one accepted message at `now`."""
    final_at = row.accepted_at + rates.delay_seconds
    if now < final_at:
        return Receipt(DeliveryStatus.PENDING, row.accepted_at, None, None)
    # A vendor API's test number fixes its outcome (sandbox/gateways/_twilio.py, _aliyun.py).
    forced = row.metadata.get("outcome")
    status = DeliveryStatus(forced) if forced else outcome_for(row.idempotency_key, rates)
    reason = RECEIPT_REASONS.get(row.channel, {}).get(status)
    # The same event id whether polled or pushed, however often: receivers deduplicate on it.
    event_id = "evt_" + hashlib.sha256(f"{row.id}:{status.value}".encode()).hexdigest()[:24]
    return Receipt(status, final_at, reason, event_id)


def iso(unix_seconds: float) -> str:
    return datetime.fromtimestamp(unix_seconds, UTC).isoformat()
