"""The legal case state machine: allowed moves, refused moves with clear errors, the review flag."""

from __future__ import annotations

import pytest

from dunning.errors import InvalidTransition
from dunning.legal.lifecycle import TRANSITIONS, CaseStatus, check_transition

S = CaseStatus
ALLOWED = {
    (S.PROPOSED, S.APPROVED),
    (S.PROPOSED, S.WITHDRAWN),
    (S.APPROVED, S.FILED),
    (S.APPROVED, S.WITHDRAWN),
    (S.FILED, S.JUDGMENT),
    (S.FILED, S.SETTLED),
    (S.FILED, S.WITHDRAWN),
}


def test_the_transition_table_is_exactly_the_lifecycle() -> None:
    assert {(a, b) for a, targets in TRANSITIONS.items() for b in targets} == ALLOWED


@pytest.mark.parametrize("current", list(S))
@pytest.mark.parametrize("target", list(S))
def test_every_pair(current: CaseStatus, target: CaseStatus) -> None:
    if (current, target) in ALLOWED:
        check_transition(1, current, target, user="ana", note="ok")
        return
    with pytest.raises(InvalidTransition) as caught:
        check_transition(1, current, target, user="ana", note="ok")
    message = str(caught.value)
    assert f"case 1 is {current.value}" in message and f"cannot become {target.value}" in message


def test_closed_cases_say_so() -> None:
    with pytest.raises(InvalidTransition, match="none: the case is closed"):
        check_transition(9, S.SETTLED, S.FILED, user="ana", note="x")


@pytest.mark.parametrize(("user", "note", "missing"), [("", "x", "--user"), ("a", " ", "--note")])
def test_user_and_note_are_required(user: str, note: str, missing: str) -> None:
    with pytest.raises(InvalidTransition, match=missing):
        check_transition(1, S.PROPOSED, S.APPROVED, user=user, note=note)


def test_a_flagged_case_needs_reviewed_to_go_forward_but_can_be_withdrawn() -> None:
    with pytest.raises(InvalidTransition, match="flagged for review"):
        check_transition(1, S.PROPOSED, S.APPROVED, needs_review=True, user="a", note="n")
    check_transition(
        1, S.PROPOSED, S.APPROVED, needs_review=True, reviewed=True, user="a", note="n"
    )
    check_transition(1, S.PROPOSED, S.WITHDRAWN, needs_review=True, user="a", note="n")
