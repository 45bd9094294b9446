"""Tables of the daily outreach: runs, the outbox, and the delivery events of each message."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Index, Text
from sqlmodel import Field, SQLModel

from dunning.db.models import utcnow


class Run(SQLModel, table=True):
    """One execution of a flow for one business date. Our system of record, not Prefect's."""

    __tablename__ = "run"
    __table_args__ = (Index("ix_run_flow_as_of", "flow", "as_of"),)

    id: int | None = Field(default=None, primary_key=True)
    flow: str = Field(max_length=40)
    as_of: date
    # running | completed | failed | abandoned (dunning.services.runs)
    status: str = Field(default="running", max_length=16)
    dry_run: bool = False
    started_at: datetime = Field(default_factory=utcnow)
    heartbeat_at: datetime | None = Field(
        default=None, description="stamped while running; a stale one means the process died"
    )
    finished_at: datetime | None = None
    prefect_flow_run_id: str | None = Field(default=None, max_length=64)
    parent_run_id: int | None = Field(
        default=None,
        foreign_key="run.id",
        index=True,
        description="the sharded run this one is a shard of (its summary adds them up)",
    )
    summary: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    error: str | None = Field(default=None, sa_type=Text)


class OutboxMessage(SQLModel, table=True):
    """One planned communication. Its idempotency key makes every send exactly-once.

    status: planned -> sending -> sent -> delivered | failed | undeliverable; or held (with
    suppression, never sent) or cancelled (the account cured or stopped before dispatch).
    """

    __tablename__ = "outbox_message"
    __table_args__ = (
        Index("ix_outbox_due", "status", "not_before"),
        Index("ix_outbox_account_as_of", "account_id", "as_of"),
        # A batch's messages of the day (claims, counts) and a batch's planned letters
        # (printing): through these a batch reads its own rows, not the whole day's.
        Index("ix_outbox_as_of_account", "as_of", "account_id"),
        Index("ix_outbox_status_account", "status", "account_id"),
        Index("ix_outbox_gateway_id", "gateway_message_id"),
        # Frequency caps read a customer's recent messages at every dispatch.
        Index("ix_outbox_customer", "customer_id", "updated_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str = Field(max_length=64, unique=True)
    run_id: int = Field(foreign_key="run.id", index=True)
    account_id: int = Field(foreign_key="account.id")
    customer_id: int = Field(foreign_key="customer.id")
    as_of: date
    tier: str = Field(max_length=32)
    step_id: str = Field(max_length=48)
    channel: str = Field(max_length=16)
    template_id: str | None = Field(default=None, max_length=128)
    template_hash: str | None = Field(default=None, max_length=64)
    locale: str = Field(max_length=16)
    recipient: str | None = Field(default=None, sa_type=Text, description="PII")
    subject: str | None = Field(default=None, sa_type=Text)
    body: str | None = Field(default=None, sa_type=Text, description="PII")
    document_source: str | None = Field(
        default=None, max_length=500, description="a letter's rendered HTML, before printing"
    )
    document_path: str | None = Field(default=None, max_length=500)
    document_sha256: str | None = Field(default=None, max_length=64)
    status: str = Field(default="planned", max_length=16)
    suppression: str | None = Field(default=None, max_length=48)
    not_before: datetime | None = None
    attempts: int = 0
    claim_token: str | None = Field(default=None, max_length=40)
    claimed_until: datetime | None = None
    gateway_message_id: str | None = Field(default=None, max_length=128)
    provider: str | None = Field(
        default=None,
        max_length=64,
        description="the provider (config/channels.yaml) the message is sent through, set "
        "before each send: its receipts and lookups go there",
    )
    vendor: dict[str, Any] | None = Field(
        default=None,
        sa_type=JSON,
        description="the template's vendor metadata and rendered parameters (PII possible)",
    )
    address: dict[str, Any] | None = Field(
        default=None,
        sa_type=JSON,
        description="a letter's postal address as fields (name, lines, city, region, "
        "postal_code, country), as planned; PII",
    )
    segments: int | None = Field(default=None, description="SMS parts billed, when reported")
    price: str | None = Field(default=None, max_length=32, description="vendor's charge")
    price_unit: str | None = Field(default=None, max_length=3)
    last_error: str | None = Field(default=None, max_length=500)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    sent_at: datetime | None = None
    final_at: datetime | None = None


class DeliveryEvent(SQLModel, table=True):
    """Everything a gateway said about a message: the send answer and later receipts."""

    __tablename__ = "delivery_event"

    id: int | None = Field(default=None, primary_key=True)
    outbox_id: int = Field(foreign_key="outbox_message.id", index=True)
    status: str = Field(max_length=16)
    source: str = Field(max_length=16)  # send | poll | webhook
    occurred_at: datetime
    recorded_at: datetime = Field(default_factory=utcnow)
    reason: str | None = Field(default=None, max_length=500)
    event_id: str | None = Field(default=None, max_length=128, unique=True)


class ProviderPace(SQLModel, table=True):
    """An account-wide rate limit of a provider, shared by every dispatcher: the moment (unix
    seconds) from which the next message may go. Each dispatcher reserves its messages by
    moving it forward in one atomic UPDATE."""

    __tablename__ = "provider_pace"

    provider: str = Field(primary_key=True, max_length=64)
    next_free: float = 0.0


class InboundReply(SQLModel, table=True):
    """A customer's reply that a vendor pushed (STOP, 退订, ...), recorded once per vendor id.

    The text is not stored (it may say anything); only what it meant."""

    __tablename__ = "inbound_reply"

    id: int | None = Field(default=None, primary_key=True)
    provider: str = Field(max_length=64)
    event_id: str = Field(max_length=128, description="the vendor's id of the inbound message")
    received_at: datetime
    recorded_at: datetime = Field(default_factory=utcnow)
    meaning: str = Field(max_length=16, description="opt_out | opt_in | other")
    customers: int = Field(default=0, description="customers it applied to")

    __table_args__ = (Index("ux_inbound_reply_event", "provider", "event_id", unique=True),)


class WebhookNonce(SQLModel, table=True):
    """Signed webhook requests already seen, so a replay is refused."""

    __tablename__ = "webhook_nonce"

    nonce: str = Field(primary_key=True, max_length=128)
    seen_at: datetime = Field(default_factory=utcnow)
