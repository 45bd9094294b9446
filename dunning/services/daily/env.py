"""Everything planning and dispatch need, built once per process and reused by every batch."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from dunning.bootstrap import Runtime
from dunning.config import Strategy, Tier
from dunning.db.documents import DocumentStore
from dunning.db.models import utcnow
from dunning.types import Channel, Suppression

if TYPE_CHECKING:
    from adapters.actions.base import ActionAdapter
    from adapters.base import GatewayAdapter
    from dunning.compliance import ApprovalBook
    from dunning.config.actions import ActionsConfig
    from dunning.config.channels import DispatchSettings
    from dunning.config.lender import LenderProfile
    from dunning.rendering import Renderer, TemplateRef, TemplateStore
    from dunning.rendering.context import LenderView
    from dunning.services.contact.policy import Check, ContactPolicy
    from dunning.services.dispatch.printing import LetterPress, Printing, PrintReport
    from dunning.services.dispatch.send import SendGate


@dataclass
class OutreachEnv:
    runtime: Runtime
    clock: Callable[[], datetime] = utcnow
    _lender_views: dict[str, LenderView] = field(default_factory=dict, repr=False)

    @property
    def strategy(self) -> Strategy:
        return self.runtime.project.strategy

    @cached_property
    def tiers(self) -> dict[str, Tier]:
        return {tier.name: tier for tier in self.strategy.tiers}

    @cached_property
    def store(self) -> TemplateStore:
        from dunning.rendering import TemplateStore

        return TemplateStore(self.runtime.project.templates_dir)

    @cached_property
    def renderer(self) -> Renderer:
        from dunning.rendering import Renderer

        return Renderer(self.store)

    @cached_property
    def letters(self) -> LetterPress:
        from dunning.services.dispatch.printing import LetterPress, default_workers

        return LetterPress(self.strategy.letter_workers or default_workers())

    @cached_property
    def _printing(self) -> Printing:
        from dunning.services.dispatch.printing import Printing

        lease = timedelta(seconds=self.dispatch_settings.lease_seconds)
        return Printing(self.runtime.engine, self.letters, self.documents, lease)

    def start_printing(self, lo: int, hi: int) -> None:
        """Print the batch's new letters in the background while the next batch is planned."""
        self._printing.start(lo, hi)

    def finish_printing(self, lo: int | None, hi: int | None) -> PrintReport:
        """Wait for the batch's background printing, then print whatever is still unprinted."""
        return self._printing.finish(lo, hi)

    def close(self) -> None:
        if "_printing" in self.__dict__:
            self._printing.close()
        if "letters" in self.__dict__:
            self.letters.close()

    @cached_property
    def lender(self) -> LenderProfile:
        return self.runtime.project.lender

    @cached_property
    def documents(self) -> DocumentStore:
        return DocumentStore(self.runtime.project.state_dir / "documents")

    def lender_view(self, locale: str) -> LenderView:
        view = self._lender_views.get(locale)
        if view is None:
            view = self._lender_views[locale] = self.lender.view(locale)
        return view

    @cached_property
    def approvals(self) -> ApprovalBook:
        from dunning.compliance import ApprovalBook

        return ApprovalBook.load(self.runtime.project.templates_dir.parent)

    @cached_property
    def policy(self) -> ContactPolicy:
        from dunning.services.contact.policy import ContactPolicy

        lease = timedelta(seconds=self.dispatch_settings.lease_seconds)
        return ContactPolicy(self.runtime.project.compliance_packs, send_span=lease)

    def template_hold(self, template: TemplateRef) -> Suppression | None:
        """Fail closed: only the exact text a compliance officer approved may go out."""
        if self.approvals.is_approved(template.id, template.content_hash):
            return None
        return Suppression.TEMPLATE_UNAPPROVED

    def timing(self, row: Any, channel: Channel, now: datetime) -> Check:
        """When the contact rules let this customer be reached on `channel`: now, later, never."""
        from dunning.domain.zones import candidate_zones

        zones = candidate_zones(row.time_zone, row.phone, row.country, row.region)
        return self.policy.timing(row.jurisdiction, channel, zones, now)

    @property
    def dispatch_settings(self) -> DispatchSettings:
        return self.runtime.project.channels.dispatch

    def adapter_factory(self, channel: Channel) -> GatewayAdapter:
        from adapters.registry import build_adapter

        return build_adapter(channel, self.runtime.project.channels, self.runtime.project.state_dir)

    @cached_property
    def send_gate(self) -> SendGate:
        """Send-time rules (cure, stops, consent, approval, windows, caps) on every claim."""
        from dunning.services.contact.policy import send_gate

        return send_gate(self.policy, self.approvals.is_approved)

    @property
    def actions_enabled(self) -> bool:
        """Actions are dispatched when the cadence has action steps or any action exists."""
        return (
            self.strategy_has_actions or (self.runtime.project.config_dir / "actions.yaml").exists()
        )

    @cached_property
    def strategy_has_actions(self) -> bool:
        return any(step.action is not None for tier in self.strategy.tiers for step in tier.cadence)

    @cached_property
    def actions_config(self) -> ActionsConfig:
        return self.runtime.project.actions

    def action_factory(self, target: str) -> ActionAdapter:
        from adapters.registry import build_action_adapter

        return build_action_adapter(target, self.actions_config, self.runtime.project.state_dir)
