"""The mock vendor's HTTP API: request and response bodies, and its per-channel status words.

POST /v1/{channel}/messages   {"messages": [MessageIn, ...]}  ->  {"results": [ItemResult, ...]}
POST /v1/{channel}/statuses   {"ids": [id, ...]}              ->  {"statuses": [StatusItem, ...]}
Errors of a whole request: {"error": {"code": ..., "message": ...}} with a 4xx/5xx status.

Like a real vendor, each channel has its own status words; adapters map them onto
DeliveryStatus in their own private function.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from adapters.base import DeliveryStatus

CHANNELS = ("sms", "push", "letter")
MAX_ITEMS = 1000
"""The most messages (or status ids) the mock takes in one request; more answers 413."""
MAX_BODY_BYTES = 32 * 1024 * 1024
"""The largest request body the mock reads; more answers 413 without reading the rest. Room
for a batch of letters: 50 PDFs of 100 KB are 7 MB as base64, one of the 10 MB allowed 14 MB."""


class _Lenient(BaseModel):
    # Clients ignore fields they do not know, so a vendor can add some without breaking them.
    model_config = ConfigDict(extra="ignore", frozen=True)


class MessageIn(_Lenient):
    """One message as submitted. The mock checks each field per channel and rejects per item."""

    idempotency_key: str = Field(min_length=1, max_length=255)
    to: object = None
    body: object = None
    title: object = None
    document: object = None
    document_sha256: object = None
    metadata: object = None


class ItemResult(_Lenient):
    idempotency_key: str
    status: Literal["accepted", "rejected"]
    id: str | None = None
    duplicate: bool = False
    code: str | None = None
    reason: str | None = None


class SendAnswer(_Lenient):
    results: list[ItemResult]


class StatusItem(_Lenient):
    id: str
    status: str
    idempotency_key: str | None = None
    updated_at: datetime | None = None
    reason: str | None = None
    event_id: str | None = None


class StatusAnswer(_Lenient):
    statuses: list[StatusItem]


NOT_FOUND = "not_found"

VENDOR_STATUS: dict[str, dict[DeliveryStatus, str]] = {
    "sms": {
        DeliveryStatus.PENDING: "queued",
        DeliveryStatus.DELIVERED: "delivered",
        DeliveryStatus.FAILED: "failed",
        DeliveryStatus.UNDELIVERABLE: "undelivered",
    },
    "push": {
        DeliveryStatus.PENDING: "queued",
        DeliveryStatus.DELIVERED: "delivered",
        DeliveryStatus.FAILED: "failed",
        DeliveryStatus.UNDELIVERABLE: "unregistered",
    },
    "letter": {
        DeliveryStatus.PENDING: "in_production",
        DeliveryStatus.DELIVERED: "delivered",
        DeliveryStatus.FAILED: "failed",
        DeliveryStatus.UNDELIVERABLE: "returned_to_sender",
    },
}
"""What the mock vendor calls each delivery outcome, per channel."""

RECEIPT_REASONS: dict[str, dict[DeliveryStatus, str]] = {
    "sms": {
        DeliveryStatus.FAILED: "carrier rejected the message",
        DeliveryStatus.UNDELIVERABLE: "handset unreachable",
    },
    "push": {
        DeliveryStatus.FAILED: "push service error",
        DeliveryStatus.UNDELIVERABLE: "device token no longer registered",
    },
    "letter": {
        DeliveryStatus.FAILED: "print run failed",
        DeliveryStatus.UNDELIVERABLE: "returned to sender: addressee unknown",
    },
}
