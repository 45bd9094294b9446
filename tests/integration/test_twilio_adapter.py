"""The twilio-sms adapter against the mock Twilio, in-process over ASGI on a stopped clock: the
requests it makes (form fields, Basic auth with the account SID or an API key), how it reads
Twilio's answers and error codes, status polling, the signed webhooks (signatures made by the
official `twilio` SDK's RequestValidator), the lookup of an in-doubt message, and check()."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import httpx
import pytest

from adapters import Timing
from adapters.base import OutboundMessage, SendOutcome, SendResult
from adapters.twilio import TwilioOptions, TwilioSmsAdapter
from dunning.config.channels import MockGatewaySettings
from dunning.types import Channel
from sandbox import GatewayLedger, create_mock_gateway_app
from sandbox.gateways._ledger import ledger_path

ACCOUNT_SID = "AC" + "1" * 32
AUTH_TOKEN = "twilio-test-auth-token"
API_KEY_SID = "SK" + "2" * 32
API_KEY_SECRET = "twilio-test-api-key-secret"
SERVICE_SID = "MG" + "3" * 32
SENDER = "+15005550006"
START = 1_800_000_000.0
T = TypeVar("T")


@dataclass
class MockTwilio:
    """The mock gateway app with Twilio's API, its ledger, the requests it got, and its clock
    (which the adapters share: it moves only when a test moves it)."""

    app: Any
    ledger: GatewayLedger
    now: list[float] = field(default_factory=lambda: [START])
    requests: list[httpx.Request] = field(default_factory=list)

    def transport(self) -> httpx.AsyncBaseTransport:
        inner = httpx.ASGITransport(app=self.app)
        seen = self.requests

        class Recording(httpx.AsyncBaseTransport):
            async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
                await request.aread()
                seen.append(request)
                return await inner.handle_async_request(request)

        return Recording()

    def timing(self) -> Timing:
        async def sleep(seconds: float) -> None:
            self.now[0] += seconds

        return Timing(lambda: self.now[0], lambda: self.now[0], sleep, lambda: 0.5)

    def adapter(self, **options: Any) -> TwilioSmsAdapter:
        settings: dict[str, Any] = {
            "account_sid": ACCOUNT_SID,
            "auth_token_env": "TWILIO_AUTH_TOKEN",
            "from_number": SENDER,
            "url": "http://twilio.test",
            "backoff_base": 0.1,
            "max_attempts": 3,
            **options,
        }
        settings = {k: v for k, v in settings.items() if v is not None}
        return TwilioSmsAdapter(
            TwilioOptions.model_validate(settings), transport=self.transport(), timing=self.timing()
        )

    def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://twilio.test") as c:
                return await c.request(method, path, **kwargs)

        return asyncio.run(go())

    def fault(self, **spec: Any) -> None:
        assert self.admin("POST", "/_admin/faults", json=spec).status_code == 201


@pytest.fixture
def twilio(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> MockTwilio:
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", AUTH_TOKEN)
    monkeypatch.setenv("TWILIO_API_KEY_SECRET", API_KEY_SECRET)
    monkeypatch.setenv("MOCK_TWILIO_AUTH_TOKEN", AUTH_TOKEN)
    monkeypatch.setenv("MOCK_TWILIO_API_KEY_SECRET", API_KEY_SECRET)
    settings = MockGatewaySettings.model_validate(
        {
            "receipts": {"delivered": 1, "failed": 0, "undeliverable": 0, "delay_seconds": 60},
            "twilio": {
                "account_sid": ACCOUNT_SID,
                "auth_token_env": "MOCK_TWILIO_AUTH_TOKEN",
                "api_key_sid": API_KEY_SID,
                "api_key_secret_env": "MOCK_TWILIO_API_KEY_SECRET",
            },
        }
    )
    mock = MockTwilio(app=None, ledger=GatewayLedger(ledger_path(settings, tmp_path)))
    mock.app = create_mock_gateway_app(settings, tmp_path, clock=lambda: mock.now[0])
    return mock


def sms(key: str, to: str = "+14155550101", body: str = "Your payment is 5 days late.") -> Any:
    return OutboundMessage(key, Channel.SMS, to, body)


def run(adapter: TwilioSmsAdapter, work: Callable[[TwilioSmsAdapter], Awaitable[T]]) -> T:
    async def go() -> T:
        async with adapter:
            return await work(adapter)

    return asyncio.run(go())


def send(adapter: TwilioSmsAdapter, batch: Sequence[OutboundMessage]) -> list[SendResult]:
    return run(adapter, lambda a: a.send(batch))


def form(request: httpx.Request) -> dict[str, str]:
    return dict(parse_qsl(request.content.decode(), keep_blank_values=True))


def basic(request: httpx.Request) -> tuple[str, str]:
    scheme, _, encoded = request.headers["authorization"].partition(" ")
    assert scheme == "Basic"
    user, _, secret = base64.b64decode(encoded).decode().partition(":")
    return user, secret


# -- send --------------------------------------------------------------------------------------


def test_a_message_goes_as_form_fields_with_basic_auth_and_comes_back_accepted(
    twilio: MockTwilio,
) -> None:
    callback = "https://dunning.example.com/webhooks/providers/twilio-us/status"
    adapter = twilio.adapter(status_callback=callback)
    (result,) = send(adapter, [sms("acct-1:2026-11-23")])

    assert result.outcome == SendOutcome.ACCEPTED and result.gateway_message_id is not None
    assert result.gateway_message_id.startswith("SM") and result.segments == 1
    (request,) = twilio.requests
    assert request.method == "POST"
    assert request.url.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert form(request) == {
        "To": "+14155550101",
        "Body": "Your payment is 5 days late.",
        "From": SENDER,
        "StatusCallback": callback,
    }
    assert basic(request) == (ACCOUNT_SID, AUTH_TOKEN)
    (row,) = twilio.ledger.vendor_rows("twilio")
    assert row.id == result.gateway_message_id


def test_an_api_key_and_a_messaging_service(twilio: MockTwilio) -> None:
    adapter = twilio.adapter(
        auth_token_env=None,
        api_key_sid=API_KEY_SID,
        api_key_secret_env="TWILIO_API_KEY_SECRET",
        from_number=None,
        messaging_service_sid=SERVICE_SID,
    )
    (result,) = send(adapter, [sms("acct-2:2026-11-23")])
    assert result.outcome == SendOutcome.ACCEPTED
    (request,) = twilio.requests
    assert basic(request) == (API_KEY_SID, API_KEY_SECRET)
    assert form(request)["MessagingServiceSid"] == SERVICE_SID and "From" not in form(request)


def test_segments_and_price_are_those_twilio_reports(twilio: MockTwilio) -> None:
    long_text = "Ваш платёж просрочен. " * 8  # UCS-2: 67 characters a segment
    adapter = twilio.adapter()
    (result,) = send(adapter, [sms("acct-3:2026-11-23", body=long_text)])
    assert (result.segments, result.price) == (3, None)  # Twilio prices a message once sent
    twilio.now[0] += 60
    (report,) = run(adapter, lambda a: a.fetch_statuses([str(result.gateway_message_id)]))
    assert (report.status, report.segments) == ("delivered", 3)
    assert (report.price, report.price_unit) == ("-0.02370", "USD")


@pytest.mark.parametrize(
    ("to", "code", "vendor_code"),
    [
        ("+15005550004", "opted_out", "21610"),
        ("+15005550001", "invalid_number", "21211"),
        ("+15005550009", "invalid_number", "21614"),
        ("+15005550002", "blocked", "21612"),
        ("+15005550003", "blocked", "21408"),
    ],
)
def test_twilios_error_codes_become_reject_codes(
    twilio: MockTwilio, to: str, code: str, vendor_code: str
) -> None:
    (result,) = send(twilio.adapter(), [sms("acct-4:2026-11-23", to=to)])
    assert (result.outcome, result.code, result.vendor_code) == (
        SendOutcome.REJECTED,
        code,
        vendor_code,
    )
    assert result.reason is not None and to not in result.reason
    assert len(twilio.requests) == 1  # refused for good: not tried again


def test_a_wrong_token_leaves_the_message_for_the_next_dispatch_naming_the_variable(
    twilio: MockTwilio, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "not-the-token")
    (result,) = send(twilio.adapter(), [sms("acct-5:2026-11-23")])
    assert (result.outcome, result.vendor_code) == (SendOutcome.RETRY, "20003")
    assert result.reason is not None and "TWILIO_AUTH_TOKEN" in result.reason
    assert "not-the-token" not in result.reason
    assert len(twilio.requests) == 1 and twilio.ledger.vendor_rows("twilio") == []


def test_throttled_requests_are_tried_again_and_a_lost_answer_is_not(twilio: MockTwilio) -> None:
    twilio.fault(kind="throttle", channel="sms")
    (first,) = send(twilio.adapter(), [sms("acct-6:2026-11-23")])
    assert first.outcome == SendOutcome.ACCEPTED and len(twilio.requests) == 2

    twilio.fault(kind="server_error", status=500, channel="sms", commit_first=True)
    (second,) = send(twilio.adapter(), [sms("acct-7:2026-11-23", to="+14155550102")])
    # Twilio may have it (it does): never sent again blindly.
    assert second.outcome == SendOutcome.AMBIGUOUS
    assert len(twilio.ledger.vendor_rows("twilio", "+14155550102")) == 1
    assert len(twilio.requests) == 3
