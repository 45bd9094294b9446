"""The aliyun-sms adapter against the mock Aliyun SMS (dysmsapi 2017-05-25), in-process over
httpx's ASGI transport: the mock checks every ACS3-HMAC-SHA256 signature, renders the
registered template, and answers, lists and pushes as Aliyun does. The parity test at the end
puts the adapter's request next to the official SDK's, both sent to a served mock."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from pydantic import ValidationError

from adapters import SendOutcome, Timing, adapter_class
from adapters.aliyun import ACK, AliyunSmsAdapter, AliyunSmsOptions, acs3_signer
from adapters.base import (
    DeliveryStatus,
    OutboundMessage,
    SendResult,
    SentMessage,
    WebhookRefused,
    WebhookRequest,
)
from dunning.config.channels import MockAliyunSettings, MockGatewaySettings, ReceiptSimulation
from dunning.errors import ConfigError
from dunning.types import Channel
from sandbox.gateways import GatewayLedger, create_mock_gateway_app, ledger_path
from tests.integration._vendor_mocks import (
    ACCESS_KEY_ID,
    ACCESS_KEY_SECRET,
    SIGN_NAME,
    TEMPLATE_CODE,
    TEMPLATE_TEXT,
)

T = TypeVar("T")
CHINA = timezone(timedelta(hours=8))
SECRET_ENV = "TEST_ALIYUN_ACCESS_KEY_SECRET"
TOKEN_ENV = "TEST_ALIYUN_PUSH_TOKEN"
PUSH_TOKEN = "push-token-0123456789abcdef"
PUSH_BASE = "https://dunning.example/webhooks/providers/aliyun-cn"
PARAMS = {"name": "张三", "days": "5"}
RENDERED = f"【{SIGN_NAME}】尊敬的张三，您的账户已逾期5天，请尽快还款。"
DELAY = 60.0
"""Seconds the mock keeps a message pending before its receipt."""
START = datetime(2026, 11, 23, 10, 0, tzinfo=CHINA).timestamp()


@dataclass
class Clock:
    """The mock's clock and the adapter's: moves only when told, or when the adapter sleeps."""

    now: float = START
    sleeps: list[float] = field(default_factory=list)

    def time(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def timing(self) -> Timing:
        return Timing(self.time, self.time, self.sleep, lambda: 0.5)


class Recording(httpx.AsyncBaseTransport):
    """Passes requests on to `inner`, keeping each."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return await self.inner.handle_async_request(request)

    def actions(self) -> list[str]:
        """The dysmsapi actions called, in order (the mock's admin calls left out)."""
        return [r.headers["x-acs-action"] for r in self.requests if "x-acs-action" in r.headers]


@dataclass
class Mock:
    ledger: GatewayLedger
    clock: Clock
    wire: Recording
    pushes: list[httpx.Request]

    def adapter(self, **options: Any) -> AliyunSmsAdapter:
        values: dict[str, Any] = {
            "access_key_id": ACCESS_KEY_ID,
            "access_key_secret_env": SECRET_ENV,
            "sign_name": SIGN_NAME,
            "url": "http://dysmsapi.test",
            "push_token_env": TOKEN_ENV,
            "backoff_base": 0.1,
            "max_attempts": 3,
        }
        values.update(options)
        return AliyunSmsAdapter(
            AliyunSmsOptions(**values), transport=self.wire, timing=self.clock.timing()
        )

    def admin(self, path: str, body: Any = None) -> httpx.Response:
        async def go() -> httpx.Response:
            async with httpx.AsyncClient(transport=self.wire, base_url="http://mock") as client:
                return await client.post(path, json=body)

        return asyncio.run(go())

    def rows(self, phone: str) -> list[Any]:
        return self.ledger.vendor_rows("aliyun", phone)


@pytest.fixture
def mock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Mock:
    monkeypatch.setenv("MOCK_ALIYUN_SECRET", ACCESS_KEY_SECRET)
    monkeypatch.setenv(SECRET_ENV, ACCESS_KEY_SECRET)
    monkeypatch.setenv(TOKEN_ENV, PUSH_TOKEN)
    clock = Clock()
    pushes: list[httpx.Request] = []

    def receive(request: httpx.Request) -> httpx.Response:
        pushes.append(request)
        return httpx.Response(200, content=ACK, headers={"Content-Type": "application/json"})

    settings = MockGatewaySettings(
        receipts=ReceiptSimulation(
            delivered=1.0, failed=0.0, undeliverable=0.0, delay_seconds=DELAY
        ),
        aliyun=MockAliyunSettings(
            access_key_id=ACCESS_KEY_ID,
            access_key_secret_env="MOCK_ALIYUN_SECRET",
            sign_names=[SIGN_NAME],
            templates={TEMPLATE_CODE: TEMPLATE_TEXT},
            report_url=f"{PUSH_BASE}/status?token={PUSH_TOKEN}",
            up_url=f"{PUSH_BASE}/inbound?token={PUSH_TOKEN}",
        ),
    )
    app = create_mock_gateway_app(
        settings, tmp_path, clock=clock.time, webhook_transport=httpx.MockTransport(receive)
    )
    wire = Recording(httpx.ASGITransport(app=app, raise_app_exceptions=False))
    return Mock(GatewayLedger(ledger_path(settings, tmp_path)), clock, wire, pushes)


def message(
    key: str = "acct-1:2026-11-23:early-sms:sms",
    to: str = "+8613800138001",
    code: str | None = TEMPLATE_CODE,
    params: dict[str, Any] | None = None,
    in_doubt: bool = False,
) -> OutboundMessage:
    vendor = (
        {"aliyun": {"template_code": code, "params": PARAMS if params is None else params}}
        if code is not None
        else {}
    )
    return OutboundMessage(
        key,
        Channel.SMS,
        to,
        body="尊敬的张三，您的账户已逾期5天，请尽快还款。",
        template_id="sms/early/reminder.zh-CN",
        vendor=vendor,
        jurisdiction="CN",
        in_doubt=in_doubt,
    )


def run(call: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(call())


def send(adapter: AliyunSmsAdapter, *messages: OutboundMessage) -> list[SendResult]:
    return run(lambda: adapter.send(list(messages)))


# -- send ---------------------------------------------------------------------------------------


def test_a_registered_template_is_sent_with_its_parameters_and_our_key_as_out_id(
    mock: Mock,
) -> None:
    [result] = send(mock.adapter(), message())
    assert result.outcome == SendOutcome.ACCEPTED and not result.duplicate
    [row] = mock.rows("+8613800138001")
    assert result.gateway_message_id == row.metadata["biz_id"]
    assert row.body == RENDERED  # the mock rendered the registered text with our parameters
    assert row.metadata["out_id"] == "acct-1:2026-11-23:early-sms:sms"
    assert row.metadata["phone_number"] == "13800138001"  # +86 stripped, as Aliyun takes it
    assert json.loads(row.metadata["template_param"]) == PARAMS
    [request] = mock.wire.requests
    assert (request.method, request.url.path) == ("POST", "/")
    assert request.headers["x-acs-action"] == "SendSms"
    assert request.headers["x-acs-version"] == "2017-05-25"
    assert request.content == b""  # SendSms carries its parameters in the query string


def test_a_message_without_a_registered_template_code_is_refused_and_nothing_is_sent(
    mock: Mock,
) -> None:
    refused, bad_params, not_e164 = send(
        mock.adapter(),
        message("k-1", code=None),
        message("k-2", params={"name": {"nested": "x"}}),
        message("k-3", to="13800138001"),
    )
    assert (refused.outcome, refused.code) == (SendOutcome.REJECTED, "template_invalid")
    assert (refused.reason or "").startswith(
        "template sms/early/reminder.zh-CN names no registered"
    )
    assert (bad_params.outcome, bad_params.code) == (SendOutcome.REJECTED, "template_invalid")
    assert (not_e164.outcome, not_e164.code) == (SendOutcome.REJECTED, "invalid_number")
    assert "13800138001" not in (not_e164.reason or "")
    assert mock.wire.requests == [] and mock.ledger.count("sms") == 0


@pytest.mark.parametrize(
    ("to", "options", "msg", "outcome", "code", "vendor_code"),
    [
        ("+8613800000001", {}, {}, "rejected", "invalid_number", "isv.MOBILE_NUMBER_ILLEGAL"),
        ("+8613800138001", {}, {"code": "SMS_000000"}, "rejected", "template_invalid",
         "isv.SMS_TEMPLATE_ILLEGAL"),
        ("+8613800138001", {}, {"params": {"name": "张三"}}, "rejected", "template_invalid",
         "isv.TEMPLATE_MISSING_PARAMETERS"),
        ("+8613800138001", {"sign_name": "别的签名"}, {}, "rejected", "template_invalid",
         "isv.SMS_SIGNATURE_ILLEGAL"),
        ("+8613800000002", {}, {}, "retry", None, "isv.BUSINESS_LIMIT_CONTROL"),
        ("+8613800138001", {"access_key_id": "LTAIsomeoneelse"}, {}, "retry", None,
         "InvalidAccessKeyId.NotFound"),
    ],
)  # fmt: skip
def test_aliyuns_codes_become_outcomes_and_the_code_is_kept(
    mock: Mock,
    caplog: pytest.LogCaptureFixture,
    to: str,
    options: dict[str, Any],
    msg: dict[str, Any],
    outcome: str,
    code: str | None,
    vendor_code: str,
) -> None:
    [result] = send(mock.adapter(**options), message(to=to, **msg))
    assert (result.outcome, result.code, result.vendor_code) == (outcome, code, vendor_code)
    # Refusals and "later" are final for this send: one request, nothing stored.
    assert mock.wire.actions() == ["SendSms"] and mock.ledger.count("sms") == 0
    assert to[3:] not in (result.reason or "") and to[3:] not in caplog.text


def test_a_wrong_secret_is_a_configuration_problem_naming_the_variable_not_the_secret(
    mock: Mock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, "not-the-secret")
    [result] = send(mock.adapter(), message())
    assert (result.outcome, result.vendor_code) == (SendOutcome.RETRY, "SignatureDoesNotMatch")
    assert SECRET_ENV in (result.reason or "") and "not-the-secret" not in (result.reason or "")
    assert len(mock.wire.requests) == 1 and mock.ledger.count("sms") == 0


def test_a_missing_secret_is_a_config_error_naming_the_variable(
    mock: Mock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(SECRET_ENV)
    with pytest.raises(
        ConfigError, match=f"access_key_secret_env: environment variable {SECRET_ENV}"
    ):
        mock.adapter()


def test_throttling_is_tried_again_and_a_lost_answer_is_never_sent_twice(mock: Mock) -> None:
    mock.admin("/_admin/faults", {"kind": "throttle", "channel": "sms"})
    [throttled] = send(mock.adapter(), message("k-throttled"))
    assert throttled.outcome == SendOutcome.ACCEPTED
    assert mock.wire.actions().count("SendSms") == 2

    # Aliyun takes the message and the answer is lost (a 500): in doubt, not sent again.
    mock.admin("/_admin/faults", {"kind": "server_error", "status": 500, "commit_first": True})
    [lost] = send(mock.adapter(), message("k-lost", to="+8613800138002"))
    assert (lost.outcome, lost.vendor_code) == (SendOutcome.AMBIGUOUS, "ServiceUnavailable")
    assert len(mock.rows("+8613800138002")) == 1


def scripted(*answers: dict[str, Any]) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    """A vendor answering these bodies in order (HTTP 200, or the body's "_status")."""
    seen: list[httpx.Request] = []
    queue = list(answers)

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        body = dict(queue.pop(0))
        return httpx.Response(body.pop("_status", 200), json=body)

    return httpx.MockTransport(handle), seen


@pytest.mark.parametrize(
    ("status", "code", "outcome", "reject", "requests"),
    [
        (200, "isv.BLACK_KEY_CONTROL_LIMIT", "rejected", "blocked", 1),
        (200, "isv.DENY_IP_RANGE", "rejected", "blocked", 1),
        (200, "isv.SOMETHING_NEW", "rejected", "rejected", 1),
        (400, "Throttling.User", "accepted", None, 2),
        (400, "SignatureNonceUsed", "accepted", None, 2),
        (403, "Forbidden.RAM", "retry", None, 1),
    ],
)
def test_codes_the_mock_does_not_produce(
    monkeypatch: pytest.MonkeyPatch,
    status: int,
    code: str,
    outcome: str,
    reject: str | None,
    requests: int,
) -> None:
    monkeypatch.setenv(SECRET_ENV, ACCESS_KEY_SECRET)
    transport, seen = scripted(
        {"_status": status, "Code": code, "Message": "拒绝 13800138001", "RequestId": "r"},
        {"Code": "OK", "Message": "OK", "BizId": "900^0", "RequestId": "r"},
    )
    clock = Clock()
    adapter = AliyunSmsAdapter(
        AliyunSmsOptions(
            access_key_id=ACCESS_KEY_ID, access_key_secret_env=SECRET_ENV, sign_name=SIGN_NAME
        ),
        transport=transport,
        timing=clock.timing(),
    )
    [result] = send(adapter, message())
    assert (result.outcome, result.code) == (outcome, reject)
    assert len(seen) == requests
    assert str(seen[0].url).startswith("https://dysmsapi.aliyuncs.com/?")
    if requests == 2:  # each attempt is signed afresh: a new nonce
        nonces = {r.headers["x-acs-signature-nonce"] for r in seen}
        assert len(nonces) == 2
    else:
        assert result.vendor_code == code
        assert "13800138001" not in (result.reason or "")
    if outcome == "retry":  # the RAM user may not send: our configuration, not the message
        assert SECRET_ENV in (result.reason or "")


def test_use_batch_and_key_options_are_checked() -> None:
    with pytest.raises(ValidationError, match="SendBatchSms is not supported"):
        AliyunSmsOptions(access_key_id=ACCESS_KEY_ID, sign_name=SIGN_NAME, use_batch=True)
    with pytest.raises(ValidationError, match="exactly one of access_key_id and access_key_id_env"):
        AliyunSmsOptions(sign_name=SIGN_NAME)
    options = AliyunSmsOptions(
        access_key_id_env="ALIYUN_KEY_ID", sign_name=SIGN_NAME, region="ap-southeast-1"
    )
    assert options.url == "https://dysmsapi.ap-southeast-1.aliyuncs.com"
    assert adapter_class("aliyun-sms") is AliyunSmsAdapter


# -- receipts -----------------------------------------------------------------------------------


def sent(result: Any, to: str, at: float) -> SentMessage:
    return SentMessage(
        result.gateway_message_id,
        result.idempotency_key,
        to,
        datetime.fromtimestamp(at, UTC),
    )


def test_receipts_come_from_query_send_details_by_phone_day_and_biz_id(mock: Mock) -> None:
    adapter = mock.adapter()
    numbers = ["+8613800138001", "+8613800000003", "+8613800000004"]
    results = send(adapter, *(message(f"k-{i}", to=n) for i, n in enumerate(numbers)))
    sent_messages = [sent(r, n, mock.clock.now) for r, n in zip(results, numbers, strict=True)]

    waiting = run(lambda: adapter.fetch_receipts(sent_messages))
    assert [r.status for r in waiting] == [DeliveryStatus.PENDING] * 3

    mock.clock.now += DELAY + 1
    reports = run(lambda: adapter.fetch_receipts(sent_messages))
    assert [(r.idempotency_key, r.status, r.vendor_code) for r in reports] == [
        ("k-0", DeliveryStatus.DELIVERED, "DELIVERED"),
        ("k-1", DeliveryStatus.UNDELIVERABLE, "MN:0001"),
        ("k-2", DeliveryStatus.FAILED, "UNDELIV"),
    ]
    assert [r.gateway_message_id for r in reports] == [r.gateway_message_id for r in results]
    queries = [r for r in mock.wire.requests if r.headers["x-acs-action"] == "QuerySendDetails"]
    assert dict(queries[0].url.params) == {
        "BizId": results[0].gateway_message_id,
        "CurrentPage": "1",
        "PageSize": "50",
        "PhoneNumber": "13800138001",
        "SendDate": "20261123",
    }
    # A gateway id alone cannot find an Aliyun message: the poll must give the recipient.
    assert run(lambda: adapter.fetch_statuses([results[0].gateway_message_id or ""])) == []


def test_a_message_sent_just_before_midnight_china_time_is_found_on_its_day(mock: Mock) -> None:
    mock.clock.now = datetime(2026, 11, 23, 23, 59, 58, tzinfo=CHINA).timestamp()
    adapter = mock.adapter()
    [result] = send(adapter, message())
    # Recorded by us a few seconds later, after midnight: Aliyun lists it on the 23rd.
    recorded_at = datetime(2026, 11, 24, 0, 0, 5, tzinfo=CHINA).timestamp()
    mock.clock.now = recorded_at + DELAY
    [report] = run(lambda: adapter.fetch_receipts([sent(result, "+8613800138001", recorded_at)]))
    assert report.status == DeliveryStatus.DELIVERED
    days = [r.url.params["SendDate"] for r in mock.wire.requests if "SendDate" in r.url.params]
    assert days == ["20261124", "20261123"]


def test_receipts_fail_the_poll_only_when_every_query_fails(
    mock: Mock, monkeypatch: pytest.MonkeyPatch
) -> None:
    adapter = mock.adapter()
    [result] = send(adapter, message())
    monkeypatch.setenv(SECRET_ENV, "not-the-secret")
    wrong = mock.adapter()
    from dunning.errors import PermanentGatewayError

    with pytest.raises(PermanentGatewayError, match="SignatureDoesNotMatch"):
        run(lambda: wrong.fetch_receipts([sent(result, "+8613800138001", mock.clock.now)]))


# -- lookup -------------------------------------------------------------------------------------


def test_an_in_doubt_message_aliyun_took_is_found_by_out_id_and_not_sent_again(
    mock: Mock,
) -> None:
    adapter = mock.adapter()
    send(adapter, message("someone-else's-key"))  # same number, another message
    mock.admin("/_admin/faults", {"kind": "server_error", "status": 500, "commit_first": True})
    [lost] = send(adapter, message("k-lost"))
    assert lost.outcome == SendOutcome.AMBIGUOUS

    [again] = send(adapter, message("k-lost", in_doubt=True))
    assert (again.outcome, again.duplicate) == (SendOutcome.ACCEPTED, True)
    assert again.gateway_message_id == "outid:20261123:k-lost"
    assert len(mock.rows("+8613800138001")) == 2  # the other message and ours, once
    assert mock.wire.actions()[-1] == "QuerySendDetails"

    # Its receipts are found by OutId on that day (QuerySendDetails gives no BizId).
    mock.clock.now += DELAY + 1
    [report] = run(lambda: adapter.fetch_receipts([sent(again, "+8613800138001", mock.clock.now)]))
    assert (report.idempotency_key, report.status) == ("k-lost", DeliveryStatus.DELIVERED)
    assert report.gateway_message_id == "outid:20261123:k-lost"


def test_an_in_doubt_message_aliyun_does_not_list_is_sent(mock: Mock) -> None:
    adapter = mock.adapter()
    send(adapter, message("someone-else's-key"))
    [result] = send(adapter, message("k-never-arrived", in_doubt=True))
    assert (result.outcome, result.duplicate) == (SendOutcome.ACCEPTED, False)
    assert mock.wire.actions()[-2:] == ["QuerySendDetails", "SendSms"]
    assert [r.metadata["out_id"] for r in mock.rows("+8613800138001")] == [
        "someone-else's-key",
        "k-never-arrived",
    ]


def test_an_in_doubt_message_stays_in_doubt_when_aliyun_cannot_say(mock: Mock) -> None:
    adapter = mock.adapter()
    mock.admin("/_admin/faults", {"kind": "server_error", "status": 500})
    [result] = send(adapter, message(in_doubt=True))
    assert result.outcome == SendOutcome.AMBIGUOUS and (result.reason or "").startswith(
        "lookup failed"
    )
    assert mock.wire.actions() == ["QuerySendDetails"] and mock.ledger.count("sms") == 0


def test_just_after_midnight_the_lookup_asks_the_day_before_too(mock: Mock) -> None:
    mock.clock.now = datetime(2026, 11, 23, 23, 59, 0, tzinfo=CHINA).timestamp()
    adapter = mock.adapter()
    mock.admin("/_admin/faults", {"kind": "server_error", "status": 500, "commit_first": True})
    send(adapter, message("k-midnight"))
    mock.clock.now += 600  # 00:09 on the 24th: the claim's lease ran out
    [found] = send(adapter, message("k-midnight", in_doubt=True))
    assert found.gateway_message_id == "outid:20261123:k-midnight"
    assert len(mock.rows("+8613800138001")) == 1


# -- pushes -------------------------------------------------------------------------------------


def pushed(request: httpx.Request, url: str | None = None) -> WebhookRequest:
    return WebhookRequest(
        method=request.method,
        url=url if url is not None else str(request.url),
        headers={k.lower(): v for k, v in request.headers.items()},
        body=request.content,
        received_at=datetime.now(UTC),
    )


def test_sms_report_pushes_become_receipts_behind_the_url_token(mock: Mock) -> None:
    adapter = mock.adapter()
    [result] = send(adapter, message(to="+8613800000004"))
    mock.clock.now += DELAY + 1
    mock.admin("/_admin/receipts/push")
    [push] = mock.pushes
    assert push.url.path.endswith("/status")

    answer = adapter.read_webhook(pushed(push), "status")
    assert (answer.status_code, answer.body) == (200, ACK)
    assert json.loads(answer.body) == {"code": 0, "msg": "成功"}
    [report] = answer.statuses
    assert (report.gateway_message_id, report.idempotency_key) == (
        result.gateway_message_id,
        "acct-1:2026-11-23:early-sms:sms",
    )
    assert (report.status, report.vendor_code, report.segments) == (
        DeliveryStatus.FAILED,
        "UNDELIV",
        1,
    )
    assert report.event_id == f"aliyun-report:{result.gateway_message_id}:failed"

    for url, why in [
        (f"{PUSH_BASE}/status", "carries no token"),
        (f"{PUSH_BASE}/status?token=guess", "wrong push token"),
    ]:
        with pytest.raises(WebhookRefused, match=why) as refused:
            adapter.read_webhook(pushed(push, url), "status")
        assert refused.value.status == 401
    # A report of a message not sent by Dunning (no OutId) is acknowledged and ignored.
    foreign = [{**json.loads(push.content)[0], "out_id": None, "biz_id": "777^0"}]
    ignored = adapter.read_webhook(
        WebhookRequest("POST", str(push.url), {}, json.dumps(foreign).encode(), datetime.now(UTC)),
        "status",
    )
    assert (ignored.statuses, ignored.body) == ([], ACK)
    with pytest.raises(WebhookRefused, match="no push token is configured") as unconfigured:
        mock.adapter(push_token_env=None).read_webhook(pushed(push), "status")
    assert unconfigured.value.status == 401


def test_sms_up_pushes_become_replies_and_bad_bodies_are_refused_without_echoing(
    mock: Mock,
) -> None:
    adapter = mock.adapter()
    mock.admin("/_admin/aliyun/sms-up", {"phone_number": "13800138007", "content": "退订"})
    [push] = mock.pushes
    [reply] = adapter.read_webhook(pushed(push), "inbound").replies
    sequence = json.loads(push.content)[0]["sequence_id"]
    assert (reply.sender, reply.text, reply.event_id) == (
        "+8613800138007",
        "退订",
        f"aliyun-up:{sequence}",
    )
    assert reply.received_at == datetime.fromtimestamp(START, UTC)

    with pytest.raises(WebhookRefused) as wrong:
        adapter.read_webhook(pushed(push, f"{PUSH_BASE}/inbound?token=x"), "inbound")
    assert wrong.value.status == 401
    bad = WebhookRequest(
        "POST",
        f"{PUSH_BASE}/inbound?token={PUSH_TOKEN}",
        {},
        json.dumps([{"phone_number": "13800138007"}]).encode(),
        datetime.now(UTC),
    )
    with pytest.raises(WebhookRefused) as malformed:
        adapter.read_webhook(bad, "inbound")
    assert malformed.value.status == 400 and "13800138007" not in str(malformed.value)


# -- check --------------------------------------------------------------------------------------


def test_check_signs_a_harmless_query(mock: Mock, monkeypatch: pytest.MonkeyPatch) -> None:
    assert run(mock.adapter().check) is None
    assert mock.wire.actions() == ["QuerySendDetails"] and mock.ledger.count("sms") == 0

    problem = run(mock.adapter(access_key_id="LTAIsomeoneelse").check)
    assert problem is not None and problem.startswith("InvalidAccessKeyId")

    monkeypatch.setenv(SECRET_ENV, "not-the-secret")
    problem = run(mock.adapter().check)
    assert problem is not None and problem.startswith("SignatureDoesNotMatch")
    assert SECRET_ENV in problem and "not-the-secret" not in problem

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    unreachable = AliyunSmsAdapter(
        AliyunSmsOptions(
            access_key_id=ACCESS_KEY_ID,
            access_key_secret_env=SECRET_ENV,
            sign_name=SIGN_NAME,
            url="http://127.0.0.1:9",
        ),
        transport=httpx.MockTransport(refuse),
    )
    assert (
        run(unreachable.check) == "cannot reach http://127.0.0.1:9: connection error: ConnectError"
    )


# -- parity with the official SDK ---------------------------------------------------------------


def test_our_signature_is_the_sdks_for_the_same_request() -> None:
    """The signer against alibabacloud_tea_openapi's own get_authorization."""
    from types import SimpleNamespace

    from alibabacloud_tea_openapi.utils import Utils

    request = httpx.Request(
        "POST",
        "http://dysmsapi.test/",
        params={"SignName": SIGN_NAME, "TemplateParam": json.dumps(PARAMS, ensure_ascii=False),
                "PhoneNumbers": "13800138001", "OutId": "a b~c:d"},
        headers={"x-acs-action": "SendSms", "x-acs-version": "2017-05-25"},
    )  # fmt: skip
    acs3_signer(ACCESS_KEY_ID, ACCESS_KEY_SECRET, lambda: START)(request)
    signed = request.headers["authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")
    sdk_view = SimpleNamespace(
        pathname="/",
        method="POST",
        query=dict(request.url.params),
        headers={name: request.headers[name] for name in signed},
    )
    expected = Utils.get_authorization(
        sdk_view,
        "ACS3-HMAC-SHA256",
        request.headers["x-acs-content-sha256"],
        ACCESS_KEY_ID,
        ACCESS_KEY_SECRET,
    )
    assert request.headers["authorization"] == expected
    assert signed == sorted(signed) and {"host", "x-acs-date", "x-acs-action"} <= set(signed)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, repo_dir: Path) -> Iterator[Any]:
    from tests.integration._vendor_mocks import vendor_gateway

    with vendor_gateway(repo_dir, tmp_path_factory.mktemp("aliyun-parity")) as gateway:
        yield gateway


def test_our_request_carries_the_sdks_parameters_and_both_signatures_verify(
    served: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same message through the official alibabacloud_dysmsapi20170525 SDK and through
    the adapter, both to a served mock that checks each signature: the same action, version
    and parameters, and the same message stored twice (Aliyun does not deduplicate)."""
    from alibabacloud_dysmsapi20170525 import models
    from alibabacloud_dysmsapi20170525.client import Client
    from alibabacloud_tea_openapi import models as openapi
    from darabonba.core import DaraCore

    key = "acct-parity:2026-11-23:early-sms:sms"
    sdk_requests: list[Any] = []
    do_action = DaraCore.do_action

    def capture(request: Any, runtime_option: Any = None) -> Any:
        sdk_requests.append(request)
        return do_action(request, runtime_option)

    monkeypatch.setattr(DaraCore, "do_action", staticmethod(capture))
    sdk = Client(
        openapi.Config(
            access_key_id=ACCESS_KEY_ID,
            access_key_secret=ACCESS_KEY_SECRET,
            endpoint=served.url.removeprefix("http://"),
            protocol="http",
        )
    )
    answer = sdk.send_sms(
        models.SendSmsRequest(
            phone_numbers="13800138099",
            sign_name=SIGN_NAME,
            template_code=TEMPLATE_CODE,
            template_param=json.dumps(PARAMS, ensure_ascii=False),
            out_id=key,
        )
    ).body
    assert answer.code == "OK"

    monkeypatch.setenv(SECRET_ENV, ACCESS_KEY_SECRET)
    wire = Recording(httpx.AsyncHTTPTransport())
    adapter = AliyunSmsAdapter(
        AliyunSmsOptions(
            access_key_id=ACCESS_KEY_ID,
            access_key_secret_env=SECRET_ENV,
            sign_name=SIGN_NAME,
            url=served.url,
        ),
        transport=wire,
    )
    [ours] = send(adapter, message(key, to="+8613800138099"))
    assert ours.outcome == SendOutcome.ACCEPTED  # the mock verified our signature

    [theirs] = sdk_requests
    [mine] = wire.requests
    names = ("x-acs-action", "x-acs-version")
    assert {n: mine.headers[n] for n in names} == {n: theirs.headers[n] for n in names}
    assert (mine.method, mine.url.path) == (theirs.method, theirs.pathname)
    ours_query, sdk_query = dict(mine.url.params), dict(theirs.query)
    assert json.loads(ours_query.pop("TemplateParam")) == json.loads(sdk_query.pop("TemplateParam"))
    assert ours_query == sdk_query
    assert set(ours_query) == {"PhoneNumbers", "SignName", "TemplateCode", "OutId"}

    rows = served.ledger.vendor_rows("aliyun", "+8613800138099")
    assert [(r.body, r.metadata["out_id"]) for r in rows] == [(RENDERED, key)] * 2
    assert rows[0].metadata["biz_id"] == answer.biz_id
    assert rows[1].metadata["biz_id"] == ours.gateway_message_id
