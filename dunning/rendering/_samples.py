"""Realistic fake message contexts, for tests, template previews and lint.

The values are long enough to be honest about length limits: a zh-CN SMS that fits with these
figures fits with real ones of the same size (amounts in the tens of thousands, a full name).
Everything is fixed or derived from the arguments, so previews are stable.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from datetime import date, timedelta
from decimal import ROUND_DOWN, Decimal
from typing import Any

from babel.numbers import get_territory_currencies

from dunning.rendering.context import (
    AccountView,
    AddressView,
    Amounts,
    CustomerView,
    Deadlines,
    LenderView,
    MessageContext,
    ValidationNotice,
)

SAMPLE_AS_OF = date(2025, 6, 16)
SAMPLE_DEADLINES: dict[str, Deadlines] = {
    "US": Deadlines(pay_by=date(2025, 6, 23), dispute_by=date(2025, 7, 24)),
    "CN": Deadlines(pay_by=date(2025, 6, 23), dispute_by=None),
}
"""What the shipped policy packs (config/compliance/) give a message sent on SAMPLE_AS_OF, for
samples made without a pack (a test keeps the two in step): pay by a week later; in the US the
assumed receipt is 5 business days later, Juneteenth (June 19) not counted, and the dispute
deadline 30 days after that. Lint and previews pass the pack's own `deadlines`. A jurisdiction
with no shipped pack gets CN's: no validation notice."""
SAMPLE_DPD = {"early": 7, "middle": 38, "late": 75}
"""DPD per default tier: days on which the default cadence sends (config/strategy.yaml)."""

OPEN_ENDED_DPD = 400
"""The DPD that stands for "long past due" in a tier without an upper bound."""


def sample_dpds(tier: str, first: int | None = None, last: int | None = None) -> tuple[int, ...]:
    """The DPDs to show a tier's templates with: a typical sending day, and the tier's last day
    (`last`, or OPEN_ENDED_DPD when the tier has no end), where day counts and amounts are
    longest. `first` is the tier's first day, used when the tier has no typical day here."""
    typical = SAMPLE_DPD.get(tier, first if first is not None else 15)
    longest = last if last is not None else OPEN_ENDED_DPD
    return (typical,) if longest <= typical else (typical, longest)


DEMO_LENDER: dict[str, LenderView] = {
    "en-US": LenderView(
        name="Dunning Demo Lender",
        sms_signature="Dunning Demo Lender",
        phone="+1 800-555-0100",
        website="https://pay.example.com",
        payment_instructions=(
            "Pay online at https://pay.example.com or in the Dunning Demo Lender app, or call "
            "+1 800-555-0100 (Monday to Friday, 8 a.m. to 8 p.m. Eastern). Please quote your "
            "reference number."
        ),
        return_address=["PO Box 1000", "Springfield, IL 62701"],
    ),
    "zh-CN": LenderView(
        name="邓宁示范贷",
        sms_signature="邓宁示范贷",
        phone="400-800-0000",
        website="https://pay.example.com",
        payment_instructions=(
            "请登录邓宁示范贷App，进入“我的借款—立即还款”办理，"
            "或访问 https://pay.example.com 还款；"
            "如需协助，请致电客服热线 400-800-0000（每日 9:00-21:00）。还款时请注明本函编号。"
        ),
        return_address=["上海市浦东新区示范路 1 号", "邮编 200120"],
    ),
}
"""The fictional lender of config/lender.yaml (a test keeps the two in step)."""

_CN_CUSTOMER = CustomerView(name="欧阳晓东", greeting_name="欧阳晓东", locale="zh-CN")
_CN_ADDRESS = AddressView(
    lines=["200120 上海市", "浦东新区世纪大道 1888 号", "8 栋 1203 室"], country="CN"
)
_US_CUSTOMER = CustomerView(name="Jennifer Montgomery", greeting_name="Jennifer", locale="en-US")
_US_ADDRESS = AddressView(lines=["1847 Maple Avenue", "Apt 3B", "Columbus, OH 43215"], country="US")

_CENT = Decimal("0.01")


def _currency(jurisdiction: str) -> str:
    currencies = get_territory_currencies(jurisdiction)
    return str(currencies[0]) if currencies else "USD"


def _reference(*parts: object) -> str:
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return "DN-" + base64.b32encode(digest)[:8].decode()


def _amounts(dpd: int, currency: str, jurisdiction: str) -> tuple[Amounts, Decimal]:
    """The amounts after `dpd` days, and the late fees charged so far."""
    instalment = Decimal("4216.80") if currency == "CNY" else Decimal("1412.50")
    missed = min(10, max(1, -(-dpd // 30)))  # instalments are monthly; ten were left
    fees = Decimal(0) if jurisdiction == "CN" else Decimal("25.00") * missed
    missed_amount = instalment * missed
    # Penalty interest on what is overdue (CN products): 0.05 % a day.
    penalty = (
        (missed_amount * Decimal("0.0005") * dpd).quantize(_CENT)
        if jurisdiction == "CN"
        else Decimal(0)
    )
    principal = (instalment * 10 * Decimal("0.92")).quantize(_CENT)
    interest = (instalment * 10 * Decimal("0.08")).quantize(_CENT)
    overdue = missed_amount + fees + penalty
    total = principal + interest + fees + penalty
    return (
        Amounts(
            overdue=overdue,
            principal=principal,
            interest=interest,
            fees=fees,
            penalty=penalty,
            total=total,
        ),
        fees,
    )


def sample_context(
    locale: str,
    tier: str,
    *,
    jurisdiction: str | None = None,
    dpd: int | None = None,
    lender: LenderView | None = None,
    deadlines: Callable[[date], Deadlines] | None = None,
) -> MessageContext:
    """A realistic context for a template in `locale` and `tier`.

    The jurisdiction defaults from the locale (zh -> CN, otherwise US) and sets the currency.
    `deadlines` gives the dates of a message sent on a day (the jurisdiction's policy pack's
    `CompliancePack.deadlines`): its pay-by date, and its dispute deadline, with which the
    context carries a ValidationNotice; without it, SAMPLE_DEADLINES. `dpd` defaults to a
    sending day of the tier; `lender` to the demo lender in the locale's language.
    """
    chinese = locale.startswith("zh")
    jurisdiction = jurisdiction or ("CN" if chinese else "US")
    dpd = dpd if dpd is not None else SAMPLE_DPD.get(tier, 15)
    currency = _currency(jurisdiction)
    as_of = SAMPLE_AS_OF
    oldest_due_on = as_of - timedelta(days=dpd)
    amount, fees = _amounts(dpd, currency, jurisdiction)
    dates = (
        deadlines(as_of)
        if deadlines is not None
        else SAMPLE_DEADLINES.get(jurisdiction, SAMPLE_DEADLINES["CN"])
    )
    validation = None
    if dates.dispute_by is not None:
        interest_since = (amount.interest * Decimal("0.15")).quantize(_CENT)
        payments_since = Decimal("200.00")
        validation = ValidationNotice(
            itemization_date=oldest_due_on,
            amount_on_itemization_date=amount.total - interest_since - fees + payments_since,
            interest_since=interest_since,
            fees_since=fees,
            payments_since=payments_since,
            current_amount=amount.total,
            dispute_by=dates.dispute_by,
        )
    return MessageContext(
        customer=_CN_CUSTOMER if chinese else _US_CUSTOMER,
        account=AccountView(
            reference_masked="****4821",
            product="cash-loan" if jurisdiction == "CN" else "personal-loan",
            currency=currency,
            jurisdiction=jurisdiction,
            opened_on=date(2024, 3, 18),
        ),
        amount=amount,
        lender=lender or DEMO_LENDER["zh-CN" if chinese else "en-US"],
        address=_CN_ADDRESS if chinese else _US_ADDRESS,
        as_of=as_of,
        dpd=dpd,
        tier=tier,
        oldest_due_on=oldest_due_on,
        pay_by=dates.pay_by,
        reference=_reference(locale, tier, jurisdiction, dpd),
        validation=validation,
    )


SAMPLE_PLAN_INSTALMENTS = 6


def sample_extra(purpose: str, context: MessageContext) -> dict[str, Any]:
    """The step-specific variables (STEP_VARIABLES) of a purpose, for `context`, shaped as the
    engine passes them (mappings): a promise of half the overdue amount, due two days ago; a plan
    of the overdue amount in monthly instalments from next week, and its second instalment."""
    if purpose == "broken_promise":
        return {
            "promise": {
                "amount": (context.amount.overdue / 2).quantize(_CENT, rounding=ROUND_DOWN),
                "promised_on": context.as_of - timedelta(days=2),
            }
        }
    if purpose not in ("plan_confirmation", "plan_reminder"):
        return {}
    total = context.amount.overdue
    count = SAMPLE_PLAN_INSTALMENTS
    share = (total / count).quantize(_CENT, rounding=ROUND_DOWN)
    instalments = [
        {
            "seq": seq,
            "due_on": context.as_of + timedelta(days=7 + 30 * (seq - 1)),
            "amount": share if seq < count else total - share * (count - 1),
        }
        for seq in range(1, count + 1)
    ]
    plan = {"id": 4821, "created_on": context.as_of, "total": total, "instalments": instalments}
    if purpose == "plan_confirmation":
        return {"plan": plan}
    return {"plan": plan, "instalment": instalments[1]}
