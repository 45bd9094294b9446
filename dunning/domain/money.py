"""Money as integer minor units, converted exactly to and from Decimal per ISO 4217 currency."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from functools import cache, lru_cache

from babel.numbers import get_currency_precision, list_currencies

from dunning.types import MinorUnits


@cache
def known_currencies() -> frozenset[str]:
    return frozenset(list_currencies())


def is_currency(code: str) -> bool:
    return code in known_currencies()


@lru_cache(maxsize=256)
def minor_digits(currency: str) -> int:
    """How many decimal places the currency's minor unit has: 2 for USD and CNY, 0 for JPY."""
    return int(get_currency_precision(currency))


def parse_amount(text: str, currency: str) -> MinorUnits:
    """Parse a decimal string such as "1234.50" into minor units, exactly.

    Raises ValueError for anything that is not a plain non-negative decimal, or that has more
    decimal places than the currency allows.
    """
    cleaned = text.strip()
    if not cleaned:
        raise ValueError("is empty")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise ValueError(f"{cleaned!r} is not a number") from None
    if not value.is_finite():
        raise ValueError(f"{cleaned!r} is not a finite number")
    if value < 0:
        raise ValueError(f"{cleaned} is negative")
    digits = minor_digits(currency)
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > digits:
        raise ValueError(f"{cleaned} has more than {digits} decimal places for {currency}")
    return int(value.scaleb(digits))


def to_decimal(minor: MinorUnits, currency: str) -> Decimal:
    return Decimal(minor).scaleb(-minor_digits(currency))
