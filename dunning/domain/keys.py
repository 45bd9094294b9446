"""Idempotency keys: the same decision for the same account, date and step has the same key."""

from __future__ import annotations

import hashlib
from datetime import date


def idempotency_key(account_external_id: str, as_of: date, step_id: str, channel: str) -> str:
    """Stable per account, date, step and the step's channel: the same decision, the same key.

    The step's configured channel is used (not a fallback), so a rerun after the customer's
    contact data changed still finds the message planned the first time.
    """
    raw = f"{account_external_id}|{as_of.isoformat()}|{step_id}|{channel}"
    return "dn1-" + hashlib.sha256(raw.encode()).hexdigest()[:40]
