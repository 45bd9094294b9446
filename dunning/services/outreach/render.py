"""Render: a message's context (customer, account, amounts, the US validation notice) from a
selected row.
"""

from __future__ import annotations

from datetime import date, timedelta
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

PAY_BY_DAYS = 7
"""Messages ask for payment within a week of the run date."""


VALIDATION_RECEIPT_BUSINESS_DAYS = 5


VALIDATION_PERIOD_DAYS = 30


def mask_reference(reference: str) -> str:
    tail = reference[-4:]
    return "*" * max(len(reference) - 4, 4) + tail


def add_business_days(day: date, days: int) -> date:
    while days > 0:
        day += timedelta(days=1)
        if day.weekday() < 5:
            days -= 1
    return day


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
    validation = None
    if row.jurisdiction == "US":
        sent_on = as_of
        receipt = add_business_days(sent_on, VALIDATION_RECEIPT_BUSINESS_DAYS)
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
            dispute_by=receipt + timedelta(days=VALIDATION_PERIOD_DAYS),
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
        pay_by=as_of + timedelta(days=PAY_BY_DAYS),
        reference=key[4:14].upper(),
        validation=validation,
        extra=extra or {},
    )
