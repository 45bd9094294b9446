"""Stoplight Prism, built from Twilio's own OpenAPI description, stands between Twilio's clients
and the mock Twilio (`dunning gateway serve` over loopback) and validates both directions: the
official `twilio` SDK's and our adapter's requests, and the mock's answers.

Prism runs as `prism proxy --errors`: a request that breaks the description is answered 422 by
Prism itself (it never reaches the mock), an answer that breaks it becomes Prism's 500, both as
application/problem+json; lesser findings (a status code the description does not list) come
back in an `sl-violations` header. `prism_findings` reads all three, and every response through
Prism is recorded, so a test fails on any finding in either direction.

Prism comes from scripts/install (tools/prism, pinned); without it these tests skip, except in
CI (CI set), where a missing Prism fails them.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response as TwilioResponse
from twilio.rest import Client

from adapters.base import DeliveryStatus, GatewayAdapter, OutboundMessage, SendOutcome
from adapters.registry import adapter_class
from dunning.types import Channel
from tests.helpers import free_port
from tests.integration._vendor_mocks import (
    ACCOUNT_SID,
    API_KEY_SECRET,
    API_KEY_SID,
    AUTH_TOKEN,
    Gateway,
    vendor_gateway,
)

REPO = Path(__file__).parents[2]
PRISM = REPO / "tools/prism/node_modules/.bin/prism"
SPEC = REPO / "sandbox/gateways/specs/twilio_api_v2010_messages.json"
SENDER = "+15005550006"
OTHER_SENDER = "+15005550010"
SERVICE = "MG" + "3" * 32
T = TypeVar("T")


def prism_findings(status: int, headers: Mapping[str, str], body: str) -> list[str]:
    """What Prism found wrong with one exchange: its sl-violations header, or its own error
    answer (problem+json: an invalid request, an invalid answer, an upstream it could not
    read). The mock's errors are Twilio's, plain application/json."""
    found = [
        f"{'.'.join(map(str, v.get('location', [])))}: {v['message']} ({v['severity']})"
        for v in json.loads(headers.get("sl-violations") or "[]")
    ]
    if headers.get("content-type", "").startswith("application/problem+json"):
        found.append(f"Prism answered {status}: {body[:2000]}")
    return found


@dataclass
class Prism:
    url: str
    log: Path


@dataclass
class Exchange:
    method: str
    url: str
    status: int
    findings: list[str]


@dataclass
class Recorded:
    """Every exchange a client had through Prism, with what Prism found wrong in each."""

    exchanges: list[Exchange] = field(default_factory=list)

    def add(
        self, method: str, url: str, status: int, headers: Mapping[str, str], body: str
    ) -> None:
        findings = prism_findings(status, headers, body)
        self.exchanges.append(Exchange(method, url, status, findings))

    def assert_clean(self, log: Path) -> None:
        assert self.exchanges, "nothing went through Prism"
        bad = [e for e in self.exchanges if e.findings]
        assert not bad, f"Prism found violations: {bad}\nPrism's log:\n{log.read_text()[-4000:]}"


class RecordingHttpClient(TwilioHttpClient):
    """The SDK's own HTTP client, keeping each answer's status and headers for the test."""

    def __init__(self, recorded: Recorded) -> None:
        super().__init__()
        self.recorded = recorded

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> TwilioResponse:
        response = super().request(method, url, *args, **kwargs)
        self.recorded.add(method, url, response.status_code, response.headers, response.text)
        return response


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, repo_dir: Path) -> Iterator[Gateway]:
    with vendor_gateway(repo_dir, tmp_path_factory.mktemp("prism-twilio")) as served:
        yield served


@pytest.fixture(scope="module")
def prism_installed() -> Path:
    """Prism's command, or a skip (a failure in CI) before the mock is started for nothing."""
    if not PRISM.exists():
        reason = f"Prism is not installed ({PRISM.relative_to(REPO)}): run scripts/install"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return PRISM


@pytest.fixture(scope="module")
def prism(
    prism_installed: Path, gateway: Gateway, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Prism]:
    """`prism proxy` in front of the mock, in a process group of its own (killed whole)."""
    port = free_port()
    listen = ["--host", "127.0.0.1", "--port", str(port)]
    log = tmp_path_factory.mktemp("prism") / "prism.log"
    started = time.monotonic()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(prism_installed), "proxy", str(SPEC), gateway.url, "--errors", *listen],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = started + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"prism exited with {process.returncode}: {log.read_text()[-4000:]}")
            try:
                httpx.get(f"{url}/", timeout=0.5)  # Prism's 404 for an unknown path: it is up
                break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"prism did not listen within 60 s: {log.read_text()[-4000:]}")
            time.sleep(0.05)
        yield Prism(url, log)
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                break
            try:
                process.wait(timeout=5)
                break
            except subprocess.TimeoutExpired:
                continue
        process.wait()


def sdk(prism: Prism, recorded: Recorded) -> Client:
    """The official client, its api.twilio.com domain pointed at Prism."""
    twilio = Client(
        ACCOUNT_SID, AUTH_TOKEN, account_sid=ACCOUNT_SID, http_client=RecordingHttpClient(recorded)
    )
    twilio.api.base_url = prism.url
    return twilio


def test_the_sdk_creates_fetches_and_lists_within_twilios_description(
    prism: Prism, gateway: Gateway
) -> None:
    recorded = Recorded()
    twilio = sdk(prism, recorded)
    to = "+14155550201"
    callback = f"{gateway.hooks.url}/twilio/status?key=acct-7%3A2026-11-23"
    created = [
        twilio.messages.create(to=to, from_=SENDER, body="Payment of $120.00 is 5 days late."),
        twilio.messages.create(
            to=to, messaging_service_sid=SERVICE, body="本月还款提醒", status_callback=callback
        ),
        twilio.messages.create(to=to, from_=OTHER_SENDER, body="x" * 400),  # three segments
    ]
    assert [m.status for m in created] == ["queued", "accepted", "queued"]
    fetched = [twilio.messages(m.sid).fetch() for m in created]
    assert [m.status for m in fetched] == ["delivered"] * 3
    assert [m.num_segments for m in fetched] == ["1", "1", "3"]
    since = datetime.now(UTC) - timedelta(hours=1)
    listed = twilio.messages.list(to=to, date_sent_after=since, page_size=2)  # two pages
    assert [m.sid for m in listed] == [m.sid for m in reversed(created)]
    assert [m.sid for m in twilio.messages.list(to=to, from_=OTHER_SENDER)] == [created[2].sid]
    assert len(recorded.exchanges) == 3 + 3 + 2 + 1
    recorded.assert_clean(prism.log)


def test_prism_refuses_a_create_without_to_before_it_reaches_the_mock(
    prism: Prism, gateway: Gateway
) -> None:
    """The check can fail: a request that breaks the description is caught, not forwarded."""
    before = gateway.ledger.count("sms")
    answer = httpx.post(
        f"{prism.url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json",
        data={"From": SENDER, "Body": "no recipient"},
        auth=(ACCOUNT_SID, AUTH_TOKEN),
    )
    findings = prism_findings(answer.status_code, answer.headers, answer.text)
    assert answer.status_code == 422 and len(findings) == 1
    assert "must have required property 'To'" in findings[0]
    assert gateway.ledger.count("sms") == before


def test_prism_reports_an_answer_outside_the_description(prism: Prism, gateway: Gateway) -> None:
    """The answers are checked too: a 503 (the mock's scripted outage) is no status Twilio's
    description lists for a create, and Prism says so."""
    fault = {"kind": "server_error", "channel": "sms"}
    httpx.post(f"{gateway.url}/_admin/faults", json=fault).raise_for_status()
    answer = httpx.post(
        f"{prism.url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json",
        data={"To": "+14155550202", "From": SENDER, "Body": "hi"},
        auth=(ACCOUNT_SID, AUTH_TOKEN),
    )
    assert answer.status_code == 503
    assert prism_findings(answer.status_code, answer.headers, answer.text) == [
        "response: Unable to match the returned status code with those defined in the "
        "document: 201 (Warning)"
    ]


# -- our adapter through Prism -----------------------------------------------------------------


class RecordingTransport(httpx.AsyncBaseTransport):
    """Real HTTP, keeping each answer's status and headers for the test."""

    def __init__(self, recorded: Recorded) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.recorded = recorded

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        await response.aread()
        url, status, text = str(request.url), response.status_code, response.text
        self.recorded.add(request.method, url, status, response.headers, text)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def twilio_sms(prism: Prism, recorded: Recorded, **options: Any) -> GatewayAdapter:
    """The provider `twilio-sms` as the registry finds it, its url pointed at Prism."""
    cls = adapter_class("twilio-sms")
    # A from_number's 1 message a second would only slow the test down.
    settings = {"account_sid": ACCOUNT_SID, "url": prism.url, "rate_per_second": 100, **options}
    validated = cls.options_model.model_validate(settings)
    return cls(validated, transport=RecordingTransport(recorded))  # type: ignore[call-arg]


def run(adapter: GatewayAdapter, work: Callable[[GatewayAdapter], Awaitable[T]]) -> T:
    async def go() -> T:
        async with adapter:
            return await work(adapter)

    return asyncio.run(go())


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", AUTH_TOKEN)
    monkeypatch.setenv("TWILIO_API_KEY_SECRET", API_KEY_SECRET)


@pytest.mark.usefixtures("secrets")
def test_the_adapter_sends_polls_and_looks_up_within_twilios_description(
    prism: Prism, gateway: Gateway
) -> None:
    recorded = Recorded()
    callback = f"{gateway.hooks.url}/webhooks/providers/twilio-us/status"
    options = {"auth_token_env": "TWILIO_AUTH_TOKEN", "from_number": SENDER}
    adapter = twilio_sms(prism, recorded, status_callback=callback, **options)
    to = "+14155550211"
    first = OutboundMessage("acct-21:2026-11-23", Channel.SMS, to, "Payment of $80.00 is late.")
    (sent,) = run(adapter, lambda a: a.send([first]))
    assert (sent.outcome, sent.segments) == (SendOutcome.ACCEPTED, 1)
    sid = str(sent.gateway_message_id)

    (report,) = run(adapter, lambda a: a.fetch_statuses([sid]))
    assert (report.gateway_message_id, report.status) == (sid, DeliveryStatus.DELIVERED)
    assert (report.price, report.price_unit) == ("-0.00790", "USD")

    # Come back in doubt: the lookup finds it at Twilio, and nothing is sent again.
    (found,) = run(adapter, lambda a: a.send([replace(first, in_doubt=True)]))
    assert (found.outcome, found.duplicate, found.gateway_message_id) == (
        SendOutcome.ACCEPTED,
        True,
        sid,
    )
    # One that Twilio does not have: looked up, not found, sent once.
    second = OutboundMessage("acct-22:2026-11-23", Channel.SMS, to, "Another reminder.")
    (resent,) = run(adapter, lambda a: a.send([replace(second, in_doubt=True)]))
    assert (resent.outcome, resent.duplicate) == (SendOutcome.ACCEPTED, False)
    assert [r.id for r in gateway.ledger.vendor_rows("twilio", to)] == [
        sid,
        resent.gateway_message_id,
    ]
    assert run(adapter, lambda a: a.check()) is None  # Fetch an Account
    assert [(e.method, e.status) for e in recorded.exchanges] == [
        ("POST", 201),
        ("GET", 200),
        ("GET", 200),
        ("GET", 200),
        ("POST", 201),
        ("GET", 200),
    ]
    recorded.assert_clean(prism.log)


@pytest.mark.usefixtures("secrets")
def test_the_adapter_with_an_api_key_and_a_messaging_service(
    prism: Prism, gateway: Gateway
) -> None:
    recorded = Recorded()
    keyed = {"api_key_sid": API_KEY_SID, "api_key_secret_env": "TWILIO_API_KEY_SECRET"}
    adapter = twilio_sms(prism, recorded, messaging_service_sid=SERVICE, **keyed)
    message = OutboundMessage("acct-23:2026-11-23", Channel.SMS, "+14155550212", "x" * 200)
    (sent,) = run(adapter, lambda a: a.send([message]))
    assert (sent.outcome, sent.segments) == (SendOutcome.ACCEPTED, 2)
    (found,) = run(adapter, lambda a: a.send([replace(message, in_doubt=True)]))
    assert (found.duplicate, found.gateway_message_id) == (True, sent.gateway_message_id)
    assert run(adapter, lambda a: a.check()) is None  # one page of messages: keys may not
    assert [(e.method, e.status) for e in recorded.exchanges] == [
        ("POST", 201),
        ("GET", 200),
        ("GET", 200),
    ]
    recorded.assert_clean(prism.log)


def test_the_vendored_excerpt_is_twilios_published_file(repo_dir: Path) -> None:
    """sandbox/gateways/specs holds Twilio's text, cut by tools/prism/twilio_excerpt.py with
    the one change it lists; checked against the copy of twilio_api_v2010.json in ../shared."""
    published = repo_dir.parent / "shared/specs/twilio_api_v2010.json"
    if not published.exists():
        pytest.skip(f"no copy of Twilio's published file at {published}")
    tool = repo_dir / "tools/prism/twilio_excerpt.py"
    checked = subprocess.run(
        [sys.executable, str(tool), str(published), "--check"], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stderr
