"""Actions due today: the cadence's action steps (freeze, placement, registry report) for the
batch's accounts.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

from dunning.domain.cadence import CadenceStep
from dunning.domain.decide import (
    due_steps,
)
from dunning.domain.keys import idempotency_key
from dunning.services.outreach.payloads import action_payload
from dunning.services.outreach.planner import Planner
from dunning.services.outreach.select import BatchRow
from dunning.types import ActionKind


@dataclass
class PlannedAction:
    row: BatchRow
    step: CadenceStep
    kind: ActionKind
    key: str
    hold: str | None
    payload: dict[str, Any]
    cost_minor: int | None


def due_actions(planner: Planner, rows: list[BatchRow], as_of: date) -> Iterator[PlannedAction]:
    config = planner.actions
    for row in rows:
        if row.tier is None:
            continue
        tier = planner.tiers[row.tier]
        steps = [step for step in due_steps(tier, row.dpd) if step.action is not None]
        if not steps:
            continue
        stop = row.account_state().stop()
        for step in steps:
            assert step.action is not None
            kind = step.action
            if (kind == ActionKind.CREDIT_FREEZE and row.frozen) or (
                kind == ActionKind.AGENCY_PLACEMENT and row.placed
            ):
                continue  # already in force: nothing new to do
            agency = config.agency_for(row.jurisdiction, row.tier)
            hold = stop.value if stop is not None else None
            if kind == ActionKind.AGENCY_PLACEMENT and agency is None and hold is None:
                hold = "no_agency"
            payload: dict[str, Any] = {}
            cost: int | None = None
            if hold is None:
                payload, cost = action_payload(
                    kind, row, as_of, freeze=config.credit_freeze, agency=agency
                )
            key = idempotency_key(row.account_external_id, as_of, step.id, kind.value)
            yield PlannedAction(row, step, kind, key, hold, payload, cost)
