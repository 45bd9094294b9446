"""Money is exact: Decimal text in, integer minor units stored, never a float."""

from __future__ import annotations

from decimal import Decimal

import pytest

from dunning.domain.money import parse_amount, to_decimal


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [("1234.50", "USD", 123450), ("0.01", "CNY", 1), ("7", "USD", 700), ("1500", "JPY", 1500)],
)
def test_parse_amount(text: str, currency: str, minor: int) -> None:
    assert parse_amount(text, currency) == minor
    assert to_decimal(minor, currency) == Decimal(text)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("-1", "negative"),
        ("1.005", "decimal places"),
        ("abc", "not a number"),
        ("", "empty"),
        ("NaN", "finite"),
    ],
)
def test_parse_amount_rejects(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_amount(text, "USD")
