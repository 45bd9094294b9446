"""What planning a batch needs, built once per process (`dunning.bootstrap.outreach`) and
passed to every batch: the strategy, the templates and their approvals, the contact rules, the
lender's texts, where letters' sources go and how they print."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import Engine

from dunning.config import Strategy, Tier
from dunning.config.actions import ActionsConfig
from dunning.config.lender import LenderProfile
from dunning.db.documents import DocumentStore
from dunning.db.models import utcnow
from dunning.domain.zones import candidate_zones
from dunning.rendering import Renderer, TemplateRef, TemplateStore
from dunning.rendering.context import Deadlines, LenderView
from dunning.services.contact.policy import Check, ContactPolicy
from dunning.types import Channel, Suppression

ApprovalCheck = Callable[[str, str], bool]
"""(template id, content hash) -> whether a compliance officer approved exactly that text."""
PrintStarter = Callable[[int, int], None]
"""(lo, hi): print the batch's new letters in the background while the next batch is planned."""


@dataclass
class Planner:
    engine: Engine
    strategy: Strategy
    templates: TemplateStore
    renderer: Renderer
    approved: ApprovalCheck
    policy: ContactPolicy
    lender: LenderProfile
    actions: ActionsConfig
    documents: DocumentStore
    start_printing: PrintStarter | None = None
    """None: letters are printed by dispatch (or not at all, in a dry run)."""
    clock: Callable[[], datetime] = utcnow
    tiers: dict[str, Tier] = field(init=False)
    has_actions: bool = field(init=False)
    """Whether any cadence step is an action (else planning skips looking for them)."""
    _lender_views: dict[str, LenderView] = field(default_factory=dict, init=False, repr=False)
    _deadlines: dict[tuple[str, date], Deadlines] = field(
        default_factory=dict, init=False, repr=False
    )

    def __post_init__(self) -> None:
        self.tiers = {tier.name: tier for tier in self.strategy.tiers}
        self.has_actions = any(
            step.action is not None for tier in self.strategy.tiers for step in tier.cadence
        )

    def lender_view(self, locale: str) -> LenderView:
        view = self._lender_views.get(locale)
        if view is None:
            view = self._lender_views[locale] = self.lender.view(locale)
        return view

    def deadlines(self, jurisdiction: str, sent_on: date) -> Deadlines:
        """The pay-by date and dispute deadline the jurisdiction's policy pack gives a message
        sent on `sent_on` (the same for every message of a jurisdiction and day)."""
        key = (jurisdiction, sent_on)
        found = self._deadlines.get(key)
        if found is None:
            pack = self.policy.pack(jurisdiction)
            if pack is None:
                # Unreachable while planning: such a message is held (no_policy_pack) before
                # it is rendered. Refuse rather than make up dates.
                raise LookupError(f"no policy pack for jurisdiction {jurisdiction!r}")
            found = self._deadlines[key] = pack.deadlines(sent_on)
        return found

    def template_hold(self, template: TemplateRef) -> Suppression | None:
        """Fail closed: only the exact text a compliance officer approved may go out."""
        if self.approved(template.id, template.content_hash):
            return None
        return Suppression.TEMPLATE_UNAPPROVED

    def timing(self, row: Any, channel: Channel, now: datetime) -> Check:
        """When the contact rules let this customer be reached on `channel`: now, later, never."""
        zones = candidate_zones(row.time_zone, row.phone, row.country, row.region)
        return self.policy.timing(row.jurisdiction, channel, zones, now)
