"""The mock JPush speaks REST API v3: JPush's own Python SDK (`jpush` 3.4) pushes, asks for
cids and reads the report API through it over loopback HTTP, served by `dunning gateway serve`,
and the mock checks the SDK's HTTP Basic credentials.

The SDK has no base-URL setting: it takes its hosts from `jpush.common.ZONES` by the client's
`zone` ("default": api.jpush.cn and report.jpush.cn, "bj": Beijing). The tests add a zone
"mock" whose PUSH and REPORT entries are the served mock's URL + "/v3/" and build the client
with `JPush(app_key, master_secret, zone="mock")`."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import jpush
import pytest
import yaml
from jpush import common

from adapters import SendOutcome
from adapters.base import (
    DeliveryStatus,
    OutboundMessage,
    RejectCode,
    SendResult,
    StatusReport,
)
from adapters.jpush import JPushAdapter, JPushOptions
from dunning.types import Channel
from sandbox import GatewayLedger
from sandbox.gateways._ledger import LedgerRow
from tests.helpers import dunning_served

APP_KEY = "7d431e42dfa6a6d693ac2d04"
MASTER_SECRET = "jpush-test-master-secret"
DEVICE = "1a0018970a8b3e1f2c3"
ALERT = "您的账户已逾期5天，请尽快还款。"


@dataclass
class Gateway:
    url: str
    ledger: GatewayLedger


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, repo_dir: Path) -> Iterator[Gateway]:
    root = tmp_path_factory.mktemp("jpush")
    program = root / "program"
    shutil.copytree(repo_dir / "config", program / "config")
    shutil.copytree(repo_dir / "templates", program / "templates")
    shutil.copy(repo_dir / "dunning.yaml", program / "dunning.yaml")
    path = program / "config" / "channels.yaml"
    config = yaml.safe_load(path.read_text())
    gateway = config["mock_gateway"]
    gateway["receipts"].update(
        {"delivered": 1.0, "failed": 0.0, "undeliverable": 0.0, "delay_seconds": 0}
    )
    gateway["jpush"] = {"app_key": APP_KEY, "master_secret_env": "MOCK_JPUSH_SECRET"}
    path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False))
    state = root / "state"
    env = {"MOCK_JPUSH_SECRET": MASTER_SECRET}
    with dunning_served(program, state, "gateway", env=env) as (url, _):
        yield Gateway(url, GatewayLedger(state / "gateway-ledger.db"))


@pytest.fixture
def client(gateway: Gateway, monkeypatch: pytest.MonkeyPatch) -> jpush.JPush:
    return sdk(gateway, monkeypatch, MASTER_SECRET)


def sdk(gateway: Gateway, monkeypatch: pytest.MonkeyPatch, secret: str) -> jpush.JPush:
    base = f"{gateway.url}/v3/"
    zone = {**common.ZONES["DEFAULT"], "PUSH": base, "REPORT": base}
    monkeypatch.setitem(common.ZONES, "MOCK", zone)
    return jpush.JPush(APP_KEY, secret, timeout=10, zone="mock")


def push_to(client: jpush.JPush, *registration_ids: str, sendno: int = 42) -> jpush.Push:
    push = client.create_push()
    push.audience = jpush.audience(jpush.registration_id(*registration_ids))
    push.notification = jpush.notification(
        alert=ALERT,
        android=jpush.android(alert=ALERT, title="还款提醒"),
        ios=jpush.ios(alert={"title": "还款提醒", "body": ALERT}),
    )
    push.platform = jpush.all_
    push.options = {"sendno": sendno, "apns_production": False, "time_to_live": 3600}
    return push


def rows(gateway: Gateway, device: str) -> list[LedgerRow]:
    return [r for r in gateway.ledger.vendor_rows("jpush") if r.recipient == device]


def test_the_sdk_pushes_to_a_registration_id_and_reads_its_delivery(
    gateway: Gateway, client: jpush.JPush
) -> None:
    sent = push_to(client, DEVICE).send()
    assert sent.status_code == 200
    assert sent.payload["sendno"] == "42"
    msg_id = sent.payload["msg_id"]
    assert isinstance(msg_id, str) and msg_id.isdigit()
    [row] = [r for r in gateway.ledger.vendor_rows("jpush") if r.id == msg_id]
    assert (row.channel, row.recipient, row.body) == ("push", DEVICE, ALERT)
    assert row.metadata["title"] == "还款提醒"

    report = client.create_report().get_received(msg_id)
    assert report.status_code == 200
    [counts] = report.payload
    assert counts["msg_id"] == msg_id and counts["android_received"] == 1
    [detail] = client.create_report().get_received_detail(msg_id).payload
    assert detail["jpush_received"] == 1


def test_jpush_does_not_deduplicate_on_sendno(gateway: Gateway, client: jpush.JPush) -> None:
    device = "1a0018970a8b3e1f2c4"
    first = push_to(client, device, sendno=7).send().payload["msg_id"]
    second = push_to(client, device, sendno=7).send().payload["msg_id"]
    assert first != second and len(rows(gateway, device)) == 2


def test_a_repeated_cid_answers_the_first_push_and_pushes_nothing(
    gateway: Gateway, client: jpush.JPush
) -> None:
    device = "1a0018970a8b3e1f2c5"
    [cid] = client.create_push().get_cid(1).payload["cidlist"]
    assert cid.startswith(f"{APP_KEY}-")
    push = push_to(client, device)
    push.cid = cid
    first = push.send().payload
    again = push.send().payload
    assert first == again and len(rows(gateway, device)) == 1


def test_jpushs_error_codes_reach_the_sdk(
    gateway: Gateway, client: jpush.JPush, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(jpush.JPushFailure) as unknown:
        push_to(client, "1a0000000000001011").send()
    assert unknown.value.response.status_code == 400 and unknown.value.error_code == 1011

    with pytest.raises(jpush.JPushFailure) as missing:
        push = client.create_push()
        push.audience = jpush.audience(jpush.registration_id(DEVICE))
        push.notification = jpush.notification(alert=ALERT)
        push.send()  # no platform
    assert missing.value.error_code == 1002

    with pytest.raises(jpush.Unauthorized):
        push_to(sdk(gateway, monkeypatch, "not-the-secret"), DEVICE).send()
    assert rows(gateway, "1a0000000000001011") == []


def test_the_adapter_pushes_and_reads_receipts_over_loopback(gateway: Gateway) -> None:
    """The adapter through the served mock: push and report API on the one base URL."""
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("TEST_JPUSH_SECRET", MASTER_SECRET)
    try:
        options = JPushOptions(
            app_key=APP_KEY,
            master_secret_env="TEST_JPUSH_SECRET",
            url=gateway.url,
            report_url=gateway.url,
        )
        device = "1a0018970a8b3e1f2c6"

        async def go() -> tuple[list[SendResult], list[StatusReport], str | None]:
            async with JPushAdapter(options) as adapter:
                sent = await adapter.send(
                    [
                        OutboundMessage("k-ok", Channel.PUSH, device, ALERT, subject="还款提醒"),
                        OutboundMessage("k-dead", Channel.PUSH, "1a0000000000001011", ALERT),
                    ]
                )
                ids = [r.gateway_message_id for r in sent if r.gateway_message_id]
                return sent, await adapter.fetch_statuses(ids), await adapter.check()

        sent, reports, problem = asyncio.run(go())
    finally:
        monkeypatch.undo()
    ok, dead = sent
    assert ok.outcome == SendOutcome.ACCEPTED
    assert (dead.outcome, dead.code) == (
        SendOutcome.REJECTED,
        RejectCode.INVALID_NUMBER.value,
    )
    [report] = reports
    assert report.status == DeliveryStatus.DELIVERED
    assert problem is None
    assert len(rows(gateway, device)) == 1
