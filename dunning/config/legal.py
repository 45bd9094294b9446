"""config/legal.yaml: when an overdue account goes to court, and what going to court costs.

Amounts are in the jurisdiction's currency, in major units (yuan, dollars), written as numbers
or strings; rates are fractions (0.025 is 2.5%). Both become Decimal, never float.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal, Self

from pydantic import BeforeValidator, Field, model_validator

from dunning.config._base import ConfigModel
from dunning.domain.money import is_currency


def _exact(value: Any) -> Any:
    # YAML reads 0.35 as a float; its shortest repr is the decimal the author wrote.
    if isinstance(value, float):
        return str(value)
    return value


Amount = Annotated[Decimal, BeforeValidator(_exact), Field(ge=0, allow_inf_nan=False)]
Rate = Annotated[Decimal, BeforeValidator(_exact), Field(ge=0, le=1, allow_inf_nan=False)]


class FeeBracket(ConfigModel):
    """One bracket of a court fee schedule, for claims up to `up_to` (inclusive)."""

    up_to: Amount | None = Field(default=None, description="none: no upper bound (last bracket)")
    fixed: Amount = Field(default=Decimal(0), description="flat amount for this bracket")
    rate: Rate = Field(
        default=Decimal(0), description="progressive: share of the part of the claim inside it"
    )


class CourtFees(ConfigModel):
    """A court fee schedule by claim size.

    flat: the fee is `fixed` of the first bracket the claim fits in (US filing fees).
    progressive: each bracket adds its `fixed` and `rate` times the part of the claim inside
    it, like income tax (CN 诉讼费用交纳办法 art. 13 for property cases).
    """

    method: Literal["flat", "progressive"]
    brackets: list[FeeBracket] = Field(min_length=1)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        bounds = [b.up_to for b in self.brackets]
        if bounds[-1] is not None:
            raise ValueError("the last bracket must have no up_to (it takes every larger claim)")
        if any(b is None for b in bounds[:-1]):
            raise ValueError("only the last bracket may omit up_to")
        finite = [b for b in bounds if b is not None]
        if finite != sorted(set(finite)):
            raise ValueError("brackets must be in increasing order of up_to")
        if self.method == "flat" and any(b.rate for b in self.brackets):
            raise ValueError("a flat schedule has no rates; use method: progressive")
        return self


class LawyerFee(ConfigModel):
    """What the lawyer charges per case: a fixed fee plus a share of the claim."""

    fixed: Amount = Decimal(0)
    rate: Rate = Decimal(0)


class RecoveryRates(ConfigModel):
    """The share of a claim expected to be recovered through court, by segment.

    The most specific wins: the account's product, then its tier, then the default.
    """

    default: Rate
    by_tier: dict[str, Rate] = Field(default_factory=dict)
    by_product: dict[str, Rate] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _four_places(self) -> Self:
        # Each case records its rate as NUMERIC(6, 4): more places would not be what was used.
        rates = {"default": self.default}
        rates.update({f"by_tier.{k}": v for k, v in self.by_tier.items()})
        rates.update({f"by_product.{k}": v for k, v in self.by_product.items()})
        for key, rate in rates.items():
            exponent = rate.as_tuple().exponent
            if isinstance(exponent, int) and exponent < -4:
                raise ValueError(f"{key}: at most 4 decimal places ({rate})")
        return self

    def for_account(self, tier: str | None, product: str) -> Decimal:
        if product in self.by_product:
            return self.by_product[product]
        if tier is not None and tier in self.by_tier:
            return self.by_tier[tier]
        return self.default


class JurisdictionRules(ConfigModel):
    """Eligibility and cost-benefit in one jurisdiction (the account's policy pack code)."""

    currency: str = Field(description="ISO 4217: the currency of every amount below")
    min_dpd: int = Field(default=90, ge=1)
    min_balance: Amount = Field(description="smallest claim (the whole balance) worth suing")
    final_demand_wait_days: int = Field(
        default=30, ge=0, description="days from the final demand letter before suing"
    )
    limitation_years: int = Field(ge=1, le=30, description="limitation period of a debt claim")
    limitation_years_by_region: dict[str, int] = Field(
        default_factory=dict,
        description="overrides by the customer's region (US state), e.g. {NY: 3, CA: 4}",
    )
    limitation_margin_days: int = Field(
        default=60, ge=0, description="refuse when fewer days than this remain to file"
    )
    recovery_rate: RecoveryRates
    court_fees: CourtFees
    lawyer_fee: LawyerFee = Field(default_factory=LawyerFee)
    min_net_recovery: Amount = Field(
        default=Decimal(0), description="expected recovery minus legal cost must reach this"
    )

    @model_validator(mode="after")
    def _known_currency(self) -> Self:
        if not is_currency(self.currency):
            raise ValueError(f"currency {self.currency!r} is not an ISO 4217 code")
        for region, years in self.limitation_years_by_region.items():
            if not 1 <= years <= 30:
                raise ValueError(f"limitation_years_by_region.{region}: must be 1 to 30 years")
        return self

    def limitation_years_for(self, region: str | None) -> int:
        if region is not None and region in self.limitation_years_by_region:
            return self.limitation_years_by_region[region]
        return self.limitation_years


class FinalDemand(ConfigModel):
    """Which outbox messages count as the final demand letter, and how its wait is counted."""

    steps: list[str] = Field(default_factory=lambda: ["late-letter"])
    templates: list[str] = Field(
        default_factory=lambda: ["final_demand"],
        description="template names (letter/<tier>/<name>.<locale>) that count wherever sent",
    )
    count_from: Literal["letter_date", "receipt"] = Field(
        default="letter_date",
        description="letter_date: the business date the letter was dated and mailed under; "
        "receipt: the date of its delivery receipt (UTC)",
    )

    @model_validator(mode="after")
    def _something(self) -> Self:
        if not self.steps and not self.templates:
            raise ValueError("name at least one step or template as the final demand")
        return self


def _default_consider() -> list[str]:
    return ["late"]


class LegalConfig(ConfigModel):
    consider_tiers: list[str] = Field(
        default_factory=_default_consider,
        description="tiers whose accounts the legal flow reviews (each gets a recorded outcome)",
    )
    final_demand: FinalDemand = Field(default_factory=FinalDemand)
    withdrawn_cooldown_days: int = Field(
        default=90, ge=0, description="after a case is withdrawn, wait this long to propose again"
    )
    templates_dir: str = Field(
        default="templates/legal", description="case packet templates, from the program dir"
    )
    jurisdictions: dict[str, JurisdictionRules] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _codes(self) -> Self:
        for code in self.jurisdictions:
            if not code.isupper() or not 2 <= len(code) <= 8:
                raise ValueError(f"jurisdictions.{code}: use the policy pack code, e.g. CN, US")
        return self
