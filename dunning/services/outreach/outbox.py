"""Outbox: which idempotency keys are planned already, so a rerun writes nothing twice."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import (
    Connection,
    select,
)

from dunning.db.sql import chunked


def existing_keys(connection: Connection, table: Any, keys: Iterable[str]) -> set[str]:
    """Which of these idempotency keys are already planned (so they are not rendered again)."""
    found: set[str] = set()
    for chunk in chunked(sorted(set(keys)), 900):
        query = select(table.c.idempotency_key).where(table.c.idempotency_key.in_(chunk))
        found.update(key for (key,) in connection.execute(query))
    return found
