"""Stoplight Prism, built from Lob's own OpenAPI description (an excerpt of lob-api-bundled.yml),
stands between Lob's clients and the mock Lob (`dunning gateway serve` over loopback) and
validates both directions: our adapter's creates and retrievals and the mock's answers. The
official `lob` SDK (lob-python 4.5) creates and retrieves letters through the same mock.

Prism runs as `prism proxy --errors` (see test_prism_twilio.py for how its findings are read);
without Prism these tests skip, except in CI.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import lob as lob_sdk
import pytest
import yaml

from adapters.base import DeliveryStatus, OutboundMessage, SendOutcome
from adapters.lob import LobLetterAdapter, LobOptions
from dunning.types import Channel
from sandbox import GatewayLedger
from tests.helpers import dunning_served, free_port
from tests.integration._vendor_mocks import SECRETS, receiver, vendor_program
from tests.integration.test_prism_twilio import Prism, Recorded, RecordingTransport, prism_findings

REPO = Path(__file__).parents[2]
PRISM = REPO / "tools/prism/node_modules/.bin/prism"
SPEC = REPO / "sandbox/gateways/specs/lob_letters.json"
API_KEY = "test_0dc8d51e0acffcb1880e0f19c79b2f5b0cc"
PDF = b"%PDF-1.7\n% a letter\n%%EOF\n"
RETURN_ADDRESS = {
    "company": "Example Lending",
    "address_line1": "185 Berry St",
    "address_city": "San Francisco",
    "address_state": "CA",
    "address_zip": "94107",
}


class Served:
    def __init__(self, url: str, ledger: GatewayLedger) -> None:
        self.url = url
        self.ledger = ledger


@pytest.fixture(scope="module")
def prism_installed() -> Path:
    if not PRISM.exists():
        reason = f"Prism is not installed ({PRISM.relative_to(REPO)}): run scripts/install"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return PRISM


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, repo_dir: Path) -> Iterator[Served]:
    """The mock gateway served with Lob's letters API (delivered at once)."""
    root = tmp_path_factory.mktemp("prism-lob")
    with receiver() as hooks:
        program = vendor_program(repo_dir, root, hooks.url)
        path = program / "config" / "channels.yaml"
        config = yaml.safe_load(path.read_text())
        config["mock_gateway"]["lob"] = {"api_key_env": "MOCK_LOB_API_KEY"}
        path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False))
        state = root / "state"
        env = {**SECRETS, "MOCK_LOB_API_KEY": API_KEY}
        with dunning_served(program, state, "gateway", env=env) as (url, _):
            yield Served(url, GatewayLedger(state / "gateway-ledger.db"))


@pytest.fixture(scope="module")
def prism(
    prism_installed: Path, gateway: Served, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Prism]:
    """`prism proxy` in front of the mock, in a process group of its own (killed whole)."""
    port = free_port()
    log = tmp_path_factory.mktemp("prism") / "prism.log"
    listen = ["--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(prism_installed), "proxy", str(SPEC), f"{gateway.url}/v1", "--errors", *listen],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"prism exited with {process.returncode}: {log.read_text()[-4000:]}")
            try:
                httpx.get(f"{url}/", timeout=0.5)
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


def letter(key: str, zip_code: str = "94107") -> OutboundMessage:
    return OutboundMessage(
        key,
        Channel.LETTER,
        "Harry Zhang\n210 King St\nApt 6100\nSan Francisco CA 94107",
        "Your account is 30 days past due.",
        document=PDF,
        document_sha256=hashlib.sha256(PDF).hexdigest(),
        metadata={"run_id": "run-42"},
        template_id="letter/early/notice.en-US",
        address={
            "name": "Harry Zhang",
            "lines": ["210 King St", "Apt 6100"],
            "city": "San Francisco",
            "region": "CA",
            "postal_code": zip_code,
            "country": "US",
        },
    )


def test_the_adapter_creates_and_polls_within_lobs_description(
    prism: Prism, gateway: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOB_API_KEY", API_KEY)
    recorded = Recorded()
    options = LobOptions.model_validate(
        {"api_key_env": "LOB_API_KEY", "from_address": RETURN_ADDRESS, "url": prism.url}
    )
    adapter = LobLetterAdapter(options, transport=RecordingTransport(recorded))
    message = letter("acct-31:2026-11-23:letter")

    async def go() -> Any:
        async with adapter:
            (sent,) = await adapter.send([message])
            (again,) = await adapter.send([message])
            reports = await adapter.fetch_statuses([str(sent.gateway_message_id)])
            return sent, again, reports

    sent, again, reports = asyncio.run(go())
    assert sent.outcome == SendOutcome.ACCEPTED
    assert again.gateway_message_id == sent.gateway_message_id
    assert [r.status for r in reports] == [DeliveryStatus.DELIVERED], recorded.exchanges
    assert [(e.method, e.status) for e in recorded.exchanges] == [
        ("POST", 200),
        ("POST", 200),
        ("GET", 200),
    ]
    recorded.assert_clean(prism.log)


def test_prism_refuses_a_letter_without_use_type_before_it_reaches_the_mock(
    prism: Prism, gateway: Served
) -> None:
    """The check can fail: a create that breaks Lob's description is caught, not forwarded."""
    before = gateway.ledger.count("letter")
    answer = httpx.post(
        f"{prism.url}/letters",
        data={
            "to[name]": "Harry Zhang",
            "to[address_line1]": "210 King St",
            "to[address_city]": "San Francisco",
            "to[address_state]": "CA",
            "to[address_zip]": "94107",
            "from[company]": "Example Lending",
            "from[address_line1]": "185 Berry St",
            "from[address_city]": "San Francisco",
            "from[address_state]": "CA",
            "from[address_zip]": "94107",
            "color": "false",
        },
        files={"file": ("letter.pdf", PDF, "application/pdf")},
        auth=(API_KEY, ""),
    )
    findings = prism_findings(answer.status_code, answer.headers, answer.text)
    assert answer.status_code == 422 and findings
    assert "use_type" in findings[0]
    assert gateway.ledger.count("letter") == before


def test_the_lob_sdk_creates_and_retrieves_a_letter_from_the_mock(
    gateway: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    """lob-python 4.5, its api_base pointed at the mock: multipart with the PDF as a file, the
    addresses in its bracket notation, our key in its Idempotency-Key header."""
    monkeypatch.setattr(lob_sdk, "api_key", API_KEY)
    monkeypatch.setattr(lob_sdk, "api_base", f"{gateway.url}/v1")
    params: dict[str, Any] = {
        "to_address": {
            "name": "Harry Zhang",
            "address_line1": "210 King St",
            "address_city": "San Francisco",
            "address_state": "CA",
            "address_zip": "94107",
        },
        "from_address": RETURN_ADDRESS,
        "file": io.BytesIO(PDF),
        "color": False,
        "use_type": "operational",
        "address_placement": "insert_blank_page",
        "metadata": {"run_id": "run-43"},
        "headers": {"Idempotency-Key": "acct-32:2026-11-23:letter"},
    }
    created = lob_sdk.Letter.create(**params)
    again = lob_sdk.Letter.create(**{**params, "file": io.BytesIO(PDF)})
    assert created.id.startswith("ltr_") and again.id == created.id
    assert created.to_address.address_line1 == "210 KING ST"
    fetched = lob_sdk.Letter.retrieve(created.id)
    assert fetched.id == created.id and fetched.use_type == "operational"
    assert [e.name for e in fetched.tracking_events][-1] == "Delivered"
    with pytest.raises(lob_sdk.error.InvalidRequestError):
        lob_sdk.Letter.create(**{**params, "file": io.BytesIO(b"not a pdf"), "headers": {}})


def test_the_vendored_excerpt_is_lobs_published_file(repo_dir: Path) -> None:
    """sandbox/gateways/specs/lob_letters.json is Lob's text, cut by tools/prism/lob_excerpt.py;
    checked against the copy of lob-api-bundled.yml in ../shared."""
    published = repo_dir.parent / "shared/specs/lob-api-bundled.yml"
    if not published.exists():
        pytest.skip(f"no copy of Lob's published file at {published}")
    tool = repo_dir / "tools/prism/lob_excerpt.py"
    checked = subprocess.run(
        [sys.executable, str(tool), str(published), "--check"], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stderr
