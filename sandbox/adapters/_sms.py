"""mock-sms: the mock vendor's SMS API (sandbox.gateways), one E.164 number and text per message."""

from __future__ import annotations

from typing import Any

from adapters import DeliveryStatus, OutboundMessage
from dunning.types import Channel
from sandbox.adapters._gateway_client import MockGatewayAdapter


def _map_status(vendor_status: str) -> DeliveryStatus | None:
    return {
        "queued": DeliveryStatus.PENDING,
        "sent": DeliveryStatus.PENDING,  # handed to the carrier, no handset receipt yet
        "delivered": DeliveryStatus.DELIVERED,
        "failed": DeliveryStatus.FAILED,
        "undelivered": DeliveryStatus.UNDELIVERABLE,
    }.get(vendor_status)


class MockSmsAdapter(MockGatewayAdapter):
    name = "mock-sms"
    channel = Channel.SMS
    max_batch = 500
    rate_per_second = 10_000.0

    def _item(self, message: OutboundMessage) -> dict[str, Any]:
        return {
            "idempotency_key": message.idempotency_key,
            "to": message.recipient,
            "body": message.body,
            "metadata": dict(message.metadata),
        }

    def _delivery_status(self, vendor_status: str) -> DeliveryStatus | None:
        return _map_status(vendor_status)
