"""The gateway adapter contract: one small base class for every channel, async, batch-oriented.

An adapter (a subclass naming its channel) turns outbox messages into requests to one gateway
and maps the gateway's answers onto SendResult / StatusReport. It never touches the database:
the dispatcher (dunning's engine) claims messages, calls `send`, and records what comes back.

Exactly once: every OutboundMessage carries the outbox idempotency key, and every gateway
request must carry it too, so a gateway that has already accepted a key answers with the
original acceptance instead of sending again (the mock gateways do this, as real ones do).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from dunning.types import Channel


@dataclass(frozen=True)
class OutboundMessage:
    idempotency_key: str
    channel: Channel
    recipient: str
    """E.164 phone for SMS, device token for push, the address block (lines joined by \\n) for
    letters. PII: adapters send it to the gateway and never log it."""
    body: str
    """SMS text, push body, or the plain-text version of a letter."""
    subject: str | None = None
    """Push title; unused for SMS and letters."""
    document: bytes | None = None
    """The letter PDF, for the letter channel."""
    document_sha256: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    """No PII: template id, locale, tier, run id; passed to the gateway as-is."""


class SendOutcome(StrEnum):
    ACCEPTED = "accepted"  # the gateway has it (or already had it: duplicate=True)
    REJECTED = "rejected"  # permanent: never retried, recorded as failed with the reason
    RETRY = "retry"  # transient and retries are used up: stays planned for the next dispatch


@dataclass(frozen=True)
class SendResult:
    idempotency_key: str
    outcome: SendOutcome
    gateway_message_id: str | None = None
    duplicate: bool = False
    reason: str | None = None


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"
    UNDELIVERABLE = "undeliverable"


@dataclass(frozen=True)
class StatusReport:
    """A delivery receipt: the gateway's later word on one message."""

    gateway_message_id: str
    idempotency_key: str
    status: DeliveryStatus
    occurred_at: datetime
    reason: str | None = None
    event_id: str | None = None
    """The gateway's id for this receipt event, when it has one (webhooks): replay protection."""


class AdapterOptions(BaseModel):
    """Base of each adapter's options model (from config/channels.yaml)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class GatewayAdapter(ABC):
    """Base class of every gateway adapter. Subclasses set the class attributes."""

    name: ClassVar[str]
    """Registry name, used in config/channels.yaml (e.g. "mock-sms")."""
    channel: ClassVar[Channel]
    options_model: ClassVar[type[AdapterOptions]] = AdapterOptions
    max_batch: ClassVar[int] = 100
    """Most messages per gateway request."""
    rate_per_second: ClassVar[float] = 50.0
    """Most messages per second this gateway accepts."""

    @abstractmethod
    async def send(self, batch: Sequence[OutboundMessage]) -> list[SendResult]:
        """Send up to `max_batch` messages; one SendResult per message, in any order."""

    @abstractmethod
    async def fetch_statuses(self, gateway_message_ids: Sequence[str]) -> list[StatusReport]:
        """Current delivery status of messages this gateway accepted."""

    async def aclose(self) -> None:  # noqa: B027  (optional hook)
        """Release connections."""

    async def __aenter__(self) -> GatewayAdapter:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()


AdapterFactory = Callable[[Channel], GatewayAdapter]
"""The configured adapter of a channel: how dispatch and receipts reach the gateways."""
