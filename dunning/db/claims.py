"""Claim tokens: a dispatcher's mark on the rows it claimed, so only it records their outcome."""

from __future__ import annotations

import uuid


def new_token() -> str:
    return uuid.uuid4().hex
