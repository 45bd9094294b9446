"""The lob-letter adapter against the mock Lob, in-process over ASGI on a stopped clock: the
request it makes (multipart with the PDF, the address objects, Idempotency-Key, Basic auth
with the API key), Lob's deduplication on that key, how it reads Lob's refusals, status
polling from tracking events, and Lob's signed webhooks (good, forged, stale, replayed)."""

from __future__ import annotations

import asyncio
import base64
import email.parser
import email.policy
import hashlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from adapters import Timing
from adapters.base import (
    DeliveryStatus,
    OutboundMessage,
    RejectCode,
    SendOutcome,
    SendResult,
    SentMessage,
    WebhookRefused,
    WebhookRequest,
)
from adapters.lob import LobLetterAdapter, LobOptions, lob_signature
from adapters.registry import adapter_class
from dunning.config.channels import MockGatewaySettings
from dunning.types import Channel
from sandbox import GatewayLedger, create_mock_gateway_app
from sandbox.gateways._ledger import ledger_path
from sandbox.gateways._lob import MAGIC_LINE_RETURNED, MAGIC_ZIP_STRICT

API_KEY = "test_0dc8d51e0acffcb1880e0f19c79b2f5b0cc"
WEBHOOK_SECRET = "lob-test-webhook-secret"
HOOK_URL = "https://hooks.lender.example/webhooks/providers/lob-us/status"
START = 1_800_000_000.0
PDF = b"%PDF-1.7\n% a letter\n%%EOF\n"
RETURN_ADDRESS = {
    "company": "Example Lending",
    "address_line1": "185 Berry St",
    "address_line2": "Suite 6100",
    "address_city": "San Francisco",
    "address_state": "CA",
    "address_zip": "94107",
}
T = TypeVar("T")


@dataclass
class MockLob:
    app: Any
    ledger: GatewayLedger
    now: list[float] = field(default_factory=lambda: [START])
    requests: list[httpx.Request] = field(default_factory=list)
    events: list[httpx.Request] = field(default_factory=list)

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

    def adapter(self, **options: Any) -> LobLetterAdapter:
        settings: dict[str, Any] = {
            "api_key_env": "LOB_API_KEY",
            "webhook_secret_env": "LOB_WEBHOOK_SECRET",
            "from_address": RETURN_ADDRESS,
            "url": "http://lob.test/v1",
            "backoff_base": 0.1,
            "max_attempts": 3,
            **options,
        }
        settings = {k: v for k, v in settings.items() if v is not None}
        return LobLetterAdapter(
            LobOptions.model_validate(settings), transport=self.transport(), timing=self.timing()
        )

    def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://lob.test") as c:
                return await c.request(method, path, **kwargs)

        return asyncio.run(go())

    def fault(self, **spec: Any) -> None:
        assert self.admin("POST", "/_admin/faults", json=spec).status_code == 201


@pytest.fixture
def lob(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> MockLob:
    monkeypatch.setenv("LOB_API_KEY", API_KEY)
    monkeypatch.setenv("LOB_WEBHOOK_SECRET", WEBHOOK_SECRET)
    monkeypatch.setenv("MOCK_LOB_API_KEY", API_KEY)
    monkeypatch.setenv("MOCK_LOB_WEBHOOK_SECRET", WEBHOOK_SECRET)
    settings = MockGatewaySettings.model_validate(
        {
            "receipts": {"delivered": 1, "failed": 0, "undeliverable": 0, "delay_seconds": 60},
            "lob": {
                "api_key_env": "MOCK_LOB_API_KEY",
                "webhook_url": HOOK_URL,
                "webhook_secret_env": "MOCK_LOB_WEBHOOK_SECRET",
            },
        }
    )
    mock = MockLob(app=None, ledger=GatewayLedger(ledger_path(settings, tmp_path)))

    def hook(request: httpx.Request) -> httpx.Response:
        mock.events.append(request)
        return httpx.Response(200)

    mock.app = create_mock_gateway_app(
        settings, tmp_path, clock=lambda: mock.now[0], webhook_transport=httpx.MockTransport(hook)
    )
    return mock


def letter(
    key: str, *, line1: str = "210 King St", zip_code: str = "94107", pdf: bytes = PDF
) -> OutboundMessage:
    address = {
        "name": "Harry Zhang",
        "lines": [line1, "Apt 6100"],
        "city": "San Francisco",
        "region": "CA",
        "postal_code": zip_code,
        "country": "US",
    }
    return OutboundMessage(
        key,
        Channel.LETTER,
        "Harry Zhang\n210 King St\nApt 6100\nSan Francisco CA 94107",
        "Your account is 30 days past due.",
        document=pdf,
        document_sha256=hashlib.sha256(pdf).hexdigest(),
        metadata={"run_id": "run-42", "tier": "early"},
        template_id="letter/early/notice.en-US",
        address=address,
    )


def run(adapter: LobLetterAdapter, work: Callable[[LobLetterAdapter], Awaitable[T]]) -> T:
    async def go() -> T:
        async with adapter:
            return await work(adapter)

    return asyncio.run(go())


def send(adapter: LobLetterAdapter, batch: Sequence[OutboundMessage]) -> list[SendResult]:
    return run(adapter, lambda a: a.send(batch))


def parts(request: httpx.Request) -> dict[str, Any]:
    """The multipart request's parts: text fields as str, files as (name, type, bytes)."""
    head = f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + request.content)
    found: dict[str, Any] = {}
    for part in message.iter_parts():
        name = str(part.get_param("name", header="content-disposition"))
        data = part.get_payload(decode=True)
        assert isinstance(data, bytes)
        if part.get_filename() is not None:
            found[name] = (part.get_filename(), part.get_content_type(), data)
        else:
            found[name] = data.decode()
    return found


# -- send --------------------------------------------------------------------------------------


def test_a_letter_goes_as_multipart_with_address_objects_pdf_and_our_key(lob: MockLob) -> None:
    (result,) = send(lob.adapter(), [letter("acct-1:2026-11-23:letter")])

    assert result.outcome == SendOutcome.ACCEPTED
    assert str(result.gateway_message_id).startswith("ltr_")
    (request,) = lob.requests
    assert (request.method, request.url.path) == ("POST", "/v1/letters")
    assert request.headers["content-type"].startswith("multipart/form-data")
    assert request.headers["idempotency-key"] == "acct-1:2026-11-23:letter"
    scheme, _, encoded = request.headers["authorization"].partition(" ")
    assert (scheme, base64.b64decode(encoded).decode()) == ("Basic", f"{API_KEY}:")
    fields = parts(request)
    assert fields.pop("file") == ("letter.pdf", "application/pdf", PDF)
    assert fields == {
        "to[name]": "Harry Zhang",
        "to[address_line1]": "210 King St",
        "to[address_line2]": "Apt 6100",
        "to[address_city]": "San Francisco",
        "to[address_state]": "CA",
        "to[address_zip]": "94107",
        "to[address_country]": "US",
        "from[company]": "Example Lending",
        "from[address_line1]": "185 Berry St",
        "from[address_line2]": "Suite 6100",
        "from[address_city]": "San Francisco",
        "from[address_state]": "CA",
        "from[address_zip]": "94107",
        "from[address_country]": "US",
        # No personal data: the template and the run, never a name or an amount.
        "metadata[run_id]": "run-42",
        "metadata[tier]": "early",
        "metadata[template_id]": "letter/early/notice.en-US",
        "color": "false",
        "double_sided": "true",
        "address_placement": "insert_blank_page",
        "mail_type": "usps_first_class",
        "use_type": "operational",
    }
    (row,) = lob.ledger.vendor_rows("lob")
    assert row.id == result.gateway_message_id
    assert row.document_sha256 == hashlib.sha256(PDF).hexdigest()


def test_the_same_key_again_is_the_same_letter_at_lob(lob: MockLob) -> None:
    """Lob deduplicates on Idempotency-Key: a resend (a redispatch, an in-doubt letter) gets
    the letter it already made, and the ledger holds it once."""
    adapter = lob.adapter()
    message = letter("acct-2:2026-11-23:letter")
    (first,) = send(adapter, [message])
    (again,) = send(adapter, [message])
    (in_doubt,) = send(adapter, [replace(message, in_doubt=True)])
    assert first.gateway_message_id == again.gateway_message_id == in_doubt.gateway_message_id
    (row,) = lob.ledger.vendor_rows("lob")
    assert row.submissions == 3
    # A day later Lob has forgotten the key: the mock makes a new letter, as Lob would.
    lob.now[0] += 24 * 3600 + 1
    (later,) = send(adapter, [message])
    assert later.gateway_message_id != first.gateway_message_id


def test_a_lost_answer_is_sent_again_under_the_same_key_and_makes_one_letter(
    lob: MockLob,
) -> None:
    lob.fault(kind="server_error", channel="letter", commit_first=True)
    (result,) = send(lob.adapter(), [letter("acct-3:2026-11-23:letter")])
    assert result.outcome == SendOutcome.ACCEPTED
    assert len(lob.requests) == 2
    assert {r.headers["idempotency-key"] for r in lob.requests} == {"acct-3:2026-11-23:letter"}
    (row,) = lob.ledger.vendor_rows("lob")
    assert (row.id, row.submissions) == (result.gateway_message_id, 2)


def test_an_address_lob_refuses_is_rejected_as_invalid_without_quoting_it(lob: MockLob) -> None:
    (result,) = send(lob.adapter(), [letter("acct-4:2026-11-23:letter", zip_code=MAGIC_ZIP_STRICT)])
    assert (result.outcome, result.code, result.vendor_code) == (
        SendOutcome.REJECTED,
        RejectCode.INVALID_NUMBER.value,
        "failed_deliverability_strictness",
    )
    assert "King" not in str(result.reason) and MAGIC_ZIP_STRICT not in str(result.reason)
    assert lob.ledger.vendor_rows("lob") == []


def test_a_malformed_address_field_is_an_invalid_address(lob: MockLob) -> None:
    message = letter("acct-5:2026-11-23:letter", zip_code="9410")
    (result,) = send(lob.adapter(), [message])
    assert (result.outcome, result.code, result.vendor_code) == (
        SendOutcome.REJECTED,
        RejectCode.INVALID_NUMBER.value,
        "invalid",
    )


def test_a_file_lob_cannot_print_is_a_template_problem(lob: MockLob) -> None:
    (result,) = send(lob.adapter(), [letter("acct-6:2026-11-23:letter", pdf=b"<html>x</html>")])
    assert (result.outcome, result.code, result.vendor_code) == (
        SendOutcome.REJECTED,
        RejectCode.TEMPLATE_INVALID.value,
        "invalid_file",
    )


def test_a_letter_without_address_fields_is_refused_before_lob(lob: MockLob) -> None:
    message = replace(letter("acct-7:2026-11-23:letter"), address=None)
    (result,) = send(lob.adapter(), [message])
    assert result.outcome == SendOutcome.REJECTED and "address" in str(result.reason)
    assert lob.requests == []


def test_a_wrong_api_key_leaves_the_letter_planned_and_names_the_setting(
    lob: MockLob, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOB_API_KEY", "test_wrong")
    (result,) = send(lob.adapter(), [letter("acct-8:2026-11-23:letter")])
    assert result.outcome == SendOutcome.RETRY and "api_key_env" in str(result.reason)
    assert "test_wrong" not in str(result.reason)
    assert len(lob.requests) == 1  # not tried again: our configuration is wrong


def test_throttled_requests_are_tried_again(lob: MockLob) -> None:
    lob.fault(kind="throttle", channel="letter")
    (result,) = send(lob.adapter(), [letter("acct-9:2026-11-23:letter")])
    assert result.outcome == SendOutcome.ACCEPTED and len(lob.requests) == 2


# -- statuses ----------------------------------------------------------------------------------


def test_polled_statuses_come_from_the_tracking_events(lob: MockLob) -> None:
    adapter = lob.adapter()
    delivered, returned = send(
        adapter,
        [
            letter("acct-10:2026-11-23:letter"),
            letter("acct-11:2026-11-23:letter", line1=MAGIC_LINE_RETURNED.title()),
        ],
    )
    sent = [
        SentMessage(str(r.gateway_message_id), r.idempotency_key, "", None)
        for r in (delivered, returned)
    ]
    pending = run(adapter, lambda a: a.fetch_receipts(sent))
    assert [r.status for r in pending] == [DeliveryStatus.PENDING] * 2
    lob.now[0] += 60
    final = run(adapter, lambda a: a.fetch_receipts(sent))
    assert [(r.idempotency_key, r.status, r.vendor_code) for r in final] == [
        ("acct-10:2026-11-23:letter", DeliveryStatus.DELIVERED, "delivered"),
        ("acct-11:2026-11-23:letter", DeliveryStatus.UNDELIVERABLE, "returned_to_sender"),
    ]
    assert all(str(r.event_id).startswith("evnt_") for r in final)
    assert run(adapter, lambda a: a.fetch_statuses(["ltr_0000000000000000"])) == []


def test_check_reads_one_letter_and_names_a_refused_key(
    lob: MockLob, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run(lob.adapter(), lambda a: a.check()) is None
    monkeypatch.setenv("LOB_API_KEY", "test_wrong")
    assert run(lob.adapter(), lambda a: a.check()) == "credentials refused (LOB_API_KEY)"


def test_the_registry_finds_lob_letter() -> None:
    assert adapter_class("lob-letter") is LobLetterAdapter


# -- webhooks ----------------------------------------------------------------------------------


def pushed(lob: MockLob) -> list[WebhookRequest]:
    """Letters sent and past their delay; the mock's signed events, as the webhook app reads
    them (received a second after they were signed)."""
    adapter = lob.adapter()
    send(
        adapter,
        [
            letter("acct-20:2026-11-23:letter"),
            letter("acct-21:2026-11-23:letter", line1=MAGIC_LINE_RETURNED),
        ],
    )
    lob.now[0] += 60
    assert lob.admin("POST", "/_admin/receipts/push").json() == {"pushed": 2}
    received = datetime.fromtimestamp(lob.now[0] + 1, UTC)
    return [
        WebhookRequest(
            "POST", str(r.url), {k.lower(): v for k, v in r.headers.items()}, r.content, received
        )
        for r in lob.events
    ]


def test_lobs_signed_events_become_receipts(lob: MockLob) -> None:
    calls = pushed(lob)
    adapter = lob.adapter()
    reports = [s for call in calls for s in adapter.read_webhook(call, "status").statuses]
    by_letter: dict[str, list[tuple[str | None, DeliveryStatus]]] = {}
    for report in reports:
        by_letter.setdefault(report.gateway_message_id, []).append(
            (report.vendor_code, report.status)
        )
    assert sorted(by_letter.values()) == [
        [
            ("rendered_pdf", DeliveryStatus.PENDING),
            ("mailed", DeliveryStatus.PENDING),
            ("in_transit", DeliveryStatus.PENDING),
            ("delivered", DeliveryStatus.DELIVERED),
        ],
        [
            ("rendered_pdf", DeliveryStatus.PENDING),
            ("mailed", DeliveryStatus.PENDING),
            ("in_transit", DeliveryStatus.PENDING),
            ("returned_to_sender", DeliveryStatus.UNDELIVERABLE),
        ],
    ]
    assert all(str(r.event_id).startswith("evt_") for r in reports)
    assert len({r.event_id for r in reports}) == len(reports)


def test_a_replayed_event_carries_the_same_event_id(lob: MockLob) -> None:
    """The engine records an event id once: Lob delivering a call twice changes nothing."""
    call = pushed(lob)[-1]
    adapter = lob.adapter()
    (first,) = adapter.read_webhook(call, "status").statuses
    (second,) = adapter.read_webhook(call, "status").statuses
    assert first == second


def test_forged_stale_and_unsigned_events_are_refused(lob: MockLob) -> None:
    call = pushed(lob)[-1]
    adapter = lob.adapter()
    forged = replace(call, body=call.body.replace(b"returned_to_sender", b"delivered"))
    stale = replace(call, received_at=call.received_at + timedelta(minutes=6))
    early = replace(call, received_at=call.received_at - timedelta(minutes=6))
    unsigned = replace(call, headers={"content-type": "application/json"})
    wrong_key = dict(call.headers)
    wrong_key["lob-signature"] = lob_signature(
        "another-secret", wrong_key["lob-signature-timestamp"], call.body
    )
    for bad in (forged, stale, early, unsigned, replace(call, headers=wrong_key)):
        with pytest.raises(WebhookRefused) as refused:
            adapter.read_webhook(bad, "status")
        assert refused.value.status == 401
    # A timestamp in seconds, freshly signed, is read too.
    stamp = str(int(call.received_at.timestamp()))
    headers = {
        "lob-signature-timestamp": stamp,
        "lob-signature": lob_signature(WEBHOOK_SECRET, stamp, call.body),
    }
    assert adapter.read_webhook(replace(call, headers=headers), "status").statuses


def test_without_a_webhook_secret_every_event_is_refused(lob: MockLob) -> None:
    call = pushed(lob)[0]
    with pytest.raises(WebhookRefused) as refused:
        lob.adapter(webhook_secret_env=None).read_webhook(call, "status")
    assert refused.value.status == 401 and "webhook_secret_env" in refused.value.reason


def test_an_event_that_is_not_json_or_names_no_letter_is_malformed(lob: MockLob) -> None:
    adapter = lob.adapter()
    now = datetime.fromtimestamp(START, UTC)
    for body in (b"not json", b'{"id": "evt_1", "event_type": {"id": "letter.mailed"}}'):
        stamp = str(int(START * 1000))
        headers = {
            "lob-signature-timestamp": stamp,
            "lob-signature": lob_signature(WEBHOOK_SECRET, stamp, body),
        }
        with pytest.raises(WebhookRefused) as refused:
            adapter.read_webhook(WebhookRequest("POST", HOOK_URL, headers, body, now), "status")
        assert refused.value.status == 400
