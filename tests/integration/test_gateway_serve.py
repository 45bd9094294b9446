"""`dunning gateway serve` really serves the mock gateways on a loopback port."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
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


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Served:
    url: str
    state: Path


@pytest.fixture
def served(tmp_path: Path, repo_dir: Path) -> Iterator[Served]:
    port = free_port()
    state = tmp_path / "state"
    env = {
        **os.environ,
        "DUNNING_PROJECT_DIR": str(repo_dir),
        "DUNNING_STATE_DIR": str(state),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    command = [str(Path(sys.executable).parent / "dunning"), "gateway", "serve"]
    process = subprocess.Popen(
        [*command, "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            if process.poll() is not None:
                output = process.stdout.read().decode() if process.stdout else ""
                pytest.fail(f"gateway exited with {process.returncode}: {output}")
            try:
                if httpx.get(f"{url}/healthz", timeout=0.5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("gateway did not come up within 20 s")
            time.sleep(0.1)
        yield Served(url, state)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


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
