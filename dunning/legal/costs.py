"""The cost-benefit rule: court fees by claim size, the lawyer's fee, and the expected recovery.

Pure and exact: amounts are integer minor units in, integer minor units out, Decimal in
between, rounded half up to the currency's minor unit once per fee.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from dunning.config.legal import CourtFees, JurisdictionRules
from dunning.domain.money import minor_digits, to_decimal
from dunning.types import MinorUnits


def to_minor(amount: Decimal, currency: str) -> MinorUnits:
    """A Decimal amount in major units to minor units, rounded half up."""
    digits = minor_digits(currency)
    return int(amount.scaleb(digits).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def court_fee(claim: Decimal, schedule: CourtFees) -> Decimal:
    """The court fee for a claim of `claim` (major units), unrounded."""
    if schedule.method == "flat":
        for bracket in schedule.brackets:
            if bracket.up_to is None or claim <= bracket.up_to:
                return bracket.fixed
        raise AssertionError("the last bracket has no bound")  # pragma: no cover
    fee = Decimal(0)
    lower = Decimal(0)
    for bracket in schedule.brackets:
        fee += bracket.fixed
        upper = claim if bracket.up_to is None else min(claim, bracket.up_to)
        if upper > lower:
            fee += (upper - lower) * bracket.rate
        if bracket.up_to is None or claim <= bracket.up_to:
            break
        lower = bracket.up_to
    return fee


@dataclass(frozen=True)
class CostBenefit:
    """Expected recovery against legal cost for one claim; every amount in minor units."""

    claim_minor: MinorUnits
    recovery_rate: Decimal
    expected_recovery_minor: MinorUnits
    court_fee_minor: MinorUnits
    lawyer_fee_minor: MinorUnits
    threshold_minor: MinorUnits

    @property
    def legal_cost_minor(self) -> MinorUnits:
        return self.court_fee_minor + self.lawyer_fee_minor

    @property
    def net_minor(self) -> MinorUnits:
        return self.expected_recovery_minor - self.legal_cost_minor

    @property
    def worth_it(self) -> bool:
        return self.net_minor >= self.threshold_minor


def cost_benefit(
    claim_minor: MinorUnits, rules: JurisdictionRules, *, tier: str | None, product: str
) -> CostBenefit:
    """expected recovery = claim x recovery rate; cost = court fee + lawyer fee; worth it when
    recovery - cost >= min_net_recovery."""
    currency = rules.currency
    claim = to_decimal(claim_minor, currency)
    rate = rules.recovery_rate.for_account(tier, product)
    lawyer = rules.lawyer_fee.fixed + claim * rules.lawyer_fee.rate
    return CostBenefit(
        claim_minor=claim_minor,
        recovery_rate=rate,
        expected_recovery_minor=to_minor(claim * rate, currency),
        court_fee_minor=to_minor(court_fee(claim, rules.court_fees), currency),
        lawyer_fee_minor=to_minor(lawyer, currency),
        threshold_minor=to_minor(rules.min_net_recovery, currency),
    )
