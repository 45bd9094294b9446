"""The jpush-push adapter against the mock JPush (REST API v3), in-process over httpx's ASGI
transport: the mock checks HTTP Basic with the app key and master secret, validates the push
object, answers msg_ids and JPush's error codes, and counts deliveries in its report API."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from pydantic import ValidationError

from adapters import SendOutcome, Timing, adapter_class
from adapters.base import DeliveryStatus, OutboundMessage, RejectCode, SendResult, SentMessage
from adapters.jpush import JPushAdapter, JPushOptions, sendno_for
from dunning.config.channels import MockGatewaySettings, MockJPushSettings, ReceiptSimulation
from dunning.errors import ConfigError, PermanentGatewayError
from dunning.types import Channel
from sandbox.gateways import GatewayLedger, create_mock_gateway_app, ledger_path

T = TypeVar("T")
APP_KEY = "7d431e42dfa6a6d693ac2d04"
MASTER_SECRET = "jpush-test-master-secret"
SECRET_ENV = "TEST_JPUSH_MASTER_SECRET"
DEVICE = "1a0018970a8b3e1f2c3"
UNKNOWN_DEVICE = "1a0000000000001011"
NEVER_ONLINE = "1a0000000000000000"
DELAY = 60.0
START = 1_795_000_000.0


@dataclass
class Clock:
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
    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return await self.inner.handle_async_request(request)

    def paths(self) -> list[str]:
        return [r.url.path for r in self.requests if not r.url.path.startswith("/_admin")]


@dataclass
class Mock:
    ledger: GatewayLedger
    clock: Clock
    wire: Recording

    def adapter(self, **options: Any) -> JPushAdapter:
        values: dict[str, Any] = {
            "app_key": APP_KEY,
            "master_secret_env": SECRET_ENV,
            "url": "http://api.jpush.test",
            "report_url": "http://report.jpush.test",
            "backoff_base": 0.1,
            "max_attempts": 3,
        }
        values.update(options)
        return JPushAdapter(JPushOptions(**values), transport=self.wire, timing=self.clock.timing())

    def admin(self, path: str, body: Any = None) -> httpx.Response:
        async def go() -> httpx.Response:
            async with httpx.AsyncClient(transport=self.wire, base_url="http://mock") as client:
                return await client.post(path, json=body)

        return asyncio.run(go())

    def rows(self) -> list[Any]:
        return self.ledger.vendor_rows("jpush")


@pytest.fixture
def mock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Mock:
    monkeypatch.setenv("MOCK_JPUSH_SECRET", MASTER_SECRET)
    monkeypatch.setenv(SECRET_ENV, MASTER_SECRET)
    clock = Clock()
    settings = MockGatewaySettings(
        receipts=ReceiptSimulation(
            delivered=1.0, failed=0.0, undeliverable=0.0, delay_seconds=DELAY
        ),
        jpush=MockJPushSettings(app_key=APP_KEY, master_secret_env="MOCK_JPUSH_SECRET"),
    )
    app = create_mock_gateway_app(settings, tmp_path, clock=clock.time)
    wire = Recording(httpx.ASGITransport(app=app, raise_app_exceptions=False))
    return Mock(GatewayLedger(ledger_path(settings, tmp_path)), clock, wire)


def message(
    key: str = "acct-1:2026-11-23:early-push:push",
    to: str = DEVICE,
    in_doubt: bool = False,
    title: str | None = "还款提醒",
) -> OutboundMessage:
    return OutboundMessage(
        key,
        Channel.PUSH,
        to,
        body="您的账户已逾期5天，请尽快还款。",
        subject=title,
        metadata={"template_id": "push/early/reminder.zh-CN"},
        jurisdiction="CN",
        in_doubt=in_doubt,
    )


def run(call: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(call())


def send(adapter: JPushAdapter, *messages: OutboundMessage) -> list[SendResult]:
    return run(lambda: adapter.send(list(messages)))


# -- send ---------------------------------------------------------------------------------------


def test_a_push_goes_to_its_registration_id_and_its_msg_id_is_the_gateway_id(mock: Mock) -> None:
    assert adapter_class("jpush-push") is JPushAdapter
    [result] = send(mock.adapter(apns_production=False, time_to_live=3600), message())
    assert result.outcome == SendOutcome.ACCEPTED and not result.duplicate
    [row] = mock.rows()
    assert (row.channel, row.recipient, row.body) == (
        "push",
        DEVICE,
        "您的账户已逾期5天，请尽快还款。",
    )
    assert result.gateway_message_id == row.metadata["msg_id"] == row.id
    assert row.metadata["title"] == "还款提醒"
    assert row.metadata["sendno"] == str(sendno_for("acct-1:2026-11-23:early-push:push"))
    assert (row.metadata["apns_production"], row.metadata["time_to_live"]) == ("false", "3600")

    [request] = mock.wire.requests
    assert (request.method, request.url.path) == ("POST", "/v3/push")
    pair = base64.b64decode(request.headers["authorization"].removeprefix("Basic ")).decode()
    assert pair == f"{APP_KEY}:{MASTER_SECRET}"
    body = json.loads(request.content)
    assert body["platform"] == "all"
    assert body["audience"] == {"registration_id": [DEVICE]}
    assert body["notification"]["android"]["title"] == "还款提醒"
    assert body["notification"]["ios"]["alert"] == {
        "title": "还款提醒",
        "body": "您的账户已逾期5天，请尽快还款。",
    }
    assert body["notification"]["android"]["extras"] == {"template_id": "push/early/reminder.zh-CN"}


def test_jpush_does_not_deduplicate_so_each_send_is_a_new_msg_id(mock: Mock) -> None:
    adapter = mock.adapter()
    [first] = send(adapter, message("same-key"))
    [second] = send(adapter, message("same-key"))
    assert first.gateway_message_id != second.gateway_message_id
    assert len(mock.rows()) == 2  # why the adapter never sends a message in doubt again
    assert JPushAdapter.deduplicates is False and not mock.adapter().can_lookup


def test_an_unknown_registration_id_is_rejected_as_an_invalid_address(
    mock: Mock, caplog: pytest.LogCaptureFixture
) -> None:
    [result] = send(mock.adapter(), message(to=UNKNOWN_DEVICE))
    assert (result.outcome, result.code, result.vendor_code) == (
        SendOutcome.REJECTED,
        RejectCode.INVALID_NUMBER.value,
        "1011",
    )
    assert "1011" in (result.reason or "") and UNKNOWN_DEVICE not in (result.reason or "")
    assert UNKNOWN_DEVICE not in caplog.text
    assert mock.rows() == [] and len(mock.wire.requests) == 1


def test_a_bad_parameter_is_rejected_and_a_blank_token_is_never_sent(mock: Mock) -> None:
    [bad] = send(mock.adapter(), message(to="1a0000000000001003"))
    assert (bad.outcome, bad.code, bad.vendor_code) == (SendOutcome.REJECTED, "rejected", "1003")
    [blank] = send(mock.adapter(), message("k-blank", to="   "))
    assert (blank.outcome, blank.code) == (SendOutcome.REJECTED, "invalid_number")
    assert len(mock.wire.requests) == 1 and mock.rows() == []


def test_a_rate_limited_push_waits_for_the_rate_window_then_goes(mock: Mock) -> None:
    mock.admin("/_admin/faults", {"kind": "throttle", "channel": "push", "retry_after": 7})
    [result] = send(mock.adapter(), message())
    assert result.outcome == SendOutcome.ACCEPTED
    assert mock.wire.paths() == ["/v3/push", "/v3/push"]
    assert mock.clock.sleeps == [7.0]  # X-Rate-Limit-Reset, not the kit's backoff
    assert len(mock.rows()) == 1


def test_a_wrong_master_secret_is_a_configuration_problem_naming_the_variable(
    mock: Mock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, "not-the-secret")
    [result] = send(mock.adapter(), message())
    assert (result.outcome, result.vendor_code) == (SendOutcome.RETRY, "1004")
    assert SECRET_ENV in (result.reason or "") and "not-the-secret" not in (result.reason or "")
    assert len(mock.wire.requests) == 1 and mock.rows() == []  # not tried again


def test_an_app_key_jpush_does_not_take_names_the_option(mock: Mock) -> None:
    [result] = send(mock.adapter(app_key="NotAnAppKey"), message())
    assert (result.outcome, result.vendor_code) == (SendOutcome.RETRY, "1008")
    assert "app_key" in (result.reason or "")
    assert len(mock.wire.requests) == 1


def test_a_missing_secret_is_a_config_error_naming_the_variable(
    mock: Mock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(SECRET_ENV)
    with pytest.raises(ConfigError, match=f"master_secret_env: environment variable {SECRET_ENV}"):
        mock.adapter()


def test_a_lost_answer_is_in_doubt_and_an_in_doubt_message_is_never_sent_again(
    mock: Mock,
) -> None:
    # JPush takes the push and the answer is lost (a 500, code 1000): in doubt, not resent.
    mock.admin("/_admin/faults", {"kind": "server_error", "status": 500, "commit_first": True})
    [lost] = send(mock.adapter(), message("k-lost"))
    assert (lost.outcome, lost.vendor_code) == (SendOutcome.AMBIGUOUS, "1000")
    assert len(mock.rows()) == 1 and mock.wire.paths() == ["/v3/push"]

    # Back in doubt: JPush cannot be asked by sendno, so the kit refuses it.
    [again] = send(mock.adapter(), message("k-lost", in_doubt=True))
    assert (again.outcome, again.code) == (SendOutcome.REJECTED, RejectCode.IN_DOUBT.value)
    assert len(mock.rows()) == 1 and mock.wire.paths() == ["/v3/push"]


def test_options_are_checked() -> None:
    with pytest.raises(ValidationError, match="api_key_env"):
        JPushOptions(app_key=APP_KEY, api_key_env="X")
    with pytest.raises(ValidationError, match="time_to_live"):
        JPushOptions(app_key=APP_KEY, time_to_live=864_001)
    with pytest.raises(ValidationError, match="report_url"):
        JPushOptions(app_key=APP_KEY, report_url="report.jpush.cn")


# -- receipts -----------------------------------------------------------------------------------


def test_receipts_come_from_the_report_apis_counts(mock: Mock) -> None:
    adapter = mock.adapter()
    [online, offline] = send(adapter, message("k-online"), message("k-offline", to=NEVER_ONLINE))
    assert online.gateway_message_id and offline.gateway_message_id
    sent = [
        SentMessage(online.gateway_message_id, "k-online", DEVICE, None),
        SentMessage(offline.gateway_message_id, "k-offline", NEVER_ONLINE, None),
    ]
    before = run(lambda: adapter.fetch_receipts(sent))
    assert {r.status for r in before} == {DeliveryStatus.PENDING}

    mock.clock.now += DELAY
    mock.wire.requests.clear()
    after = {r.gateway_message_id: r for r in run(lambda: adapter.fetch_receipts(sent))}
    assert after[online.gateway_message_id].status == DeliveryStatus.DELIVERED
    assert after[online.gateway_message_id].event_id
    # Never received: the counts cannot say it never will be, so it stays pending.
    assert after[offline.gateway_message_id].status == DeliveryStatus.PENDING
    [request] = mock.wire.requests  # both msg_ids in one report request
    assert (request.url.host, request.url.path) == ("report.jpush.test", "/v3/received")
    assert set(request.url.params["msg_ids"].split(",")) == set(after)


def test_receipts_with_refused_credentials_fail_the_poll_for_good(
    mock: Mock, monkeypatch: pytest.MonkeyPatch
) -> None:
    [sent] = send(mock.adapter(), message())
    monkeypatch.setenv(SECRET_ENV, "not-the-secret")
    adapter = mock.adapter()
    assert sent.gateway_message_id is not None
    with pytest.raises(PermanentGatewayError, match=SECRET_ENV):
        run(lambda: adapter.fetch_statuses([sent.gateway_message_id or ""]))


# -- check --------------------------------------------------------------------------------------


def test_check_asks_both_hosts_without_pushing(mock: Mock, monkeypatch: pytest.MonkeyPatch) -> None:
    assert run(mock.adapter().check) is None
    assert mock.wire.paths() == ["/v3/push/cid", "/v3/received"]
    assert mock.rows() == []

    monkeypatch.setenv(SECRET_ENV, "not-the-secret")
    problem = run(mock.adapter().check)
    assert problem is not None and SECRET_ENV in problem and "not-the-secret" not in problem
    assert "\n" not in problem

    unreachable = JPushAdapter(
        JPushOptions(app_key=APP_KEY, master_secret_env=SECRET_ENV, url="http://127.0.0.1:9"),
        timing=mock.clock.timing(),
    )
    problem = run(unreachable.check)
    assert problem is not None and problem.startswith("cannot reach http://127.0.0.1:9")


def test_the_report_host_may_come_from_the_environment(
    mock: Mock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_JPUSH_REPORT_URL", "http://report-from-env.test/")
    adapter = mock.adapter(report_url_env="TEST_JPUSH_REPORT_URL")
    [sent] = send(adapter, message())
    mock.wire.requests.clear()
    run(lambda: adapter.fetch_statuses([sent.gateway_message_id or ""]))
    [request] = mock.wire.requests
    assert request.url.host == "report-from-env.test"

    monkeypatch.delenv("TEST_JPUSH_REPORT_URL")
    with pytest.raises(ConfigError, match="report_url_env: environment variable"):
        mock.adapter(report_url_env="TEST_JPUSH_REPORT_URL")
