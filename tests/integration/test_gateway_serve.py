"""`dunning gateway serve` really serves the mock gateways on a loopback port."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from adapters import OutboundMessage, SendOutcome, SendResult
from dunning.types import Channel
from sandbox import GatewayLedger, MockAdapterOptions, MockSmsAdapter
from sandbox.gateways._wire import MAX_BODY_BYTES
from tests.helpers import dunning_served, peak_rss


@dataclass
class Served:
    url: str
    state: Path
    pid: int


@pytest.fixture
def served(tmp_path: Path, repo_dir: Path) -> Iterator[Served]:
    with dunning_served(repo_dir, tmp_path / "state", "gateway") as (url, pid):
        yield Served(url, tmp_path / "state", pid)


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


def test_a_chunked_body_of_512_mib_is_refused_at_the_limit(served: Served) -> None:
    """The gateway reads a body only up to its limit, then answers 413 and closes."""
    mib = 1024 * 1024
    sent = 0

    def chunks() -> Iterator[bytes]:
        nonlocal sent
        for _ in range(512):
            sent += mib
            yield b"x" * mib

    warm_up = httpx.post(f"{served.url}/v1/sms/messages", content=b"{not json")
    assert warm_up.status_code == 400
    before = peak_rss(served.pid)
    try:
        status: int | None = httpx.post(
            f"{served.url}/v1/sms/messages", content=chunks(), timeout=120
        ).status_code
    except httpx.TransportError:
        status = None  # the gateway closed the connection before the body was all sent
    after = peak_rss(served.pid)
    assert status in (413, None)
    assert after - before < MAX_BODY_BYTES + 50 * mib, f"grew by {(after - before) / mib:.0f} MiB"
    assert sent < MAX_BODY_BYTES + 64 * mib, f"{sent / mib:.0f} MiB sent"
    assert httpx.get(f"{served.url}/healthz").status_code == 200
