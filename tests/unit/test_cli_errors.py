"""The CLI's last resort for unexpected errors prints their shape, never a value they quote."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import DataError, IntegrityError

from dunning.cli import app as cli_app


class _DriverError(Exception):
    pass


@pytest.mark.parametrize(
    ("exc", "shown"),
    [
        (
            DataError(
                "INSERT ...",
                {"name": "Barnaby Quillfeather"},
                _DriverError('invalid input syntax for type integer: "Barnaby Quillfeather"'),
            ),
            'database error: _DriverError: invalid input syntax for type integer: "…"',
        ),
        (
            IntegrityError(
                "INSERT ...",
                {},
                _DriverError(
                    'duplicate key value violates unique constraint "uq_customer_external_id"\n'
                    "DETAIL:  Key (external_id)=(C-1) already exists."
                ),
            ),
            "database error: _DriverError: duplicate key value violates unique constraint "
            '"uq_customer_external_id"',
        ),
        (
            KeyError("+8613812345678"),
            "KeyError: '…'",
        ),
        (
            ValueError("no route for +8613812345678 (ann@example.com)"),
            "ValueError: no route for +86*******5678 ([email])",
        ),
    ],
)
def test_an_unexpected_error_shows_no_value_it_quotes(exc: Exception, shown: str) -> None:
    assert cli_app._safe_message(exc) == shown
