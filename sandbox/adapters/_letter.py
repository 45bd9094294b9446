"""mock-letter: the mock vendor's print-and-mail API (sandbox.gateways): address block and PDF."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from adapters import DeliveryStatus, OutboundMessage
from dunning.types import Channel
from sandbox.adapters._gateway_client import MockGatewayAdapter


def _map_status(vendor_status: str) -> DeliveryStatus | None:
    return {
        "in_production": DeliveryStatus.PENDING,
        "mailed": DeliveryStatus.PENDING,  # in the post: delivery is not confirmed yet
        "delivered": DeliveryStatus.DELIVERED,
        "failed": DeliveryStatus.FAILED,
        "returned_to_sender": DeliveryStatus.UNDELIVERABLE,
    }.get(vendor_status)


class MockLetterAdapter(MockGatewayAdapter):
    name = "mock-letter"
    channel = Channel.LETTER
    max_batch = 50  # PDFs make big requests
    rate_per_second = 1_000.0

    def _item(self, message: OutboundMessage) -> dict[str, Any]:
        item: dict[str, Any] = {
            "idempotency_key": message.idempotency_key,
            "to": message.recipient,
            "body": message.body,
            "metadata": dict(message.metadata),
        }
        if message.document is not None:
            item["document"] = base64.b64encode(message.document).decode("ascii")
            # The gateway checks the PDF against this, so a truncated upload is caught.
            item["document_sha256"] = (
                message.document_sha256 or hashlib.sha256(message.document).hexdigest()
            )
        return item

    def _delivery_status(self, vendor_status: str) -> DeliveryStatus | None:
        return _map_status(vendor_status)
