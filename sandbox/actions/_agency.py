"""The mock collection agency: a placement API over the AgencyLedger.

POST /v1/placements  {"placements": [{client_reference, account_ref, placed_on, agency,
                      customer_name, phone, address_lines, locale, currency, principal_minor,
                      interest_minor, fees_minor, penalty_minor, overdue_minor, dpd,
                      commission_rate}]}
    -> {"results": [{client_reference, status: "placed", placement_id, duplicate}
                    | {client_reference, status: "rejected", code, reason}]}
POST /v1/recalls     {"recalls": [{client_reference, account_ref, recalled_on, agency,
                      placement_reference, reason}]}
    -> {"results": [{client_reference, status: "recalled", recall_id, placement_id, duplicate}
                    | {client_reference, status: "rejected", code, reason}]}
GET  /v1/placements/{placement_id}  -> the placement's state (no personal data), or 404
GET  /_admin/ledger[?rows=true], POST /_admin/faults[?operation=placements|recalls],
GET  /_admin/faults, POST /_admin/reset, GET /healthz

The ledger keeps every item exactly as received, so a test can check that the agency got the
account data it needs and nothing more.
"""

from __future__ import annotations

import re
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
    field_error,
    iso_date,
    minor,
    rate,
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
from sandbox.actions._ledger import (
    AgencyLedger,
    Applied,
    NewPlacement,
    Placement,
    Recall,
)

OPERATIONS = ("placements", "recalls")
_AGENCY = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
_LOCALE = re.compile(r"^[a-z]{2,3}([-_][A-Za-z0-9]{2,8})*$")
_MAX_ADDRESS_LINES = 8


def _agency(item: Mapping[str, Any]) -> str:
    value = item.get("agency")
    if not isinstance(value, str) or not _AGENCY.match(value):
        raise field_error("agency", "must be an agency id")
    return value


def _placement(item: Mapping[str, Any]) -> NewPlacement:
    account_ref = text(item, "account_ref", max_length=64)
    placed_on = iso_date(item, "placed_on")
    agency = _agency(item)
    text(item, "customer_name")
    phone = item.get("phone")
    if phone is not None and (not isinstance(phone, str) or not _E164.match(phone)):
        raise field_error("phone", "must be an E.164 phone number or null")
    lines = item.get("address_lines")
    if (
        not isinstance(lines, list)
        or len(lines) > _MAX_ADDRESS_LINES
        or not all(isinstance(line, str) and line.strip() for line in lines)
    ):
        raise field_error("address_lines", f"must be a list of at most {_MAX_ADDRESS_LINES} lines")
    if phone is None and not lines:
        raise Invalid("no_contact", "a placement needs a phone number or an address")
    locale = item.get("locale")
    if not isinstance(locale, str) or not _LOCALE.match(locale):
        raise field_error("locale", "must be a locale such as zh-CN or en-US")
    currency(item)
    for name in ("principal_minor", "interest_minor", "fees_minor", "penalty_minor"):
        minor(item, name)
    if minor(item, "overdue_minor") == 0:
        raise Invalid("nothing_overdue", "the account has nothing overdue")
    dpd = item.get("dpd")
    if isinstance(dpd, bool) or not isinstance(dpd, int) or dpd < 0:
        raise field_error("dpd", "must be a whole number of days, 0 or more")
    rate(item, "commission_rate")
    return NewPlacement(item["client_reference"], account_ref, agency, placed_on, item)


def _recall(item: Mapping[str, Any]) -> Recall:
    return Recall(
        idempotency_key=item["client_reference"],
        account_ref=text(item, "account_ref", max_length=64),
        agency=_agency(item),
        placement_reference=text(item, "placement_reference", max_length=64),
        recalled_on=iso_date(item, "recalled_on"),
        reason=text(item, "reason"),
        received=item,
    )


def _placement_json(placement: Placement) -> dict[str, Any]:
    return {
        "placement_id": placement.placement_id,
        "agency": placement.agency,
        "account_ref": placement.account_ref,
        "placed_on": placement.placed_on,
        "state": placement.state,
        "recall_id": placement.recall_id,
        "recalled_on": placement.recalled_on,
        "recall_reason": placement.recall_reason,
    }


def _result(answer: Applied, operation: str) -> dict[str, Any]:
    if answer.rejected:
        return {
            "client_reference": answer.idempotency_key,
            "status": "rejected",
            "code": answer.code,
            "reason": answer.reason,
        }
    if operation == "placements":
        return {
            "client_reference": answer.idempotency_key,
            "status": "placed",
            "placement_id": answer.reference,
            "duplicate": answer.duplicate,
        }
    extra = answer.extra or {}
    return {
        "client_reference": answer.idempotency_key,
        "status": "recalled",
        "recall_id": answer.reference,
        "placement_id": extra.get("placement_id"),
        "duplicate": answer.duplicate,
    }


def create_agency_app(
    ledger_file: Path,
    *,
    api_key: str | None = None,
    faults: FaultRates | None = None,
    clock: Callable[[], float] = time.time,
) -> FastAPI:
    """The mock collection agency over the ledger at `ledger_file`.

    With `api_key`, every endpoint requires `Authorization: Bearer <api_key>`.
    """
    ledger = AgencyLedger(ledger_file)
    gate = Gate(ledger, api_key, RandomFaults(faults) if faults else None, clock)
    app = FastAPI(
        title="Dunning mock collection agency",
        summary="Placements and recalls of overdue accounts; the ledger is a SQLite file.",
        version="1",
    )
    app.state.ledger = ledger

    async def submit(
        request: Request,
        operation: str,
        check: Callable[[Mapping[str, Any]], NewPlacement | Recall],
    ) -> Response:
        if (denied := gate.refused(request)) is not None:
            return denied
        fault = await gate.next_fault(operation)
        if fault is not None and not fault.commit_first:
            return await gate.answer(fault)
        raw = await read_limited(request)
        if isinstance(raw, Response):
            return raw
        items = parse_items(raw, operation, "client_reference")
        if isinstance(items, Response):
            return items
        checked: list[NewPlacement | Recall | Applied] = []
        for item in items:
            try:
                checked.append(check(item))
            except Invalid as invalid:
                key = item["client_reference"]
                checked.append(Applied(key, code=invalid.code, reason=invalid.reason))
        applied: list[Applied] = []
        if operation == "placements":
            new = [c for c in checked if isinstance(c, NewPlacement)]
            if new:
                applied = await run_in_threadpool(ledger.place, new, clock())
        else:
            recalls = [c for c in checked if isinstance(c, Recall)]
            if recalls:
                applied = await run_in_threadpool(ledger.recall, recalls, clock())
        answers = iter(applied)
        results = [
            _result(c if isinstance(c, Applied) else next(answers), operation) for c in checked
        ]
        if fault is not None:
            return await gate.answer(fault)
        return JSONResponse({"results": results})

    @app.post("/v1/placements")
    async def placements(request: Request) -> Response:
        """Place accounts with the agency; a repeated client_reference is answered again."""
        return await submit(request, "placements", _placement)

    @app.post("/v1/recalls")
    async def recalls(request: Request) -> Response:
        """Recall placements; an unknown placement is rejected."""
        return await submit(request, "recalls", _recall)

    @app.get("/v1/placements/{placement_id}")
    async def placement(placement_id: str, request: Request) -> Response:
        if (denied := gate.refused(request)) is not None:
            return denied
        found = await run_in_threadpool(ledger.placement, placement_id)
        if found is None:
            return error(404, "not_found", "no placement has this id")
        return JSONResponse(_placement_json(found))

    @app.get("/_admin/ledger")
    async def admin_ledger(request: Request, rows: bool = False) -> Response:
        """Counts by operation and placements by state; with ?rows=true the placements."""
        if (denied := gate.refused(request)) is not None:
            return denied
        found = await run_in_threadpool(ledger.requests)
        placed = await run_in_threadpool(ledger.placements)
        summary: dict[str, Any] = {
            "total": len(found),
            "resubmissions": sum(row.submissions - 1 for row in found),
            "by_operation": dict(Counter(row.operation for row in found)),
            "placements": dict(Counter(p.state for p in placed)),
        }
        if rows:
            summary["rows"] = [_placement_json(p) for p in placed]
        return JSONResponse(summary)

    add_admin_routes(app, gate, OPERATIONS)
    return app
