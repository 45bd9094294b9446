"""Pushing simulated delivery receipts to Dunning's receipts webhook, signed."""

from __future__ import annotations

import json
import logging
from collections import defaultdict

import httpx

from dunning.config.channels import ReceiptSimulation
from dunning.webhooks import SIGNATURE_HEADER, sign
from sandbox.gateways._ledger import GatewayLedger, LedgerRow
from sandbox.gateways._receipts import iso, receipt_for

log = logging.getLogger("dunning.sandbox")


async def push_due_receipts(
    ledger: GatewayLedger,
    rates: ReceiptSimulation,
    *,
    secret: str,
    client: httpx.AsyncClient,
    now: float,
    limit: int = 500,
) -> int:
    """POST the receipts that became final and were not pushed yet; return how many went.

    At least once: a receipt is marked pushed only after the webhook answered 2xx or 409 (it
    already had it), so a crash or an error means it is pushed again, and the webhook's replay
    protection turns the repeat into a no-op.
    """
    if rates.webhook_url is None:
        return 0
    due = ledger.unpushed(now - rates.delay_seconds, limit)
    by_channel: dict[str, list[LedgerRow]] = defaultdict(list)
    for row in due:
        by_channel[row.channel].append(row)
    pushed = 0
    for channel, rows in by_channel.items():
        events = []
        for row in rows:
            receipt = receipt_for(row, rates, now)
            events.append(
                {
                    "event_id": receipt.event_id,
                    "gateway_message_id": row.id,
                    "idempotency_key": row.idempotency_key,
                    "status": receipt.status.value,
                    "occurred_at": iso(receipt.occurred_at),
                    "reason": receipt.reason,
                }
            )
        body = json.dumps(events, separators=(",", ":")).encode()
        url = f"{rates.webhook_url.rstrip('/')}/{channel}"
        try:
            response = await client.post(
                url,
                content=body,
                headers={
                    "Content-Type": "application/json",
                    SIGNATURE_HEADER: sign(secret, body, int(now)),
                },
            )
        except httpx.HTTPError as exc:
            log.warning("receipts for %s not pushed: %s", channel, type(exc).__name__)
            continue
        if response.status_code < 300 or response.status_code == 409:
            ledger.mark_pushed(channel, [row.id for row in rows], now)
            pushed += len(rows)
        else:
            log.warning(
                "receipts for %s not pushed: webhook answered %d", channel, response.status_code
            )
    return pushed
