"""Gateway adapters against httpx.MockTransport: exact payloads, retries, faults, rate limits."""

from __future__ import annotations

import asyncio
import base64
import email.utils
import hashlib
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from adapters import (
    DeliveryStatus,
    OutboundMessage,
    SendOutcome,
    SendResult,
    Timing,
    parse_retry_after,
)
from adapters._http import RateLimiter
from dunning.errors import ConfigError, PermanentGatewayError, TransientGatewayError
from dunning.types import Channel
from sandbox import MockAdapterOptions, MockLetterAdapter, MockPushAdapter, MockSmsAdapter

EPOCH = 1_800_000_000.0


@dataclass
class FakeTime:
    """Clocks that only move when the code under test sleeps."""

    now: float = 0.0
    sleeps: list[float] = field(default_factory=list)

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return EPOCH + self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def timing(self) -> Timing:
        return Timing(self.monotonic, self.wall, self.sleep, lambda: 0.5)


Handler = Callable[[httpx.Request], httpx.Response | Awaitable[httpx.Response]]


@dataclass
class Gateway:
    """A scripted gateway: answers requests in order with the given handlers, then `ok`."""

    script: list[Handler] = field(default_factory=list)
    requests: list[httpx.Request] = field(default_factory=list)

    def transport(self) -> httpx.MockTransport:
        async def handle(request: httpx.Request) -> httpx.Response:
            self.requests.append(request)
            handler = self.script.pop(0) if self.script else accept_all
            answer = handler(request)
            return answer if isinstance(answer, httpx.Response) else await answer

        return httpx.MockTransport(handle)

    def bodies(self) -> list[Any]:
        return [json.loads(request.content) for request in self.requests]


def accept_all(request: httpx.Request) -> httpx.Response:
    items = json.loads(request.content)["messages"]
    return httpx.Response(
        200,
        json={
            "results": [
                {
                    "idempotency_key": item["idempotency_key"],
                    "status": "accepted",
                    "id": f"gw-{item['idempotency_key']}",
                    "duplicate": False,
                }
                for item in items
            ]
        },
    )


def status(code: int, headers: dict[str, str] | None = None) -> Handler:
    def answer(_: httpx.Request) -> httpx.Response:
        body = {"error": {"code": "oops", "message": f"status {code}"}}
        return httpx.Response(code, json=body, headers=headers)

    return answer


def sms(key: str = "k1", to: str = "+13125551234") -> OutboundMessage:
    return OutboundMessage(
        idempotency_key=key,
        channel=Channel.SMS,
        recipient=to,
        body="Payment overdue. Reply STOP to opt out.",
        metadata={"tier": "early", "locale": "en-US"},
    )


FAST = {"backoff_base": 0.1, "backoff_cap": 1.0, "max_attempts": 4, "timeout": 1.0}


def adapter(
    gateway: Gateway,
    clock: FakeTime | None = None,
    cls: type[MockSmsAdapter] | type[MockPushAdapter] | type[MockLetterAdapter] = MockSmsAdapter,
    **options: Any,
) -> MockSmsAdapter | MockPushAdapter | MockLetterAdapter:
    return cls(
        MockAdapterOptions(**{**FAST, **options}),
        transport=gateway.transport(),
        timing=(clock or FakeTime()).timing(),
    )


def send(
    target: MockSmsAdapter | MockPushAdapter | MockLetterAdapter, batch: Sequence[OutboundMessage]
) -> list[SendResult]:
    async def go() -> list[SendResult]:
        async with target:
            return await target.send(batch)

    return asyncio.run(go())


# -- exact payloads, one test per provider ------------------------------------------------------


def test_sms_payload_and_headers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_GATEWAY_KEY", "s3cret-key")
    gateway = Gateway()
    results = send(adapter(gateway, api_key_env="TEST_GATEWAY_KEY"), [sms("k1"), sms("k2")])
    assert [r.outcome for r in results] == [SendOutcome.ACCEPTED, SendOutcome.ACCEPTED]
    assert [r.gateway_message_id for r in results] == ["gw-k1", "gw-k2"]
    (request,) = gateway.requests
    assert request.method == "POST"
    assert str(request.url) == "http://mock-gateway/v1/sms/messages"
    assert request.headers["authorization"] == "Bearer s3cret-key"
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == {
        "messages": [
            {
                "idempotency_key": key,
                "to": "+13125551234",
                "body": "Payment overdue. Reply STOP to opt out.",
                "metadata": {"tier": "early", "locale": "en-US"},
            }
            for key in ("k1", "k2")
        ]
    }


def test_push_payload() -> None:
    gateway = Gateway()
    message = OutboundMessage(
        "p1", Channel.PUSH, "fcm:token-abcdef123", "Open the app", subject="A reminder"
    )
    send(adapter(gateway, cls=MockPushAdapter, url="https://push.example.test/"), [message])
    (request,) = gateway.requests
    assert str(request.url) == "https://push.example.test/v1/push/messages"
    assert "authorization" not in request.headers
    assert json.loads(request.content) == {
        "messages": [
            {
                "idempotency_key": "p1",
                "to": "fcm:token-abcdef123",
                "title": "A reminder",
                "body": "Open the app",
                "metadata": {},
            }
        ]
    }


def test_letter_payload_carries_pdf_and_its_sha256() -> None:
    gateway = Gateway()
    pdf = b"%PDF-1.7 a letter"
    message = OutboundMessage(
        "l1", Channel.LETTER, "Ann Lee\n1 Main St\nSpringfield", "Notice", document=pdf
    )
    send(adapter(gateway, cls=MockLetterAdapter), [message])
    assert gateway.bodies() == [
        {
            "messages": [
                {
                    "idempotency_key": "l1",
                    "to": "Ann Lee\n1 Main St\nSpringfield",
                    "body": "Notice",
                    "document": base64.b64encode(pdf).decode(),
                    "document_sha256": hashlib.sha256(pdf).hexdigest(),
                    "metadata": {},
                }
            ]
        }
    ]


def test_missing_api_key_env_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    with pytest.raises(ConfigError) as caught:
        MockSmsAdapter(MockAdapterOptions(api_key_env="NO_SUCH_KEY_VAR"))
    assert "config/channels.yaml: channels.sms.options.api_key_env" in str(caught.value)
    assert "NO_SUCH_KEY_VAR is not set" in str(caught.value)


def test_batches_are_split_at_max_batch_and_duplicates_in_a_batch_sent_once() -> None:
    gateway = Gateway()
    batch = [sms("k0"), sms("k1"), sms("k1"), sms("k2"), sms("k3")]
    results = send(adapter(gateway, max_batch=3), batch)
    assert [len(body["messages"]) for body in gateway.bodies()] == [2, 2]
    assert [r.idempotency_key for r in results] == ["k0", "k1", "k1", "k2", "k3"]
    assert all(r.outcome == SendOutcome.ACCEPTED for r in results)


def test_options_override_the_class_limits_on_the_instance() -> None:
    custom = MockSmsAdapter(MockAdapterOptions(max_batch=7, rate_per_second=3.5))
    assert (custom.max_batch, custom.rate_per_second) == (7, 3.5)
    assert (MockSmsAdapter.max_batch, MockSmsAdapter.rate_per_second) == (500, 10_000.0)


# -- transient faults: retried, then success ----------------------------------------------------


def test_5xx_then_success_backs_off_exponentially() -> None:
    gateway = Gateway([status(503), status(502)])
    clock = FakeTime()
    results = send(adapter(gateway, clock), [sms()])
    assert results[0].outcome == SendOutcome.ACCEPTED
    assert len(gateway.requests) == 3
    # equal jitter with random() = 0.5: 3/4 of 0.1 * 2**(n-1)
    assert clock.sleeps == pytest.approx([0.075, 0.15])
    assert gateway.bodies()[0] == gateway.bodies()[2], "the retry carries the same keys"


def test_429_retry_after_seconds_is_honoured() -> None:
    gateway = Gateway([status(429, {"Retry-After": "3"})])
    clock = FakeTime()
    results = send(adapter(gateway, clock, max_retry_after=10), [sms()])
    assert results[0].outcome == SendOutcome.ACCEPTED
    assert clock.sleeps == [3.0]


def test_429_retry_after_http_date_is_honoured() -> None:
    when = email.utils.formatdate(EPOCH + 7, usegmt=True)
    gateway = Gateway([status(429, {"Retry-After": when})])
    clock = FakeTime()
    send(adapter(gateway, clock, max_retry_after=10), [sms()])
    assert clock.sleeps == [pytest.approx(7.0)]


def test_too_long_retry_after_leaves_the_message_for_the_next_dispatch() -> None:
    gateway = Gateway([status(429, {"Retry-After": "600"})])
    clock = FakeTime()
    results = send(adapter(gateway, clock, max_retry_after=30), [sms()])
    assert results[0].outcome == SendOutcome.RETRY
    assert "429" in (results[0].reason or "")
    assert clock.sleeps == [] and len(gateway.requests) == 1


def test_timeout_then_success() -> None:
    def raise_timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    gateway = Gateway([raise_timeout])
    results = send(adapter(gateway), [sms()])
    assert results[0].outcome == SendOutcome.ACCEPTED
    assert len(gateway.requests) == 2


def test_a_hung_gateway_hits_the_whole_request_deadline() -> None:
    async def hang(_: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        raise AssertionError("not reached")

    gateway = Gateway([hang])
    results = send(adapter(gateway, timeout=0.05), [sms()])
    assert results[0].outcome == SendOutcome.ACCEPTED
    assert len(gateway.requests) == 2


def test_connection_error_then_success() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    gateway = Gateway([refuse])
    assert send(adapter(gateway), [sms()])[0].outcome == SendOutcome.ACCEPTED


@pytest.mark.parametrize(
    "body",
    [b'{"results": [{"idempot', b'{"data": "unexpected"}', b'{"results": [{"status": "x"}]}'],
    ids=["invalid-json", "wrong-shape", "bad-item"],
)
def test_malformed_body_then_success(body: bytes) -> None:
    gateway = Gateway([lambda _: httpx.Response(200, content=body)])
    results = send(adapter(gateway), [sms()])
    assert results[0].outcome == SendOutcome.ACCEPTED
    assert len(gateway.requests) == 2


def test_partial_answer_retries_only_the_unanswered_messages() -> None:
    def only_first(request: httpx.Request) -> httpx.Response:
        first = json.loads(request.content)["messages"][0]["idempotency_key"]
        results = [{"idempotency_key": first, "status": "accepted", "id": "gw-1"}]
        return httpx.Response(200, json={"results": results})

    gateway = Gateway([only_first])
    results = send(adapter(gateway), [sms("a"), sms("b")])
    assert [r.outcome for r in results] == [SendOutcome.ACCEPTED, SendOutcome.ACCEPTED]
    assert [len(b["messages"]) for b in gateway.bodies()] == [2, 1]


def test_retries_exhausted_returns_retry_with_the_reason() -> None:
    gateway = Gateway([status(503)] * 10)
    clock = FakeTime()
    results = send(adapter(gateway, clock, max_attempts=3), [sms("a"), sms("b")])
    assert [r.outcome for r in results] == [SendOutcome.RETRY, SendOutcome.RETRY]
    assert results[0].reason == "HTTP 503 oops: status 503"
    assert len(gateway.requests) == 3 and len(clock.sleeps) == 2


def test_backoff_is_capped() -> None:
    gateway = Gateway([status(500)] * 10)
    clock = FakeTime()
    send(adapter(gateway, clock, max_attempts=6, backoff_base=1.0, backoff_cap=4.0), [sms()])
    assert clock.sleeps == pytest.approx([0.75, 1.5, 3.0, 3.0, 3.0])


# -- permanent errors: never retried -------------------------------------------------------------


@pytest.mark.parametrize("code", [400, 409, 413, 422])
def test_permanent_4xx_is_never_retried(code: int) -> None:
    gateway = Gateway([status(code)])
    clock = FakeTime()
    results = send(adapter(gateway, clock), [sms("a"), sms("b")])
    assert {r.outcome for r in results} == {SendOutcome.REJECTED}
    assert results[0].reason == f"HTTP {code} oops: status {code}"
    assert len(gateway.requests) == 1 and clock.sleeps == []


@pytest.mark.parametrize("code", [401, 403, 404])
def test_refused_request_is_not_retried_and_not_rejected(code: int) -> None:
    # A wrong key or URL says nothing about the message: keep it planned, do not fail it.
    gateway = Gateway([status(code)])
    results = send(adapter(gateway), [sms()])
    assert results[0].outcome == SendOutcome.RETRY
    assert "check the url and api_key_env" in (results[0].reason or "")
    assert len(gateway.requests) == 1


def test_per_item_rejection_is_permanent_and_keeps_the_gateways_reason() -> None:
    def mixed(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            json={
                "results": [
                    {"idempotency_key": "good", "status": "accepted", "id": "gw-1"},
                    {
                        "idempotency_key": "bad",
                        "status": "rejected",
                        "code": "invalid_recipient",
                        "reason": "to is not an E.164 phone number",
                    },
                ]
            },
        )

    gateway = Gateway([mixed])
    results = send(adapter(gateway), [sms("good"), sms("bad", to="12")])
    assert results[0] == SendResult("good", SendOutcome.ACCEPTED, "gw-1")
    assert results[1] == SendResult(
        "bad", SendOutcome.REJECTED, reason="invalid_recipient: to is not an E.164 phone number"
    )
    assert len(gateway.requests) == 1


def test_duplicate_acceptance_is_passed_on() -> None:
    def duplicate(request: httpx.Request) -> httpx.Response:
        results = [{"idempotency_key": "k1", "status": "accepted", "id": "gw-0", "duplicate": True}]
        return httpx.Response(200, json={"results": results})

    result = send(adapter(Gateway([duplicate])), [sms("k1")])[0]
    assert result == SendResult("k1", SendOutcome.ACCEPTED, "gw-0", duplicate=True)


# -- rate limit ----------------------------------------------------------------------------------


def test_rate_limit_is_kept_over_several_batches() -> None:
    clock = FakeTime()
    gateway = Gateway()
    target = adapter(gateway, clock, max_batch=10, rate_per_second=20)
    send(target, [sms(f"k{i}") for i in range(50)])
    # 5 requests of 10 at 20/s: the first goes at once, each next one 0.5 s later
    assert len(gateway.requests) == 5
    assert clock.sleeps == pytest.approx([0.5, 0.5, 0.5, 0.5])
    assert clock.now == pytest.approx(2.0)


def test_rate_limiter_lets_idle_time_pass_without_banking_a_burst() -> None:
    clock = FakeTime()
    limiter = RateLimiter(10, clock.timing())

    async def go() -> None:
        await limiter.acquire(5)  # at 0: free; next free at 0.5
        clock.now = 3.0  # idle
        await limiter.acquire(5)  # at 3.0: free; next free at 3.5
        await limiter.acquire(5)  # waits 0.5

    asyncio.run(go())
    assert clock.sleeps == pytest.approx([0.5])


def test_concurrent_senders_share_the_rate() -> None:
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)  # all four reserve at t=0: the clock stands still

    limiter = RateLimiter(100, Timing(lambda: 0.0, lambda: EPOCH, record, lambda: 0.5))

    async def go() -> None:
        await asyncio.gather(*(limiter.acquire(50) for _ in range(4)))

    asyncio.run(go())
    assert sorted(waits) == pytest.approx([0.5, 1.0, 1.5])


# -- statuses ------------------------------------------------------------------------------------


def statuses_answer(items: list[dict[str, Any]]) -> Handler:
    return lambda _: httpx.Response(200, json={"statuses": items})


def fetch(target: MockSmsAdapter | MockPushAdapter | MockLetterAdapter, ids: list[str]) -> Any:
    async def go() -> Any:
        async with target:
            return await target.fetch_statuses(ids)

    return asyncio.run(go())


@pytest.mark.parametrize(
    ("cls", "vendor", "expected"),
    [
        (MockSmsAdapter, "queued", DeliveryStatus.PENDING),
        (MockSmsAdapter, "undelivered", DeliveryStatus.UNDELIVERABLE),
        (MockPushAdapter, "unregistered", DeliveryStatus.UNDELIVERABLE),
        (MockPushAdapter, "delivered", DeliveryStatus.DELIVERED),
        (MockLetterAdapter, "in_production", DeliveryStatus.PENDING),
        (MockLetterAdapter, "mailed", DeliveryStatus.PENDING),
        (MockLetterAdapter, "returned_to_sender", DeliveryStatus.UNDELIVERABLE),
        (MockLetterAdapter, "failed", DeliveryStatus.FAILED),
    ],
)
def test_vendor_statuses_map_onto_delivery_status(
    cls: type[MockSmsAdapter], vendor: str, expected: DeliveryStatus
) -> None:
    item = {
        "id": "gw-1",
        "idempotency_key": "k1",
        "status": vendor,
        "updated_at": "2026-11-23T10:00:00+00:00",
        "reason": None,
        "event_id": "evt_1",
    }
    gateway = Gateway([statuses_answer([item])])
    (report,) = fetch(adapter(gateway, cls=cls), ["gw-1"])
    assert report.status == expected
    assert report.occurred_at == datetime(2026, 11, 23, 10, tzinfo=UTC)
    assert report.event_id == "evt_1"
    assert gateway.bodies() == [{"ids": ["gw-1"]}]
    assert gateway.requests[0].url.path == f"/v1/{cls.channel.value}/statuses"


def test_statuses_skip_unknown_ids_and_unknown_words() -> None:
    items = [
        {"id": "gw-1", "status": "not_found"},
        {"id": "gw-2", "idempotency_key": "k2", "status": "teleported", "updated_at": None},
    ]
    assert fetch(adapter(Gateway([statuses_answer(items)])), ["gw-1", "gw-2"]) == []


def test_statuses_retry_then_raise_transient() -> None:
    gateway = Gateway([status(503)] * 10)
    with pytest.raises(TransientGatewayError):
        fetch(adapter(gateway, max_attempts=2), ["gw-1"])
    assert len(gateway.requests) == 2


def test_statuses_permanent_error_raises_at_once() -> None:
    gateway = Gateway([status(400)])
    with pytest.raises(PermanentGatewayError):
        fetch(adapter(gateway), ["gw-1"])
    assert len(gateway.requests) == 1


def test_statuses_are_fetched_in_max_batch_chunks() -> None:
    gateway = Gateway([statuses_answer([])] * 3)
    fetch(adapter(gateway, max_batch=2), ["a", "b", "c", "d", "e"])
    assert gateway.bodies() == [{"ids": ["a", "b"]}, {"ids": ["c", "d"]}, {"ids": ["e"]}]


# -- Retry-After parsing -------------------------------------------------------------------------


def test_parse_retry_after() -> None:
    assert parse_retry_after("5", 0) == 5.0
    assert parse_retry_after(" 1.5 ", 0) == 1.5
    assert parse_retry_after("-1", 0) is None
    assert parse_retry_after("soon", 0) is None
    assert parse_retry_after(None, 0) is None
    assert parse_retry_after(email.utils.formatdate(100, usegmt=True), 90) == 10.0
    assert parse_retry_after(email.utils.formatdate(100, usegmt=True), 200) == 0.0


def test_nothing_personal_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    gateway = Gateway([status(503)] * 10)
    send(adapter(gateway, max_attempts=2), [sms("k1", to="+13125559876")])
    assert caplog.records, "retries are logged"
    text = caplog.text
    assert "+13125559876" not in text and "Payment overdue" not in text
