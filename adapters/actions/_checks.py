"""What every action adapter checks before anything leaves: kinds it performs, exact payload keys.

A request whose kind the adapter does not perform, or whose payload has a key PAYLOADS does not
list for its kind (or lacks one), is a programming error in the engine, not something the other
side rejected: the adapter raises InvalidActionRequest for the whole batch and sends nothing.
Messages name kinds and keys, never values (payloads carry names, phones and addresses).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from adapters.actions.base import PAYLOADS, ActionKind, ActionRequest


class InvalidActionRequest(ValueError):
    """The engine built a request this adapter must not send (a bug, never the customer's)."""


def check_batch(
    adapter_name: str, kinds: Collection[ActionKind], batch: Sequence[ActionRequest]
) -> None:
    """Raise InvalidActionRequest unless every request is one this adapter may send as it is."""
    kind_of_key: dict[str, ActionKind] = {}
    for request in batch:
        if request.kind not in kinds:
            performs = ", ".join(sorted(kind.value for kind in kinds))
            raise InvalidActionRequest(
                f"{adapter_name} performs {performs}, not {request.kind.value} "
                f"(request {request.idempotency_key})"
            )
        expected = set(PAYLOADS[request.kind])
        given = set(request.payload)
        if given != expected:
            problems = []
            if given - expected:
                problems.append("unexpected key(s) " + ", ".join(sorted(given - expected)))
            if expected - given:
                problems.append("missing key(s) " + ", ".join(sorted(expected - given)))
            raise InvalidActionRequest(
                f"{adapter_name}: the payload of {request.kind.value} request "
                f"{request.idempotency_key} has {'; '.join(problems)}; a payload carries "
                "exactly the keys adapters.actions.base.PAYLOADS lists for its kind"
            )
        seen = kind_of_key.setdefault(request.idempotency_key, request.kind)
        if seen != request.kind:
            raise InvalidActionRequest(
                f"{adapter_name}: idempotency key {request.idempotency_key} is used by "
                f"{seen.value} and {request.kind.value} requests in one batch"
            )


def wire_payload(request: ActionRequest) -> dict[str, Any]:
    """The payload as JSON values: dates as ISO 8601 text, Decimals as exact decimal text."""
    return {key: _wire(request, key, value) for key, value in request.payload.items()}


def _wire(request: ActionRequest, key: str, value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value
    if isinstance(value, Enum):
        return _wire(request, key, value.value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, Mapping):
        return {str(k): _wire(request, key, v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_wire(request, key, v) for v in value]
    raise InvalidActionRequest(
        f"the payload of {request.kind.value} request {request.idempotency_key}: {key} is a "
        f"{type(value).__name__}, which cannot be sent as JSON"
    )


def payload_date(request: ActionRequest, key: str) -> date:
    """A date from the payload, given as a date or as ISO 8601 text."""
    value = request.payload.get(key)
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise InvalidActionRequest(
        f"the payload of {request.kind.value} request {request.idempotency_key}: {key} "
        "is not a date (YYYY-MM-DD)"
    )
