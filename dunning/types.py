"""Shared enums and aliases: the glossary of ../shared/domain.md as code."""

from __future__ import annotations

from enum import StrEnum
from typing import TypeAlias

MinorUnits: TypeAlias = int
"""Money as an integer count of the currency's minor unit (cents, fen). Never a float."""


class Channel(StrEnum):
    SMS = "sms"
    PUSH = "push"
    LETTER = "letter"
    EMAIL = "email"


class AccountStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"  # paid off or settled: never contacted
    WRITTEN_OFF = "written_off"


class OutboxStatus(StrEnum):
    """planned -> sending -> sent -> delivered | failed | undeliverable; or held / cancelled."""

    PLANNED = "planned"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"
    UNDELIVERABLE = "undeliverable"
    HELD = "held"
    CANCELLED = "cancelled"


FINAL_STATUSES = frozenset(
    {
        OutboxStatus.DELIVERED,
        OutboxStatus.FAILED,
        OutboxStatus.UNDELIVERABLE,
        OutboxStatus.HELD,
        OutboxStatus.CANCELLED,
    }
)
ACCEPTED_STATUSES = frozenset(
    {OutboxStatus.SENT, OutboxStatus.DELIVERED, OutboxStatus.UNDELIVERABLE}
)


class ActionKind(StrEnum):
    """Treatments besides messages: a cadence step can be one (see adapters/actions/base.py)."""

    CREDIT_FREEZE = "credit_freeze"
    CREDIT_RESTORE = "credit_restore"
    AGENCY_PLACEMENT = "agency_placement"
    AGENCY_RECALL = "agency_recall"
    REGISTRY_REPORT = "registry_report"
    REGISTRY_CORRECTION = "registry_correction"


class Suppression(StrEnum):
    """Reasons not to contact. The value is the rule id shown in summaries and `explain`."""

    PAID = "paid"
    DISPUTE = "dispute"
    BANKRUPTCY = "bankruptcy"
    DECEASED = "deceased"
    ATTORNEY = "attorney"
    CEASE_REQUEST = "cease_request"
    NO_CONSENT = "no_consent"
    OPTED_OUT = "opted_out"
    HARDSHIP_HOLD = "hardship_hold"
    GRACE = "grace"
    PAYMENT_PLAN = "payment_plan"
    PROMISE_TO_PAY = "promise_to_pay"
    NO_CONTACT_POINT = "no_contact_point"
    TEMPLATE_MISSING = "template_missing"
    TEMPLATE_UNAPPROVED = "template_unapproved"
    QUIET_HOURS = "quiet_hours"
    FREQUENCY_CAP = "frequency_cap"
    TIME_ZONE_UNKNOWN = "time_zone_unknown"
    RENDER_FAILED = "render_failed"
    """The template did not render for this account's data (the error is in last_error)."""
    PRINT_FAILED = "print_failed"
    """The letter's PDF could not be made (the error is in last_error)."""


class PromiseStatus(StrEnum):
    ACTIVE = "active"
    KEPT = "kept"
    BROKEN = "broken"
    CANCELLED = "cancelled"
