"""Date arithmetic the schedule and the messages' deadlines need."""

from __future__ import annotations

import calendar as _calendar
from collections.abc import Container
from datetime import date, timedelta


def add_months(day: date, months: int) -> date:
    """The same day `months` later, clamped to the month's end (Jan 31 + 1 month = Feb 28/29)."""
    index = day.year * 12 + (day.month - 1) + months
    year, month = divmod(index, 12)
    last = _calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day.day, last))


def add_business_days(day: date, days: int, holidays: Container[date] = ()) -> date:
    """The date `days` business days after `day`: Saturdays, Sundays and `holidays` are not
    business days (a calendar of public holidays, or anything answering `in`)."""
    while days > 0:
        day += timedelta(days=1)
        if day.weekday() < 5 and day not in holidays:
            days -= 1
    return day
