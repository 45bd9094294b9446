"""The adapter kit's public contract against httpx.MockTransport: encodings, authentication,
concurrency, a provider's own classification, AMBIGUOUS answers and lookup before a resend.

Every adapter here is a provider written only with the public hooks, as a vendor adapter is.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from adapters import (
    Auth,
    BasicAuth,
    Classified,
    HttpAdapterOptions,
    HttpGatewayAdapter,
    OAuth2ClientCredentials,
    OutboundMessage,
    RejectCode,
    RequestFailure,
    SendOutcome,
    SendResult,
    SignedAuth,
    StatusReport,
    Timing,
    VendorAnswer,
    VendorRequest,
)
from dunning.errors import ConfigError
from dunning.types import Channel
from tests.unit.test_adapters import FakeTime

FAST = {"backoff_base": 0.1, "backoff_cap": 1.0, "max_attempts": 4, "timeout": 1.0}


class KitOptions(HttpAdapterOptions):
    user_env: str | None = None
    secret_env: str | None = None


@dataclass
class Vendor:
    """A scripted vendor: `answer(request)` per request (default: accept, id by recipient)."""

    answer: Callable[[httpx.Request], httpx.Response] | None = None
    requests: list[httpx.Request] = field(default_factory=list)
    in_flight: int = 0
    most_in_flight: int = 0

    def transport(self) -> httpx.MockTransport:
        async def handle(request: httpx.Request) -> httpx.Response:
            self.requests.append(request)
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            try:
                await asyncio.sleep(0)  # let concurrent requests overlap
                if self.answer is not None:
                    return self.answer(request)
                return accepted(request)
            finally:
                self.in_flight -= 1

        return httpx.MockTransport(handle)

    def sends(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.path == "/Messages"]


def accepted(request: httpx.Request) -> httpx.Response:
    to = parse_qs(request.content.decode())["To"][0]
    return httpx.Response(201, json={"sid": f"SM{to[-4:]}", "num_segments": "2", "price": "-0.01"})


class FormSms(HttpGatewayAdapter):
    """A Twilio-shaped vendor: one message per form-encoded request, Basic auth, no dedup."""

    name = "kit-form-sms"
    channel = Channel.SMS
    options_model = KitOptions
    max_batch = 1
    max_concurrency = 4
    rate_per_second = 1000.0
    default_url = "https://vendor.test"

    options: KitOptions

    def build_auth(self) -> Auth:
        return BasicAuth(self.env_secret("user_env"), self.env_secret("secret_env"))

    def send_request(self, batch: Sequence[OutboundMessage]) -> VendorRequest:
        (message,) = batch
        form = {"To": message.recipient, "Body": message.body, "From": "DUNNING"}
        return VendorRequest("POST", "/Messages", form=form)

    def send_answers(self, batch: Sequence[OutboundMessage], payload: Any) -> Classified:
        (message,) = batch
        return {
            message.idempotency_key: SendResult(
                message.idempotency_key,
                SendOutcome.ACCEPTED,
                payload["sid"],
                segments=int(payload["num_segments"]),
                price=payload["price"],
                price_unit="USD",
            )
        }

    def classify_send(self, batch: Sequence[OutboundMessage], answer: VendorAnswer) -> Classified:
        if answer.status_code == 400:
            (message,) = batch
            code = str(answer.json()["code"])
            reject = {"21211": RejectCode.INVALID_NUMBER, "21610": RejectCode.OPTED_OUT}
            return {
                message.idempotency_key: SendResult(
                    message.idempotency_key,
                    SendOutcome.REJECTED,
                    reason=f"{code}: {answer.json()['message']}",
                    code=reject.get(code, RejectCode.OTHER).value,
                    vendor_code=code,
                )
            }
        return super().classify_send(batch, answer)

    def status_request(self, gateway_message_ids: Sequence[str]) -> VendorRequest:
        (sid,) = gateway_message_ids
        return VendorRequest("GET", f"/Messages/{sid}")

    def status_answers(self, payload: Any) -> list[StatusReport]:
        return []

    def classify_status(
        self, gateway_message_ids: Sequence[str], answer: VendorAnswer
    ) -> list[StatusReport] | RequestFailure:
        if answer.status_code == 404:
            return []  # no such message, not "check the URL"
        return super().classify_status(gateway_message_ids, answer)


class LookingUpSms(FormSms):
    """The same vendor, with a lookup (by our key, kept in the vendor's records)."""

    name = "kit-lookup-sms"
    found: dict[str, str | None]  # key -> the vendor's id; None: the vendor cannot say

    async def lookup(self, message: OutboundMessage) -> SendResult | None:
        answer = await self.call(
            VendorRequest("GET", "/Lookup", params={"ref": message.idempotency_key})
        )
        if not answer.ok:
            return SendResult(message.idempotency_key, SendOutcome.AMBIGUOUS, reason="lookup")
        sid = answer.json().get("sid")
        return (
            None if sid is None else SendResult(message.idempotency_key, SendOutcome.ACCEPTED, sid)
        )


def sms(key: str, to: str = "+13125550001", *, in_doubt: bool = False) -> OutboundMessage:
    return OutboundMessage(key, Channel.SMS, to, "Payment overdue. Reply STOP.", in_doubt=in_doubt)


def build(
    cls: type[FormSms],
    vendor: Vendor,
    monkeypatch: pytest.MonkeyPatch,
    clock: FakeTime | None = None,
    **options: Any,
) -> FormSms:
    monkeypatch.setenv("KIT_USER", "AC123")
    monkeypatch.setenv("KIT_SECRET", "s3cret")
    return cls(
        KitOptions(user_env="KIT_USER", secret_env="KIT_SECRET", **{**FAST, **options}),
        transport=vendor.transport(),
        timing=(clock or FakeTime()).timing(),
    )


def send(adapter: HttpGatewayAdapter, batch: Sequence[OutboundMessage]) -> list[SendResult]:
    async def go() -> list[SendResult]:
        async with adapter:
            return await adapter.send(batch)

    return asyncio.run(go())


# -- encodings -----------------------------------------------------------------------------------


def test_form_fields_with_basic_auth_and_the_vendors_segments_and_price(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    vendor = Vendor()
    (result,) = send(build(FormSms, vendor, monkeypatch), [sms("k1")])
    (request,) = vendor.requests
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert parse_qs(request.content.decode()) == {
        "To": ["+13125550001"],
        "Body": ["Payment overdue. Reply STOP."],
        "From": ["DUNNING"],
    }
    assert request.headers["authorization"] == "Basic " + base64.b64encode(b"AC123:s3cret").decode()
    assert result == SendResult(
        "k1", SendOutcome.ACCEPTED, "SM0001", segments=2, price="-0.01", price_unit="USD"
    )


class MultipartLetter(FormSms):
    name = "kit-multipart-letter"
    channel = Channel.LETTER

    def build_auth(self) -> Auth:
        return Auth()

    def send_request(self, batch: Sequence[OutboundMessage]) -> VendorRequest:
        (message,) = batch
        assert message.document is not None
        return VendorRequest(
            "POST",
            "/Messages",
            form={"ref": message.idempotency_key},
            files={"pdf": ("letter.pdf", message.document, "application/pdf")},
        )

    def send_answers(self, batch: Sequence[OutboundMessage], payload: Any) -> Classified:
        return {
            m.idempotency_key: SendResult(m.idempotency_key, SendOutcome.ACCEPTED, "L1")
            for m in batch
        }


def test_multipart_carries_the_fields_and_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    vendor = Vendor(answer=lambda _: httpx.Response(200, json={}))
    letter = OutboundMessage("l1", Channel.LETTER, "Ann\n1 Main St", "Notice", document=b"%PDF-1.7")
    (result,) = send(build(MultipartLetter, vendor, monkeypatch), [letter])
    (request,) = vendor.requests
    assert request.headers["content-type"].startswith("multipart/form-data; boundary=")
    body = request.content
    assert b'name="ref"\r\n\r\nl1' in body
    assert b'name="pdf"; filename="letter.pdf"' in body and b"%PDF-1.7" in body
    assert result.outcome == SendOutcome.ACCEPTED


def test_a_request_is_json_or_form_never_both() -> None:
    with pytest.raises(ValueError, match="not both"):
        VendorRequest("POST", "/x", json={"a": 1}, form={"b": "2"})
    assert VendorRequest("GET", "/x").encoding == "none"
    assert VendorRequest("POST", "/x", json=[]).encoding == "json"


def test_a_missing_secret_names_the_option(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KIT_NO_SECRET", raising=False)
    with pytest.raises(ConfigError) as caught:
        FormSms(KitOptions(user_env="KIT_NO_SECRET", secret_env="KIT_NO_SECRET"))
    assert "config/channels.yaml: channels.sms.options.user_env" in str(caught.value)
    assert "KIT_NO_SECRET is not set" in str(caught.value)
    with pytest.raises(ConfigError, match=r"options\.user_env: is required"):
        FormSms(KitOptions())


# -- authentication: signing and OAuth2 ------------------------------------------------------------


SIGNING_KEY = b"signing-key"


def acs_like_signature(request: httpx.Request) -> str:
    """What a vendor checks: HMAC-SHA256 over method, URL, a signed header and the body."""
    digest = hashlib.sha256(request.content).hexdigest()
    canonical = "\n".join(
        [request.method, str(request.url), request.headers["x-nonce"], digest]
    ).encode()
    return hmac.new(SIGNING_KEY, canonical, hashlib.sha256).hexdigest()


class SignedSms(FormSms):
    name = "kit-signed-sms"
    nonces = iter(range(1000))

    def build_auth(self) -> Auth:
        return SignedAuth(self.sign)

    def sign(self, request: httpx.Request) -> None:
        request.headers["X-Nonce"] = str(next(self.nonces))
        request.headers["Authorization"] = "HMAC " + acs_like_signature(request)


def test_the_signer_signs_the_final_request_afresh_on_every_attempt(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    answers = iter([httpx.Response(503), None])

    def vendor_checks(request: httpx.Request) -> httpx.Response:
        if request.headers["authorization"] != "HMAC " + acs_like_signature(request):
            return httpx.Response(403)
        return next(answers) or accepted(request)

    vendor = Vendor(answer=vendor_checks)
    (result,) = send(build(SignedSms, vendor, monkeypatch), [sms("k1")])
    assert result.outcome == SendOutcome.ACCEPTED
    first, second = vendor.requests
    assert first.headers["x-nonce"] != second.headers["x-nonce"]


TOKEN_URL = "https://auth.vendor.test/oauth2/token"


@dataclass
class TokenVendor:
    """A token endpoint and an API that accepts only the newest token."""

    clock: FakeTime
    issued: int = 0
    revoked: bool = False
    token_requests: list[httpx.Request] = field(default_factory=list)

    def answer(self, request: httpx.Request) -> httpx.Response:
        if str(request.url) == TOKEN_URL:
            self.token_requests.append(request)
            self.issued += 1
            return httpx.Response(200, json={"access_token": f"t{self.issued}", "expires_in": 600})
        if self.revoked or request.headers.get("authorization") != f"Bearer t{self.issued}":
            self.revoked = False
            return httpx.Response(401)
        return accepted(request)


class OAuthSms(FormSms):
    name = "kit-oauth-sms"

    def build_auth(self) -> Auth:
        return OAuth2ClientCredentials(
            TOKEN_URL,
            self.env_secret("user_env"),
            self.env_secret("secret_env"),
            scope="sms.send",
            margin=60,
            clock=self.timing.monotonic,
        )


def test_oauth_token_is_fetched_once_cached_and_refreshed_before_expiry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = FakeTime()
    tokens = TokenVendor(clock)
    adapter = build(OAuthSms, Vendor(answer=tokens.answer), monkeypatch, clock)
    assert isinstance(adapter.auth, OAuth2ClientCredentials)
    send(adapter, [sms("k1"), sms("k2"), sms("k3")])
    assert tokens.issued == 1  # three sends, one token
    (token_request,) = tokens.token_requests
    assert parse_qs(token_request.content.decode()) == {
        "grant_type": ["client_credentials"],
        "scope": ["sms.send"],
    }
    assert (
        token_request.headers["authorization"]
        == "Basic " + base64.b64encode(b"AC123:s3cret").decode()
    )
    clock.now += 539  # 600 s token, refreshed 60 s early
    send(adapter, [sms("k4")])
    assert tokens.issued == 1
    clock.now += 1
    send(adapter, [sms("k5")])
    assert tokens.issued == 2
    assert "s3cret" not in repr(adapter.auth) and "t2" not in repr(adapter.auth)


def test_oauth_401_fetches_a_new_token_and_sends_once_more(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeTime()
    tokens = TokenVendor(clock)
    vendor = Vendor(answer=tokens.answer)
    adapter = build(OAuthSms, vendor, monkeypatch, clock)
    send(adapter, [sms("k1")])
    tokens.revoked = True  # the vendor revokes the token early
    (result,) = send(adapter, [sms("k2", to="+13125550002")])
    assert result == SendResult(
        "k2", SendOutcome.ACCEPTED, "SM0002", segments=2, price="-0.01", price_unit="USD"
    )
    assert tokens.issued == 2
    assert [r.headers["authorization"] for r in vendor.sends()] == [
        "Bearer t1",
        "Bearer t1",
        "Bearer t2",
    ]


def test_a_token_endpoint_refusing_our_credentials_leaves_the_message_planned(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401 if str(request.url) == TOKEN_URL else 500)

    vendor = Vendor(answer=refuse)
    (result,) = send(build(OAuthSms, vendor, monkeypatch), [sms("k1")])
    assert result.outcome == SendOutcome.RETRY
    assert result.reason is not None
    assert result.reason.startswith("token endpoint refused the client credentials (HTTP 401)")
    assert "check the url and api_key_env of channels.sms" in result.reason
    assert vendor.sends() == []  # refused once, not retried, nothing sent


# -- many requests at once -----------------------------------------------------------------------


def test_one_message_per_request_runs_max_concurrency_requests_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    vendor = Vendor()
    batch = [sms(f"k{i}", to=f"+1312555{i:04d}") for i in range(10)]
    results = send(build(FormSms, vendor, monkeypatch), batch)
    assert len(vendor.requests) == 10
    assert vendor.most_in_flight == 4
    assert [r.gateway_message_id for r in results] == [f"SM{i:04d}" for i in range(10)]


def test_concurrent_requests_keep_to_the_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)  # the clock stands still: every request reserves at t=0

    monkeypatch.setenv("KIT_USER", "AC123")
    monkeypatch.setenv("KIT_SECRET", "s3cret")
    adapter = FormSms(
        KitOptions(user_env="KIT_USER", secret_env="KIT_SECRET", rate_per_second=2, **FAST),
        transport=Vendor().transport(),
        timing=Timing(lambda: 0.0, lambda: 0.0, record, lambda: 0.5),
    )
    send(adapter, [sms(f"k{i}", to=f"+1312555{i:04d}") for i in range(4)])
    # 4 requests of 1 message at 2/s: they go at 0, 0.5, 1.0 and 1.5 s.
    assert sorted(waits) == pytest.approx([0.5, 1.0, 1.5])


# -- the provider's own classification -----------------------------------------------------------


def test_the_vendors_error_codes_become_reject_codes(monkeypatch: pytest.MonkeyPatch) -> None:
    def vendor_error(request: httpx.Request) -> httpx.Response:
        code = 21610 if "0002" in request.content.decode() else 21211
        return httpx.Response(400, json={"code": code, "message": "refused"})

    vendor = Vendor(answer=vendor_error)
    results = send(build(FormSms, vendor, monkeypatch), [sms("k1"), sms("k2", to="+13125550002")])
    assert [(r.outcome, r.code, r.vendor_code) for r in results] == [
        (SendOutcome.REJECTED, "invalid_number", "21211"),
        (SendOutcome.REJECTED, "opted_out", "21610"),
    ]
    assert len(vendor.requests) == 2  # never retried


def test_a_404_on_a_status_fetch_can_mean_no_such_message(monkeypatch: pytest.MonkeyPatch) -> None:
    vendor = Vendor(answer=lambda _: httpx.Response(404))
    adapter = build(FormSms, vendor, monkeypatch)
    assert asyncio.run(adapter.fetch_statuses(["SM404"])) == []
    assert len(vendor.requests) == 1


def test_the_default_still_reads_a_404_on_a_send_as_our_configuration(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    vendor = Vendor(answer=lambda _: httpx.Response(404))
    (result,) = send(build(FormSms, vendor, monkeypatch), [sms("k1")])
    assert result.outcome == SendOutcome.RETRY and len(vendor.requests) == 1
    assert result.reason is not None and "check the url" in result.reason


# -- AMBIGUOUS: never a second send to a gateway that does not deduplicate -----------------------


def raising(exc: Exception) -> Callable[[httpx.Request], httpx.Response]:
    def answer(request: httpx.Request) -> httpx.Response:
        raise exc

    return answer


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (raising(httpx.ReadTimeout("slow")), "timed out after 1s"),
        (raising(httpx.RemoteProtocolError("dropped")), "connection error: RemoteProtocolError"),
        (lambda _: httpx.Response(502), "HTTP 502"),
        (
            lambda _: httpx.Response(201, content=b"<html>"),
            "malformed answer from the gateway: not JSON",
        ),
    ],
)
def test_an_answer_that_may_mean_taken_is_ambiguous_and_not_sent_again(
    monkeypatch: pytest.MonkeyPatch, answer: Callable[[httpx.Request], httpx.Response], reason: str
) -> None:
    vendor = Vendor(answer=answer)
    (result,) = send(build(FormSms, vendor, monkeypatch), [sms("k1")])
    assert (result.outcome, result.reason) == (SendOutcome.AMBIGUOUS, reason)
    assert len(vendor.requests) == 1


def test_a_connection_refused_is_certainly_not_sent_and_is_retried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    script = iter([httpx.ConnectError("refused"), None])

    def answer(request: httpx.Request) -> httpx.Response:
        failure = next(script)
        if failure is not None:
            raise failure
        return accepted(request)

    vendor = Vendor(answer=answer)
    (result,) = send(build(FormSms, vendor, monkeypatch), [sms("k1")])
    assert result.outcome == SendOutcome.ACCEPTED and len(vendor.requests) == 2


def lookup_vendor(records: Mapping[str, str | None]) -> Vendor:
    """Answers /Lookup from `records` (key -> sid, None: not there; absent: 503)."""

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/Lookup":
            ref = request.url.params["ref"]
            if ref not in records:
                return httpx.Response(503)
            return httpx.Response(200, json={"sid": records[ref]})
        return accepted(request)

    return Vendor(answer=answer)


def test_an_in_doubt_message_the_vendor_has_is_recorded_not_sent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    vendor = lookup_vendor({"k1": "SM-first"})
    (result,) = send(build(LookingUpSms, vendor, monkeypatch), [sms("k1", in_doubt=True)])
    assert result == SendResult("k1", SendOutcome.ACCEPTED, "SM-first", duplicate=True)
    assert vendor.sends() == []


def test_an_in_doubt_message_the_vendor_has_not_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    vendor = lookup_vendor({"k1": None})
    (result,) = send(build(LookingUpSms, vendor, monkeypatch), [sms("k1", in_doubt=True)])
    assert result.outcome == SendOutcome.ACCEPTED and not result.duplicate
    assert len(vendor.sends()) == 1


def test_an_in_doubt_message_the_vendor_cannot_say_about_stays_in_doubt(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    vendor = lookup_vendor({})
    batch = [sms("k1", in_doubt=True), sms("k2", to="+13125550002")]
    first, second = send(build(LookingUpSms, vendor, monkeypatch), batch)
    assert (first.outcome, first.reason) == (SendOutcome.AMBIGUOUS, "lookup")
    assert second.outcome == SendOutcome.ACCEPTED  # the other message goes as usual
    assert len(vendor.sends()) == 1


def test_an_in_doubt_message_without_a_lookup_is_not_sent_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    vendor = Vendor()
    adapter = build(FormSms, vendor, monkeypatch)
    assert not adapter.can_lookup
    (result,) = send(adapter, [sms("k1", in_doubt=True)])
    assert (result.outcome, result.code) == (SendOutcome.REJECTED, RejectCode.IN_DOUBT.value)
    assert result.reason is not None and "check with the vendor" in result.reason
    assert vendor.requests == []


def test_a_deduplicating_gateway_gets_in_doubt_and_timed_out_messages_again() -> None:
    from sandbox import MockAdapterOptions, MockSmsAdapter

    calls: list[httpx.Request] = []

    def gateway(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) == 1:
            raise httpx.ReadTimeout("slow")
        items = json.loads(request.content)["messages"]
        return httpx.Response(
            200,
            json={
                "results": [
                    {"idempotency_key": i["idempotency_key"], "status": "accepted", "id": "gw-1"}
                    for i in items
                ]
            },
        )

    adapter = MockSmsAdapter(
        MockAdapterOptions(**FAST),
        transport=httpx.MockTransport(gateway),
        timing=Timing(lambda: 0.0, lambda: 0.0, FakeTime().sleep, lambda: 0.5),
    )
    assert adapter.deduplicates and not adapter.can_lookup
    (result,) = send(adapter, [sms("k1", in_doubt=True)])
    assert result.outcome == SendOutcome.ACCEPTED and len(calls) == 2
