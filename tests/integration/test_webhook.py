"""The receipts webhook: signatures, stale timestamps, replays, malformed bodies, fail closed."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters import DeliveryStatus, StatusReport
from dunning.webhooks import (
    MAX_BODY_BYTES,
    SECRET_ENV,
    InMemoryReceiptSink,
    WebhookSecretMissing,
    create_webhook_app,
    sign,
)
from tests.helpers import StreamedBody, dunning_served, invoke, peak_rss

SECRET = "whsec-0123456789abcdef"
NOW = 1_800_000_000
URL = "/webhooks/receipts/sms"
MiB = 1024 * 1024


class SpySink(InMemoryReceiptSink):
    """Counts every call, so a test can prove a rejected request touched nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def record(self, reports: Sequence[StatusReport]) -> int:
        self.calls.append("record")
        return super().record(reports)

    def seen(self, nonce: str) -> bool:
        self.calls.append("seen")
        return super().seen(nonce)


@pytest.fixture
def sink() -> SpySink:
    return SpySink()


class TestClient:
    """Posts to the app in this process through httpx's ASGI transport."""

    __test__ = False

    def __init__(self, app: Any) -> None:
        self.app = app

    def post(self, url: str, *, content: bytes, headers: dict[str, str]) -> httpx.Response:
        async def go() -> httpx.Response:
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=self.app), base_url="http://dunning.test"
            ) as client:
                return await client.post(url, content=content, headers=headers)

        return asyncio.run(go())


@pytest.fixture
def client(sink: SpySink) -> TestClient:
    return TestClient(create_webhook_app(SECRET, sink, tolerance_seconds=300, clock=lambda: NOW))


def event(n: int = 1, status: str = "delivered", **changes: Any) -> dict[str, Any]:
    return {
        "event_id": f"evt_{n}",
        "gateway_message_id": f"sms_{n}",
        "idempotency_key": f"acct-{n}:2026-11-23:early-sms:sms",
        "status": status,
        "occurred_at": "2026-11-23T10:00:00+00:00",
        "reason": None,
        **changes,
    }


def body_of(events: Any) -> bytes:
    return json.dumps(events).encode()


def post(
    client: TestClient,
    body: bytes,
    *,
    timestamp: int = NOW,
    secret: str = SECRET,
    header: str | None = None,
    url: str = URL,
) -> httpx.Response:
    signature = header if header is not None else sign(secret, body, timestamp)
    return client.post(
        url,
        content=body,
        headers={"Dunning-Signature": signature, "Content-Type": "application/json"},
    )


def test_sign_is_hmac_sha256_of_timestamp_dot_body() -> None:
    body = b'[{"a": 1}]'
    expected = hmac.new(SECRET.encode(), b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign(SECRET, body, 1_700_000_000) == f"t=1700000000,v1={expected}"


def test_valid_request_is_recorded(client: TestClient, sink: SpySink) -> None:
    answer = post(client, body_of([event(1), event(2, "undeliverable", reason="unreachable")]))
    assert answer.status_code == 200
    assert answer.json() == {"recorded": 2, "duplicates": 0}
    assert sink.reports == [
        StatusReport(
            gateway_message_id="sms_1",
            idempotency_key="acct-1:2026-11-23:early-sms:sms",
            status=DeliveryStatus.DELIVERED,
            occurred_at=datetime(2026, 11, 23, 10, tzinfo=UTC),
            reason=None,
            event_id="evt_1",
        ),
        StatusReport(
            gateway_message_id="sms_2",
            idempotency_key="acct-2:2026-11-23:early-sms:sms",
            status=DeliveryStatus.UNDELIVERABLE,
            occurred_at=datetime(2026, 11, 23, 10, tzinfo=UTC),
            reason="unreachable",
            event_id="evt_2",
        ),
    ]


def test_bad_signature_is_401_and_changes_nothing(client: TestClient, sink: SpySink) -> None:
    body = body_of([event()])
    assert post(client, body, secret="another-secret-of-16+").status_code == 401
    tampered = body.replace(b"delivered", b"failed")
    assert post(client, tampered, header=sign(SECRET, body, NOW)).status_code == 401
    assert sink.calls == []
    assert post(client, body).status_code == 200, "the genuine request still goes through"


@pytest.mark.parametrize(
    "header",
    ["", "v1=" + "0" * 64, "t=abc,v1=" + "0" * 64, "t=1800000000", "t=1800000000,v1=xyz"],
)
def test_missing_or_malformed_header_is_400(client: TestClient, sink: SpySink, header: str) -> None:
    answer = post(client, body_of([event()]), header=header)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "bad_signature_header"
    assert sink.calls == []


@pytest.mark.parametrize("skew", [-301, 301, -86_400])
def test_stale_or_future_timestamp_is_401(client: TestClient, sink: SpySink, skew: int) -> None:
    answer = post(client, body_of([event()]), timestamp=NOW + skew)
    assert answer.status_code == 401 and answer.json()["error"]["code"] == "stale"
    assert sink.calls == []


def test_timestamp_inside_the_tolerance_is_accepted(client: TestClient) -> None:
    assert post(client, body_of([event()]), timestamp=NOW - 299).status_code == 200


def test_replayed_request_is_409_and_records_nothing_new(client: TestClient, sink: SpySink) -> None:
    body = body_of([event(1)])
    assert post(client, body).status_code == 200
    replay = post(client, body)
    assert replay.status_code == 409 and replay.json()["error"]["code"] == "replay"
    assert len(sink.reports) == 1
    # The same events signed again (a sender's retry) are still recognised.
    resent = post(client, body, timestamp=NOW + 5)
    assert resent.status_code == 409
    assert "already recorded" in resent.json()["error"]["message"]
    mixed = post(client, body_of([event(1), event(2)]), timestamp=NOW + 6)
    assert mixed.status_code == 200 and mixed.json() == {"recorded": 1, "duplicates": 1}
    assert [r.event_id for r in sink.reports] == ["evt_1", "evt_2"]


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        body_of({"events": [event()]}),
        body_of([]),
        body_of([event(status="exploded")]),
        body_of([event(occurred_at="2026-11-23T10:00:00")]),
        body_of([event(extra="field")]),
        body_of([{k: v for k, v in event().items() if k != "event_id"}]),
    ],
    ids=["not-json", "not-a-list", "empty", "status", "naive-time", "extra", "no-event-id"],
)
def test_malformed_body_is_400_and_changes_nothing(
    client: TestClient, sink: SpySink, body: bytes
) -> None:
    answer = post(client, body)
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "malformed_body"
    assert sink.calls == [], "nothing is remembered, not even the nonce"


def test_error_messages_do_not_echo_the_body(client: TestClient) -> None:
    answer = post(client, body_of([event(status="+13125550000")]))
    assert answer.status_code == 400 and "+13125550000" not in answer.text


def test_unknown_channel_is_404(client: TestClient, sink: SpySink) -> None:
    body = body_of([event()])
    assert post(client, body, url="/webhooks/receipts/fax").status_code == 404
    assert sink.calls == []


def test_rotated_secrets_one_matching_signature_is_enough(client: TestClient) -> None:
    body = body_of([event()])
    old = sign("the-previous-secret-123", body, NOW).split(",v1=")[1]
    header = f"{sign(SECRET, body, NOW)},v1={old}"
    assert post(client, body, header=header).status_code == 200


def test_oversized_body_is_413(client: TestClient, sink: SpySink) -> None:
    body = body_of([event(n, reason="x" * 400) for n in range(3000)])
    assert post(client, body).status_code == 413
    assert sink.calls == []


def post_streamed(
    sink: SpySink, body: StreamedBody, *, header: str, url: str = URL
) -> httpx.Response:
    app = create_webhook_app(SECRET, sink, tolerance_seconds=300, clock=lambda: NOW)

    async def go() -> httpx.Response:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://dunning.test"
        ) as client:
            return await client.post(url, content=body, headers={"Dunning-Signature": header})

    return asyncio.run(go())


def test_a_chunked_body_is_read_only_until_it_passes_the_limit(sink: SpySink) -> None:
    body = StreamedBody(8 * MiB)
    answer = post_streamed(sink, body, header=f"t={NOW},v1=" + "0" * 64)
    assert answer.status_code == 413 and answer.json()["error"]["code"] == "too_large"
    assert answer.headers["connection"] == "close", "the rest of the body is not waited for"
    assert body.read <= MAX_BODY_BYTES + body.chunk
    assert sink.calls == []


@pytest.mark.parametrize(
    ("header", "url", "status"),
    [
        (f"t={NOW - 301},v1=" + "0" * 64, URL, 401),
        ("t=soon", URL, 400),
        (f"t={NOW},v1=" + "0" * 64, "/webhooks/receipts/fax", 404),
    ],
    ids=["stale", "malformed-header", "unknown-channel"],
)
def test_what_can_be_refused_without_the_body_is_refused_before_reading_it(
    sink: SpySink, header: str, url: str, status: int
) -> None:
    body = StreamedBody(8 * MiB)
    answer = post_streamed(sink, body, header=header, url=url)
    assert answer.status_code == status
    assert answer.headers["connection"] == "close"
    assert body.read == 0
    assert sink.calls == []


@pytest.mark.usefixtures("env")
def test_a_chunked_body_of_512_mib_is_refused_without_being_held(
    tmp_path: Path, repo_dir: Path
) -> None:
    """No secret is needed to send this: a well-formed but false signature, and a chunked body
    that declares no length. The served webhook must stop reading at its limit."""
    sent = 0

    def chunks() -> Iterator[bytes]:
        nonlocal sent
        chunk = b"x" * MiB
        for _ in range(512):
            sent += len(chunk)
            yield chunk

    def post(url: str, content: bytes | Iterator[bytes]) -> int | None:
        headers = {"Dunning-Signature": f"t={int(time.time())},v1=" + "0" * 64}
        try:
            return httpx.post(url, content=content, headers=headers, timeout=120).status_code
        except httpx.TransportError:
            return None  # the webhook closed the connection before the body was all sent

    served = dunning_served(repo_dir, tmp_path / "state", "webhook", {SECRET_ENV: SECRET})
    with served as (base, pid):
        url = f"{base}{URL}"
        assert post(url, body_of([event()])) == 401, "warmed up: a small request, refused"
        before = peak_rss(pid)
        status = post(url, chunks())
        after = peak_rss(pid)
        assert post(url, body_of([event()])) == 401, "the webhook still answers"
    assert after - before < 50 * MiB, f"peak memory grew by {(after - before) / MiB:.0f} MiB"
    assert status in (413, None)
    # It stopped reading at the limit: the sender could not push the rest (socket buffers
    # hold a few MiB between the two).
    assert sent < 64 * MiB + MAX_BODY_BYTES, f"{sent / MiB:.0f} MiB sent"


@pytest.mark.parametrize("secret", ["", "short"])
def test_no_secret_no_webhook(secret: str) -> None:
    with pytest.raises(WebhookSecretMissing, match="DUNNING_WEBHOOK_SECRET"):
        create_webhook_app(secret, InMemoryReceiptSink())


@pytest.mark.usefixtures("env")
def test_webhook_serve_refuses_to_start_without_the_secret(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DUNNING_WEBHOOK_SECRET", raising=False)
    result = invoke(capsys, "webhook", "serve", "--port", "1")
    assert result.code == 1
    assert "DUNNING_WEBHOOK_SECRET is not set" in result.err
