"""Per-field checks of request items, for adapters that check items before sending them.

Used by the file registry and by the sandbox's action mocks, which check as a vendor would.

A failed check is a permanent rejection of one item (Invalid: a code and a reason). Reasons
name the field and what is wrong with it, never its value: items carry personal data.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = [
    "Invalid",
    "a_date",
    "currency",
    "days",
    "field_error",
    "iso_date",
    "minor",
    "optional_date",
    "optional_minor",
    "optional_text",
    "rate",
    "text",
]

_CURRENCY = re.compile(r"^[A-Z]{3}$")


class Invalid(Exception):
    """One item breaks the other side's rules: a permanent, per-item rejection."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def field_error(name: str, what: str) -> Invalid:
    return Invalid("invalid_field", f"{name} {what}")


def text(item: Mapping[str, Any], name: str, *, max_length: int = 200) -> str:
    value = item.get(name)
    if not isinstance(value, str) or not value.strip():
        raise field_error(name, "must be non-empty text")
    if len(value) > max_length:
        raise field_error(name, f"is over {max_length} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise field_error(name, "must not contain control characters")
    return value


def optional_text(item: Mapping[str, Any], name: str, *, max_length: int = 200) -> str | None:
    return None if item.get(name) is None else text(item, name, max_length=max_length)


def minor(item: Mapping[str, Any], name: str) -> int:
    value = item.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise field_error(name, "must be a whole number of minor units, 0 or more")
    return value


def optional_minor(item: Mapping[str, Any], name: str) -> int | None:
    return None if item.get(name) is None else minor(item, name)


def days(item: Mapping[str, Any], name: str) -> int:
    value = item.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise field_error(name, "must be a whole number of days, 0 or more")
    return value


def a_date(item: Mapping[str, Any], name: str) -> date:
    """A date given as a date or as ISO 8601 text (YYYY-MM-DD)."""
    value = item.get(name)
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str) and len(value) == 10:
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise field_error(name, "must be a date, YYYY-MM-DD")


def iso_date(item: Mapping[str, Any], name: str) -> str:
    return a_date(item, name).isoformat()


def optional_date(item: Mapping[str, Any], name: str) -> date | None:
    return None if item.get(name) is None else a_date(item, name)


def currency(item: Mapping[str, Any], name: str = "currency") -> str:
    value = item.get(name)
    if not isinstance(value, str) or not _CURRENCY.match(value):
        raise field_error(name, "must be an ISO 4217 code")
    return value


def rate(item: Mapping[str, Any], name: str) -> Decimal:
    value = item.get(name)
    try:
        if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
            raise InvalidOperation
        number = Decimal(str(value))
    except InvalidOperation:
        raise field_error(name, "must be a decimal number") from None
    if not number.is_finite() or not 0 <= number <= 1:
        raise field_error(name, "must be between 0 and 1")
    return number
