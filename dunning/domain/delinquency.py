"""Days past due and payment allocation, as pure functions over a schedule.

The database computes DPD set-based (dunning.services.selection); these functions are the
reference the SQL is tested against, and what `apply_payment` uses to keep `paid_on` right.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date

from dunning.types import MinorUnits


@dataclass(frozen=True)
class ScheduleLine:
    seq: int
    due_on: date
    amount_due: MinorUnits
    amount_paid: MinorUnits = 0
    paid_on: date | None = None

    def unpaid_as_of(self, as_of: date) -> bool:
        return self.due_on < as_of and (self.paid_on is None or self.paid_on > as_of)


def dpd(schedule: Sequence[ScheduleLine], as_of: date) -> int:
    """Days past due: from the oldest instalment due before `as_of` and not fully paid by then."""
    oldest = min((line.due_on for line in schedule if line.unpaid_as_of(as_of)), default=None)
    return 0 if oldest is None else (as_of - oldest).days


def overdue_amount(schedule: Sequence[ScheduleLine], as_of: date) -> MinorUnits:
    """What is still owed today on the instalments that were past due as of `as_of`.

    For a past as-of date (a rerun or backfill) this is the amount outstanding now, never money
    the customer has paid since: a message must not ask for it.
    """
    return sum(line.amount_due - line.amount_paid for line in schedule if line.unpaid_as_of(as_of))


def apply_payment(
    schedule: Sequence[ScheduleLine], amount: MinorUnits, paid_on: date
) -> tuple[list[ScheduleLine], MinorUnits]:
    """Allocate a payment to the oldest open instalments first.

    Returns the new schedule and whatever is left over (an overpayment beyond the schedule).
    An instalment that the payment completes gets `paid_on` = the payment's date.
    """
    if amount < 0:
        raise ValueError("a payment cannot be negative")
    remaining = amount
    result: list[ScheduleLine] = []
    for line in sorted(schedule, key=lambda item: (item.due_on, item.seq)):
        open_amount = line.amount_due - line.amount_paid
        if remaining > 0 and open_amount > 0:
            paid = min(open_amount, remaining)
            remaining -= paid
            new_paid = line.amount_paid + paid
            line = replace(
                line,
                amount_paid=new_paid,
                paid_on=paid_on if new_paid >= line.amount_due else None,
            )
        result.append(line)
    return result, remaining
