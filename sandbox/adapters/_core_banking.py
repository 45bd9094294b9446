"""mock-core-banking: the mock core system's credit-line API (sandbox.actions).

A freeze or reduction is a "hold" and a restore a "release"; the core system deduplicates on
`request_id` (our idempotency key) and answers a repeated one with the original change id.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict

from adapters import MalformedResponse, SendOutcome, VendorRequest
from adapters.actions import ActionKind, ActionRequest, ActionResult, wire_payload
from dunning.config.channels import FaultRates
from sandbox.actions import CORE_BANKING_LEDGER, create_core_banking_app
from sandbox.adapters._action_client import MockActionAdapter

if TYPE_CHECKING:
    from fastapi import FastAPI


class _Lenient(BaseModel):
    # Ignore fields the vendor may add later.
    model_config = ConfigDict(extra="ignore", frozen=True)


class _Result(_Lenient):
    request_id: str
    status: Literal["applied", "rejected"]
    change_id: str | None = None
    duplicate: bool = False
    code: str | None = None
    reason: str | None = None


class _Answer(_Lenient):
    results: list[_Result]


_PATHS = {
    ActionKind.CREDIT_FREEZE: ("/v1/credit-lines/holds", "holds"),
    ActionKind.CREDIT_RESTORE: ("/v1/credit-lines/releases", "releases"),
}


class MockCoreBankingAdapter(MockActionAdapter):
    name = "mock-core-banking"
    kinds = frozenset({ActionKind.CREDIT_FREEZE, ActionKind.CREDIT_RESTORE})
    max_batch = 200
    rate_per_second = 1000.0
    default_url = "http://mock-core-banking"
    default_ledger = CORE_BANKING_LEDGER

    @classmethod
    def _mock_app(cls, ledger: Path, api_key: str | None, faults: FaultRates) -> FastAPI:
        return create_core_banking_app(ledger, api_key=api_key, faults=faults)

    def perform_request(self, kind: ActionKind, batch: Sequence[ActionRequest]) -> VendorRequest:
        path, field = _PATHS[kind]
        items = [
            {
                "request_id": request.idempotency_key,
                "account_ref": request.account_ref,
                "effective_date": request.as_of.isoformat(),
                **wire_payload(request),
            }
            for request in batch
        ]
        return VendorRequest("POST", path, json={field: items})

    def perform_answers(
        self, kind: ActionKind, batch: Sequence[ActionRequest], payload: Any
    ) -> Mapping[str, ActionResult]:
        results: dict[str, ActionResult] = {}
        for item in _Answer.model_validate(payload).results:
            key = item.request_id
            if item.status == "applied":
                if not item.change_id:
                    raise MalformedResponse("an applied change has no change_id")
                results[key] = ActionResult(
                    key, SendOutcome.ACCEPTED, reference=item.change_id, duplicate=item.duplicate
                )
            else:
                reason = item.reason or "rejected by the core system"
                results[key] = ActionResult(
                    key,
                    SendOutcome.REJECTED,
                    reason=f"{item.code}: {reason}" if item.code else reason,
                )
        return results
