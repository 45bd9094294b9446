"""What a message template can see: the variables every template is rendered with.

The engine builds one MessageContext per message (dunning.services.outreach); templates read
it as `customer.*`, `account.*`, `amount.*`, `lender.*`, `address.*`, and the top-level names
below. Amounts are Decimal in the account's currency: format them with the `money` filter.

Some steps add variables of their own in `extra`, by the template's purpose (see
`STEP_VARIABLES` in _metadata): a broken promise's `promise`, a payment plan's `plan` and the
next `instalment`. The engine passes them as mappings with the fields of the classes below.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any


@dataclass(frozen=True)
class CustomerView:
    name: str
    """Full name as it goes on letters. PII: never in push text."""
    greeting_name: str
    """What a message calls the customer: first name (en-US) or full name (zh-CN)."""
    locale: str


@dataclass(frozen=True)
class AccountView:
    reference_masked: str
    """The agreement reference with all but the last four characters masked: ****1234."""
    product: str
    currency: str
    jurisdiction: str
    opened_on: date


@dataclass(frozen=True)
class Amounts:
    overdue: Decimal
    """What is past due and unpaid: what the customer is asked to pay now."""
    principal: Decimal
    interest: Decimal
    fees: Decimal
    penalty: Decimal
    total: Decimal
    """principal + interest + fees + penalty: the whole balance."""


@dataclass(frozen=True)
class LenderView:
    name: str
    sms_signature: str
    """The 【signature】 text for Chinese SMS (without the brackets)."""
    phone: str
    website: str
    payment_instructions: str
    return_address: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class AddressView:
    lines: list[str]
    """The postal address block, one line per entry, as it goes in the envelope window."""
    country: str | None


@dataclass(frozen=True)
class ValidationNotice:
    """US Reg F 1006.34 validation information, for letters to US customers."""

    itemization_date: date
    """The reference date the amounts are itemized from (the oldest unpaid due date)."""
    amount_on_itemization_date: Decimal
    interest_since: Decimal
    fees_since: Decimal
    payments_since: Decimal
    current_amount: Decimal
    dispute_by: date
    """End of the validation period: the policy pack's `validation_notice.dispute_period_days`
    after the assumed receipt, which is `receipt_business_days` business days after sending
    (US: 30 days after 5 business days, public holidays not counted)."""


@dataclass(frozen=True)
class Deadlines:
    """The dates a message sent on a given day states, from its jurisdiction's policy pack
    (CompliancePack.deadlines): not a template variable itself, but where `pay_by` and
    `validation.dispute_by` come from."""

    pay_by: date
    """The date the message asks payment by (pack `messages.pay_by_days`)."""
    dispute_by: date | None
    """End of the validation period; None when the pack has no `validation_notice`, and then
    the message carries no validation notice."""


@dataclass(frozen=True)
class PromiseTerms:
    """`promise`: the promise to pay that was broken."""

    amount: Decimal
    promised_on: date
    """The date the customer promised to pay by."""


@dataclass(frozen=True)
class InstalmentTerms:
    """`instalment` (and each of `plan.instalments`): one instalment of a payment plan."""

    seq: int
    """1 for the first instalment."""
    due_on: date
    amount: Decimal


@dataclass(frozen=True)
class PlanTerms:
    """`plan`: a negotiated instalment plan (协商分期还款)."""

    id: int
    created_on: date
    total: Decimal
    """The sum of the instalments."""
    instalments: list[InstalmentTerms]


@dataclass(frozen=True)
class MessageContext:
    customer: CustomerView
    account: AccountView
    amount: Amounts
    lender: LenderView
    address: AddressView
    as_of: date
    """The run's business date; letters are dated with it."""
    dpd: int
    tier: str
    oldest_due_on: date
    """Due date of the oldest unpaid instalment."""
    pay_by: date
    """The date the message asks payment by: the run date plus the policy pack's
    `messages.pay_by_days`."""
    reference: str
    """A short reference for this message (letters print it), derived from the idempotency key."""
    validation: ValidationNotice | None = None
    """Set when the account's policy pack has a `validation_notice` section (US); None
    otherwise, so a template shows it inside `{% if validation %}`."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Step-specific variables (promise or plan terms, for example)."""

    def as_template_vars(self) -> dict[str, Any]:
        data = asdict(self)
        extra = data.pop("extra")
        return {**data, **extra}
