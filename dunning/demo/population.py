"""A reproducible synthetic population for demos, tests and benchmarks.

Two jurisdictions: CN (zh-CN, CNY, Asia/Shanghai) and US (en-US, USD, six US time zones).
Accounts spread over every tier and current ones, with the edge cases the rules care about:
disputes, bankruptcies, deceased, attorneys, cease requests, hardship, opt-outs, missing consent,
missing push token or address, uncertain time zones, partial payments and promises to pay.
Everything derives from (seed, account number, as-of date), so the same arguments always give
the same rows.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Connection, func, select

from dunning.db.models import utcnow
from dunning.db.sql import bulk_insert, chunked
from dunning.db.tables import ACCOUNT, CUSTOMER, INSTALMENT, PAYMENT, PROMISE
from dunning.domain.calendar import add_months

PREFIX = "DEMO-"
CHUNK = 5000

_CN_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐"
    "许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
)
_CN_GIVEN = (
    "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉萍红娥玲芬燕彬鹏辉建国志强晓东海燕"
)
_CN_CITIES = [
    ("上海市", "浦东新区", "200120"),
    ("北京市", "朝阳区", "100020"),
    ("广州市", "天河区", "510620"),
    ("深圳市", "南山区", "518052"),
    ("杭州市", "西湖区", "310012"),
    ("成都市", "武侯区", "610041"),
]
_CN_MOBILE_PREFIXES = ["130", "133", "135", "136", "138", "139", "150", "152", "158", "186", "189"]
_CN_ROADS = ["世纪大道", "建国路", "天河路", "深南大道", "文三路", "人民南路", "中山路", "解放路"]
_US_FIRST = [
    "James",
    "Mary",
    "Robert",
    "Patricia",
    "John",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Elizabeth",
    "William",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Carlos",
    "Maria",
    "Wei",
    "Aisha",
    "Kenji",
    "Olga",
]
_US_LAST = [
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Nguyen",
    "Chen",
    "Patel",
]
# (time zone, phone area code, city, state, zip prefix)
_US_ZONES = [
    ("America/New_York", "212", "New York", "NY", "100"),
    ("America/Chicago", "312", "Chicago", "IL", "606"),
    ("America/Denver", "303", "Denver", "CO", "802"),
    ("America/Los_Angeles", "415", "San Francisco", "CA", "941"),
    ("America/Anchorage", "907", "Anchorage", "AK", "995"),
    ("Pacific/Honolulu", "808", "Honolulu", "HI", "968"),
]
_US_STREETS = ["Main St", "Oak Ave", "Maple Dr", "Cedar Ln", "Park Blvd", "Elm St", "Pine Rd"]
_PRODUCTS = {"CN": ["cash-loan", "consumer-credit"], "US": ["personal-loan", "installment-loan"]}


@dataclass(frozen=True)
class SeedResult:
    customers: int
    accounts: int
    instalments: int
    payments: int
    promises: int
    skipped: int
    as_of: date

    def as_dict(self) -> dict[str, Any]:
        return {k: (v.isoformat() if isinstance(v, date) else v) for k, v in self.__dict__.items()}


@dataclass
class _Person:
    customer: dict[str, Any]
    account: dict[str, Any]
    instalments: list[dict[str, Any]]
    payments: list[dict[str, Any]]
    promises: list[dict[str, Any]]


def _target_dpd(rng: random.Random) -> int:
    """Current 15%, early tier 45%, middle 20%, late 20% (up to DPD 180)."""
    roll = rng.random()
    if roll < 0.15:
        return 0
    if roll < 0.60:
        return rng.randint(1, 30)
    if roll < 0.80:
        return rng.randint(31, 60)
    return rng.randint(61, 180)


def _person(number: int, seed: int, as_of: date) -> _Person:
    rng = random.Random(seed * 1_000_003 + number)
    jurisdiction = "CN" if rng.random() < 0.5 else "US"
    customer_id = f"{PREFIX}C{number:07d}"
    account_id = f"{PREFIX}A{number:07d}"
    customer: dict[str, Any]
    if jurisdiction == "CN":
        city, district, postal = rng.choice(_CN_CITIES)
        customer = {
            "name": rng.choice(_CN_SURNAMES) + "".join(rng.choices(_CN_GIVEN, k=rng.randint(1, 2))),
            "locale": "zh-CN",
            "time_zone": "Asia/Shanghai",
            "phone": f"+86{rng.choice(_CN_MOBILE_PREFIXES)}{rng.randint(0, 99_999_999):08d}",
            "address_line1": f"{district}{rng.choice(_CN_ROADS)}{rng.randint(1, 999)}号",
            "address_line2": f"{rng.randint(1, 30)}栋{rng.randint(101, 2808)}室",
            "city": city,
            "region": city,
            "postal_code": postal,
            "country": "CN",
        }
        currency, principal = "CNY", rng.randint(10, 500) * 100_00
    else:
        zone, area, city, state, zip_prefix = rng.choice(_US_ZONES)
        customer = {
            "name": f"{rng.choice(_US_FIRST)} {rng.choice(_US_LAST)}",
            "locale": "en-US",
            "time_zone": zone,
            "phone": f"+1{area}{rng.randint(200, 999)}{rng.randint(0, 9999):04d}",
            "address_line1": f"{rng.randint(1, 9999)} {rng.choice(_US_STREETS)}",
            "address_line2": None,
            "city": city,
            "region": state,
            "postal_code": f"{zip_prefix}{rng.randint(0, 99):02d}",
            "country": "US",
        }
        currency, principal = "USD", rng.randint(5, 200) * 100_00
        if rng.random() < 0.03:
            # Uncertain time zone: the phone's area code and the address disagree, and the
            # lender's record has no zone. Compliance must fit every candidate zone.
            other = rng.choice([z for z in _US_ZONES if z[0] != zone])
            customer.update(
                time_zone=None,
                city=other[2],
                region=other[3],
                postal_code=f"{other[4]}{rng.randint(0, 99):02d}",
            )
    customer.update(
        external_id=customer_id,
        push_token=None if rng.random() < 0.25 else f"{rng.getrandbits(128):032x}",
        email=None,
        sms_consent=rng.random() >= 0.04,
        push_consent=rng.random() >= 0.10,
        letter_consent=True,
        email_consent=False,
        sms_opted_out_at=utcnow() if rng.random() < 0.03 else None,
        push_opted_out_at=None,
        letter_opted_out_at=None,
        email_opted_out_at=None,
        deceased=rng.random() < 0.005,
        bankruptcy=rng.random() < 0.01,
        attorney_on_file=rng.random() < 0.005,
        cease_communication=rng.random() < 0.01,
        dispute_open=rng.random() < 0.02,
        hardship_hold=rng.random() < 0.01,
    )
    if rng.random() < 0.02:
        customer.update(
            address_line1=None, address_line2=None, city=None, region=None, postal_code=None
        )
    if rng.random() < 0.01:
        customer["phone"] = None

    dpd = _target_dpd(rng)
    term = rng.choice([3, 6, 12])
    monthly_rate = 0.015 if jurisdiction == "CN" else 0.02
    interest_total = round(principal * monthly_rate * term)
    instalment_amount = (principal + interest_total) // term
    principal_part = principal // term
    if dpd == 0:
        opened_on = as_of - timedelta(days=rng.randint(10, 300))
        first_unpaid = None
    else:
        oldest_unpaid_due = as_of - timedelta(days=dpd)
        first_unpaid = rng.randint(1, min(term, 3))
        opened_on = add_months(oldest_unpaid_due, -first_unpaid)
    instalments: list[dict[str, Any]] = []
    unpaid_count = overdue_count = overdue_amount = 0
    payments: list[dict[str, Any]] = []
    for seq in range(1, term + 1):
        due_on = add_months(opened_on, seq)
        paid_up = due_on < as_of if first_unpaid is None else seq < first_unpaid
        line: dict[str, Any] = {
            "seq": seq,
            "due_on": due_on,
            "amount_due_minor": instalment_amount,
            "amount_paid_minor": 0,
            "paid_on": None,
        }
        if paid_up:
            line.update(
                amount_paid_minor=instalment_amount,
                paid_on=due_on - timedelta(days=rng.randint(0, 3)),
            )
        else:
            unpaid_count += 1
            if due_on < as_of:
                overdue_count += 1
                overdue_amount += instalment_amount
        instalments.append(line)
    if first_unpaid is not None and rng.random() < 0.10:
        # A partial payment on the oldest unpaid instalment: DPD stays, the amount drops.
        part = instalment_amount * rng.randint(10, 60) // 100
        partial = instalments[first_unpaid - 1]
        partial["amount_paid_minor"] = part
        overdue_amount -= part
        first_due: date = partial["due_on"]
        paid_on = min(first_due + timedelta(days=rng.randint(1, 5)), as_of - timedelta(days=1))
        payments.append(
            {
                "external_id": f"{PREFIX}P{number:07d}",
                "amount_minor": part,
                "paid_on": paid_on,
                "method": "app",
            }
        )
    late_fee = 0 if jurisdiction == "CN" else 25_00
    penalty = round(overdue_amount * 0.0005 * dpd) if jurisdiction == "CN" else 0
    account = {
        "external_id": account_id,
        "product": rng.choice(_PRODUCTS[jurisdiction]),
        "currency": currency,
        "jurisdiction": jurisdiction,
        "principal_minor": principal_part * unpaid_count,
        "interest_minor": (instalment_amount - principal_part) * overdue_count,
        "fees_minor": late_fee * overdue_count,
        "penalty_minor": penalty,
        "credit_limit_minor": principal * 2,
        "status": "open",
        "agreement_ref": f"{jurisdiction}-{opened_on:%Y%m}-{number:07d}",
        "opened_on": opened_on,
    }
    promises = []
    if dpd > 0:
        roll = rng.random()
        amount = max(overdue_amount, 1)
        if roll < 0.03:
            promises.append(
                {
                    "amount_minor": amount,
                    "promised_on": as_of + timedelta(days=rng.randint(1, 10)),
                    "status": "active",
                }
            )
        elif roll < 0.04:
            # Due in the past and unpaid: the next run finds it broken.
            promises.append(
                {
                    "amount_minor": amount,
                    "promised_on": as_of - timedelta(days=2),
                    "status": "active",
                }
            )
    # Made three days before the book's date, whatever the wall clock says: a promise counts
    # the payments from the day it was made (a demo book for a past date must still keep them).
    made = datetime.combine(as_of - timedelta(days=3), time(10, 0), UTC)
    for promise in promises:
        promise.update(channel="phone", created_by="agent.demo", created_at=made, resolved_on=None)
    return _Person(customer, account, instalments, payments, promises)


def _ids(connection: Connection, table: Any, external_ids: list[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for chunk in chunked(external_ids, 900):
        query = select(table.c.external_id, table.c.id).where(table.c.external_id.in_(chunk))
        found.update({row[0]: row[1] for row in connection.execute(query)})
    return found


def _inserted_ids(connection: Connection, table: Any, rows: list[dict[str, Any]]) -> dict[str, int]:
    """Insert the rows; their ids by external id. From RETURNING, not a lookup afterwards:
    PostgreSQL plans such a lookup on statistics that do not yet see this transaction's rows
    and scans the whole table for every chunk."""
    returned = connection.execute(
        table.insert().returning(table.c.external_id, table.c.id), rows
    ).all()
    return {row[0]: row[1] for row in returned}


def seed_population(
    connection: Connection,
    *,
    accounts: int,
    seed: int,
    as_of: date,
    progress: Callable[[int], None] | None = None,
) -> SeedResult:
    """Insert the demo population; accounts that already exist are left as they are."""
    existing = connection.execute(
        select(func.count()).select_from(ACCOUNT).where(ACCOUNT.c.external_id.like(f"{PREFIX}%"))
    ).scalar_one()
    totals = {"customers": 0, "accounts": 0, "instalments": 0, "payments": 0, "promises": 0}
    skipped = 0
    now = utcnow()
    for start in range(1, accounts + 1, CHUNK):
        numbers = range(start, min(start + CHUNK, accounts + 1))
        people = [_person(number, seed, as_of) for number in numbers]
        if existing:
            present = _ids(connection, ACCOUNT, [p.account["external_id"] for p in people])
            skipped += len(present)
            people = [p for p in people if p.account["external_id"] not in present]
        if not people:
            if progress:
                progress(len(numbers))
            continue
        customer_ids = _inserted_ids(
            connection,
            CUSTOMER,
            [{**p.customer, "created_at": now, "updated_at": now} for p in people],
        )
        account_ids = _inserted_ids(
            connection,
            ACCOUNT,
            [
                {
                    **p.account,
                    "customer_id": customer_ids[p.customer["external_id"]],
                    "created_at": now,
                    "updated_at": now,
                }
                for p in people
            ],
        )
        instalments: list[dict[str, Any]] = []
        payments: list[dict[str, Any]] = []
        promises: list[dict[str, Any]] = []
        for person in people:
            account_id = account_ids[person.account["external_id"]]
            instalments.extend({**line, "account_id": account_id} for line in person.instalments)
            payments.extend(
                {**pay, "account_id": account_id, "created_at": now} for pay in person.payments
            )
            promises.extend({**promise, "account_id": account_id} for promise in person.promises)
        bulk_insert(connection, INSTALMENT, instalments)
        bulk_insert(connection, PAYMENT, payments)
        bulk_insert(connection, PROMISE, promises)
        totals["customers"] += len(people)
        totals["accounts"] += len(people)
        totals["instalments"] += len(instalments)
        totals["payments"] += len(payments)
        totals["promises"] += len(promises)
        if progress:
            progress(len(numbers))
    return SeedResult(**totals, skipped=skipped, as_of=as_of)
