"""Which steps are due, and every suppression that holds one."""

from __future__ import annotations

import pytest

from dunning.config import Strategy
from dunning.domain.decide import AccountState, ContactState, decide
from dunning.types import Channel, Suppression

ALL = frozenset({Channel.SMS, Channel.PUSH, Channel.LETTER})
STRATEGY = Strategy.model_validate(
    {
        "channel_fallback": {"push": "sms"},
        "tiers": [
            {
                "name": "early",
                "dpd": {"min": 1, "max": 30},
                "cadence": [
                    {"id": "early-push", "channel": "push", "template": "reminder", "days": [1]},
                    {
                        "id": "early-sms",
                        "channel": "sms",
                        "template": "reminder",
                        "days": [3, 7],
                        "every": 7,
                    },
                ],
            },
            {
                "name": "middle",
                "dpd": {"min": 31, "max": 60},
                "cadence": [
                    {
                        "id": "middle-letter",
                        "channel": "letter",
                        "template": "notice",
                        "days": [31],
                    },
                ],
            },
            {"name": "late", "dpd": {"min": 61}},
        ],
    }
)
EARLY = STRATEGY.tier_named("early")
FALLBACK = STRATEGY.channel_fallback


def contact(
    points: frozenset[Channel] = ALL,
    consents: frozenset[Channel] = ALL,
    opted_out: frozenset[Channel] = frozenset(),
) -> ContactState:
    return ContactState(points, consents, opted_out)


def test_due_steps_follow_the_cadence() -> None:
    days = {
        dpd: [d.step.id for d in decide(EARLY, AccountState(dpd), contact(), FALLBACK)]
        for dpd in range(1, 31)
    }
    assert {dpd: ids for dpd, ids in days.items() if ids} == {
        1: ["early-push"],
        3: ["early-sms"],
        7: ["early-sms"],
        14: ["early-sms"],
        21: ["early-sms"],
        28: ["early-sms"],
    }


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        (AccountState(3, open=False), Suppression.PAID),
        (AccountState(3, deceased=True), Suppression.DECEASED),
        (AccountState(3, bankruptcy=True), Suppression.BANKRUPTCY),
        (AccountState(3, attorney_on_file=True), Suppression.ATTORNEY),
        (AccountState(3, cease_communication=True), Suppression.CEASE_REQUEST),
        (AccountState(3, dispute_open=True), Suppression.DISPUTE),
        (AccountState(3, hardship_hold=True), Suppression.HARDSHIP_HOLD),
        (AccountState(3, promise_active=True), Suppression.PROMISE_TO_PAY),
        (AccountState(3, extra_stops=(Suppression.HARDSHIP_HOLD,)), Suppression.HARDSHIP_HOLD),
    ],
)
def test_account_stops_hold_with_their_reason(state: AccountState, reason: Suppression) -> None:
    (decision,) = decide(EARLY, state, contact(), FALLBACK)
    assert decision.hold == reason and decision.channel == Channel.SMS


def test_a_stop_outranks_a_lesser_one() -> None:
    state = AccountState(3, deceased=True, dispute_open=True, promise_active=True)
    assert decide(EARLY, state, contact(), FALLBACK)[0].hold == Suppression.DECEASED


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        (contact(consents=ALL - {Channel.SMS}), Suppression.NO_CONSENT),
        (contact(opted_out=frozenset({Channel.SMS})), Suppression.OPTED_OUT),
        (contact(points=ALL - {Channel.SMS}), Suppression.NO_CONTACT_POINT),
    ],
)
def test_channel_level_holds(state: ContactState, reason: Suppression) -> None:
    (decision,) = decide(EARLY, AccountState(3), state, FALLBACK)
    assert decision.hold == reason


def test_push_falls_back_to_sms_without_token_or_consent() -> None:
    for state in (contact(points=ALL - {Channel.PUSH}), contact(consents=ALL - {Channel.PUSH})):
        (decision,) = decide(EARLY, AccountState(1), state, FALLBACK)
        assert (decision.channel, decision.hold, decision.step.channel) == (
            Channel.SMS,
            None,
            Channel.PUSH,
        )


def test_fallback_that_is_also_blocked_holds_with_the_first_reason() -> None:
    state = contact(points=ALL - {Channel.PUSH}, opted_out=frozenset({Channel.SMS}))
    (decision,) = decide(EARLY, AccountState(1), state, FALLBACK)
    assert (decision.channel, decision.hold) == (Channel.PUSH, Suppression.NO_CONTACT_POINT)
