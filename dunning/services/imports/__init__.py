"""The CSV imports of customers, accounts, instalments and payments (`files`), each file checked
whole (every row and column, with `validators`) before anything is written."""

from __future__ import annotations

from dunning.services.imports.files import SPECS, ImportResult, import_file, record_payments

__all__ = ["SPECS", "ImportResult", "import_file", "record_payments"]
