"""Cadence arithmetic: on which DPD days a step is due inside its tier's band.

The domain states what it needs of a tier and a step as protocols; the strategy's config models
(dunning.config.strategy) have exactly these fields, and delegate their arithmetic here, so the
domain imports no configuration.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from dunning.types import ActionKind, Channel


class Band(Protocol):
    """A tier's DPD band: min..max inclusive, no upper bound when max is None."""

    @property
    def min(self) -> int: ...

    @property
    def max(self) -> int | None: ...


class CadenceStep(Protocol):
    """One step of a cadence: a message (channel and template) or an action."""

    @property
    def id(self) -> str: ...

    @property
    def channel(self) -> Channel | None: ...

    @property
    def action(self) -> ActionKind | None: ...

    @property
    def template(self) -> str | None: ...

    def is_due(self, dpd: int, tier: Band) -> bool: ...


class CadenceTier(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def dpd(self) -> Band: ...

    @property
    def cadence(self) -> Sequence[CadenceStep]: ...


def first_repeat(
    days: Sequence[int], every: int | None, start: int | None, tier_min: int
) -> int | None:
    """The first DPD of a step's repetition: `start`, else `every` days after its last fixed
    day (or after the tier's first day); None for a step that does not repeat."""
    if every is None:
        return None
    if start is not None:
        return start
    return (max(days) if days else tier_min) + every


def is_due(
    dpd: int,
    days: Sequence[int],
    every: int | None,
    start: int | None,
    until: int | None,
    tier: Band,
) -> bool:
    """Whether a step with these days and repetition is due at `dpd` in the band `tier`."""
    if dpd in days:
        return True
    first = first_repeat(days, every, start, tier.min)
    if first is None or every is None or dpd < first:
        return False
    last = until if until is not None else tier.max
    if last is not None and dpd > last:
        return False
    return (dpd - first) % every == 0
