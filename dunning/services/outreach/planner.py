"""What planning a batch needs, built once per process (`dunning.bootstrap.outreach`) and
passed to every batch: the strategy, the templates and their approvals, the contact rules, the
lender's texts, where letters' sources go and how they print."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import Engine

from dunning.compliance.registered import (
    ALIYUN_FILE,
    aliyun_drift,
    aliyun_problems,
    load_registered,
)
from dunning.config import Strategy, Tier
from dunning.config.actions import ActionsConfig
from dunning.config.lender import LenderProfile
from dunning.db.documents import DocumentStore
from dunning.db.models import utcnow
from dunning.domain.zones import candidate_zones
from dunning.errors import TemplateError
from dunning.rendering import MessageContext, RegisteredTexts, Renderer, TemplateRef, TemplateStore
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
    aliyun: RegisteredTexts | None = None
    """The Aliyun SMS templates as registered: by default read from the templates' program
    directory (templates/registered/aliyun.yaml beside templates/messages/), if it has one."""
    tiers: dict[str, Tier] = field(init=False)
    has_actions: bool = field(init=False)
    """Whether any cadence step is an action (else planning skips looking for them)."""
    _lender_views: dict[str, LenderView] = field(default_factory=dict, init=False, repr=False)
    _deadlines: dict[tuple[str, date], Deadlines] = field(
        default_factory=dict, init=False, repr=False
    )
    _vendor_problems: dict[tuple[str, str], str | None] = field(
        default_factory=dict, init=False, repr=False
    )

    def __post_init__(self) -> None:
        if self.aliyun is None:
            templates_root = self.templates.templates_dir.parent
            self.aliyun = load_registered(templates_root, templates_root.parent)
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

    def vendor(
        self, template: TemplateRef, context: MessageContext, body: str
    ) -> dict[str, dict[str, Any]] | None:
        """What the outbox keeps for the gateway (outbox_message.vendor): the template's
        vendor code and its parameters rendered for this message; None without a vendor block.

        Fail closed, as lint checks it for the sample accounts: TemplateError (the message is
        held render_failed) when a parameter does not render, the code is not registered, or
        the registered text with this message's parameters is not `body`, the text rendered
        for it (the vendor would send something other than what the outbox records). The
        errors name the template, the code and a position, never a value.
        """
        vendor = self.renderer.render_vendor(template, context)
        if vendor is None:
            return None
        block = template.metadata.vendor.aliyun if template.metadata.vendor else None
        if block is None:
            return vendor
        key = (template.id, template.content_hash)
        if key not in self._vendor_problems:
            problems = aliyun_problems(template, self.aliyun)
            self._vendor_problems[key] = (
                "; ".join(f"{where}: {reason}" for where, reason in problems) or None
            )
        problem = self._vendor_problems[key]
        if problem is not None:
            raise TemplateError(f"{template.id}: {problem}")
        assert self.aliyun is not None  # aliyun_problems says so without the file
        params = vendor["aliyun"]["params"]
        position = aliyun_drift(template, self.aliyun, params, body)
        if position is not None:
            raise TemplateError(
                f"{template.id}: vendor.aliyun: the registered text of {block.template_code} "
                f"(templates/{ALIYUN_FILE}) with this message's parameters differs from the "
                f"rendered text from character {position + 1}"
            )
        return vendor

    def timing(self, row: Any, channel: Channel, now: datetime) -> Check:
        """When the contact rules let this customer be reached on `channel`: now, later, never."""
        zones = candidate_zones(row.time_zone, row.phone, row.country, row.region)
        return self.policy.timing(row.jurisdiction, channel, zones, now)
