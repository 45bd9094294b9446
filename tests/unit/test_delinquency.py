"""DPD, overdue amount and payment allocation as pure functions."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import given
from hypothesis import strategies as st

from dunning.domain.delinquency import ScheduleLine, apply_payment, dpd, overdue_amount

D = date(2026, 3, 1)


def line(seq: int, due: date, amount: int = 100, paid: int = 0, paid_on: date | None = None):
    return ScheduleLine(seq, due, amount, paid, paid_on)


def test_dpd_counts_from_the_oldest_unpaid_instalment() -> None:
    schedule = [
        line(1, date(2026, 1, 1), paid=100, paid_on=date(2026, 1, 1)),
        line(2, date(2026, 2, 1)),
        line(3, date(2026, 3, 1)),
    ]
    assert dpd(schedule, D) == 28  # Feb 1 to Mar 1; the instalment due on D is not yet late
    assert overdue_amount(schedule, D) == 100


def test_due_today_is_not_past_due_and_yesterday_is_one_day() -> None:
    assert dpd([line(1, D)], D) == 0
    assert dpd([line(1, D - timedelta(days=1))], D) == 1


def test_partial_payment_keeps_dpd_and_lowers_the_amount() -> None:
    schedule = [line(1, date(2026, 2, 1), paid=40)]
    assert dpd(schedule, D) == 28
    assert overdue_amount(schedule, D) == 60


def test_paid_after_as_of_counts_as_unpaid_then() -> None:
    schedule = [line(1, date(2026, 2, 1), paid=100, paid_on=date(2026, 2, 20))]
    assert dpd(schedule, date(2026, 2, 10)) == 9
    assert overdue_amount(schedule, date(2026, 2, 10)) == 100  # unpaid in full then
    assert dpd(schedule, date(2026, 2, 21)) == 0


def test_payments_after_as_of_are_taken_back_newest_first() -> None:
    payments = [(date(2026, 1, 20), 40), (date(2026, 3, 5), 200)]
    schedule = [line(1, date(2026, 1, 1)), line(2, date(2026, 2, 1)), line(3, date(2026, 4, 1))]
    for day, amount in payments:
        schedule, _ = apply_payment(schedule, amount, day)
    assert [(s.amount_paid, s.paid_on) for s in schedule] == [
        (100, date(2026, 3, 5)),
        (100, date(2026, 3, 5)),
        (40, None),
    ]
    # On Mar 1: the 40 paid in January, nothing of March's 200 (60 + 100 + 40 of it).
    assert overdue_amount(schedule, D, payments) == 160
    assert overdue_amount(schedule, date(2026, 3, 10), payments) == 0


def test_apply_payment_fills_oldest_first_and_dates_completion() -> None:
    schedule = [line(1, date(2026, 1, 1)), line(2, date(2026, 2, 1))]
    result, left = apply_payment(schedule, 150, date(2026, 2, 15))
    assert [(r.amount_paid, r.paid_on) for r in result] == [(100, date(2026, 2, 15)), (50, None)]
    assert left == 0
    result, left = apply_payment(result, 80, date(2026, 2, 16))
    assert result[1].paid_on == date(2026, 2, 16)
    assert left == 30


schedules = st.lists(
    st.tuples(st.integers(0, 400), st.integers(1, 10_000), st.integers(0, 100)),
    min_size=1,
    max_size=8,
).map(
    lambda items: [
        _line(seq + 1, offset, amount, pct) for seq, (offset, amount, pct) in enumerate(items)
    ]
)


def _line(seq: int, offset: int, amount: int, pct: int) -> ScheduleLine:
    """A valid schedule line: fully paid lines carry the date they were paid (their due date)."""
    due = date(2025, 1, 1) + timedelta(days=offset)
    paid = amount * pct // 100
    return line(seq, due, amount, paid, due if paid >= amount else None)


days = st.integers(0, 500).map(lambda n: date(2025, 1, 1) + timedelta(days=n))


@given(schedules, days)
def test_dpd_is_never_negative(schedule: list[ScheduleLine], as_of: date) -> None:
    assert dpd(schedule, as_of) >= 0


@given(schedules, days, days, st.integers(1, 50_000))
def test_a_payment_never_raises_dpd(
    schedule: list[ScheduleLine], paid_on: date, as_of: date, amount: int
) -> None:
    after, _ = apply_payment(schedule, amount, paid_on)
    assert dpd(after, as_of) <= dpd(schedule, as_of)
    if paid_on <= as_of:  # a later payment is taken back (tests/integration/test_dpd_sql.py)
        assert overdue_amount(after, as_of, [(paid_on, amount)]) <= overdue_amount(schedule, as_of)


@given(schedules, days)
def test_paying_every_instalment_makes_the_account_current(
    schedule: list[ScheduleLine], paid_on: date
) -> None:
    owed = sum(item.amount_due - item.amount_paid for item in schedule)
    after, left = apply_payment(schedule, owed, paid_on)
    assert left == 0
    assert all(item.paid_on is not None for item in after if item.amount_due > 0)
    assert dpd(after, paid_on) == 0
    assert dpd(after, paid_on + timedelta(days=400)) == 0
