"""Which cadence steps are due for an account today, and why a due step is held.

Pure: the service layer loads account and customer state, this decides, and every held
decision carries its suppression reason (the rule id shown in summaries and `explain`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from dunning.config.strategy import Step, Tier
from dunning.types import Channel, Suppression


@dataclass(frozen=True)
class ContactState:
    """What the customer's record allows, per channel."""

    contact_points: frozenset[Channel]
    """Channels with a usable address: phone for SMS, token for push, postal address for letters."""
    consents: frozenset[Channel]
    opted_out: frozenset[Channel]

    def reason_blocked(self, channel: Channel) -> Suppression | None:
        if channel in self.opted_out:
            return Suppression.OPTED_OUT
        if channel not in self.consents:
            return Suppression.NO_CONSENT
        if channel not in self.contact_points:
            return Suppression.NO_CONTACT_POINT
        return None


@dataclass(frozen=True)
class AccountState:
    """The account and customer facts that can stop collection contact."""

    dpd: int
    open: bool = True
    deceased: bool = False
    bankruptcy: bool = False
    attorney_on_file: bool = False
    cease_communication: bool = False
    dispute_open: bool = False
    hardship_hold: bool = False
    promise_active: bool = False
    grace: bool = False
    plan_active: bool = False
    extra_stops: tuple[Suppression, ...] = field(default_factory=tuple)
    """Stops found by other rules (a grace period, for example)."""

    def stop(self) -> Suppression | None:
        """The first reason no ordinary collection contact may happen, in order of weight."""
        checks: list[tuple[bool, Suppression]] = [
            (not self.open or self.dpd <= 0, Suppression.PAID),
            (self.deceased, Suppression.DECEASED),
            (self.bankruptcy, Suppression.BANKRUPTCY),
            (self.attorney_on_file, Suppression.ATTORNEY),
            (self.cease_communication, Suppression.CEASE_REQUEST),
            (self.dispute_open, Suppression.DISPUTE),
            (self.hardship_hold, Suppression.HARDSHIP_HOLD),
            (self.grace, Suppression.GRACE),
            (self.plan_active, Suppression.PAYMENT_PLAN),
            (self.promise_active, Suppression.PROMISE_TO_PAY),
        ]
        for hit, reason in checks:
            if hit:
                return reason
        return self.extra_stops[0] if self.extra_stops else None


@dataclass(frozen=True)
class Decision:
    step: Step
    channel: Channel
    """The channel the message goes out on: the step's, or its fallback."""
    hold: Suppression | None = None

    @property
    def held(self) -> bool:
        return self.hold is not None


def due_steps(tier: Tier, dpd: int) -> list[Step]:
    return [step for step in tier.cadence if step.is_due(dpd, tier.dpd)]


def decide_message(
    step: Step, account: AccountState, contact: ContactState, fallback: Mapping[Channel, Channel]
) -> Decision:
    """Send a message step on its channel (or the fallback), or hold it with a reason."""
    assert step.channel is not None
    stop = account.stop()
    if stop is not None:
        return Decision(step, step.channel, stop)
    channel = step.channel
    blocked = contact.reason_blocked(channel)
    alternative = fallback.get(channel)
    usable = alternative is not None and contact.reason_blocked(alternative) is None
    if blocked is not None and usable and alternative is not None:
        channel, blocked = alternative, None
    return Decision(step, channel, blocked)


def decide(
    tier: Tier,
    account: AccountState,
    contact: ContactState,
    fallback: Mapping[Channel, Channel],
) -> list[Decision]:
    """One decision per message step due today: send on a channel, or hold with a reason."""
    return [
        decide_message(step, account, contact, fallback)
        for step in due_steps(tier, account.dpd)
        if step.channel is not None
    ]
