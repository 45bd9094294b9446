"""mock-push: the mock vendor's push API (sandbox.gateways): device token, title and body."""

from __future__ import annotations

from typing import Any

from adapters import DeliveryStatus, OutboundMessage
from dunning.types import Channel
from sandbox.adapters._gateway_client import MockGatewayAdapter


def _map_status(vendor_status: str) -> DeliveryStatus | None:
    return {
        "queued": DeliveryStatus.PENDING,
        "delivered": DeliveryStatus.DELIVERED,
        "failed": DeliveryStatus.FAILED,
        "unregistered": DeliveryStatus.UNDELIVERABLE,  # the app was removed: token is dead
    }.get(vendor_status)


class MockPushAdapter(MockGatewayAdapter):
    name = "mock-push"
    channel = Channel.PUSH
    max_batch = 500
    rate_per_second = 10_000.0

    def _item(self, message: OutboundMessage) -> dict[str, Any]:
        item: dict[str, Any] = {
            "idempotency_key": message.idempotency_key,
            "to": message.recipient,
            "body": message.body,
            "metadata": dict(message.metadata),
        }
        if message.subject is not None:
            item["title"] = message.subject
        return item

    def _delivery_status(self, vendor_status: str) -> DeliveryStatus | None:
        return _map_status(vendor_status)
