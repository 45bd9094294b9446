"""Build customers and accounts in a test database with exactly the state a test needs."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from dunning.db.models import Account, Customer, Instalment, PromiseToPay, utcnow

_numbers = itertools.count(1)

US_CUSTOMER: dict[str, Any] = {
    "name": "Ann Lee",
    "locale": "en-US",
    "time_zone": "America/Chicago",
    "phone": "+13125550142",
    "push_token": "tok-abcdef",
    "address_line1": "1 Main St",
    "city": "Chicago",
    "region": "IL",
    "postal_code": "60601",
    "country": "US",
    "sms_consent": True,
    "push_consent": True,
    "letter_consent": True,
}
CN_CUSTOMER: dict[str, Any] = {
    "name": "王伟",
    "locale": "zh-CN",
    "time_zone": "Asia/Shanghai",
    "phone": "+8613812345678",
    "push_token": "tok-123456",
    "address_line1": "浦东新区世纪大道100号",
    "city": "上海市",
    "region": "上海市",
    "postal_code": "200120",
    "country": "CN",
    "sms_consent": True,
    "push_consent": True,
    "letter_consent": True,
}
OPEN_FOR_ALL = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)
"""01:00 UTC: inside the contact window in Shanghai and in every US zone (Hawaii included)."""


def add_account(
    connection: Connection,
    *,
    dpd: int,
    as_of: date,
    jurisdiction: str = "US",
    amount_minor: int = 120_00,
    promise: bool = False,
    **customer: Any,
) -> int:
    """A customer with one account whose only instalment is `dpd` days past due on `as_of`."""
    number = next(_numbers)
    base = dict(US_CUSTOMER if jurisdiction == "US" else CN_CUSTOMER)
    base.update(customer)
    now = utcnow()
    customer_id = connection.execute(
        Customer.__table__.insert().values(  # type: ignore[attr-defined]
            external_id=f"T-C{number}", created_at=now, updated_at=now, **base
        )
    ).inserted_primary_key[0]
    account_id = connection.execute(
        Account.__table__.insert().values(  # type: ignore[attr-defined]
            external_id=f"T-A{number}",
            customer_id=customer_id,
            product="loan",
            currency="USD" if jurisdiction == "US" else "CNY",
            jurisdiction=jurisdiction,
            principal_minor=1000_00,
            interest_minor=10_00,
            fees_minor=5_00,
            credit_limit_minor=2000_00,
            agreement_ref=f"AGR-{number:06d}",
            opened_on=date(2026, 1, 1),
            created_at=now,
            updated_at=now,
        )
    ).inserted_primary_key[0]
    connection.execute(
        Instalment.__table__.insert().values(  # type: ignore[attr-defined]
            account_id=account_id,
            seq=1,
            due_on=as_of - timedelta(days=dpd),
            amount_due_minor=amount_minor,
            amount_paid_minor=0,
        )
    )
    if promise:
        connection.execute(
            PromiseToPay.__table__.insert().values(  # type: ignore[attr-defined]
                account_id=account_id,
                amount_minor=amount_minor,
                promised_on=as_of + timedelta(days=3),
                channel="phone",
                created_by="agent",
            )
        )
    return int(account_id)
