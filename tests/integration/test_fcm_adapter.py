"""The fcm-push adapter against the mock FCM, in-process over ASGI on a stopped clock: the
request it builds, the service account's OAuth tokens (fetched once, again before they expire
and after a 401), how it reads FCM's answers (UNREGISTERED and INVALID_ARGUMENT tokens refused
as invalid numbers, 429 retried after Retry-After, a 500 left in doubt), bad credentials as a
configuration error naming the variable, and check()."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from adapters import Timing
from adapters.base import OutboundMessage, RejectCode, SendOutcome, SendResult
from adapters.fcm import FcmOptions, FcmPushAdapter
from dunning.config.channels import MockGatewaySettings
from dunning.errors import ConfigError
from dunning.types import Channel
from sandbox import GatewayLedger, create_mock_gateway_app
from sandbox.gateways._ledger import ledger_path
from tests.integration._fcm import PROJECT_ID, write_service_account

BASE = "http://fcm.test"
TOKEN_URI = f"{BASE}/token"
START = 1_800_000_000.0
DEVICE = "fcm-device-token-" + "a" * 120
SEND_PATH = f"/v1/projects/{PROJECT_ID}/messages:send"
T = TypeVar("T")


@dataclass
class MockFcm:
    """The mock gateway app with FCM's API, its ledger, the requests it got, and two clocks:
    the gateway's (also the adapter's wall clock) and the adapter's monotonic one."""

    app: Any
    ledger: GatewayLedger
    credentials: Path
    now: list[float] = field(default_factory=lambda: [START])
    mono: list[float] = field(default_factory=lambda: [0.0])
    requests: list[httpx.Request] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)

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
            self.sleeps.append(seconds)
            self.now[0] += seconds
            self.mono[0] += seconds

        return Timing(lambda: self.mono[0], lambda: self.now[0], sleep, lambda: 0.5)

    def adapter(self, **options: Any) -> FcmPushAdapter:
        settings: dict[str, Any] = {
            "credentials_env": "FCM_CREDENTIALS",
            "url": BASE,
            "backoff_base": 0.1,
            "max_attempts": 3,
            "default_title": "Payment reminder",
            **options,
        }
        return FcmPushAdapter(
            FcmOptions.model_validate(settings), transport=self.transport(), timing=self.timing()
        )

    def fault(self, **spec: Any) -> None:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
                return await client.post("/_admin/faults", json=spec)

        assert asyncio.run(go()).status_code == 201

    def paths(self) -> list[str]:
        return [r.url.path for r in self.requests]


@pytest.fixture
def fcm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> MockFcm:
    credentials = write_service_account(tmp_path / "service-account.json", TOKEN_URI)
    monkeypatch.setenv("FCM_CREDENTIALS", str(credentials))
    monkeypatch.setenv("MOCK_FCM_SERVICE_ACCOUNT", str(credentials))
    settings = MockGatewaySettings.model_validate(
        {
            "fcm": {
                "project_id": PROJECT_ID,
                "service_account_env": "MOCK_FCM_SERVICE_ACCOUNT",
                "token_lifetime_seconds": 3600,
            }
        }
    )
    mock = MockFcm(
        app=None,
        ledger=GatewayLedger(ledger_path(settings, tmp_path)),
        credentials=credentials,
    )
    mock.app = create_mock_gateway_app(settings, tmp_path, clock=lambda: mock.now[0])
    return mock


def push(
    key: str, token: str = DEVICE, body: str = "Your payment is 5 days late.", **kw: Any
) -> OutboundMessage:
    return OutboundMessage(key, Channel.PUSH, token, body, **kw)


def run(adapter: FcmPushAdapter, work: Callable[[FcmPushAdapter], Awaitable[T]]) -> T:
    async def go() -> T:
        async with adapter:
            return await work(adapter)

    return asyncio.run(go())


def send(adapter: FcmPushAdapter, batch: Sequence[OutboundMessage]) -> list[SendResult]:
    return run(adapter, lambda a: a.send(batch))


def test_a_push_is_sent_as_fcm_v1_with_a_bearer_token_from_the_service_account(
    fcm: MockFcm,
) -> None:
    message = push("k1", subject="Account update", template_id="push/early/reminder.en-US")
    (result,) = send(fcm.adapter(), [message])

    assert result.outcome == SendOutcome.ACCEPTED
    assert result.gateway_message_id is not None
    assert result.gateway_message_id.startswith(f"projects/{PROJECT_ID}/messages/")
    assert fcm.paths() == ["/token", SEND_PATH]
    token_request, send_request = fcm.requests
    assert b"grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer" in (
        token_request.content
    )
    assert send_request.headers["authorization"].startswith("Bearer ya29.")
    sent = json.loads(send_request.content)["message"]
    assert sent["token"] == DEVICE
    assert sent["notification"] == {"title": "Account update", "body": message.body}
    assert sent["android"] == {"priority": "HIGH", "ttl": "86400s"}
    assert sent["apns"]["headers"] == {"apns-priority": "10", "apns-push-type": "alert"}
    # No personal data in the data block: our key and the template only.
    assert sent["data"] == {"dunning_key": "k1", "template_id": "push/early/reminder.en-US"}

    (row,) = fcm.ledger.vendor_rows("fcm")
    assert (row.channel, row.id, row.recipient) == ("push", result.gateway_message_id, DEVICE)
    assert row.body == message.body and row.metadata["title"] == "Account update"


def test_a_push_without_a_subject_takes_the_default_title_and_the_android_channel(
    fcm: MockFcm,
) -> None:
    adapter = fcm.adapter(android_channel_id="reminders", android_priority="NORMAL")
    (result,) = send(adapter, [push("k1")])
    assert result.outcome == SendOutcome.ACCEPTED
    sent = json.loads(fcm.requests[-1].content)["message"]
    assert sent["notification"]["title"] == "Payment reminder"
    assert sent["android"]["notification"] == {"channelId": "reminders"}
    assert sent["apns"]["headers"]["apns-priority"] == "5"


def test_each_push_is_its_own_request_under_one_token(fcm: MockFcm) -> None:
    results = send(fcm.adapter(), [push(f"k{i}", token=f"device-{i:04d}-token") for i in range(5)])
    assert [r.outcome for r in results] == [SendOutcome.ACCEPTED] * 5
    assert len({r.gateway_message_id for r in results}) == 5
    assert fcm.paths().count("/token") == 1
    assert fcm.paths().count(SEND_PATH) == 5
    assert len(fcm.ledger.vendor_rows("fcm")) == 5


@pytest.mark.parametrize(
    ("token", "vendor_code"),
    [("unregistered-" + "b" * 40, "UNREGISTERED"), ("invalid-" + "c" * 40, "INVALID_ARGUMENT")],
)
def test_a_dead_or_invalid_token_is_rejected_as_an_invalid_number(
    fcm: MockFcm, token: str, vendor_code: str
) -> None:
    (result,) = send(fcm.adapter(), [push("k1", token=token)])
    assert result.outcome == SendOutcome.REJECTED
    assert (result.code, result.vendor_code) == (RejectCode.INVALID_NUMBER.value, vendor_code)
    assert token not in (result.reason or "")
    assert fcm.paths().count(SEND_PATH) == 1  # never tried again
    assert fcm.ledger.vendor_rows("fcm") == []


def test_a_token_that_is_no_token_at_all_is_an_invalid_number(fcm: MockFcm) -> None:
    (result,) = send(fcm.adapter(), [push("k1", token="not a token!")])
    assert (result.outcome, result.code) == (SendOutcome.REJECTED, "invalid_number")


def test_a_payload_fcm_refuses_is_rejected_but_the_token_stays_alive(fcm: MockFcm) -> None:
    (result,) = send(fcm.adapter(), [push("k1", body="x" * 5000)])
    assert result.outcome == SendOutcome.REJECTED
    assert (result.code, result.vendor_code) == (RejectCode.OTHER.value, "INVALID_ARGUMENT")
    assert "too big" in (result.reason or "")


def test_429_is_retried_after_fcms_retry_after(fcm: MockFcm) -> None:
    fcm.fault(kind="throttle", channel="push", retry_after=7)
    (result,) = send(fcm.adapter(), [push("k1")])
    assert result.outcome == SendOutcome.ACCEPTED
    assert fcm.sleeps == [7.0]
    assert fcm.paths().count(SEND_PATH) == 2
    assert len(fcm.ledger.vendor_rows("fcm")) == 1


def test_503_is_retried_and_a_500_is_left_in_doubt(fcm: MockFcm) -> None:
    fcm.fault(kind="server_error", channel="push", status=503)
    (result,) = send(fcm.adapter(), [push("k1")])
    assert result.outcome == SendOutcome.ACCEPTED

    fcm.fault(kind="server_error", channel="push", status=500)
    (doubt,) = send(fcm.adapter(), [push("k2")])
    # FCM may have acted before failing and does not deduplicate: never sent blindly again.
    assert doubt.outcome == SendOutcome.AMBIGUOUS
    assert doubt.vendor_code == "UNAVAILABLE"


def test_an_in_doubt_push_is_not_sent_again(fcm: MockFcm) -> None:
    (result,) = send(fcm.adapter(), [push("k1", in_doubt=True)])
    assert (result.outcome, result.code) == (SendOutcome.REJECTED, RejectCode.IN_DOUBT.value)
    assert fcm.requests == []


def test_the_token_is_fetched_again_before_it_expires(fcm: MockFcm) -> None:
    adapter = fcm.adapter()

    async def work(a: FcmPushAdapter) -> list[SendResult]:
        first = await a.send([push("k1")])
        fcm.mono[0] += 3000  # 10 minutes left: still good
        fcm.now[0] += 3000
        second = await a.send([push("k2")])
        fcm.mono[0] += 560  # under the minute's margin: fetched anew
        fcm.now[0] += 560
        third = await a.send([push("k3")])
        return first + second + third

    results = run(adapter, work)
    assert [r.outcome for r in results] == [SendOutcome.ACCEPTED] * 3
    assert fcm.paths() == ["/token", SEND_PATH, SEND_PATH, "/token", SEND_PATH]


def test_a_401_fetches_a_new_token_and_sends_once_more(fcm: MockFcm) -> None:
    adapter = fcm.adapter()

    async def work(a: FcmPushAdapter) -> list[SendResult]:
        first = await a.send([push("k1")])
        # The gateway's clock runs past the token's life while ours stands still: the
        # cached token looks good to us and FCM answers 401.
        fcm.now[0] += 4000
        return first + await a.send([push("k2")])

    results = run(adapter, work)
    assert [r.outcome for r in results] == [SendOutcome.ACCEPTED] * 2
    assert fcm.paths() == ["/token", SEND_PATH, SEND_PATH, "/token", SEND_PATH]
    assert len(fcm.ledger.vendor_rows("fcm")) == 2


def test_a_missing_or_unreadable_service_account_is_a_configuration_error_naming_it(
    fcm: MockFcm, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("FCM_CREDENTIALS")
    with pytest.raises(ConfigError) as unset:
        fcm.adapter()
    assert "credentials_env" in str(unset.value) and "FCM_CREDENTIALS" in str(unset.value)

    monkeypatch.setenv("FCM_CREDENTIALS", str(tmp_path / "nowhere.json"))
    with pytest.raises(ConfigError, match="FCM_CREDENTIALS: the file it names cannot be read"):
        fcm.adapter()

    info = json.loads(fcm.credentials.read_text())
    info["private_key"] = "-----BEGIN PRIVATE KEY-----\nnot-a-key\n-----END PRIVATE KEY-----\n"
    monkeypatch.setenv("FCM_CREDENTIALS", json.dumps(info))
    with pytest.raises(ConfigError, match="FCM_CREDENTIALS: its private_key cannot be read") as bad:
        fcm.adapter()
    assert "not-a-key" not in str(bad.value)


def test_the_service_account_given_as_json_in_the_variable_works(
    fcm: MockFcm, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FCM_CREDENTIALS", fcm.credentials.read_text())
    (result,) = send(fcm.adapter(), [push("k1")])
    assert result.outcome == SendOutcome.ACCEPTED


def test_a_key_the_token_endpoint_refuses_leaves_the_message_planned_naming_the_variable(
    fcm: MockFcm, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    other = write_service_account(tmp_path / "other.json", TOKEN_URI, key=1)
    monkeypatch.setenv("FCM_CREDENTIALS", str(other))
    (result,) = send(fcm.adapter(), [push("k1")])
    assert result.outcome == SendOutcome.RETRY
    assert "FCM_CREDENTIALS" in (result.reason or "")
    assert "invalid_grant" in (result.reason or "")
    assert fcm.paths() == ["/token"]  # not tried again: our configuration is wrong
    assert fcm.ledger.vendor_rows("fcm") == []


def test_another_project_is_a_configuration_problem(fcm: MockFcm) -> None:
    (result,) = send(fcm.adapter(project_id="someone-else"), [push("k1")])
    assert result.outcome == SendOutcome.RETRY
    assert "PERMISSION_DENIED" in (result.reason or "")
    assert "FCM_CREDENTIALS" in (result.reason or "")


def test_fcm_has_no_delivery_status(fcm: MockFcm) -> None:
    assert run(fcm.adapter(), lambda a: a.fetch_statuses(["projects/p/messages/1"])) == []
    assert fcm.requests == []


def test_check_gets_a_token_and_validates_without_sending(
    fcm: MockFcm, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert run(fcm.adapter(), lambda a: a.check()) is None
    assert fcm.paths() == ["/token", SEND_PATH]
    assert json.loads(fcm.requests[-1].content)["validateOnly"] is True
    assert fcm.ledger.vendor_rows("fcm") == []

    other = write_service_account(tmp_path / "other.json", TOKEN_URI, key=1)
    monkeypatch.setenv("FCM_CREDENTIALS", str(other))
    problem = run(fcm.adapter(), lambda a: a.check())
    assert problem is not None and "FCM_CREDENTIALS" in problem
    assert "PRIVATE KEY" not in problem

    assert run(fcm.adapter(project_id="someone-else"), lambda a: a.check()) is not None
