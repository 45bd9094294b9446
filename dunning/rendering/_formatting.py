"""Locale formatting behind the template filters (money, date, mask), cached for volume.

Babel's format_currency costs about 25 us a call, most of it re-reading the locale's pattern;
the daily run formats a few hundred thousand amounts. So each (locale, currency) pair gets a
formatter built once: a plain str.format fast path when the pattern is a simple grouped one
(checked against Babel on sample values when built), Babel's own pattern otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal
from functools import lru_cache

from babel import Locale
from babel.dates import format_date as babel_format_date
from babel.numbers import get_currency_precision, get_currency_symbol


class FilterError(TypeError):
    """A filter was given the wrong kind of value. The message names types only, never values."""


_CHECK_VALUES = tuple(
    Decimal(v) for v in ("0", "0.5", "7", "12.345", "2.675", "999.995", "1234.5", "-1234567.891")
)


@lru_cache(maxsize=64)
def babel_locale(tag: str) -> Locale:
    """A Babel Locale from a BCP 47 tag such as "zh-CN" (or "zh_CN")."""
    return Locale.parse(tag.replace("-", "_"))


def _babel_money(locale: Locale, currency: str) -> Callable[[Decimal], str]:
    pattern = locale.currency_formats["standard"]

    def apply(value: Decimal) -> str:
        return str(pattern.apply(value, locale, currency=currency))

    return apply


def _fast_money(locale: Locale, currency: str) -> Callable[[Decimal], str] | None:
    """A str.format-based formatter for patterns like "¤#,##0.00"; None when not that simple."""
    pattern = locale.currency_formats["standard"]
    if pattern.grouping != (3, 3) or pattern.exp_prec is not None:
        return None
    symbols = locale.number_symbols.get("latn", {})
    group, decimal = symbols.get("group"), symbols.get("decimal")
    if not group or not decimal:
        return None
    symbol = get_currency_symbol(currency, locale)
    (positive_prefix, negative_prefix), (positive_suffix, negative_suffix) = (
        tuple(p.replace("¤", symbol) for p in pattern.prefix),
        tuple(s.replace("¤", symbol) for s in pattern.suffix),
    )
    spec = f",.{get_currency_precision(currency)}f"
    table = str.maketrans({",": group, ".": decimal})

    def apply(value: Decimal) -> str:
        digits = format(abs(value), spec).translate(table)
        if value < 0:
            return f"{negative_prefix}{digits}{negative_suffix}"
        return f"{positive_prefix}{digits}{positive_suffix}"

    return apply


@lru_cache(maxsize=64)
def money_formatter(locale_tag: str, currency: str) -> Callable[[Decimal], str]:
    locale = babel_locale(locale_tag)
    reference = _babel_money(locale, currency)
    fast = _fast_money(locale, currency)
    if fast is not None and all(fast(v) == reference(v) for v in _CHECK_VALUES):
        return fast
    return reference


def format_money(value: Decimal | int, currency: str, locale_tag: str) -> str:
    """`Decimal("1234.5"), "USD", "en-US"` -> "$1,234.50"; floats are refused (money is exact)."""
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        raise FilterError(f"money needs a Decimal or int, not {type(value).__name__}")
    return money_formatter(locale_tag, currency)(Decimal(value))


@lru_cache(maxsize=4096)
def format_date(value: date, format: str, locale_tag: str) -> str:
    """Babel format_date with a named format (full, long, medium, short) or a CLDR pattern.

    Cached: a run formats the same few dates (as-of, pay-by) over and over.
    """
    if not isinstance(value, date):
        raise FilterError(f"date needs a date, not {type(value).__name__}")
    return str(babel_format_date(value, format, locale=babel_locale(locale_tag)))


def mask(value: object, keep: int = 4) -> str:
    """`"AGR-20240318"` -> `"********0318"`: every character but the last `keep` starred.

    At least four stars, so a short value never shows through; values of `keep` characters or
    fewer are masked whole.
    """
    text = str(value)
    if len(text) <= keep:
        return "****"
    return "*" * max(len(text) - keep, 4) + text[-keep:]
