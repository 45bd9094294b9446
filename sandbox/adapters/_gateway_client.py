"""The client side of the mock vendor API, shared by the mock-sms, -push and -letter adapters."""

from __future__ import annotations

import json
import logging
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Self

import httpx
from pydantic import Field

from adapters import (
    DeliveryStatus,
    HttpAdapterOptions,
    HttpGatewayAdapter,
    MalformedResponse,
    OutboundMessage,
    SendOutcome,
    SendResult,
    StatusReport,
    VendorRequest,
)
from sandbox.gateways import create_mock_gateway_app
from sandbox.gateways._wire import MAX_ITEMS, NOT_FOUND, SendAnswer, StatusAnswer

if TYPE_CHECKING:
    from adapters.registry import AdapterContext

log = logging.getLogger("dunning.adapters")


class MockAdapterOptions(HttpAdapterOptions):
    """Options of the mock-* adapters: with no `url`, the gateway runs in-process."""

    max_batch: int | None = Field(
        default=None, ge=1, le=MAX_ITEMS, description="the mock takes at most 1000 per request"
    )


class MockGatewayAdapter(HttpGatewayAdapter):
    """Talks to the mock gateways; each channel's subclass encodes items and maps statuses.

    Guarantee: exactly once. The mock gateways deduplicate on `idempotency_key` and answer a
    repeated key with the first acceptance (`duplicate: true`), so any send may be repeated:
    after a timeout, a dropped connection or a 5xx, and for a message claimed again after its
    lease ran out. No lookup is needed.
    """

    options_model = MockAdapterOptions
    default_url = "http://mock-gateway"
    deduplicates = True

    @classmethod
    def from_config(cls, options: MockAdapterOptions, context: AdapterContext) -> Self:
        """With no url, the mock app in this process, reached over ASGI: same HTTP path."""
        transport: httpx.AsyncBaseTransport | None = None
        if options.url is None and options.url_env is None:
            app = create_mock_gateway_app(context.config.mock_gateway, context.state_dir)
            # A bug in the app answers 500, as a real server would, instead of raising here.
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        return cls(options, transport=transport)

    @abstractmethod
    def _item(self, message: OutboundMessage) -> dict[str, Any]:
        """One message in the vendor's request format."""

    @abstractmethod
    def _delivery_status(self, vendor_status: str) -> DeliveryStatus | None:
        """The vendor's status word as a DeliveryStatus; None if the word is unknown."""

    def send_request(self, batch: Sequence[OutboundMessage]) -> VendorRequest:
        return VendorRequest(
            "POST",
            f"/v1/{self.channel.value}/messages",
            json={"messages": [self._item(m) for m in batch]},
        )

    def send_answers(
        self, batch: Sequence[OutboundMessage], payload: Any
    ) -> Mapping[str, SendResult]:
        answer = SendAnswer.model_validate(payload)
        results: dict[str, SendResult] = {}
        for item in answer.results:
            key = item.idempotency_key
            if item.status == "accepted":
                if not item.id:
                    raise MalformedResponse("an accepted message has no id")
                results[key] = SendResult(
                    key, SendOutcome.ACCEPTED, gateway_message_id=item.id, duplicate=item.duplicate
                )
            else:
                reason = item.reason or "rejected by the gateway"
                results[key] = SendResult(
                    key,
                    SendOutcome.REJECTED,
                    reason=f"{item.code}: {reason}" if item.code else reason,
                )
        return results

    async def check(self) -> str | None:
        """Ask the mock the status of a message nobody sent: reachability and the API key."""
        answer = await self.call(self.status_request(["dunning-gateway-check"]))
        if answer.ok:
            return None
        where = self.options.url or "the in-process mock gateway"
        if answer.response is None:
            return f"cannot reach {where}: {answer.error or 'no answer'}"
        if answer.status_code in (401, 403):
            return f"{where} refuses the API key (api_key_env {self.options.api_key_env})"
        return f"{where} answers HTTP {answer.status_code}"

    def status_request(self, gateway_message_ids: Sequence[str]) -> VendorRequest:
        return VendorRequest(
            "POST", f"/v1/{self.channel.value}/statuses", json={"ids": list(gateway_message_ids)}
        )

    def status_answers(self, payload: Any) -> list[StatusReport]:
        answer = StatusAnswer.model_validate(payload)
        reports: list[StatusReport] = []
        unknown = 0
        for item in answer.statuses:
            if item.status == NOT_FOUND:
                continue
            status = self._delivery_status(item.status)
            if status is None:
                unknown += 1
                continue
            if item.idempotency_key is None or item.updated_at is None:
                raise MalformedResponse("a status lacks idempotency_key or updated_at")
            reports.append(
                StatusReport(
                    gateway_message_id=item.id,
                    idempotency_key=item.idempotency_key,
                    status=status,
                    occurred_at=item.updated_at,
                    reason=item.reason,
                    event_id=item.event_id,
                )
            )
        if unknown:
            # A vendor may add status words; skip them rather than fail the whole poll.
            log.warning("%s: %d status(es) with an unknown word skipped", self.name, unknown)
        return reports

    def error_reason(self, response: httpx.Response) -> str:
        try:
            error = json.loads(response.content)["error"]
            return f"HTTP {response.status_code} {error['code']}: {error['message']}"
        except (ValueError, KeyError, TypeError):
            return super().error_reason(response)
