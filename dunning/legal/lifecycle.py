"""The legal case state machine: proposed -> approved -> filed -> judgment | settled | withdrawn.

    proposed ──approve──> approved ──file──> filed ──close──> judgment | settled | withdrawn
        │                     │
        └───────close─────────┴──> withdrawn

Every move is made by a named user with a note and kept in the case history. A case flagged
for review (a payment or a stop since it was proposed) is not approved or filed until someone
says they reviewed it.
"""

from __future__ import annotations

from enum import StrEnum

from dunning.errors import InvalidTransition


class CaseStatus(StrEnum):
    PROPOSED = "proposed"
    APPROVED = "approved"
    FILED = "filed"
    JUDGMENT = "judgment"
    SETTLED = "settled"
    WITHDRAWN = "withdrawn"


OPEN_STATUSES = frozenset({CaseStatus.PROPOSED, CaseStatus.APPROVED, CaseStatus.FILED})
PRE_FILING = frozenset({CaseStatus.PROPOSED, CaseStatus.APPROVED})
OUTCOMES = (CaseStatus.JUDGMENT, CaseStatus.SETTLED, CaseStatus.WITHDRAWN)
BLOCKING_OUTCOMES = frozenset({CaseStatus.JUDGMENT, CaseStatus.SETTLED})
"""Closed cases that keep the account from being proposed again (the claim is decided)."""

TRANSITIONS: dict[CaseStatus, frozenset[CaseStatus]] = {
    CaseStatus.PROPOSED: frozenset({CaseStatus.APPROVED, CaseStatus.WITHDRAWN}),
    CaseStatus.APPROVED: frozenset({CaseStatus.FILED, CaseStatus.WITHDRAWN}),
    CaseStatus.FILED: frozenset({CaseStatus.JUDGMENT, CaseStatus.SETTLED, CaseStatus.WITHDRAWN}),
    CaseStatus.JUDGMENT: frozenset(),
    CaseStatus.SETTLED: frozenset(),
    CaseStatus.WITHDRAWN: frozenset(),
}


def check_transition(
    case_id: int,
    current: CaseStatus,
    target: CaseStatus,
    *,
    needs_review: bool = False,
    reviewed: bool = False,
    user: str = "",
    note: str = "",
) -> None:
    """Raise InvalidTransition, saying what is allowed, unless `current -> target` may happen."""
    if not user.strip():
        raise InvalidTransition(f"case {case_id}: a transition needs --user")
    if not note.strip():
        raise InvalidTransition(f"case {case_id}: a transition needs --note")
    allowed = TRANSITIONS[current]
    if target not in allowed:
        options = ", ".join(sorted(allowed)) or "none: the case is closed"
        raise InvalidTransition(
            f"case {case_id} is {current}: it cannot become {target} (allowed: {options})"
        )
    if needs_review and not reviewed and target in {CaseStatus.APPROVED, CaseStatus.FILED}:
        raise InvalidTransition(
            f"case {case_id} is flagged for review: check it, then pass --reviewed to {target} it"
        )
