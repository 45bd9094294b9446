"""`dunning gateway serve` really serves the mock gateways on a loopback port."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from adapters import (
    GatewayLedger,
    MockAdapterOptions,
    MockSmsAdapter,
    OutboundMessage,
    SendOutcome,
    SendResult,
)
from dunning.types import Channel
from tests.helpers import gateway_served


@dataclass
class Served:
    url: str
    state: Path


@pytest.fixture
def served(tmp_path: Path, repo_dir: Path) -> Iterator[Served]:
    with gateway_served(repo_dir, tmp_path / "state") as url:
        yield Served(url, tmp_path / "state")


def send(url: str, batch: list[OutboundMessage]) -> list[SendResult]:
    options = MockAdapterOptions(url=url, backoff_base=0.01, backoff_cap=0.05, max_batch=40)

    async def go() -> list[SendResult]:
        async with MockSmsAdapter(options) as adapter:
            return await adapter.send(batch)

    return asyncio.run(go())


def test_gateway_serve_takes_a_batch_over_http(served: Served) -> None:
    batch = [
        OutboundMessage(f"acct-{i}:2026-11-23:early-sms:sms", Channel.SMS, "+13125551234", "Hi")
        for i in range(100)
    ]
    httpx.post(f"{served.url}/_admin/faults", json={"kind": "server_error", "count": 1})
    results = send(served.url, batch)
    assert all(r.outcome == SendOutcome.ACCEPTED for r in results)
    again = send(served.url, batch[:10])
    assert all(r.duplicate for r in again)
    ledger = GatewayLedger(served.state / "gateway-ledger.db")
    assert ledger.count("sms") == 100
    assert sorted(ledger.keys()) == sorted(m.idempotency_key for m in batch)
    summary = httpx.get(f"{served.url}/_admin/ledger").json()
    assert summary["total"] == 100 and summary["resubmissions"] == 10
