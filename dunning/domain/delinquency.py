"""Days past due, the overdue amount and payment allocation, as pure functions over a schedule.

The database computes DPD and the overdue amount set-based (dunning.services.delinquency); these
functions are the reference the SQL is tested against, and `apply_payment` is what imports use
to keep `paid_on` right.
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


def overdue_amount(
    schedule: Sequence[ScheduleLine],
    as_of: date,
    payments: Sequence[tuple[date, MinorUnits]] = (),
) -> MinorUnits:
    """What was past due and unpaid as of `as_of`: the instalments due before it and not fully
    paid by then, less what had been paid on them by then, never money paid since.

    `schedule` is the schedule now, after every recorded payment (`payments`: date and amount)
    was allocated to the oldest open instalments first. So the money paid after `as_of` sits on
    the newest of the instalments that were still open then: it is taken back off them, newest
    first, leaving what had been paid by `as_of`. A payment's part that found no open
    instalment (paid beyond the schedule) is taken to be the latest money. With no payment
    after `as_of`, an instalment fully paid after it (its `paid_on`, as an instalments file
    gives it) counts as wholly unpaid then: nothing says when its earlier part was paid.
    The SQL in services.delinquency.overdue_by_account computes the same.
    """
    open_then = [line for line in schedule if line.paid_on is None or line.paid_on > as_of]
    overdue = [line for line in open_then if line.due_on < as_of]
    owed_now = sum(line.amount_due - line.amount_paid for line in overdue)
    after = sum(amount for day, amount in payments if day > as_of)
    if after > 0:
        unallocated = max(0, sum(a for _, a in payments) - sum(ln.amount_paid for ln in schedule))
        paid_later_lines = sum(line.amount_paid for line in open_then if line.due_on >= as_of)
        paid_overdue_lines = sum(line.amount_paid for line in overdue)
        taken_back = min(paid_overdue_lines, max(0, after - unallocated - paid_later_lines))
    else:
        taken_back = sum(line.amount_paid for line in overdue if line.paid_on is not None)
    return owed_now + taken_back


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
