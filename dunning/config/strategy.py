"""config/strategy.yaml: tiers by DPD and the cadence of steps inside each tier."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, model_validator

from dunning.config._base import ConfigModel
from dunning.domain import cadence
from dunning.domain.cadence import Band
from dunning.types import ActionKind, Channel


class DpdRange(ConfigModel):
    min: int = Field(ge=1)
    max: int | None = Field(default=None, ge=1, description="inclusive; none means no upper bound")

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.max is not None and self.max < self.min:
            raise ValueError(f"max ({self.max}) is below min ({self.min})")
        return self

    def contains(self, dpd: int) -> bool:
        return dpd >= self.min and (self.max is None or dpd <= self.max)


class Step(ConfigModel):
    """One cadence step on given DPD days and/or every N days: a message or an action.

    A message step names a channel and a template; an action step names an action (credit
    freeze, agency placement, registry report) and has no template.
    """

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=48)
    channel: Channel | None = None
    action: ActionKind | None = None
    template: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9_]*$")
    days: list[int] = Field(default_factory=list, description="DPD values on which the step is due")
    every: int | None = Field(default=None, ge=1, description="then repeat every N days")
    start: int | None = Field(default=None, ge=1, description="first DPD of the repetition")
    until: int | None = Field(default=None, ge=1, description="last DPD of the repetition")

    @model_validator(mode="after")
    def _has_schedule(self) -> Self:
        if (self.channel is None) == (self.action is None):
            raise ValueError("a step has either a `channel` (a message) or an `action`")
        if self.channel is not None and self.template is None:
            raise ValueError("a message step needs a `template`")
        if self.action is not None and self.template is not None:
            raise ValueError("an action step has no `template`")
        if self.action in (
            ActionKind.CREDIT_RESTORE,
            ActionKind.AGENCY_RECALL,
            ActionKind.REGISTRY_CORRECTION,
        ):
            raise ValueError(f"{self.action} is a reversal: it happens on cure, not by cadence")
        if not self.days and self.every is None:
            raise ValueError("a step needs `days`, `every`, or both")
        if self.start is not None and self.every is None:
            raise ValueError("`start` needs `every`")
        return self

    def first_repeat(self, tier_min: int) -> int | None:
        return cadence.first_repeat(self.days, self.every, self.start, tier_min)

    def is_due(self, dpd: int, tier: Band) -> bool:
        return cadence.is_due(dpd, self.days, self.every, self.start, self.until, tier)


class Tier(ConfigModel):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=32)  # outbox_message.tier
    dpd: DpdRange
    cadence: list[Step] = Field(default_factory=list)

    @model_validator(mode="after")
    def _steps_inside_tier(self) -> Self:
        seen: set[str] = set()
        for index, step in enumerate(self.cadence):
            if step.id in seen:
                raise ValueError(f"cadence[{index}]: step id {step.id!r} is used twice")
            seen.add(step.id)
            for day in step.days:
                if not self.dpd.contains(day):
                    raise ValueError(
                        f"cadence[{index}] ({step.id}): day {day} is outside the tier's DPD range"
                    )
        return self


def _default_tiers() -> list[Tier]:
    return [
        Tier(name="early", dpd=DpdRange(min=1, max=30)),
        Tier(name="middle", dpd=DpdRange(min=31, max=60)),
        Tier(name="late", dpd=DpdRange(min=61)),
    ]


class PromisePolicy(ConfigModel):
    broken_template: str = Field(
        default="broken_promise",
        description="SMS template (in the account's tier) sent when a promise is broken",
    )


class PlanPolicy(ConfigModel):
    break_after_missed: int = Field(
        default=2, ge=1, le=12, description="missed plan instalments that break a plan"
    )
    on_break: Literal["resume", "reage"] = Field(
        default="resume",
        description="resume: DPD counts from the original due date again; reage: from the "
        "first missed plan instalment",
    )
    reminder_days_before: int = Field(default=3, ge=0, le=30)
    max_instalments: int = Field(default=24, ge=1, le=120)
    confirmation_template: str = "confirmation"
    reminder_template: str = "reminder"


class GracePolicy(ConfigModel):
    max_days: int = Field(default=90, ge=1, le=366)


class Strategy(ConfigModel):
    promises: PromisePolicy = Field(default_factory=PromisePolicy)
    plans: PlanPolicy = Field(default_factory=PlanPolicy)
    grace: GracePolicy = Field(default_factory=GracePolicy)
    batch_size: int = Field(default=5000, ge=1, le=100_000, description="accounts per task")
    letter_workers: int = Field(
        default=0, ge=0, le=64, description="processes printing letter PDFs; 0: one per CPU"
    )
    channel_fallback: dict[Channel, Channel] = Field(
        default_factory=dict,
        description="when a channel cannot reach the customer (no contact point or no consent)",
    )
    tiers: list[Tier] = Field(default_factory=_default_tiers)

    @model_validator(mode="after")
    def _tiers_partition(self) -> Self:
        if not self.tiers:
            raise ValueError("at least one tier is needed")
        names = [t.name for t in self.tiers]
        if len(set(names)) != len(names):
            raise ValueError(f"tier names must be unique: {names}")
        step_ids = [s.id for t in self.tiers for s in t.cadence]
        duplicated = sorted({s for s in step_ids if step_ids.count(s) > 1})
        if duplicated:
            raise ValueError(f"step ids must be unique across tiers: {duplicated}")
        previous: Tier | None = None
        for tier in self.tiers:
            if previous is not None:
                if previous.dpd.max is None:
                    raise ValueError(f"tier {previous.name!r} has no max but is not the last tier")
                if tier.dpd.min != previous.dpd.max + 1:
                    raise ValueError(
                        f"tier {tier.name!r} must start at DPD {previous.dpd.max + 1}, "
                        f"right after {previous.name!r}; it starts at {tier.dpd.min}"
                    )
            previous = tier
        for source, target in self.channel_fallback.items():
            if source == target:
                raise ValueError(f"channel_fallback: {source} falls back to itself")
        return self

    def tier_for(self, dpd: int) -> Tier | None:
        for tier in self.tiers:
            if tier.dpd.contains(dpd):
                return tier
        return None

    def tier_named(self, name: str) -> Tier:
        for tier in self.tiers:
            if tier.name == name:
                return tier
        raise KeyError(name)
