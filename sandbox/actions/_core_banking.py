"""The mock core banking system: a lender's credit-line API over the CoreBankingLedger.

POST /v1/credit-lines/holds     {"holds": [{request_id, account_ref, effective_date, mode,
                                 credit_limit_minor, new_limit_minor, currency, tier}]}
POST /v1/credit-lines/releases  {"releases": [{request_id, account_ref, effective_date,
                                 restore_limit_minor, currency, reason}]}
    -> {"results": [{request_id, status: "applied", change_id, duplicate, credit_line}
                    | {request_id, status: "rejected", code, reason}]}
GET  /v1/credit-lines/{account_ref}  -> the line's state, or 404
GET  /_admin/ledger[?rows=true], POST /_admin/faults[?operation=holds|releases],
GET  /_admin/faults, POST /_admin/reset, GET /healthz

Served in-process through httpx.ASGITransport (the adapter's default) or on a port; all state
is in the ledger file, so app instances and processes on one file behave as one system.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from adapters.actions.fields import (
    Invalid,
    currency,
    iso_date,
    minor,
    optional_minor,
    text,
)
from dunning.config.channels import FaultRates
from sandbox._faults import RandomFaults
from sandbox.actions._common import (
    Gate,
    add_admin_routes,
    error,
    parse_items,
    read_limited,
)
from sandbox.actions._ledger import Applied, CoreBankingLedger, CreditLine, Hold, Release

OPERATIONS = ("holds", "releases")


def _hold(item: Mapping[str, Any]) -> Hold:
    account_ref = text(item, "account_ref", max_length=64)
    iso_date(item, "effective_date")
    mode = item.get("mode")
    if mode not in ("freeze", "reduce"):
        raise Invalid("invalid_field", "mode must be freeze or reduce")
    limit = minor(item, "credit_limit_minor")
    new_limit = optional_minor(item, "new_limit_minor")
    if mode == "freeze":
        if new_limit not in (None, 0):
            raise Invalid("invalid_limit", "a freeze sets the limit to 0")
        new_limit = 0
    elif new_limit is None or new_limit >= limit:
        raise Invalid("invalid_limit", "a reduction must set a limit below the current one")
    code = currency(item)
    text(item, "tier", max_length=32)
    return Hold(item["request_id"], account_ref, mode, limit, new_limit, code, item)


def _release(item: Mapping[str, Any]) -> Release:
    account_ref = text(item, "account_ref", max_length=64)
    iso_date(item, "effective_date")
    limit = optional_minor(item, "restore_limit_minor")
    code = currency(item)
    text(item, "reason", max_length=200)
    return Release(item["request_id"], account_ref, limit, code, item)


def _line_json(line: CreditLine) -> dict[str, Any]:
    return {
        "account_ref": line.account_ref,
        "state": line.state,
        "limit_minor": line.limit_minor,
        "original_limit_minor": line.original_limit_minor,
        "currency": line.currency,
        "updated_at": line.updated_at,
        "last_change_id": line.last_change,
    }


def _result(answer: Applied) -> dict[str, Any]:
    if answer.rejected:
        return {
            "request_id": answer.idempotency_key,
            "status": "rejected",
            "code": answer.code,
            "reason": answer.reason,
        }
    return {
        "request_id": answer.idempotency_key,
        "status": "applied",
        "change_id": answer.reference,
        "duplicate": answer.duplicate,
        "credit_line": dict(answer.extra) if answer.extra is not None else None,
    }


def create_core_banking_app(
    ledger_file: Path,
    *,
    api_key: str | None = None,
    faults: FaultRates | None = None,
    clock: Callable[[], float] = time.time,
) -> FastAPI:
    """The mock core banking system over the ledger at `ledger_file`.

    With `api_key`, every endpoint requires `Authorization: Bearer <api_key>`.
    """
    ledger = CoreBankingLedger(ledger_file)
    gate = Gate(ledger, api_key, RandomFaults(faults) if faults else None, clock)
    app = FastAPI(
        title="Dunning mock core banking",
        summary="Freezes, reductions and restores of credit lines; the ledger is a SQLite file.",
        version="1",
    )
    app.state.ledger = ledger

    async def change(
        request: Request,
        operation: str,
        check: Callable[[Mapping[str, Any]], Hold | Release],
    ) -> Response:
        if (denied := gate.refused(request)) is not None:
            return denied
        fault = await gate.next_fault(operation)
        if fault is not None and not fault.commit_first:
            return await gate.answer(fault)
        raw = await read_limited(request)
        if isinstance(raw, Response):
            return raw
        items = parse_items(raw, operation, "request_id")
        if isinstance(items, Response):
            return items
        checked: list[Hold | Release | Applied] = []
        for item in items:
            try:
                checked.append(check(item))
            except Invalid as invalid:
                checked.append(
                    Applied(item["request_id"], code=invalid.code, reason=invalid.reason)
                )
        valid = [c for c in checked if not isinstance(c, Applied)]
        applied: list[Applied] = []
        if valid:
            if operation == "holds":
                holds = [c for c in valid if isinstance(c, Hold)]
                applied = await run_in_threadpool(ledger.hold, holds, clock())
            else:
                releases = [c for c in valid if isinstance(c, Release)]
                applied = await run_in_threadpool(ledger.release, releases, clock())
        answers = iter(applied)
        results = [_result(c if isinstance(c, Applied) else next(answers)) for c in checked]
        if fault is not None:
            return await gate.answer(fault)
        return JSONResponse({"results": results})

    @app.post("/v1/credit-lines/holds")
    async def holds(request: Request) -> Response:
        """Freeze (limit 0) or reduce credit lines; a repeated request_id is answered again."""
        return await change(request, "holds", _hold)

    @app.post("/v1/credit-lines/releases")
    async def releases(request: Request) -> Response:
        """Lift the freeze or reduction of credit lines."""
        return await change(request, "releases", _release)

    @app.get("/v1/credit-lines/{account_ref}")
    async def credit_line(account_ref: str, request: Request) -> Response:
        if (denied := gate.refused(request)) is not None:
            return denied
        line = await run_in_threadpool(ledger.credit_line, account_ref)
        if line is None:
            return error(404, "not_found", "no freeze, reduction or restore of this line")
        return JSONResponse(_line_json(line))

    @app.get("/_admin/ledger")
    async def admin_ledger(request: Request, rows: bool = False) -> Response:
        """Counts by operation and credit lines by state; with ?rows=true the lines."""
        if (denied := gate.refused(request)) is not None:
            return denied
        found = await run_in_threadpool(ledger.requests)
        lines = await run_in_threadpool(ledger.credit_lines)
        summary: dict[str, Any] = {
            "total": len(found),
            "resubmissions": sum(row.submissions - 1 for row in found),
            "by_operation": dict(Counter(row.operation for row in found)),
            "credit_lines": dict(Counter(line.state for line in lines)),
        }
        if rows:
            summary["rows"] = [_line_json(line) for line in lines]
        return JSONResponse(summary)

    add_admin_routes(app, gate, OPERATIONS)
    return app
