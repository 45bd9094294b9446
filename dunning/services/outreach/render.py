"""Render: a message's context (customer, account, amounts, the validation notice) from a
selected row. The dates it states (pay-by, dispute deadline) come from the account's policy
pack (Planner.deadlines), never from code.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from dunning.domain.money import to_decimal
from dunning.rendering.context import (
    AccountView,
    AddressView,
    Amounts,
    CustomerView,
    MessageContext,
    ValidationNotice,
)
from dunning.services.outreach.planner import Planner
from dunning.services.outreach.select import BatchRow


def mask_reference(reference: str) -> str:
    tail = reference[-4:]
    return "*" * max(len(reference) - 4, 4) + tail


def build_context(
    planner: Planner,
    row: BatchRow,
    tier: str,
    as_of: date,
    key: str,
    extra: dict[str, Any] | None = None,
) -> MessageContext:
    currency = row.currency

    def money(minor: int) -> Decimal:
        return to_decimal(minor, currency)

    total = row.principal_minor + row.interest_minor + row.fees_minor + row.penalty_minor
    # The dates are counted from the day the message goes out, which is today even for a
    # backfilled day: counted from its as-of date, a late backfill would shorten the
    # customer's dispute period and could state a pay-by date already past.
    sent_on = max(as_of, planner.clock().date())
    deadlines = planner.deadlines(row.jurisdiction, sent_on)
    validation = None
    if deadlines.dispute_by is not None:
        interest_since = row.interest_minor
        fees_since = row.fees_minor + row.penalty_minor
        payments_since = row.payments_since_minor
        validation = ValidationNotice(
            itemization_date=row.oldest_due_on,
            amount_on_itemization_date=money(total - interest_since - fees_since + payments_since),
            interest_since=money(interest_since),
            fees_since=money(fees_since),
            payments_since=money(payments_since),
            current_amount=money(total),
            dispute_by=deadlines.dispute_by,
        )
    greeting = row.name if row.locale.startswith("zh") else row.name.split(" ")[0]
    return MessageContext(
        customer=CustomerView(name=row.name, greeting_name=greeting, locale=row.locale),
        account=AccountView(
            reference_masked=mask_reference(row.agreement_ref or row.account_external_id),
            product=row.product,
            currency=currency,
            jurisdiction=row.jurisdiction,
            opened_on=row.opened_on,
        ),
        amount=Amounts(
            overdue=money(row.overdue_minor),
            principal=money(row.principal_minor),
            interest=money(row.interest_minor),
            fees=money(row.fees_minor),
            penalty=money(row.penalty_minor),
            total=money(total),
        ),
        lender=planner.lender_view(row.locale),
        address=AddressView(lines=row.address_lines(), country=row.country),
        as_of=as_of,
        dpd=row.dpd,
        tier=tier,
        oldest_due_on=row.oldest_due_on,
        pay_by=deadlines.pay_by,
        reference=key[4:14].upper(),
        validation=validation,
        extra=extra or {},
    )
