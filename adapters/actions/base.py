"""The action adapter contract: treatments that are not messages, sent exactly once.

A cadence step can be an *action* instead of a message: freezing or reducing the credit line
(the lender's core system), placing the account with a collection agency, reporting it to a
credit registry; and each has a reversal when the account cures (or, for placements, when a
dispute or a payment plan arrives). The engine plans them in the `account_action` table with an
idempotency key, claims them like outbox messages, and calls the adapter for the kind; the
adapter returns one ActionResult per request. Adapters never touch the database.

Payloads carry only what the other side needs (see PAYLOADS); nothing else about the customer.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, ClassVar

from adapters.base import AdapterOptions, SendOutcome
from dunning.types import ActionKind

__all__ = [
    "PAYLOADS",
    "REVERSAL",
    "TARGET",
    "ActionAdapter",
    "ActionKind",
    "ActionRequest",
    "ActionResult",
]

REVERSAL: dict[ActionKind, ActionKind] = {
    ActionKind.CREDIT_FREEZE: ActionKind.CREDIT_RESTORE,
    ActionKind.AGENCY_PLACEMENT: ActionKind.AGENCY_RECALL,
    ActionKind.REGISTRY_REPORT: ActionKind.REGISTRY_CORRECTION,
}
TARGET: dict[ActionKind, str] = {
    ActionKind.CREDIT_FREEZE: "credit_line",
    ActionKind.CREDIT_RESTORE: "credit_line",
    ActionKind.AGENCY_PLACEMENT: "agency",
    ActionKind.AGENCY_RECALL: "agency",
    ActionKind.REGISTRY_REPORT: "registry",
    ActionKind.REGISTRY_CORRECTION: "registry",
}
"""Which configured adapter (config/actions.yaml `adapters:`) performs each kind."""

PAYLOADS: dict[ActionKind, tuple[str, ...]] = {
    ActionKind.CREDIT_FREEZE: ("mode", "credit_limit_minor", "new_limit_minor", "currency", "tier"),
    ActionKind.CREDIT_RESTORE: ("restore_limit_minor", "currency", "reason"),
    ActionKind.AGENCY_PLACEMENT: (
        "agency",
        "customer_name",
        "phone",
        "address_lines",
        "locale",
        "currency",
        "principal_minor",
        "interest_minor",
        "fees_minor",
        "penalty_minor",
        "overdue_minor",
        "dpd",
        "commission_rate",
    ),
    ActionKind.AGENCY_RECALL: ("agency", "placement_reference", "reason"),
    ActionKind.REGISTRY_REPORT: (
        "report_date",
        "customer_ref",
        "customer_name",
        "currency",
        "balance_minor",
        "overdue_minor",
        "dpd",
        "opened_on",
    ),
    ActionKind.REGISTRY_CORRECTION: (
        "report_date",
        "customer_ref",
        "report_reference",
        "status",
        "reason",
    ),
}
"""The payload keys of each kind: all of them, and nothing else."""


@dataclass(frozen=True)
class ActionRequest:
    idempotency_key: str
    kind: ActionKind
    account_ref: str
    """The lender's account id (external id), which the other side knows it by."""
    as_of: date
    payload: Mapping[str, Any]


@dataclass(frozen=True)
class ActionResult:
    idempotency_key: str
    outcome: SendOutcome
    reference: str | None = None
    """The other side's id for what it did (placement id, registry line id, ...)."""
    duplicate: bool = False
    reason: str | None = None


class ActionAdapter(ABC):
    """Base class of every action adapter. Subclasses set the class attributes."""

    name: ClassVar[str]
    """Registry name, used in config/actions.yaml (e.g. "mock-agency")."""
    kinds: ClassVar[frozenset[ActionKind]]
    options_model: ClassVar[type[AdapterOptions]] = AdapterOptions
    max_batch: ClassVar[int] = 100

    @abstractmethod
    async def perform(self, batch: Sequence[ActionRequest]) -> list[ActionResult]:
        """Perform up to `max_batch` requests; one ActionResult per request."""

    async def aclose(self) -> None:  # noqa: B027  (optional hook)
        """Release connections and files."""

    async def __aenter__(self) -> ActionAdapter:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()
