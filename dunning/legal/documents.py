"""The case packet's documents: what their templates see, and rendering them to PDF.

Templates live in templates/legal/ as `<document>.<locale>.html`, with `packet.css` shared by
all of them. They are rendered in the letters' sandbox with the same `money` and `date` filters
(customer.locale, account.currency) and printed by LetterPrinter, so the PDFs are as
reproducible as letters.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from dunning.errors import TemplateError
from dunning.rendering import LetterPrinter, render_document
from dunning.rendering.context import LenderView

DOCUMENTS = (
    "cover_sheet",
    "statement_of_claim",
    "account_statement",
    "communication_history",
    "customer_identity",
)
DEFAULT_LOCALE = "en-US"
CSS = "packet.css"


@dataclass(frozen=True)
class CustomerRef:
    """What the filters and headings need of the customer (the defendant)."""

    name: str
    locale: str


@dataclass(frozen=True)
class AccountRef:
    external_id: str
    agreement_ref: str | None
    product: str
    currency: str
    jurisdiction: str
    opened_on: date


@dataclass(frozen=True)
class CaseView:
    id: int
    reference: str
    status: str
    proposed_on: date
    approved_on: date | None
    filed_on: date | None
    closed_on: date | None
    dpd: int
    oldest_due_on: date
    limitation_ends_on: date
    needs_review: bool
    review_reason: str | None


@dataclass(frozen=True)
class ClaimView:
    """The claim as of the case's proposal date, from the account's booked balances."""

    as_of: date
    principal: Decimal
    interest: Decimal
    fees: Decimal
    penalty: Decimal
    total: Decimal
    payments_since: Decimal
    """Payments recorded after the case was proposed."""
    outstanding: Decimal
    """total - payments_since."""
    recovery_rate: Decimal
    recovery_percent: str
    """The recovery rate as a percentage, e.g. "35%"."""
    expected_recovery: Decimal
    court_fee: Decimal
    lawyer_fee: Decimal
    legal_cost: Decimal


@dataclass(frozen=True)
class ScheduleLineView:
    seq: int
    due_on: date
    amount_due: Decimal
    amount_paid: Decimal
    outstanding: Decimal
    paid_on: date | None
    state: str
    """paid, overdue (due before the claim date, not fully paid) or not_due."""


@dataclass(frozen=True)
class PaymentView:
    reference: str
    paid_on: date
    amount: Decimal
    method: str | None
    after_claim: bool


@dataclass(frozen=True)
class MessageView:
    """One outbox message as evidence of notice."""

    number: int
    as_of: date
    channel: str
    step_id: str
    template_id: str | None
    template_hash: str | None
    status: str
    suppression: str | None
    sent_at: str | None
    receipt_status: str | None
    receipt_at: str | None
    contact: str
    """The contact point used, masked (letters: see the identity block)."""
    document_sha256: str | None
    final_demand: bool


@dataclass(frozen=True)
class IdentityView:
    customer_ref: str
    name: str
    locale: str
    address_lines: list[str]
    country: str | None
    phone: str | None
    email: str | None


@dataclass(frozen=True)
class EventView:
    occurred_on: date
    kind: str
    from_status: str | None
    to_status: str | None
    user: str
    note: str


@dataclass(frozen=True)
class FinalDemandView:
    outbox_id: int
    letter_date: date
    template_id: str | None
    sha256: str
    receipt_at: str | None
    file_name: str


@dataclass(frozen=True)
class PacketContents:
    """Everything the packet's documents show; built by the service from the database."""

    customer: CustomerRef
    account: AccountRef
    case: CaseView
    claim: ClaimView
    schedule: list[ScheduleLineView]
    payments: list[PaymentView]
    messages: list[MessageView]
    identity: IdentityView
    history: list[EventView]
    final_demand: FinalDemandView
    lender: LenderView
    files: list[str] = field(default_factory=list)
    """The packet's file names, in order, for the cover sheet."""

    def variables(self) -> dict[str, Any]:
        totals = {
            "amount_due": sum((line.amount_due for line in self.schedule), Decimal(0)),
            "amount_paid": sum((line.amount_paid for line in self.schedule), Decimal(0)),
            "outstanding": sum((line.outstanding for line in self.schedule), Decimal(0)),
            "payments": sum((p.amount for p in self.payments), Decimal(0)),
        }
        return {
            "customer": self.customer,
            "account": self.account,
            "case": self.case,
            "claim": self.claim,
            "schedule": self.schedule,
            "payments": self.payments,
            "messages": self.messages,
            "identity": self.identity,
            "history": self.history,
            "final_demand": self.final_demand,
            "lender": self.lender,
            "files": self.files,
            "totals": totals,
        }


class PacketTemplates:
    """The templates of templates/legal/, read once; TemplateError names a missing one."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        if not directory.is_dir():
            raise TemplateError(f"{directory}: case packet templates directory does not exist")
        css_path = directory / CSS
        self.css = css_path.read_text(encoding="utf-8") if css_path.is_file() else ""
        self._sources: dict[str, str] = {}
        for path in sorted(directory.glob("*.html")):
            self._sources[path.name] = path.read_text(encoding="utf-8")

    def locale_for(self, locale: str) -> str:
        """The customer's locale when every document exists in it, else the default."""
        if all(f"{name}.{locale}.html" in self._sources for name in DOCUMENTS):
            return locale
        return DEFAULT_LOCALE

    def source(self, document: str, locale: str) -> str:
        name = f"{document}.{locale}.html"
        source = self._sources.get(name)
        if source is None:
            raise TemplateError(f"{self.directory / name}: template does not exist")
        return source

    def content_hashes(self, locale: str) -> dict[str, str]:
        """sha256 of each template used for `locale` and of the CSS: recorded in the manifest."""
        hashes = {
            f"{name}.{locale}.html": hashlib.sha256(
                self.source(name, locale).encode("utf-8")
            ).hexdigest()
            for name in DOCUMENTS
        }
        hashes[CSS] = hashlib.sha256(self.css.encode("utf-8")).hexdigest()
        return hashes

    def render_pdfs(
        self, contents: PacketContents, locale: str, printer: LetterPrinter
    ) -> dict[str, bytes]:
        variables = contents.variables()
        pdfs = {}
        for document in DOCUMENTS:
            rendered = render_document(
                self.source(document, locale),
                variables,
                name=f"legal/{document}.{locale}",
                css=self.css,
            )
            pdfs[document] = printer.pdf(rendered)
        return pdfs
