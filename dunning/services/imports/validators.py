"""Field validators shared by CSV imports and the CLI. Each raises ValueError with a reason.

A reason says what was expected and never repeats the value: a file whose columns are shifted
puts phone numbers, names and addresses in every column, and errors are shown and logged.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from zoneinfo import available_timezones

import phonenumbers
from babel import Locale, UnknownLocaleError

from dunning.domain.money import is_currency

_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0", ""}
_JURISDICTION = re.compile(r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$")
MAX_INT = 2**31 - 1
"""The largest whole number an INTEGER column holds (PostgreSQL refuses more, and its error
repeats the value)."""
MAX_EMAIL = 254


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
"""Characters no imported field may hold: the C0 controls (tab, CR and LF included: no field is
multi-line, an address has a column per line), DEL, the C1 controls, the line and paragraph
separators, and the bidirectional embeddings, overrides and isolates (which reorder what a
letter or a terminal shows)."""


def control_character(text: str) -> str | None:
    """The first character of `text` that no imported field may hold, as U+XXXX; else None."""
    found = _CONTROL.search(text)
    return None if found is None else f"U+{ord(found.group()):04X}"


def printable(text: str) -> str:
    """`text` with those characters escaped, for a message that must not drive a terminal."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


@lru_cache(maxsize=1)
def _time_zones() -> frozenset[str]:
    return frozenset(available_timezones())


@lru_cache(maxsize=1)
def _countries() -> frozenset[str]:
    return frozenset(str(code) for code in Locale("en").territories if len(str(code)) == 2)


def boolean(text: str) -> bool:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError("is not a boolean (use true or false)")


def iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError("is not a date (use YYYY-MM-DD)") from None


def locale(text: str) -> str:
    value = text.strip()
    try:
        parsed = Locale.parse(value, sep="-")
    except (ValueError, UnknownLocaleError):
        raise ValueError("is not a known locale (e.g. zh-CN, en-US)") from None
    if parsed.territory is None:
        raise ValueError("is a locale without a region (e.g. zh-CN, en-US)")
    return f"{parsed.language}-{parsed.territory}"


def time_zone(text: str) -> str:
    value = text.strip()
    if value not in _time_zones():
        raise ValueError("is not an IANA time zone (e.g. Asia/Shanghai)")
    return value


def phone(text: str) -> str:
    """Normalise to E.164."""
    value = text.strip()
    if not value.startswith("+"):
        raise ValueError("is not in E.164 form (+, the country code, the number)")
    try:
        parsed = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        raise ValueError("is not a phone number") from None
    if not phonenumbers.is_valid_number(parsed):
        raise ValueError("is not a valid number for its country")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def currency(text: str) -> str:
    value = text.strip().upper()
    if not is_currency(value):
        raise ValueError("is not an ISO 4217 currency code (e.g. CNY, USD)")
    return value


def country(text: str) -> str:
    value = text.strip().upper()
    if value not in _countries():
        raise ValueError("is not an ISO 3166 alpha-2 country code (e.g. CN, US)")
    return value


def jurisdiction(text: str) -> str:
    value = text.strip().upper()
    if not _JURISDICTION.match(value):
        raise ValueError("is not a jurisdiction code (e.g. CN, US, US-CA)")
    return value


def email(text: str) -> str:
    value = text.strip()
    if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value):
        raise ValueError("is not an e-mail address")
    if len(value) > MAX_EMAIL:
        raise ValueError(f"is longer than {MAX_EMAIL} characters")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise ValueError("is not a whole number") from None
    if value < 1:
        raise ValueError("must be 1 or more")
    if value > MAX_INT:
        raise ValueError(f"must be at most {MAX_INT}")
    return value


def decimal_text(text: str) -> str:
    """Checks the shape of an amount; it becomes minor units once its currency is known."""

    value = text.strip()
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise ValueError("is not a number") from None
    if not number.is_finite():
        raise ValueError("is not a finite number")
    if number < 0:
        raise ValueError("is negative")
    return value
