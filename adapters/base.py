"""The gateway adapter contract: one small base class for every channel, async, batch-oriented.

An adapter (a subclass naming its channel) turns outbox messages into requests to one gateway
and maps the gateway's answers onto SendResult / StatusReport. It never touches the database:
the dispatcher (dunning's engine) claims messages, calls `send`, and records what comes back.

Exactly once: every OutboundMessage carries the outbox idempotency key, and every gateway
request must carry it too, so a gateway that has already accepted a key answers with the
original acceptance instead of sending again (the mock gateways do this; `deduplicates = True`).
A gateway that does not deduplicate (Twilio, Aliyun) must never get a message twice: when a
send's fate is unknown the adapter answers AMBIGUOUS, the dispatcher leaves the message
`sending` until its claim's lease runs out, and the next claim hands it back with
`in_doubt=True`; the adapter then asks the vendor (`lookup`) before sending it again, and
does not send it again if it cannot ask (adapters._http does all this for HTTP adapters).
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
    template_id: str | None = None
    """The template the body was rendered from, e.g. "sms/early/reminder.zh-CN"."""
    vendor: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """The template's vendor metadata by vendor family, as planned into the outbox, e.g.
    {"aliyun": {"template_code": "SMS_480215001", "params": {"amount": "1,234.00"}}}: what a
    vendor that sends only registered templates needs (its code and the rendered parameters).
    Empty when the template declares none. The parameters may hold PII: never log them."""
    jurisdiction: str | None = None
    """The account's policy pack code (e.g. "CN", "US"): which rules the message was made under."""
    country: str | None = None
    """The customer's country (ISO 3166-1 alpha-2) when recorded. PII-light: never log it with
    the recipient."""
    address: Mapping[str, Any] | None = None
    """A letter's postal address as fields: name, lines (a list), city, region, postal_code,
    country (ISO 3166-1 alpha-2). PII: sent to the mail house, never logged. `recipient` keeps
    the same address as one text block for adapters that want that."""
    in_doubt: bool = False
    """An earlier claim of this message may have reached the gateway (its lease ran out while
    it was `sending`): an adapter for a gateway that does not deduplicate must find out
    (`GatewayAdapter.lookup`) before sending it again."""


class SendOutcome(StrEnum):
    ACCEPTED = "accepted"  # the gateway has it (or already had it: duplicate=True)
    REJECTED = "rejected"  # permanent: never retried, recorded as failed with the reason
    RETRY = "retry"  # certainly not accepted, retries used up: stays planned for the next dispatch
    AMBIGUOUS = "ambiguous"
    """The request may have been accepted (a timeout or a dropped connection after it was
    sent), and the adapter could not settle it: the dispatcher leaves the message `sending`
    until its lease runs out, then hands it back with `in_doubt=True` (never sent blindly)."""


class RejectCode(StrEnum):
    """Why a gateway refused a message for good, in words the engine can act on.

    `SendResult.code` carries one of these; `SendResult.vendor_code` keeps the vendor's own.
    """

    INVALID_NUMBER = "invalid_number"
    """The recipient is not a valid or reachable address (e.g. Twilio 21211)."""
    OPTED_OUT = "opted_out"
    """The recipient told the vendor to stop (e.g. Twilio 21610): record an opt-out."""
    BLOCKED = "blocked"
    """The vendor or a carrier blocks this sender, content or destination."""
    TEMPLATE_INVALID = "template_invalid"
    """The vendor does not accept the template or its parameters (e.g. an unregistered code)."""
    IN_DOUBT = "in_doubt"
    """Not sent again: an earlier send may have gone out and the adapter cannot ask the vendor."""
    OTHER = "rejected"
    """Any other permanent refusal; the reason says what the vendor said."""


@dataclass(frozen=True)
class SendResult:
    idempotency_key: str
    outcome: SendOutcome
    gateway_message_id: str | None = None
    duplicate: bool = False
    reason: str | None = None
    code: str | None = None
    """A RejectCode value when the outcome is REJECTED (None: unclassified)."""
    vendor_code: str | None = None
    """The vendor's own code for this answer (error or status), as it sent it."""
    segments: int | None = None
    """SMS parts the vendor billed, when it says."""
    price: str | None = None
    """What the vendor charged, as a decimal string in `price_unit` (e.g. "-0.0079")."""
    price_unit: str | None = None
    """ISO 4217 currency of `price`."""
    not_taken: bool = False
    """With RETRY: the gateway certainly does not have this message (a refused connection, an
    answer that says so; never after a timeout, nor for a message in doubt that was not looked
    up), so another provider may send it (failover). False, the safe default, keeps the
    message with this provider."""


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
    vendor_code: str | None = None
    """The vendor's own status or error code (e.g. Twilio's 30003, Aliyun's DELIVRD)."""
    segments: int | None = None
    """SMS parts the vendor billed, when it says."""
    price: str | None = None
    """What the vendor charged, as a decimal string in `price_unit`, when it says."""
    price_unit: str | None = None


@dataclass(frozen=True)
class WebhookRequest:
    """A vendor's webhook call, as the webhook app received it (adapters read, never log it)."""

    method: str
    url: str
    """The full URL the vendor called (scheme, host, path and query), as the vendor signed it:
    the app rebuilds it from its configured public URL, not from proxy headers."""
    headers: Mapping[str, str]
    """Header names in lower case."""
    body: bytes
    received_at: datetime


@dataclass(frozen=True)
class InboundReply:
    """A customer's message to us (a reply such as STOP or 退订), as a vendor pushed it."""

    event_id: str
    """The vendor's id of this inbound message: one reply is acted on once, however often the
    vendor retries its push."""
    sender: str
    """The customer's phone, E.164. PII."""
    text: str
    """What they wrote. PII: never logged or stored."""
    received_at: datetime


@dataclass(frozen=True)
class WebhookAnswer:
    """What the adapter read from one vendor webhook call, and what to answer the vendor."""

    statuses: Sequence[StatusReport] = ()
    replies: Sequence[InboundReply] = ()
    status_code: int = 200
    content_type: str = "application/json"
    body: bytes = b""
    """The vendor's expected acknowledgement (Twilio: empty TwiML; Aliyun: {"code": 0, ...})."""


class WebhookRefused(Exception):
    """A webhook call that is not the vendor's (bad or missing signature, stale, malformed).

    `status` is the HTTP status to answer (400 malformed, 401 signature, 409 replay); `reason`
    says why without repeating anything from the request. Nothing in it is recorded.
    """

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class SentMessage:
    """A message a gateway accepted, as the receipts poll knows it."""

    gateway_message_id: str
    idempotency_key: str
    recipient: str
    """PII: for vendors that find a message only with its recipient (Aliyun's
    QuerySendDetails); never logged."""
    sent_at: datetime | None


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
    max_concurrency: ClassVar[int] = 1
    """Most gateway requests in flight at once; `send` may get max_batch * max_concurrency
    messages (vendors that take one message per request set max_batch 1 and this higher)."""
    deduplicates: ClassVar[bool] = False
    """True when the gateway itself deduplicates on the idempotency key, so that sending a
    message again is always safe. False (the safe default) for vendors that do not."""

    @abstractmethod
    async def send(self, batch: Sequence[OutboundMessage]) -> list[SendResult]:
        """Send up to max_batch * max_concurrency messages; one SendResult per message, in
        any order."""

    async def lookup(self, message: OutboundMessage) -> SendResult | None:
        """Ask the vendor whether this message went out (e.g. by our key in its OutId).

        Optional: adapters that can ask override it. Return an ACCEPTED SendResult (with the
        vendor's id) if the vendor has it, None if the vendor certainly does not, or an
        AMBIGUOUS one if the vendor cannot say now. `can_lookup` tells whether it is there.
        """
        raise NotImplementedError(f"{self.name} cannot look messages up")

    @property
    def can_lookup(self) -> bool:
        """True when this adapter overrides `lookup`."""
        return type(self).lookup is not GatewayAdapter.lookup

    @abstractmethod
    async def fetch_statuses(self, gateway_message_ids: Sequence[str]) -> list[StatusReport]:
        """Current delivery status of messages this gateway accepted."""

    async def fetch_receipts(self, messages: Sequence[SentMessage]) -> list[StatusReport]:
        """Current delivery status of these accepted messages: what the receipts poll calls.

        The default asks `fetch_statuses` by gateway id; a vendor that needs more to find a
        message (its recipient, the day it was sent) overrides this instead."""
        return await self.fetch_statuses([m.gateway_message_id for m in messages])

    async def check(self) -> str | None:
        """Try the credentials and reachability without sending a message (`dunning gateway
        check`): None when the provider can be used, else one line saying what is wrong (no
        secret in it). Optional: the default says the adapter cannot check."""
        return f"{self.name} cannot be checked without sending (no check implemented)"

    def read_webhook(self, request: WebhookRequest, kind: str) -> WebhookAnswer:
        """Read one vendor webhook call of `kind` ("status": delivery receipts, "inbound": a
        customer's replies): verify it is the vendor's (signature, token, freshness) and parse
        it. Raises WebhookRefused for a call that is not the vendor's or cannot be read.
        Optional: adapters whose vendor pushes nothing leave it."""
        raise WebhookRefused(404, f"{self.name} takes no {kind} webhooks")

    async def aclose(self) -> None:  # noqa: B027  (optional hook)
        """Release connections."""

    async def __aenter__(self) -> GatewayAdapter:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()


AdapterFactory = Callable[[Channel], GatewayAdapter]
"""The configured adapter of a channel: how dispatch and receipts reach the gateways."""
