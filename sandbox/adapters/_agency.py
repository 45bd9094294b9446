"""mock-agency: the mock collection agency's placement API (sandbox.actions).

The agency deduplicates on `client_reference` (our idempotency key). A placement's id is the
reference a recall names; recalling a placement the agency does not know is rejected.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict

from adapters import MalformedResponse, SendOutcome, VendorRequest
from adapters.actions import ActionKind, ActionRequest, ActionResult, wire_payload
from dunning.config.channels import FaultRates
from sandbox.actions import AGENCY_LEDGER, create_agency_app
from sandbox.adapters._action_client import MockActionAdapter

if TYPE_CHECKING:
    from fastapi import FastAPI


class _Lenient(BaseModel):
    # Ignore fields the vendor may add later.
    model_config = ConfigDict(extra="ignore", frozen=True)


class _Result(_Lenient):
    client_reference: str
    status: Literal["placed", "recalled", "rejected"]
    placement_id: str | None = None
    recall_id: str | None = None
    duplicate: bool = False
    code: str | None = None
    reason: str | None = None


class _Answer(_Lenient):
    results: list[_Result]


class MockAgencyAdapter(MockActionAdapter):
    name = "mock-agency"
    kinds = frozenset({ActionKind.AGENCY_PLACEMENT, ActionKind.AGENCY_RECALL})
    max_batch = 100
    rate_per_second = 200.0
    default_url = "http://mock-agency"
    default_ledger = AGENCY_LEDGER

    @classmethod
    def _mock_app(cls, ledger: Path, api_key: str | None, faults: FaultRates) -> FastAPI:
        return create_agency_app(ledger, api_key=api_key, faults=faults)

    def perform_request(self, kind: ActionKind, batch: Sequence[ActionRequest]) -> VendorRequest:
        if kind == ActionKind.AGENCY_PLACEMENT:
            path, field, dated = "/v1/placements", "placements", "placed_on"
        else:
            path, field, dated = "/v1/recalls", "recalls", "recalled_on"
        items = [
            {
                "client_reference": request.idempotency_key,
                "account_ref": request.account_ref,
                dated: request.as_of.isoformat(),
                **wire_payload(request),
            }
            for request in batch
        ]
        return VendorRequest("POST", path, json={field: items})

    def perform_answers(
        self, kind: ActionKind, batch: Sequence[ActionRequest], payload: Any
    ) -> Mapping[str, ActionResult]:
        done = "placed" if kind == ActionKind.AGENCY_PLACEMENT else "recalled"
        results: dict[str, ActionResult] = {}
        for item in _Answer.model_validate(payload).results:
            key = item.client_reference
            if item.status == "rejected":
                reason = item.reason or "rejected by the agency"
                results[key] = ActionResult(
                    key,
                    SendOutcome.REJECTED,
                    reason=f"{item.code}: {reason}" if item.code else reason,
                )
                continue
            if item.status != done:
                raise MalformedResponse(f"a {kind.value} answered {item.status}")
            reference = item.placement_id if done == "placed" else item.recall_id
            if not reference:
                raise MalformedResponse(f"a {done} answer has no id")
            results[key] = ActionResult(
                key, SendOutcome.ACCEPTED, reference=reference, duplicate=item.duplicate
            )
        return results
