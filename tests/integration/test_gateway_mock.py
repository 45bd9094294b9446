"""The mock gateway app over a real SQLite ledger, reached by the adapters through ASGI."""

from __future__ import annotations

import asyncio
import hashlib
import multiprocessing
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters import (
    DeliveryStatus,
    GatewayAdapter,
    OutboundMessage,
    SendOutcome,
    SendResult,
    StatusReport,
    Timing,
    build_adapter,
)
from dunning.config.channels import ChannelsConfig, MockGatewaySettings
from dunning.errors import ConfigError
from dunning.types import Channel
from dunning.webhooks import InMemoryReceiptSink, create_webhook_app
from sandbox import (
    GatewayLedger,
    MockAdapterOptions,
    MockLetterAdapter,
    MockPushAdapter,
    MockSmsAdapter,
    create_mock_gateway_app,
    outcome_for,
)
from sandbox._faults import SCRIPTED_FAULT_MAX_BYTES
from sandbox.gateways._wire import MAX_BODY_BYTES
from tests.helpers import StreamedBody

FAST = {"backoff_base": 0.01, "backoff_cap": 0.05, "max_attempts": 4, "timeout": 2.0}
PDF = b"%PDF-1.7\n% a letter\n"


@dataclass
class Sleeps:
    """Adapter timing that records backoff instead of sleeping; clocks are real."""

    waits: list[float] = field(default_factory=list)

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)

    def timing(self) -> Timing:
        return Timing(time.monotonic, time.time, self.sleep, lambda: 0.5)


def settings(**data: Any) -> MockGatewaySettings:
    return MockGatewaySettings.model_validate(data)


def transport(app: Any) -> httpx.ASGITransport:
    return httpx.ASGITransport(app=app, raise_app_exceptions=False)


AdapterClass = type[MockSmsAdapter] | type[MockPushAdapter] | type[MockLetterAdapter]


def connect(
    app: Any,
    cls: AdapterClass = MockSmsAdapter,
    sleeps: Sleeps | None = None,
    **options: Any,
) -> GatewayAdapter:
    return cls(
        MockAdapterOptions(**{**FAST, **options}),
        transport=transport(app),
        timing=(sleeps or Sleeps()).timing(),
    )


def send(adapter: GatewayAdapter, batch: Sequence[OutboundMessage]) -> list[SendResult]:
    async def go() -> list[SendResult]:
        async with adapter:
            return await adapter.send(batch)

    return asyncio.run(go())


def statuses(adapter: GatewayAdapter, ids: Sequence[str]) -> list[StatusReport]:
    async def go() -> list[StatusReport]:
        async with adapter:
            return await adapter.fetch_statuses(ids)

    return asyncio.run(go())


def admin(app: Any, method: str, path: str, **kwargs: Any) -> httpx.Response:
    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=transport(app), base_url="http://mock") as client:
            return await client.request(method, path, **kwargs)

    return asyncio.run(go())


def sms(key: str, to: str = "+13125551234", body: str = "Reply STOP to opt out") -> OutboundMessage:
    return OutboundMessage(key, Channel.SMS, to, body, metadata={"tier": "early"})


def letter(key: str, document: bytes = PDF, sha256: str | None = None) -> OutboundMessage:
    return OutboundMessage(
        key,
        Channel.LETTER,
        "Ann Lee\n1 Main St\nSpringfield IL 62701",
        "Notice of overdue payment",
        document=document,
        document_sha256=sha256 or hashlib.sha256(document).hexdigest(),
    )


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def ledger(state: Path) -> GatewayLedger:
    return GatewayLedger(state / "gateway-ledger.db")


# -- idempotency ---------------------------------------------------------------------------------


def test_same_key_twice_is_one_row_with_the_same_id(state: Path, ledger: GatewayLedger) -> None:
    app = create_mock_gateway_app(settings(), state)
    first = send(connect(app), [sms("k1"), sms("k2")])
    again = send(connect(app), [sms("k1")])
    assert first[0].outcome == again[0].outcome == SendOutcome.ACCEPTED
    assert (first[0].duplicate, again[0].duplicate) == (False, True)
    assert again[0].gateway_message_id == first[0].gateway_message_id
    assert ledger.count() == 2 and ledger.count("sms") == 2 and ledger.count("push") == 0
    assert sorted(ledger.keys()) == ["k1", "k2"]
    assert {row.idempotency_key: row.submissions for row in ledger.rows()} == {"k1": 2, "k2": 1}
    assert ledger.resubmissions() == 1


def test_two_app_instances_on_one_ledger_deduplicate(state: Path, ledger: GatewayLedger) -> None:
    one = create_mock_gateway_app(settings(), state)
    two = create_mock_gateway_app(settings(), state)
    first = send(connect(one), [sms("k1")])[0]
    second = send(connect(two), [sms("k1")])[0]
    assert second.duplicate and second.gateway_message_id == first.gateway_message_id
    assert ledger.count() == 1


def test_keys_are_per_channel(state: Path, ledger: GatewayLedger) -> None:
    app = create_mock_gateway_app(settings(), state)
    send(connect(app), [sms("shared-key")])
    push = OutboundMessage("shared-key", Channel.PUSH, "apns:0123456789abcdef", "Open the app")
    assert not send(connect(app, MockPushAdapter), [push])[0].duplicate
    assert (ledger.count("sms"), ledger.count("push")) == (1, 1)


def _send_from_another_process(state: str, keys: list[str]) -> dict[str, str]:
    app = create_mock_gateway_app(settings(), Path(state))
    adapter = MockSmsAdapter(MockAdapterOptions(max_batch=25), transport=transport(app))
    results = send(adapter, [sms(key) for key in keys])
    assert all(r.outcome == SendOutcome.ACCEPTED for r in results)
    return {r.idempotency_key: r.gateway_message_id or "" for r in results}


def test_concurrent_processes_never_store_a_key_twice(state: Path, ledger: GatewayLedger) -> None:
    keys = [f"acct-{i}:2026-11-23:early-sms:sms" for i in range(300)]
    # Four processes, each with its own gateway app on the one ledger file, overlapping keys.
    shares = [keys[0:200], keys[100:300], keys[::-1], keys[50:250]]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=4, mp_context=context) as pool:
        answers = list(pool.map(_send_from_another_process, [str(state)] * 4, shares))
    assert ledger.count() == 300
    assert sorted(ledger.keys()) == sorted(keys)
    ids = {row.idempotency_key: row.id for row in ledger.rows()}
    for answer in answers:
        assert all(ids[key] == gateway_id for key, gateway_id in answer.items())
    assert ledger.resubmissions() == sum(map(len, shares)) - 300


# -- per-message rejections ----------------------------------------------------------------------


def test_permanent_rejections_carry_the_reason_and_store_nothing(
    state: Path, ledger: GatewayLedger
) -> None:
    app = create_mock_gateway_app(settings(), state)
    results = send(
        connect(app),
        [sms("ok"), sms("bad-number", to="555-1234"), sms("empty", body="  ")],
    )
    assert [r.outcome for r in results] == [
        SendOutcome.ACCEPTED,
        SendOutcome.REJECTED,
        SendOutcome.REJECTED,
    ]
    assert results[1].reason == "invalid_recipient: to is not an E.164 phone number"
    assert results[2].reason == "empty_body: body is empty"
    assert ledger.keys() == ["ok"]


def test_push_token_and_size_are_checked(state: Path, ledger: GatewayLedger) -> None:
    app = create_mock_gateway_app(settings(), state)
    bad = OutboundMessage("p1", Channel.PUSH, "not a token!", "hi")
    huge = OutboundMessage("p2", Channel.PUSH, "apns:0123456789abcdef", "x" * 5000)
    results = send(connect(app, MockPushAdapter), [bad, huge])
    assert results[0].reason == "invalid_recipient: to is not a device token"
    assert (results[1].reason or "").startswith("payload_too_large: push payload is 50")
    assert ledger.count() == 0


def test_letters_need_a_pdf_matching_its_sha256(state: Path, ledger: GatewayLedger) -> None:
    app = create_mock_gateway_app(settings(), state)
    one_line = OutboundMessage("l5", Channel.LETTER, "Ann Lee", "Notice", document=PDF)
    results = send(
        connect(app, MockLetterAdapter),
        [
            letter("l1"),
            letter("l2", sha256="0" * 64),
            letter("l3", document=b"GIF89a not a pdf"),
            OutboundMessage("l4", Channel.LETTER, "Ann Lee\n1 Main St", "Notice"),
            one_line,
        ],
    )
    assert results[0].outcome == SendOutcome.ACCEPTED
    assert [r.reason for r in results[1:]] == [
        "document_checksum_mismatch: document does not match document_sha256",
        "invalid_document: document is not a PDF",
        "missing_document: a letter needs its PDF in `document` (base64)",
        "invalid_recipient: the address needs at least two lines",
    ]
    (row,) = ledger.rows()
    assert (row.document_sha256, row.document_size) == (hashlib.sha256(PDF).hexdigest(), len(PDF))


def test_request_level_errors(state: Path) -> None:
    app = create_mock_gateway_app(settings(), state)
    assert admin(app, "POST", "/v1/fax/messages", json={"messages": []}).status_code == 404
    assert admin(app, "POST", "/v1/sms/messages", content=b"{not json").status_code == 400
    no_key = admin(app, "POST", "/v1/sms/messages", json={"messages": [{"to": "+1"}]})
    assert no_key.status_code == 400 and "idempotency_key" in no_key.json()["error"]["message"]
    many = [{"idempotency_key": f"k{i}", "to": "+13125551234", "body": "x"} for i in range(1001)]
    assert admin(app, "POST", "/v1/sms/messages", json={"messages": many}).status_code == 413
    bad_b64 = {"idempotency_key": "l", "to": "A\nB", "body": "x", "document": "@@@"}
    answer = admin(app, "POST", "/v1/letter/messages", json={"messages": [bad_b64]}).json()
    assert answer["results"][0]["code"] == "invalid_document"


MiB = 1024 * 1024


@pytest.mark.parametrize(
    ("path", "limit"),
    [
        ("/v1/sms/messages", MAX_BODY_BYTES),
        ("/v1/letter/statuses", MAX_BODY_BYTES),
        ("/_admin/faults", SCRIPTED_FAULT_MAX_BYTES),
    ],
)
def test_a_body_over_the_limit_is_413_and_read_no_further(
    state: Path, ledger: GatewayLedger, path: str, limit: int
) -> None:
    app = create_mock_gateway_app(settings(), state)
    body = StreamedBody(limit + 8 * MiB, chunk=MiB)
    answer = admin(app, "POST", path, content=body)
    assert answer.status_code == 413 and answer.json()["error"]["code"] == "too_large"
    assert answer.headers["connection"] == "close", "the rest of the body is not waited for"
    assert body.read <= limit + body.chunk
    assert ledger.count() == 0 and admin(app, "GET", "/_admin/faults").json() == []


def test_a_request_without_the_api_key_is_refused_before_its_body_is_read(
    state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MOCK_GATEWAY_KEY", "k-123456")
    app = create_mock_gateway_app(settings(api_key_env="MOCK_GATEWAY_KEY"), state)
    for path in ("/v1/sms/messages", "/_admin/faults"):
        body = StreamedBody(8 * MiB)
        assert admin(app, "POST", path, content=body).status_code == 401
        assert body.read == 0


def test_a_scripted_fault_that_is_not_one_is_422(state: Path) -> None:
    app = create_mock_gateway_app(settings(), state)
    answer = admin(app, "POST", "/_admin/faults", json={"kind": "meteor"})
    assert answer.status_code == 422 and answer.json()["error"]["code"] == "invalid_fault"
    assert "meteor" not in answer.text
    assert admin(app, "GET", "/_admin/faults").json() == []


# -- scripted faults, end to end -----------------------------------------------------------------


def fault(app: Any, **spec: Any) -> None:
    assert admin(app, "POST", "/_admin/faults", json=spec).status_code == 201


def test_scripted_5xx_then_success(state: Path, ledger: GatewayLedger) -> None:
    app = create_mock_gateway_app(settings(), state)
    fault(app, kind="server_error", count=2, status=502)
    sleeps = Sleeps()
    result = send(connect(app, sleeps=sleeps), [sms("k1")])[0]
    assert result.outcome == SendOutcome.ACCEPTED and not result.duplicate
    assert len(sleeps.waits) == 2 and ledger.count() == 1
    assert admin(app, "GET", "/_admin/faults").json() == []


def test_scripted_429_retry_after_is_honoured(state: Path) -> None:
    app = create_mock_gateway_app(settings(), state)
    fault(app, kind="throttle", retry_after=2.5)
    fault(app, kind="throttle", retry_after=1, retry_after_format="http-date")
    sleeps = Sleeps()
    assert send(connect(app, sleeps=sleeps), [sms("k1")])[0].outcome == SendOutcome.ACCEPTED
    assert sleeps.waits[0] == 2.5
    assert 0 < sleeps.waits[1] <= 2.0  # an HTTP date, rounded up to the next whole second


def test_scripted_timeout_then_success(state: Path, ledger: GatewayLedger) -> None:
    app = create_mock_gateway_app(settings(), state)
    fault(app, kind="timeout", sleep_seconds=5)
    started = time.monotonic()
    result = send(connect(app, timeout=0.2), [sms("k1")])[0]
    assert result.outcome == SendOutcome.ACCEPTED and not result.duplicate
    assert time.monotonic() - started < 2
    assert ledger.count() == 1


@pytest.mark.parametrize(
    "spec",
    [
        {"kind": "timeout", "sleep_seconds": 5, "commit_first": True},
        {"kind": "malformed", "shape": "invalid-json", "commit_first": True},
        {"kind": "malformed", "shape": "wrong-shape", "commit_first": True},
    ],
    ids=["timeout", "invalid-json", "wrong-shape"],
)
def test_lost_answer_then_retry_gets_the_original_acceptance(
    state: Path, ledger: GatewayLedger, spec: dict[str, Any]
) -> None:
    # The gateway stored the message but the answer never arrived: the retry must not send again.
    app = create_mock_gateway_app(settings(), state)
    fault(app, **spec)
    result = send(connect(app, timeout=0.2), [sms("k1")])[0]
    assert result.outcome == SendOutcome.ACCEPTED and result.duplicate
    (row,) = ledger.rows()
    assert result.gateway_message_id == row.id and row.submissions == 2


def test_faults_can_target_one_channel(state: Path, ledger: GatewayLedger) -> None:
    app = create_mock_gateway_app(settings(), state)
    fault(app, kind="server_error", channel="push", count=1)
    sleeps = Sleeps()
    send(connect(app, sleeps=sleeps), [sms("k1")])
    assert sleeps.waits == []
    assert admin(app, "GET", "/_admin/faults").json()[0]["remaining"] == 1


def test_faults_queued_through_the_ledger_reach_every_instance(state: Path) -> None:
    app = create_mock_gateway_app(settings(), state)
    GatewayLedger(state / "gateway-ledger.db").queue_fault({"kind": "server_error"}, 3, None)
    sleeps = Sleeps()
    assert send(connect(app, sleeps=sleeps), [sms("k1")])[0].outcome == SendOutcome.ACCEPTED
    assert len(sleeps.waits) == 3


def test_retries_exhausted_leave_the_message_for_the_next_dispatch(
    state: Path, ledger: GatewayLedger
) -> None:
    app = create_mock_gateway_app(settings(), state)
    fault(app, kind="server_error", count=10)
    result = send(connect(app, max_attempts=3), [sms("k1")])[0]
    assert result.outcome == SendOutcome.RETRY
    assert result.reason == "HTTP 503 unavailable: the gateway is temporarily unavailable"
    assert ledger.count() == 0


def test_random_faults_are_survived_without_duplicates(state: Path, ledger: GatewayLedger) -> None:
    chaos = settings(
        faults={
            "server_error": 0.2,
            "throttle": 0.1,
            "malformed": 0.2,
            "retry_after_seconds": 0,
            "seed": 7,
        }
    )
    app = create_mock_gateway_app(chaos, state)
    keys = [f"k{i}" for i in range(100)]
    results = send(connect(app, max_attempts=12, max_batch=5), [sms(k) for k in keys])
    assert all(r.outcome == SendOutcome.ACCEPTED for r in results)
    assert sorted(ledger.keys()) == sorted(keys)
    assert len({r.gateway_message_id for r in results}) == 100


# -- authentication ------------------------------------------------------------------------------


def test_api_key_is_required_when_configured(
    state: Path, ledger: GatewayLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MOCK_GATEWAY_KEY", "k-123456")
    app = create_mock_gateway_app(settings(api_key_env="MOCK_GATEWAY_KEY"), state)
    refused = send(connect(app), [sms("k1")])[0]
    assert refused.outcome == SendOutcome.RETRY and "401" in (refused.reason or "")
    monkeypatch.setenv("WRONG_KEY", "nope")
    assert send(connect(app, api_key_env="WRONG_KEY"), [sms("k1")])[0].outcome == "retry"
    assert ledger.count() == 0
    accepted = send(connect(app, api_key_env="MOCK_GATEWAY_KEY"), [sms("k1")])[0]
    assert accepted.outcome == SendOutcome.ACCEPTED
    assert admin(app, "GET", "/_admin/ledger").status_code == 401


def test_gateway_with_an_unset_key_variable_does_not_start(
    state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MOCK_GATEWAY_KEY", raising=False)
    with pytest.raises(ConfigError, match=r"mock_gateway\.api_key_env"):
        create_mock_gateway_app(settings(api_key_env="MOCK_GATEWAY_KEY"), state)


# -- statuses and receipts -----------------------------------------------------------------------


@dataclass
class Clock:
    now: float = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_statuses_are_pending_until_the_delay_then_final(state: Path) -> None:
    clock = Clock()
    rates = {"delivered": 0.5, "failed": 0.25, "undeliverable": 0.25, "delay_seconds": 30}
    app = create_mock_gateway_app(settings(receipts=rates), state, clock=clock)
    keys = [f"k{i}" for i in range(40)]
    results = send(connect(app), [sms(k) for k in keys])
    ids = [r.gateway_message_id or "" for r in results]
    assert {r.status for r in statuses(connect(app), ids)} == {DeliveryStatus.PENDING}
    clock.now += 30
    reports = statuses(connect(app), [*ids, "sms_unknown"])
    simulation = MockGatewaySettings.model_validate({"receipts": rates}).receipts
    assert [r.status for r in reports] == [outcome_for(k, simulation) for k in keys]
    assert {r.status for r in reports} == {
        DeliveryStatus.DELIVERED,
        DeliveryStatus.FAILED,
        DeliveryStatus.UNDELIVERABLE,
    }
    assert all(r.event_id and r.occurred_at.timestamp() == clock.now for r in reports)
    assert [r.idempotency_key for r in reports] == keys


def test_admin_ledger_counts_and_reset(state: Path, ledger: GatewayLedger) -> None:
    app = create_mock_gateway_app(settings(), state)
    send(connect(app), [sms(f"k{i}") for i in range(30)])
    send(connect(app, MockLetterAdapter), [letter("l1")])
    summary = admin(app, "GET", "/_admin/ledger").json()
    assert summary["total"] == 31 and "rows" not in summary
    assert summary["by_channel"]["letter"]["total"] == 1
    assert sum(v for k, v in summary["by_channel"]["sms"].items() if k != "total") == 30
    listed = admin(app, "GET", "/_admin/ledger", params={"rows": "true", "channel": "sms"}).json()
    assert len(listed["rows"]) == 30
    assert "recipient" not in listed["rows"][0] and "body" not in listed["rows"][0]
    assert admin(app, "POST", "/_admin/reset").json() == {"ok": True}
    assert ledger.count() == 0


def test_receipts_are_pushed_to_the_webhook_signed_and_once(
    state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "webhook-secret-0123456789"
    monkeypatch.setenv("DUNNING_WEBHOOK_SECRET", secret)
    sink = InMemoryReceiptSink()
    webhook = create_webhook_app(secret, sink)
    config = settings(receipts={"webhook_url": "http://dunning.test/webhooks/receipts"})
    app = create_mock_gateway_app(config, state, webhook_transport=transport(webhook))
    results = send(connect(app), [sms(f"k{i}") for i in range(20)])
    send(connect(app, MockLetterAdapter), [letter("l1")])
    assert admin(app, "POST", "/_admin/receipts/push").json() == {"pushed": 21}
    assert admin(app, "POST", "/_admin/receipts/push").json() == {"pushed": 0}
    assert len(sink.reports) == 21
    by_id = {r.gateway_message_id: r for r in sink.reports}
    for result in results:
        report = by_id[result.gateway_message_id or ""]
        assert report.status == outcome_for(result.idempotency_key, config.receipts)
    # A receipt polled later carries the same event id: receivers deduplicate across both.
    polled = statuses(connect(app), [results[0].gateway_message_id or ""])[0]
    assert polled.event_id == by_id[polled.gateway_message_id].event_id


# -- the configured, in-process default ----------------------------------------------------------


def test_build_adapter_defaults_to_the_in_process_gateway(tmp_path: Path) -> None:
    adapters = {
        ch: build_adapter(ch, ChannelsConfig(), tmp_path) for ch in Channel if ch != "email"
    }
    assert [type(a) for a in adapters.values()] == [
        MockSmsAdapter,
        MockPushAdapter,
        MockLetterAdapter,
    ]
    assert send(adapters[Channel.SMS], [sms("k1")])[0].outcome == SendOutcome.ACCEPTED
    assert send(adapters[Channel.LETTER], [letter("l1")])[0].outcome == SendOutcome.ACCEPTED
    assert GatewayLedger(tmp_path / "gateway-ledger.db").count() == 2


def test_the_adapter_survives_one_event_loop_per_batch(tmp_path: Path) -> None:
    # The dispatcher may call asyncio.run() per batch with one adapter: each loop gets a client.
    adapter = build_adapter(Channel.SMS, ChannelsConfig(), tmp_path)
    for n in range(3):
        assert asyncio.run(adapter.send([sms(f"k{n}")]))[0].outcome == SendOutcome.ACCEPTED
    asyncio.run(adapter.aclose())


def test_a_served_gateway_pushes_receipts_in_the_background(
    state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "webhook-secret-0123456789"
    monkeypatch.setenv("DUNNING_WEBHOOK_SECRET", secret)
    sink = InMemoryReceiptSink()
    receipts = {
        "webhook_url": "http://dunning.test/webhooks/receipts",
        "push_interval_seconds": 0.02,
    }
    app = create_mock_gateway_app(
        settings(receipts=receipts),
        state,
        webhook_transport=transport(create_webhook_app(secret, sink)),
    )

    async def serve_a_while() -> None:
        # What uvicorn does around a served app: run its lifespan (the pusher lives there).
        async with app.router.lifespan_context(app):
            adapter = connect(app)
            async with adapter:
                await adapter.send([sms(f"k{i}") for i in range(5)])
            for _ in range(100):
                if len(sink.reports) == 5:
                    break
                await asyncio.sleep(0.02)

    asyncio.run(serve_a_while())
    assert sorted(r.idempotency_key for r in sink.reports) == [f"k{i}" for i in range(5)]
