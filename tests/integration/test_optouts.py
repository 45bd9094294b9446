"""Opt-outs by reply (STOP, 退订) through the signed webhook, and by an operator."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from dunning.bootstrap import Runtime
from dunning.cli.commands_gateway import inbound_handler
from dunning.db.lifecycle_models import AccountAction
from dunning.db.models import Account, Customer
from dunning.db.outreach_models import OutboxMessage
from dunning.services.dispatch.receipts import DatabaseReceiptSink
from dunning.services.outreach.plan import plan_batch
from dunning.webhooks import create_webhook_app, sign
from tests.factories import CN_CUSTOMER, OPEN_FOR_ALL, US_CUSTOMER, add_account
from tests.helpers import invoke, outreach_at, write_csv

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


# Stops and opt-outs recorded by an import hold the waiting messages at once -------------------

NIGHT = OPEN_FOR_ALL.replace(hour=9)
"""03:00 in Chicago: the day's SMS are planned, waiting for the morning."""
AS_OF = OPEN_FOR_ALL.date()
FLAGS = {
    "deceased": "deceased",
    "bankruptcy": "bankruptcy",
    "attorney_on_file": "attorney",
    "cease_communication": "cease_request",
    "dispute_open": "dispute",
    "hardship_hold": "hardship_hold",
    "sms_opted_out": "opted_out",
    "none": None,
}
"""Each customer's flag (one customer without any) and the rule that must hold its messages."""
COLUMNS = [
    "external_id",
    "name",
    "locale",
    "time_zone",
    "phone",
    "address_line1",
    "city",
    "region",
    "postal_code",
    "country",
    "sms_consent",
    *(flag for flag in FLAGS if flag != "none"),
]
OUTBOX = OutboxMessage.__table__  # type: ignore[attr-defined]
ACTION = AccountAction.__table__  # type: ignore[attr-defined]
A = Account.__table__  # type: ignore[attr-defined]


def _customers(path: Path, flagged: bool) -> Path:
    rows = []
    for flag in FLAGS:
        row = {
            "external_id": f"C-{flag}",
            "name": "Ann Lee",
            "locale": "en-US",
            "time_zone": "America/Chicago",
            "phone": US_CUSTOMER["phone"],
            "address_line1": "1 Main St",
            "city": "Chicago",
            "region": "IL",
            "postal_code": "60601",
            "country": "US",
            "sms_consent": "true",
        }
        rows.append([row.get(c) or str(flagged and c == flag).lower() for c in COLUMNS])
    return write_csv(path, COLUMNS, rows)


def _state(runtime: Runtime) -> dict[str, tuple[tuple[str, str | None], ...]]:
    """For each customer's flag: its waiting message's and its action's status and rule."""
    with runtime.engine.connect() as c:
        messages = {
            row.external_id[2:]: (row.status, row.suppression)
            for row in c.execute(
                select(A.c.external_id, OUTBOX.c.status, OUTBOX.c.suppression).join(
                    OUTBOX, OUTBOX.c.account_id == A.c.id
                )
            )
        }
        actions = {
            row.external_id[2:]: (row.status, row.suppression)
            for row in c.execute(
                select(A.c.external_id, ACTION.c.status, ACTION.c.suppression).join(
                    ACTION, ACTION.c.account_id == A.c.id
                )
            )
        }
    return {flag: (messages[flag], actions[flag]) for flag in FLAGS}


def test_a_stop_or_an_opt_out_imported_holds_the_waiting_messages_at_once(
    capsys: pytest.CaptureFixture[str], runtime: Runtime, tmp_path: Path
) -> None:
    """Each stop the customers file can carry, and an opt-out, hold the message planned for the
    morning (and the waiting agency placement, for a stop) as soon as the file is imported."""
    assert invoke(capsys, "import", "customers", str(_customers(tmp_path / "c.csv", False)))
    accounts = [
        [f"A-{flag}", f"C-{flag}", "loan", "USD", "US", "1000", "2026-01-01"] for flag in FLAGS
    ]
    instalments = [[f"A-{flag}", "1", str(AS_OF - timedelta(days=45)), "120"] for flag in FLAGS]
    for kind, header, rows in (
        (
            "accounts",
            [
                "external_id",
                "customer_external_id",
                "product",
                "currency",
                "jurisdiction",
                "principal",
                "opened_on",
            ],
            accounts,
        ),
        ("instalments", ["account_external_id", "seq", "due_on", "amount_due"], instalments),
    ):
        result = invoke(capsys, "import", kind, str(write_csv(tmp_path / "f.csv", header, rows)))
        assert result.code == 0, result.err
    env = outreach_at(runtime, NIGHT)
    with runtime.runs.run("daily-outreach", AS_OF) as run:
        plan_batch(env.planner, run.id, AS_OF, 0, 2**31 - 1)  # DPD 45: an SMS and a placement
    env.close()
    waiting = (("planned", None), ("planned", None))
    assert _state(runtime) == {flag: waiting for flag in FLAGS}

    path = _customers(tmp_path / "flags.csv", True)
    result = invoke(capsys, "import", "customers", str(path), "--json")
    assert result.code == 0, result.err
    expected = {
        flag: (
            ("held", rule) if rule else ("planned", None),
            ("held", rule) if rule and rule != "opted_out" else ("planned", None),
        )
        for flag, rule in FLAGS.items()
    }
    assert _state(runtime) == expected
    assert result.json()["held"] == len(FLAGS) - 1
    again = invoke(capsys, "import", "customers", str(path), "--json")
    assert (again.json()["held"], again.json()["unchanged"]) == (0, len(FLAGS))
    assert _state(runtime) == expected
