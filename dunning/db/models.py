"""The data model. Money is integer minor units (`*_minor`); timestamps are aware UTC."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import BigInteger, Index, UniqueConstraint
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class Customer(SQLModel, table=True):
    __tablename__ = "customer"

    id: int | None = Field(default=None, primary_key=True)
    external_id: str = Field(max_length=64, unique=True)
    name: str = Field(max_length=200)
    locale: str = Field(max_length=16, description="BCP 47, e.g. zh-CN, en-US")
    time_zone: str | None = Field(default=None, max_length=64, description="IANA; null if unknown")
    phone: str | None = Field(default=None, max_length=20, description="E.164")
    push_token: str | None = Field(default=None, max_length=255)
    email: str | None = Field(default=None, max_length=254)
    address_line1: str | None = Field(default=None, max_length=200)
    address_line2: str | None = Field(default=None, max_length=200)
    city: str | None = Field(default=None, max_length=100)
    region: str | None = Field(default=None, max_length=100)
    postal_code: str | None = Field(default=None, max_length=20)
    country: str | None = Field(default=None, max_length=2, description="ISO 3166-1 alpha-2")
    push_token_invalid_at: datetime | None = Field(
        default=None,
        description="when a push provider said the device token is dead (FCM UNREGISTERED, "
        "JPush invalid registration id): not tried again until a new token is imported",
    )
    address_invalid_at: datetime | None = Field(
        default=None,
        description="when a letter came back undeliverable (returned to sender): later letters "
        "to the address are held until a new address is imported",
    )
    # Consent and opt-out per channel. An opt-out is kept as its time, for the record.
    sms_consent: bool = False
    push_consent: bool = False
    letter_consent: bool = True
    email_consent: bool = False
    sms_opted_out_at: datetime | None = None
    push_opted_out_at: datetime | None = None
    letter_opted_out_at: datetime | None = None
    email_opted_out_at: datetime | None = None
    sms_opt_out_source: str | None = Field(
        default=None,
        max_length=64,
        description="who recorded the SMS opt-out: import, operator, or the provider a reply "
        "came through (e.g. reply:twilio-us); none for opt-outs from before 0016",
    )
    # Stops: each one ends ordinary collection contact.
    deceased: bool = False
    bankruptcy: bool = False
    attorney_on_file: bool = False
    cease_communication: bool = False
    dispute_open: bool = False
    hardship_hold: bool = False
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class Account(SQLModel, table=True):
    __tablename__ = "account"

    id: int | None = Field(default=None, primary_key=True)
    external_id: str = Field(max_length=64, unique=True)
    customer_id: int = Field(foreign_key="customer.id", index=True)
    product: str = Field(max_length=64)
    currency: str = Field(max_length=3, description="ISO 4217")
    jurisdiction: str = Field(max_length=8, index=True, description="policy pack code, e.g. CN, US")
    principal_minor: int = Field(default=0, sa_type=BigInteger)
    interest_minor: int = Field(default=0, sa_type=BigInteger)
    fees_minor: int = Field(default=0, sa_type=BigInteger)
    penalty_minor: int = Field(default=0, sa_type=BigInteger)
    credit_limit_minor: int = Field(default=0, sa_type=BigInteger)
    status: str = Field(default="open", max_length=16)
    agreement_ref: str | None = Field(default=None, max_length=64)
    opened_on: date
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class Instalment(SQLModel, table=True):
    """One line of an account's repayment schedule.

    `paid_on` is the date the instalment became fully paid; it is what makes DPD computable for
    any as-of date: an instalment is unpaid as of D when it is due before D and paid_on is null
    or after D.
    """

    __tablename__ = "instalment"
    __table_args__ = (
        UniqueConstraint("account_id", "seq", name="uq_instalment_account_seq"),
        Index("ix_instalment_due_unpaid", "due_on", "paid_on"),
    )

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id")
    seq: int = Field(ge=1)
    due_on: date
    amount_due_minor: int = Field(sa_type=BigInteger)
    amount_paid_minor: int = Field(default=0, sa_type=BigInteger)
    paid_on: date | None = None


class Payment(SQLModel, table=True):
    __tablename__ = "payment"

    id: int | None = Field(default=None, primary_key=True)
    external_id: str = Field(max_length=64, unique=True)
    account_id: int = Field(foreign_key="account.id", index=True)
    amount_minor: int = Field(sa_type=BigInteger)
    paid_on: date
    method: str | None = Field(default=None, max_length=32)
    created_at: datetime = Field(default_factory=utcnow)
    # What the payment paid down of each balance when it was recorded (penalty first, then fees,
    # interest, principal): the balances as of an earlier date add these back. Null for
    # payments recorded before migration 0014.
    applied_penalty_minor: int | None = Field(default=None, sa_type=BigInteger)
    applied_fees_minor: int | None = Field(default=None, sa_type=BigInteger)
    applied_interest_minor: int | None = Field(default=None, sa_type=BigInteger)
    applied_principal_minor: int | None = Field(default=None, sa_type=BigInteger)


class PromiseToPay(SQLModel, table=True):
    __tablename__ = "promise_to_pay"

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id", index=True)
    amount_minor: int = Field(sa_type=BigInteger)
    promised_on: date = Field(description="the date by which the customer promised to pay")
    channel: str = Field(max_length=16, description="where the promise was made")
    created_by: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow)
    status: str = Field(default="active", max_length=16)
    resolved_on: date | None = None
