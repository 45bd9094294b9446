"""What the action mock apps share: error bodies, API keys, faults, and per-field checks.

Faults reuse the message gateways' machinery (sandbox._faults: ScriptedFault, Fault,
RandomFaults), so a fault is scripted and answered the same way on every mock. Per-field checks
are in adapters.actions.fields.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from dunning.webhooks import read_body
from sandbox._faults import (
    SCRIPTED_FAULT_BODY,
    SCRIPTED_FAULT_MAX_BYTES,
    Fault,
    RandomFaults,
    scripted_fault,
)
from sandbox.actions._ledger import ActionLedger

MAX_ITEMS = 1000
"""The most items an action mock takes in one request; more answers 413."""
MAX_BODY_BYTES = 8 * 1024 * 1024
"""The largest request body an action mock reads; more answers 413 without reading the rest
(1000 items of a few short fields each are well under 1 MB)."""


def error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )


async def read_limited(request: Request, limit: int = MAX_BODY_BYTES) -> bytes | Response:
    """The request's body, or 413 as soon as it passes `limit`: the rest is not read, and the
    connection is closed so that the sender stops sending it."""
    body = await read_body(request, limit)
    if body is None:
        return error(413, "too_large", f"body over {limit} bytes", {"Connection": "close"})
    return body


def parse_items(raw: bytes, field: str, key_field: str) -> list[dict[str, Any]] | Response:
    """The items of a `{field: [...]}` body, each with its key; an error answer otherwise."""
    try:
        payload = json.loads(raw)
    except ValueError:
        return error(400, "invalid_json", "the body is not JSON")
    if not isinstance(payload, dict) or not isinstance(payload.get(field), list):
        return error(400, "bad_request", f'expected {{"{field}": [...]}}')
    items: list[dict[str, Any]] = payload[field]
    if not items:
        return error(400, "bad_request", f"no {field}")
    if len(items) > MAX_ITEMS:
        return error(413, "batch_too_large", f"at most {MAX_ITEMS} {field} per request")
    for index, item in enumerate(items):
        key = item.get(key_field) if isinstance(item, dict) else None
        if not isinstance(key, str) or not 1 <= len(key) <= 255:
            return error(400, "bad_request", f"{field}[{index}]: {key_field} (1-255) is required")
    return items


class Gate:
    """API key and faults in front of every endpoint of one mock app."""

    def __init__(
        self,
        ledger: ActionLedger,
        api_key: str | None,
        random_faults: RandomFaults | None,
        clock: Callable[[], float],
    ) -> None:
        self.ledger = ledger
        self.api_key = api_key
        self.random_faults = random_faults
        self.clock = clock

    def refused(self, request: Request) -> Response | None:
        if self.api_key is None:
            return None
        given = request.headers.get("authorization", "")
        if hmac.compare_digest(given.encode(), f"Bearer {self.api_key}".encode()):
            return None
        return error(401, "unauthorized", "missing or wrong API key")

    async def next_fault(self, operation: str) -> Fault | None:
        scripted = await run_in_threadpool(self.ledger.take_fault, operation)
        if scripted is not None:
            return Fault.model_validate(scripted)
        return self.random_faults.draw() if self.random_faults is not None else None

    async def answer(self, fault: Fault) -> Response:
        """What a request gets instead of its answer (as the message gateways do)."""
        if fault.kind == "server_error":
            return error(fault.status, "unavailable", "the service is temporarily unavailable")
        if fault.kind == "throttle":
            header = {"Retry-After": fault.retry_after_header(self.clock())}
            return error(429, "rate_limited", "too many requests", header)
        if fault.kind == "timeout":
            await asyncio.sleep(fault.sleep_seconds)
            return error(504, "timeout", "the service timed out")
        if fault.shape == "invalid-json":
            return Response(b'{"results": [{"idempot', media_type="application/json")
        return JSONResponse({"data": "unexpected", "results": "none"})


def add_admin_routes(app: FastAPI, gate: Gate, operations: tuple[str, ...]) -> None:
    """GET /healthz, and /_admin/faults and /_admin/reset, like the message gateways'."""

    @app.get("/healthz")
    async def health() -> dict[str, bool]:
        return {"ok": True}

    @app.post("/_admin/faults", status_code=201, openapi_extra=SCRIPTED_FAULT_BODY)
    async def admin_fault(request: Request, operation: str | None = None) -> Response:
        """Script the next `count` requests (of ?operation=..., or any) to fail this way."""
        if (denied := gate.refused(request)) is not None:
            return denied
        raw = await read_limited(request, SCRIPTED_FAULT_MAX_BYTES)
        if isinstance(raw, Response):
            return raw
        fault = scripted_fault(raw)
        if isinstance(fault, str):
            return error(422, "invalid_fault", fault)
        if fault.channel is not None:
            return error(400, "bad_request", "channel does not apply here; use ?operation=")
        if operation is not None and operation not in operations:
            return error(400, "bad_request", f"operation must be one of {', '.join(operations)}")
        seq = await run_in_threadpool(gate.ledger.queue_fault, fault.spec(), fault.count, operation)
        return JSONResponse({"queued": seq}, status_code=201)

    @app.get("/_admin/faults")
    async def admin_faults(request: Request) -> Response:
        if (denied := gate.refused(request)) is not None:
            return denied
        queued = await run_in_threadpool(gate.ledger.faults)
        return JSONResponse(
            [{"operation": f.operation, "remaining": f.remaining, **f.spec} for f in queued]
        )

    @app.post("/_admin/reset")
    async def admin_reset(request: Request) -> Response:
        """Forget every applied request, the state it made, and every scripted fault."""
        if (denied := gate.refused(request)) is not None:
            return denied
        await run_in_threadpool(gate.ledger.reset)
        return JSONResponse({"ok": True})
