"""Opt-outs by reply (STOP, 退订) through the signed webhook, and by an operator."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import select

from dunning.bootstrap import Runtime
from dunning.cli.commands_gateway import inbound_handler
from dunning.db.models import Customer
from dunning.services.receipts import DatabaseReceiptSink
from dunning.webhooks import create_webhook_app, sign
from tests.factories import CN_CUSTOMER, US_CUSTOMER, add_account
from tests.helpers import invoke

SECRET = "a-test-secret-of-some-length"
C = Customer.__table__  # type: ignore[attr-defined]


async def post(runtime: Runtime, body: dict[str, object]) -> httpx.Response:
    app = create_webhook_app(
        SECRET, DatabaseReceiptSink(runtime.engine), inbound=inbound_handler(runtime)
    )
    raw = json.dumps(body).encode()
    headers = {
        "Dunning-Signature": sign(SECRET, raw, int(time.time())),
        "Content-Type": "application/json",
    }
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://webhook"
    ) as client:
        return await client.post("/webhooks/inbound/sms", content=raw, headers=headers)


def opted_out(runtime: Runtime) -> dict[str, bool]:
    with runtime.engine.connect() as c:
        return {
            row.phone: row.sms_opted_out_at is not None
            for row in c.execute(select(C.c.phone, C.c.sms_opted_out_at))
        }


@pytest.mark.anyio
async def test_stop_replies_opt_out_in_each_language(runtime: Runtime) -> None:
    with runtime.unit_of_work() as c:
        add_account(c, dpd=3, as_of=datetime.now(UTC).date())
        add_account(c, dpd=3, as_of=datetime.now(UTC).date(), jurisdiction="CN")
    us, cn = US_CUSTOMER["phone"], CN_CUSTOMER["phone"]
    now = datetime.now(UTC).isoformat()
    answer = await post(
        runtime, {"event_id": "e1", "from": us, "text": "thanks, will pay", "received_at": now}
    )
    assert answer.status_code == 200 and answer.json() == {"opt_out": False}
    assert opted_out(runtime) == {us: False, cn: False}
    answer = await post(
        runtime, {"event_id": "e2", "from": us, "text": " stop ", "received_at": now}
    )
    assert answer.json() == {"opt_out": True}
    answer = await post(runtime, {"event_id": "e3", "from": cn, "text": "退订", "received_at": now})
    assert answer.json() == {"opt_out": True}
    assert opted_out(runtime) == {us: True, cn: True}
    bad = await post(runtime, {"event_id": "e4", "from": us})
    assert bad.status_code == 400


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_operator_records_an_opt_out(capsys: pytest.CaptureFixture[str], runtime: Runtime) -> None:
    with runtime.unit_of_work() as c:
        add_account(c, dpd=3, as_of=datetime.now(UTC).date())
    with runtime.engine.connect() as c:
        customer = c.execute(select(C.c.external_id)).scalar_one()
    result = invoke(capsys, "customers", "opt-out", customer, "--channel", "sms", "--json")
    assert result.code == 0 and result.json()["channel"] == "sms"
    assert opted_out(runtime) == {US_CUSTOMER["phone"]: True}
