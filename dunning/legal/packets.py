"""Building a case packet from the database: gather, render, zip, store its hash on the case.

The packet holds the final demand letter exactly as it was sent (the stored PDF, checked against
the SHA-256 recorded when it was printed; never re-rendered). Nothing in it depends on the
clock: dates come from the case and the ledger, so the same data always gives the same bytes.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, select, update

from dunning.db.documents import DocumentStore
from dunning.db.tables import (
    ACCOUNT,
    CASE,
    CASE_EVENT,
    CUSTOMER,
    EVENT,
    INSTALMENT,
    OUTBOX,
    PAYMENT,
)
from dunning.domain.money import to_decimal
from dunning.errors import DunningError, NotFound
from dunning.legal.cases import case_reference
from dunning.legal.documents import (
    AccountRef,
    CaseView,
    ClaimView,
    CustomerRef,
    EventView,
    FinalDemandView,
    IdentityView,
    MessageView,
    PacketContents,
    PacketTemplates,
    PaymentView,
    ScheduleLineView,
)
from dunning.legal.packet import PacketFile, build_packet, csv_bytes
from dunning.legal.service import legal_config
from dunning.masking import mask_recipient
from dunning.rendering import LetterPrinter
from dunning.rendering.context import LenderView
from dunning.services.runtime import Runtime
from dunning.types import OutboxStatus

_RECEIPTS = frozenset(
    {OutboxStatus.DELIVERED.value, OutboxStatus.FAILED.value, OutboxStatus.UNDELIVERABLE.value}
)
FILES = {
    "cover_sheet": "01-cover-sheet.pdf",
    "statement_of_claim": "02-statement-of-claim.pdf",
    "account_statement": "03-account-statement.pdf",
    "schedule": "03-schedule.csv",
    "payments": "03-payments.csv",
    "communication_history": "04-communication-history.pdf",
    "communications": "04-communications.csv",
    "final_demand": "05-final-demand-letter.pdf",
    "customer_identity": "06-customer-identity.pdf",
}
"""Every file of a packet, in ZIP order (manifest.json comes last)."""


class PacketError(DunningError):
    """A packet cannot be built: the evidence it needs is missing or does not verify."""


@dataclass(frozen=True)
class BuiltPacket:
    case_id: int
    content: bytes
    sha256: str
    files: list[str]
    locale: str


@dataclass(frozen=True)
class PacketResult:
    case_id: int
    path: Path
    sha256: str
    files: list[str]
    locale: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "case_id": self.case_id,
            "case": case_reference(self.case_id),
            "path": str(self.path),
            "sha256": self.sha256,
            "files": self.files,
            "locale": self.locale,
        }


def _utc(moment: datetime | None) -> str | None:
    return None if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _address_lines(person: Any) -> list[str]:
    if str(person.locale).startswith("zh"):
        lines = [
            f"{person.postal_code or ''} {person.city or ''}".strip(),
            person.address_line1 or "",
            person.address_line2 or "",
        ]
    else:
        city = " ".join(
            part
            for part in (
                f"{person.city}," if person.city else None,
                person.region,
                person.postal_code,
            )
            if part
        )
        lines = [person.address_line1 or "", person.address_line2 or "", city]
    return [line for line in lines if line]


def _messages(connection: Connection, account_id: int, final_id: int) -> list[MessageView]:
    o = OUTBOX.c
    rows = connection.execute(
        select(OUTBOX).where(o.account_id == account_id).order_by(o.as_of, o.id)
    ).all()
    receipts: dict[int, tuple[str, datetime]] = {}
    if rows:
        events = connection.execute(
            select(EVENT.c.outbox_id, EVENT.c.status, EVENT.c.occurred_at)
            .where(EVENT.c.outbox_id.in_([row.id for row in rows]))
            .order_by(EVENT.c.id)
        )
        for outbox_id, status, occurred_at in events:
            if status in _RECEIPTS:
                receipts[outbox_id] = (status, occurred_at)
    views = []
    for number, row in enumerate(rows, start=1):
        receipt = receipts.get(row.id)
        views.append(
            MessageView(
                number=number,
                as_of=row.as_of,
                channel=row.channel,
                step_id=row.step_id,
                template_id=row.template_id,
                template_hash=row.template_hash,
                status=row.status,
                suppression=row.suppression,
                sent_at=_utc(row.sent_at),
                receipt_status=receipt[0] if receipt else None,
                receipt_at=_utc(receipt[1]) if receipt else None,
                contact=mask_recipient(row.channel, row.recipient),
                document_sha256=row.document_sha256,
                final_demand=row.id == final_id,
            )
        )
    return views


def gather(
    connection: Connection,
    case_id: int,
    documents: DocumentStore,
    lender_for: Callable[[str], LenderView],
) -> tuple[PacketContents, bytes, dict[str, Any]]:
    """The packet's contents, the final demand letter's bytes, and the manifest's `about`.

    `lender_for(customer locale)` gives the claimant as the documents show it.
    """
    case = connection.execute(select(CASE).where(CASE.c.id == case_id)).first()
    if case is None:
        raise NotFound(f"no legal case {case_id}")
    account = connection.execute(select(ACCOUNT).where(ACCOUNT.c.id == case.account_id)).one()
    person = connection.execute(select(CUSTOMER).where(CUSTOMER.c.id == case.customer_id)).one()
    currency = case.currency

    def money(minor: int) -> Decimal:
        return to_decimal(minor, currency)

    payments = [
        PaymentView(
            reference=row.external_id,
            paid_on=row.paid_on,
            amount=money(row.amount_minor),
            method=row.method,
            after_claim=row.id > case.last_payment_id,
        )
        for row in connection.execute(
            select(PAYMENT)
            .where(PAYMENT.c.account_id == case.account_id)
            .order_by(PAYMENT.c.paid_on, PAYMENT.c.id)
        )
    ]
    schedule = []
    for row in connection.execute(
        select(INSTALMENT)
        .where(INSTALMENT.c.account_id == case.account_id)
        .order_by(INSTALMENT.c.seq)
    ):
        outstanding = row.amount_due_minor - row.amount_paid_minor
        if outstanding <= 0:
            state = "paid"
        elif row.due_on < case.proposed_on:
            state = "overdue"
        else:
            state = "not_due"
        schedule.append(
            ScheduleLineView(
                seq=row.seq,
                due_on=row.due_on,
                amount_due=money(row.amount_due_minor),
                amount_paid=money(row.amount_paid_minor),
                outstanding=money(outstanding),
                paid_on=row.paid_on,
                state=state,
            )
        )
    paid_since = sum((p.amount for p in payments if p.after_claim), Decimal(0))
    claim_total = money(case.claim_minor)
    claim = ClaimView(
        as_of=case.proposed_on,
        principal=money(case.principal_minor),
        interest=money(case.interest_minor),
        fees=money(case.fees_minor),
        penalty=money(case.penalty_minor),
        total=claim_total,
        payments_since=paid_since,
        outstanding=claim_total - paid_since,
        recovery_rate=case.recovery_rate,
        recovery_percent=f"{(Decimal(case.recovery_rate) * 100).normalize():f}%",
        expected_recovery=money(case.expected_recovery_minor),
        court_fee=money(case.court_fee_minor),
        lawyer_fee=money(case.lawyer_fee_minor),
        legal_cost=money(case.court_fee_minor + case.lawyer_fee_minor),
    )
    letter = connection.execute(
        select(OUTBOX).where(OUTBOX.c.id == case.final_demand_outbox_id)
    ).one()
    if not letter.document_path or not letter.document_sha256:
        raise PacketError(f"case {case_id}: the final demand letter has no stored document")
    try:
        letter_pdf = documents.get(letter.document_path, letter.document_sha256)
    except FileNotFoundError:
        raise PacketError(
            f"case {case_id}: the final demand letter {letter.document_path} is missing from "
            "the document store"
        ) from None
    except ValueError as exc:
        raise PacketError(f"case {case_id}: {exc}; the packet is not built") from None
    messages = _messages(connection, case.account_id, letter.id)
    final_view = next(m for m in messages if m.final_demand)
    history = [
        EventView(
            occurred_on=row.occurred_on,
            kind=row.kind,
            from_status=row.from_status,
            to_status=row.to_status,
            user=row.user,
            note=row.note,
        )
        for row in connection.execute(
            select(CASE_EVENT).where(CASE_EVENT.c.case_id == case_id).order_by(CASE_EVENT.c.id)
        )
    ]
    contents = PacketContents(
        customer=CustomerRef(name=person.name, locale=person.locale),
        account=AccountRef(
            external_id=account.external_id,
            agreement_ref=account.agreement_ref,
            product=account.product,
            currency=currency,
            jurisdiction=account.jurisdiction,
            opened_on=account.opened_on,
        ),
        case=CaseView(
            id=case.id,
            reference=case_reference(case.id),
            status=case.status,
            proposed_on=case.proposed_on,
            approved_on=case.approved_on,
            filed_on=case.filed_on,
            closed_on=case.closed_on,
            dpd=case.dpd,
            oldest_due_on=case.oldest_due_on,
            limitation_ends_on=case.limitation_ends_on,
            needs_review=case.needs_review,
            review_reason=case.review_reason,
        ),
        claim=claim,
        schedule=schedule,
        payments=payments,
        messages=messages,
        identity=IdentityView(
            customer_ref=person.external_id,
            name=person.name,
            locale=person.locale,
            address_lines=_address_lines(person),
            country=person.country,
            phone=person.phone,
            email=person.email,
        ),
        history=history,
        final_demand=FinalDemandView(
            outbox_id=letter.id,
            letter_date=letter.as_of,
            template_id=letter.template_id,
            sha256=letter.document_sha256,
            receipt_at=final_view.receipt_at,
            file_name=FILES["final_demand"],
        ),
        lender=lender_for(person.locale),
        files=[*FILES.values(), "manifest.json"],
    )
    about = {
        "case": case_reference(case.id),
        "case_id": case.id,
        "status": case.status,
        "account": account.external_id,
        "jurisdiction": account.jurisdiction,
        "currency": currency,
        "claim_date": case.proposed_on.isoformat(),
        "claim_total": str(claim_total),
        "final_demand": {
            "outbox_id": letter.id,
            "letter_date": letter.as_of.isoformat(),
            "template_id": letter.template_id,
            "template_hash": letter.template_hash,
            "sha256": letter.document_sha256,
        },
    }
    return contents, letter_pdf, about


SCHEDULE_COLUMNS = (
    "seq", "due_on", "amount_due", "amount_paid", "outstanding", "paid_on", "state", "currency"
)  # fmt: skip
PAYMENT_COLUMNS = ("reference", "paid_on", "amount", "currency", "method", "after_claim_date")
COMMUNICATION_COLUMNS = (
    "number", "date", "channel", "step", "template_id", "template_hash", "status", "suppression",
    "sent_at", "receipt_status", "receipt_at", "contact", "document_sha256", "final_demand",
)  # fmt: skip


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _csvs(contents: PacketContents) -> dict[str, bytes]:
    currency = contents.account.currency
    schedule = [
        (x.seq, x.due_on, x.amount_due, x.amount_paid, x.outstanding, x.paid_on, x.state, currency)
        for x in contents.schedule
    ]
    payments = [
        (p.reference, p.paid_on, p.amount, currency, p.method, _yes(p.after_claim))
        for p in contents.payments
    ]
    messages = [
        (
            m.number,
            m.as_of,
            m.channel,
            m.step_id,
            m.template_id,
            m.template_hash,
            m.status,
            m.suppression,
            m.sent_at,
            m.receipt_status,
            m.receipt_at,
            m.contact,
            m.document_sha256,
            _yes(m.final_demand),
        )
        for m in contents.messages
    ]
    return {
        "schedule": csv_bytes(SCHEDULE_COLUMNS, schedule),
        "payments": csv_bytes(PAYMENT_COLUMNS, payments),
        "communications": csv_bytes(COMMUNICATION_COLUMNS, messages),
    }


def build_packet_bytes(
    runtime: Runtime, case_id: int, *, printer: LetterPrinter | None = None
) -> BuiltPacket:
    """The packet's ZIP bytes for a case, from the database as it is now."""
    project = runtime.project
    config = legal_config(project)
    templates = PacketTemplates(project.root / config.templates_dir)
    documents = DocumentStore(project.state_dir / "documents")

    def lender_for(customer_locale: str) -> LenderView:
        return project.lender.view(templates.locale_for(customer_locale))

    with runtime.engine.connect() as connection:
        contents, letter_pdf, about = gather(connection, case_id, documents, lender_for)
    locale = templates.locale_for(contents.customer.locale)
    about["locale"] = locale
    about["templates"] = templates.content_hashes(locale)
    pdfs = templates.render_pdfs(contents, locale, printer or LetterPrinter())
    tables = _csvs(contents)
    parts = {**pdfs, **tables, "final_demand": letter_pdf}
    files = [PacketFile(FILES[key], parts[key]) for key in FILES]
    content = build_packet(files, about, contents.case.proposed_on)
    return BuiltPacket(
        case_id=case_id,
        content=content,
        sha256=hashlib.sha256(content).hexdigest(),
        files=[f.name for f in files] + ["manifest.json"],
        locale=locale,
    )


def build_case_packet(
    runtime: Runtime, case_id: int, out_dir: Path, *, printer: LetterPrinter | None = None
) -> PacketResult:
    """Build the case's packet into `out_dir/LC-<id>-packet.zip` and record its SHA-256."""
    built = build_packet_bytes(runtime, case_id, printer=printer)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{case_reference(case_id)}-packet.zip"
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=".tmp-")
    with os.fdopen(fd, "wb") as handle:
        handle.write(built.content)
    os.replace(tmp, target)
    with runtime.unit_of_work() as connection:
        connection.execute(
            update(CASE).where(CASE.c.id == case_id).values(packet_sha256=built.sha256)
        )
    return PacketResult(case_id, target, built.sha256, built.files, built.locale)
