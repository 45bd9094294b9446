"""The twilio-sms adapter against the mock Twilio, in-process over ASGI on a stopped clock: the
requests it makes (form fields, Basic auth with the account SID or an API key), how it reads
Twilio's answers and error codes, status polling, the signed webhooks (signatures made by the
official `twilio` SDK's RequestValidator), the lookup of an in-doubt message, and check()."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest
from twilio.request_validator import RequestValidator

from adapters import Timing
from adapters.base import (
    OutboundMessage,
    SendOutcome,
    SendResult,
    SentMessage,
    WebhookRefused,
    WebhookRequest,
)
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
    callbacks: list[httpx.Request] = field(default_factory=list)

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

    def callback(request: httpx.Request) -> httpx.Response:
        mock.callbacks.append(request)
        return httpx.Response(200)

    mock.app = create_mock_gateway_app(
        settings,
        tmp_path,
        clock=lambda: mock.now[0],
        webhook_transport=httpx.MockTransport(callback),
    )
    return mock


def sms(
    key: str, to: str = "+14155550101", body: str = "Your payment is 5 days late."
) -> OutboundMessage:
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


# -- status by polling -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("to", "status", "vendor_code"),
    [
        ("+14155550103", "delivered", None),
        ("+15005550303", "failed", "30003"),  # handset off: a failed attempt
        ("+15005550305", "undeliverable", "30005"),  # unknown handset: the number does not work
        ("+15005550306", "undeliverable", "30006"),  # a landline
        ("+15005550307", "failed", "30007"),  # filtered by the carrier
        ("+15005550308", "failed", "30008"),
    ],
)
def test_polled_statuses_carry_twilios_error_code(
    twilio: MockTwilio, to: str, status: str, vendor_code: str | None
) -> None:
    adapter = twilio.adapter()
    (sent,) = send(adapter, [sms("acct-8:2026-11-23", to=to)])
    sid = str(sent.gateway_message_id)
    (queued,) = run(adapter, lambda a: a.fetch_statuses([sid]))
    assert (queued.status, queued.event_id) == ("pending", f"{sid}:queued")
    twilio.now[0] += 60
    (final,) = run(adapter, lambda a: a.fetch_statuses([sid]))
    assert (final.status, final.vendor_code) == (status, vendor_code)
    assert final.event_id is not None and final.event_id.startswith(f"{sid}:")
    assert twilio.requests[-1].url.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}.json"


def test_the_receipts_poll_gets_our_keys_back_and_an_unknown_sid_reports_nothing(
    twilio: MockTwilio,
) -> None:
    adapter = twilio.adapter()
    (sent,) = send(adapter, [sms("acct-9:2026-11-23")])
    sid = str(sent.gateway_message_id)
    twilio.now[0] += 60
    messages = [
        SentMessage(sid, "acct-9:2026-11-23", "+14155550101", None),
        SentMessage("SM" + "f" * 32, "acct-10:2026-11-23", "+14155550101", None),
    ]
    (report,) = run(adapter, lambda a: a.fetch_receipts(messages))
    assert (report.gateway_message_id, report.idempotency_key) == (sid, "acct-9:2026-11-23")
    assert report.status == "delivered"


# -- webhooks ----------------------------------------------------------------------------------

HOOK = "https://dunning.example.com/webhooks/providers/twilio-us/status"
INBOUND = "https://dunning.example.com/webhooks/providers/twilio-us/inbound"
RECEIVED = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)


def hook(
    url: str, params: dict[str, str], signature: str | None, method: str = "POST"
) -> WebhookRequest:
    headers = {"content-type": "application/x-www-form-urlencoded"}
    if signature is not None:
        headers["x-twilio-signature"] = signature
    return WebhookRequest(method, url, headers, urlencode(params).encode(), RECEIVED)


def signed(url: str, params: dict[str, str], token: str = AUTH_TOKEN) -> WebhookRequest:
    """A call signed by the official SDK's validator, as Twilio signs."""
    return hook(url, params, RequestValidator(token).compute_signature(url, params))


def status_params(sid: str, status: str, error_code: str | None = None) -> dict[str, str]:
    params = {
        "AccountSid": ACCOUNT_SID,
        "ApiVersion": "2010-04-01",
        "From": SENDER,
        "MessageSid": sid,
        "MessageStatus": status,
        "SmsSid": sid,
        "SmsStatus": status,
        "To": "+14155550101",
    }
    if error_code is not None:
        params["ErrorCode"] = error_code
    return params


SID = "SM" + "a" * 32


def test_a_status_callback_signed_as_twilio_signs_is_read_and_a_replay_is_the_same_event(
    twilio: MockTwilio,
) -> None:
    adapter = twilio.adapter()
    answer = adapter.read_webhook(signed(HOOK, status_params(SID, "delivered")), "status")
    (report,) = answer.statuses
    assert (report.gateway_message_id, report.status, report.event_id) == (
        SID,
        "delivered",
        f"{SID}:delivered",
    )
    assert answer.status_code == 200 and not answer.replies
    again = adapter.read_webhook(signed(HOOK, status_params(SID, "delivered")), "status")
    assert [r.event_id for r in again.statuses] == [report.event_id]

    failed = adapter.read_webhook(
        signed(HOOK, status_params(SID, "undelivered", "30003")), "status"
    )
    assert [(r.status, r.vendor_code) for r in failed.statuses] == [("failed", "30003")]
    dead = adapter.read_webhook(signed(HOOK, status_params(SID, "undelivered", "30005")), "status")
    assert [(r.status, r.vendor_code) for r in dead.statuses] == [("undeliverable", "30005")]


def test_the_mocks_own_signed_status_callback_is_read(twilio: MockTwilio) -> None:
    adapter = twilio.adapter(status_callback=HOOK)
    (sent,) = send(adapter, [sms("acct-11:2026-11-23", to="+15005550305")])
    twilio.now[0] += 60
    assert twilio.admin("POST", "/_admin/receipts/push").json()["pushed"] == 1
    (pushed,) = twilio.callbacks
    request = WebhookRequest(
        "POST",
        str(pushed.url),
        {k.lower(): v for k, v in pushed.headers.items()},
        pushed.content,
        RECEIVED,
    )
    (report,) = adapter.read_webhook(request, "status").statuses
    assert (report.gateway_message_id, report.status, report.vendor_code) == (
        sent.gateway_message_id,
        "undeliverable",
        "30005",
    )


def test_the_signature_holds_with_the_default_port_in_the_url(twilio: MockTwilio) -> None:
    adapter = twilio.adapter()
    params = status_params(SID, "sent")
    ported = HOOK.replace("dunning.example.com", "dunning.example.com:443")
    signature = RequestValidator(AUTH_TOKEN).compute_signature(ported, params)
    (report,) = adapter.read_webhook(hook(HOOK, params, signature), "status").statuses
    assert report.status == "pending"


@pytest.mark.parametrize(
    ("request_", "status"),
    [
        (hook(HOOK, status_params(SID, "delivered"), None), 401),  # no signature
        (signed(HOOK, status_params(SID, "delivered"), "another-token"), 401),  # not our token
        (  # signed for another URL
            hook(
                HOOK.replace("twilio-us", "twilio-eu"),
                status_params(SID, "delivered"),
                RequestValidator(AUTH_TOKEN).compute_signature(
                    HOOK, status_params(SID, "delivered")
                ),
            ),
            401,
        ),
        (hook(HOOK, {**status_params(SID, "delivered"), "AccountSid": "AC" + "9" * 32}, "x"), 401),
        (
            signed(
                HOOK, {k: v for k, v in status_params(SID, "delivered").items() if "Sid" not in k}
            ),
            400,
        ),
        (signed(HOOK, {**status_params(SID, "delivered"), "AccountSid": "AC" + "9" * 32}), 400),
        (signed(HOOK, status_params(SID, "undelivered", "thirty")), 400),
    ],
)
def test_forged_missing_and_malformed_callbacks_are_refused(
    twilio: MockTwilio, request_: WebhookRequest, status: int
) -> None:
    with pytest.raises(WebhookRefused) as refused:
        twilio.adapter().read_webhook(request_, "status")
    assert refused.value.status == status
    assert "+1415" not in refused.value.reason and "+1500" not in refused.value.reason


def test_a_forged_field_breaks_the_signature(twilio: MockTwilio) -> None:
    genuine = status_params(SID, "undelivered", "30005")
    signature = RequestValidator(AUTH_TOKEN).compute_signature(HOOK, genuine)
    forged = {**genuine, "MessageStatus": "delivered"}
    with pytest.raises(WebhookRefused) as refused:
        twilio.adapter().read_webhook(hook(HOOK, forged, signature), "status")
    assert refused.value.status == 401


def test_an_inbound_stop_is_a_reply_answered_with_empty_twiml(twilio: MockTwilio) -> None:
    params = {
        "AccountSid": ACCOUNT_SID,
        "ApiVersion": "2010-04-01",
        "Body": "STOP",
        "From": "+14155550101",
        "MessageSid": "SM" + "b" * 32,
        "NumMedia": "0",
        "NumSegments": "1",
        "SmsMessageSid": "SM" + "b" * 32,
        "SmsSid": "SM" + "b" * 32,
        "To": SENDER,
    }
    answer = twilio.adapter().read_webhook(signed(INBOUND, params), "inbound")
    (reply,) = answer.replies
    assert (reply.event_id, reply.sender, reply.text) == ("SM" + "b" * 32, "+14155550101", "STOP")
    assert answer.content_type == "text/xml" and not answer.statuses
    assert answer.body.endswith(b"<Response/>")
    with pytest.raises(WebhookRefused) as refused:
        twilio.adapter().read_webhook(hook(INBOUND, params, "forged"), "inbound")
    assert refused.value.status == 401 and "STOP" not in refused.value.reason


def test_webhooks_need_the_auth_token_even_when_requests_use_an_api_key(
    twilio: MockTwilio,
) -> None:
    adapter = twilio.adapter(
        auth_token_env=None, api_key_sid=API_KEY_SID, api_key_secret_env="TWILIO_API_KEY_SECRET"
    )
    with pytest.raises(WebhookRefused) as refused:
        adapter.read_webhook(signed(HOOK, status_params(SID, "delivered")), "status")
    assert refused.value.status == 401 and "auth_token_env" in refused.value.reason


# -- lookup of an in-doubt message -------------------------------------------------------------


def in_doubt(message: OutboundMessage) -> OutboundMessage:
    return replace(message, in_doubt=True)


def test_an_in_doubt_message_twilio_took_is_found_not_sent_again(twilio: MockTwilio) -> None:
    message = sms("acct-12:2026-11-23", to="+14155550104")
    twilio.fault(kind="server_error", status=500, channel="sms", commit_first=True)
    (first,) = send(twilio.adapter(), [message])
    assert first.outcome == SendOutcome.AMBIGUOUS
    (row,) = twilio.ledger.vendor_rows("twilio", "+14155550104")

    twilio.now[0] += 5  # still queued at Twilio: not sent yet, so a DateSent filter misses it
    (again,) = send(twilio.adapter(), [in_doubt(message)])
    assert (again.outcome, again.duplicate, again.gateway_message_id) == (
        SendOutcome.ACCEPTED,
        True,
        row.id,
    )
    assert len(twilio.ledger.vendor_rows("twilio", "+14155550104")) == 1
    lookup = twilio.requests[-1]
    assert (lookup.method, lookup.url.path) == (
        "GET",
        f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json",
    )
    assert "DateSent" not in str(lookup.url) and lookup.url.params["To"] == "+14155550104"


def test_an_in_doubt_message_twilio_does_not_have_is_sent_once(twilio: MockTwilio) -> None:
    other = sms("acct-13:2026-11-22", to="+14155550105", body="Another text")
    send(twilio.adapter(), [other])  # same number, another body: not ours
    service = twilio.adapter(from_number=None, messaging_service_sid=SERVICE_SID)
    send(service, [sms("acct-13:2026-11-21", to="+14155550105")])  # same body, another sender
    message = sms("acct-13:2026-11-23", to="+14155550105")
    (result,) = send(twilio.adapter(), [in_doubt(message)])
    assert result.outcome == SendOutcome.ACCEPTED and not result.duplicate
    rows = twilio.ledger.vendor_rows("twilio", "+14155550105")
    assert [r.id for r in rows][-1] == result.gateway_message_id and len(rows) == 3


def test_an_identical_text_older_than_the_window_is_not_taken_as_ours(twilio: MockTwilio) -> None:
    message = sms("acct-14:2026-11-23", to="+14155550106")
    send(twilio.adapter(), [message])
    twilio.now[0] += 25 * 3600  # the window is 24 hours
    (result,) = send(twilio.adapter(), [in_doubt(message)])
    assert result.outcome == SendOutcome.ACCEPTED and not result.duplicate
    assert len(twilio.ledger.vendor_rows("twilio", "+14155550106")) == 2


def test_a_messaging_service_message_is_found_by_its_service(twilio: MockTwilio) -> None:
    service = twilio.adapter(from_number=None, messaging_service_sid=SERVICE_SID)
    message = sms("acct-15:2026-11-23", to="+14155550107")
    (first,) = send(service, [message])
    (again,) = send(service, [in_doubt(message)])
    assert (again.duplicate, again.gateway_message_id) == (True, first.gateway_message_id)


def test_when_twilio_cannot_say_the_message_stays_in_doubt_and_is_not_sent(
    twilio: MockTwilio,
) -> None:
    message = sms("acct-16:2026-11-23", to="+14155550108")
    twilio.fault(kind="server_error", status=500, channel="sms")
    (result,) = send(twilio.adapter(), [in_doubt(message)])
    assert result.outcome == SendOutcome.AMBIGUOUS
    assert result.reason is not None and result.reason.startswith("lookup failed")
    assert twilio.ledger.vendor_rows("twilio", "+14155550108") == []


def test_more_pages_in_the_window_than_a_lookup_reads_is_cannot_tell(twilio: MockTwilio) -> None:
    to = "+14155550109"
    adapter = twilio.adapter(lookup_max_pages=1, max_concurrency=None)
    send(adapter, [sms(f"acct-17:{i}", to=to, body=f"Reminder {i}") for i in range(51)])
    (result,) = send(twilio.adapter(lookup_max_pages=1), [in_doubt(sms("acct-17:x", to=to))])
    assert result.outcome == SendOutcome.AMBIGUOUS
    assert len(twilio.ledger.vendor_rows("twilio", to)) == 51
    (found,) = send(
        twilio.adapter(lookup_max_pages=2), [in_doubt(sms("acct-17:0", to=to, body="Reminder 0"))]
    )
    assert found.duplicate  # the oldest, on the second page


# -- check -------------------------------------------------------------------------------------


def check(adapter: TwilioSmsAdapter) -> str | None:
    return run(adapter, lambda a: a.check())


def test_check_reads_the_account_without_sending(twilio: MockTwilio) -> None:
    assert check(twilio.adapter()) is None
    (request,) = twilio.requests
    assert (request.method, request.url.path) == ("GET", f"/2010-04-01/Accounts/{ACCOUNT_SID}.json")
    keyed = twilio.adapter(
        auth_token_env=None, api_key_sid=API_KEY_SID, api_key_secret_env="TWILIO_API_KEY_SECRET"
    )
    assert check(keyed) is None  # an API key may not read the account: one page of messages
    assert twilio.requests[-1].url.path.endswith("/Messages.json")
    assert twilio.ledger.vendor_rows("twilio") == []


def test_check_names_a_refused_credential_by_its_variable(
    twilio: MockTwilio, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "not-the-token")
    assert check(twilio.adapter()) == "credentials refused (TWILIO_AUTH_TOKEN)"
    wrong_account = twilio.adapter(account_sid="AC" + "4" * 32)
    assert check(wrong_account) == "credentials refused (TWILIO_AUTH_TOKEN)"


def test_check_says_when_twilio_cannot_be_reached(twilio: MockTwilio) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    adapter = TwilioSmsAdapter(
        TwilioOptions(
            account_sid=ACCOUNT_SID, auth_token_env="TWILIO_AUTH_TOKEN", from_number=SENDER
        ),
        transport=httpx.MockTransport(refuse),
    )
    assert check(adapter) == "cannot reach https://api.twilio.com (connection error: ConnectError)"


def test_the_mock_like_twilio_refuses_an_api_key_on_the_account(twilio: MockTwilio) -> None:
    path = f"/2010-04-01/Accounts/{ACCOUNT_SID}.json"
    assert twilio.admin("GET", path, auth=(ACCOUNT_SID, AUTH_TOKEN)).json()["status"] == "active"
    refused = twilio.admin("GET", path, auth=(API_KEY_SID, API_KEY_SECRET))
    assert (refused.status_code, refused.json()["code"]) == (401, 20003)
