"""config/actions.yaml: the adapter of each action target, credit freezes, agencies, dispatch.

The adapter names and their options are checked by the adapter registry once the file has loaded
(adapters.registry.check_actions, entry points `dunning.action_adapters`): by `dunning config
check`, and before any run starts. This module imports no adapter. Commission rates are
fractions (0.15 is 15%), read as Decimal, never float.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Any, Literal, Self

from pydantic import BeforeValidator, Field, field_validator, model_validator

from dunning.config._base import ConfigModel
from dunning.config.channels import DispatchSettings
from dunning.types import MinorUnits


def _exact(value: Any) -> Any:
    # YAML reads 0.15 as a float; its shortest repr is the decimal the author wrote.
    if isinstance(value, float):
        return str(value)
    return value


Rate = Annotated[Decimal, BeforeValidator(_exact), Field(ge=0, le=1, allow_inf_nan=False)]
Jurisdiction = Annotated[str, Field(pattern=r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$")]
TierName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]


class ActionAdapterEntry(ConfigModel):
    """Which adapter performs one target's actions, and its options."""

    adapter: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$", description="registry name")
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="checked against the adapter's options model by the adapter registry",
    )


class ActionAdapters(ConfigModel):
    """One adapter per target (adapters.actions.base.TARGET says which kinds each performs)."""

    credit_line: ActionAdapterEntry = Field(
        default_factory=lambda: ActionAdapterEntry(adapter="mock-core-banking"),
        description="credit_freeze, credit_restore: the lender's core banking system",
    )
    agency: ActionAdapterEntry = Field(
        default_factory=lambda: ActionAdapterEntry(adapter="mock-agency"),
        description="agency_placement, agency_recall: the collection agencies' placement API",
    )
    registry: ActionAdapterEntry = Field(
        default_factory=lambda: ActionAdapterEntry(adapter="file-registry"),
        description="registry_report, registry_correction: the credit registry",
    )

    def entry(self, target: str) -> ActionAdapterEntry:
        """The entry of "credit_line", "agency" or "registry"."""
        if target not in type(self).model_fields:
            raise ValueError(f"no action target {target!r}; targets: credit_line, agency, registry")
        entry: ActionAdapterEntry = getattr(self, target)
        return entry


class CreditFreeze(ConfigModel):
    """What a credit_freeze step does to the credit line."""

    mode: Literal["freeze", "reduce"] = Field(
        default="freeze", description="freeze: no new drawdowns (limit 0); reduce: a lower limit"
    )
    reduce_to_percent: int = Field(
        default=50, ge=0, le=100, description="reduce: the new limit as a percentage of the old"
    )

    @model_validator(mode="after")
    def _reduce_reduces(self) -> Self:
        if self.mode == "reduce" and self.reduce_to_percent == 100:
            raise ValueError("reduce_to_percent must be below 100 to reduce the limit")
        return self

    def new_limit_minor(self, credit_limit_minor: MinorUnits) -> MinorUnits:
        """The limit after the freeze: 0, or the percentage of the limit rounded down."""
        if self.mode == "freeze":
            return 0
        return credit_limit_minor * self.reduce_to_percent // 100


class Agency(ConfigModel):
    """A third-party collection agency and its terms."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$", description="sent with each placement")
    name: str = Field(min_length=1, max_length=200)
    jurisdictions: list[Jurisdiction] = Field(
        min_length=1, description="policy pack codes (CN, US) of the accounts it takes"
    )
    commission_rate: Rate = Field(
        description="share of the overdue amount the agency keeps: the expected cost of a "
        "placement is overdue_minor x commission_rate"
    )
    tiers: list[TierName] | None = Field(
        default=None, min_length=1, description="strategy tiers it takes placements in; none: any"
    )

    @field_validator("jurisdictions")
    @classmethod
    def _once(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("name each jurisdiction once")
        return value

    def takes(self, jurisdiction: str, tier: str | None = None) -> bool:
        return jurisdiction in self.jurisdictions and (
            self.tiers is None or tier is None or tier in self.tiers
        )

    def expected_commission_minor(self, overdue_minor: MinorUnits) -> MinorUnits:
        """What a placement is expected to cost: overdue x rate, to the nearest minor unit."""
        cost = Decimal(overdue_minor) * self.commission_rate
        return int(cost.to_integral_value(rounding=ROUND_HALF_UP))


def _default_agencies() -> list[Agency]:
    return [
        Agency(
            id="huaxin",
            name="华信资产管理",
            jurisdictions=["CN"],
            commission_rate=Decimal("0.15"),
        ),
        Agency(
            id="north-star",
            name="North Star Recoveries",
            jurisdictions=["US"],
            commission_rate=Decimal("0.18"),
        ),
    ]


class ActionsConfig(ConfigModel):
    adapters: ActionAdapters = Field(default_factory=ActionAdapters)
    credit_freeze: CreditFreeze = Field(default_factory=CreditFreeze)
    agencies: list[Agency] = Field(default_factory=_default_agencies)
    dispatch: DispatchSettings = Field(
        default_factory=DispatchSettings, description="lease and attempts of action dispatch"
    )

    @field_validator("agencies")
    @classmethod
    def _unique_ids(cls, value: list[Agency]) -> list[Agency]:
        ids = [agency.id for agency in value]
        duplicated = sorted({i for i in ids if ids.count(i) > 1})
        if duplicated:
            raise ValueError(f"agency ids must be unique: {', '.join(duplicated)}")
        return value

    def agency(self, agency_id: str) -> Agency | None:
        return next((a for a in self.agencies if a.id == agency_id), None)

    def agency_for(self, jurisdiction: str, tier: str | None = None) -> Agency | None:
        """The first agency listed that takes accounts of this jurisdiction (and tier)."""
        return next((a for a in self.agencies if a.takes(jurisdiction, tier)), None)
