"""Which cadence steps are due for an account today, and why a due step is held.

Pure: the service layer loads account and customer state, this decides, and every held
decision carries its suppression (the rule id shown in summaries and `explain`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from dunning.domain.cadence import CadenceStep, CadenceTier
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


CUSTOMER_STOPS: tuple[tuple[str, Suppression], ...] = (
    ("deceased", Suppression.DECEASED),
    ("bankruptcy", Suppression.BANKRUPTCY),
    ("attorney_on_file", Suppression.ATTORNEY),
    ("cease_communication", Suppression.CEASE_REQUEST),
    ("dispute_open", Suppression.DISPUTE),
    ("hardship_hold", Suppression.HARDSHIP_HOLD),
)
"""The customer's flags (customer columns, AccountState fields) that stop ordinary collection
contact, with the rule each records, in STOP_ORDER."""
STOP_ORDER: tuple[Suppression, ...] = (
    Suppression.PAID,
    *(reason for _, reason in CUSTOMER_STOPS),
    Suppression.GRACE,
    Suppression.PAYMENT_PLAN,
    Suppression.PROMISE_TO_PAY,
)
"""Every reason no ordinary collection contact may happen, in order of weight: when several
apply, the first names the rule. The daily run (AccountState.stop), the send-time gate and the
action dispatcher all pick with first_stop, so they cannot weigh them differently."""


def first_stop(found: Collection[Suppression]) -> Suppression | None:
    """The weightiest of the stops that apply (STOP_ORDER), or None."""
    return next((reason for reason in STOP_ORDER if reason in found), None)


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

    def stops(self) -> set[Suppression]:
        """Every reason in STOP_ORDER that applies."""
        found = {reason for flag, reason in CUSTOMER_STOPS if getattr(self, flag)}
        for hit, reason in (
            (not self.open or self.dpd <= 0, Suppression.PAID),
            (self.grace, Suppression.GRACE),
            (self.plan_active, Suppression.PAYMENT_PLAN),
            (self.promise_active, Suppression.PROMISE_TO_PAY),
        ):
            if hit:
                found.add(reason)
        return found

    def stop(self) -> Suppression | None:
        """The first reason no ordinary collection contact may happen, in order of weight."""
        stop = first_stop(self.stops())
        if stop is not None:
            return stop
        return self.extra_stops[0] if self.extra_stops else None


@dataclass(frozen=True)
class Decision:
    step: CadenceStep
    channel: Channel
    """The channel the message goes out on: the step's, or its fallback."""
    hold: Suppression | None = None

    @property
    def held(self) -> bool:
        return self.hold is not None


def due_steps(tier: CadenceTier, dpd: int) -> list[CadenceStep]:
    return [step for step in tier.cadence if step.is_due(dpd, tier.dpd)]


def decide_message(
    step: CadenceStep,
    account: AccountState,
    contact: ContactState,
    fallback: Mapping[Channel, Channel],
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
    tier: CadenceTier,
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
