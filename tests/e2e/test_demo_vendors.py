"""The demo day over loopback HTTP: CN SMS through Aliyun SMS's wire API, US SMS through Twilio's,
CN push through JPush's, US push through FCM's, US letters through Lob's.

`dunning demo` serves the sandbox's mock gateways on a free port and sends through the real
adapters (config/channels.sandbox.yaml); the summary counts each provider's messages. Checked
against the outbox and the mocks' ledger: each vendor API got the messages of its jurisdiction,
each once, under the id the outbox recorded, and a rerun sends nothing again.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from dunning.db.engine import create_db_engine
from dunning.db.tables import ACCOUNT, OUTBOX
from sandbox import GatewayLedger
from tests.e2e.test_kill_and_rerun import always_open_program

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]
DEMO = ["demo", "--in-process", "--accounts", "800", "--seed", "5", "--as-of", "2026-11-24"]


def demo(state: Path, database_url: str, program: Path = REPO) -> dict[str, Any]:
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith("DUNNING_")
    }
    environment.update(
        DUNNING_PROJECT_DIR=str(program),
        DUNNING_DATABASE_URL=database_url,
        DUNNING_STATE_DIR=str(state),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
    )
    done = subprocess.run(
        [str(BIN / "dunning"), *DEMO, "--json"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def sent_sms(database_url: str) -> dict[str, dict[str, Any]]:
    """Every SMS a provider took, by idempotency key: its provider, gateway id, jurisdiction."""
    engine = create_db_engine(database_url)
    o = OUTBOX.c
    with engine.connect() as connection:
        rows = connection.execute(
            select(o.idempotency_key, o.provider, o.gateway_message_id, ACCOUNT.c.jurisdiction)
            .join(ACCOUNT, ACCOUNT.c.id == o.account_id)
            .where(o.channel == "sms", o.gateway_message_id.is_not(None))
        ).all()
    engine.dispose()
    return {row[0]: dict(row._mapping) for row in rows}


def test_the_demo_day_goes_through_each_vendors_wire_api_once(
    tmp_path: Path, database_url: str
) -> None:
    state = tmp_path / "state"
    # Contact windows open around the clock: what goes out must not hang on the hour the test
    # runs (at 07:00 UTC every US window is shut and no US SMS would go).
    program = always_open_program(REPO, tmp_path / "program")
    first = demo(state, database_url, program)

    by_provider = first["daily_outreach"]["messages"]["by_provider"]
    assert by_provider.get("sms:aliyun-cn", 0) > 0 and by_provider.get("sms:twilio-us", 0) > 0
    assert first["daily_outreach"]["this_run"]["dispatch"]["sent_by_provider"]["aliyun-cn"] > 0

    outbox = sent_sms(database_url)
    ledger = GatewayLedger(state / "gateway-ledger.db").rows("sms")
    aliyun = [row for row in ledger if row.api == "aliyun"]
    twilio = [row for row in ledger if row.api == "twilio"]
    took = {
        name: {key: row for key, row in outbox.items() if row["provider"] == name}
        for name in ("aliyun-cn", "twilio-us")
    }
    # Each vendor API holds exactly the SMS its provider took, each once: CN accounts' through
    # Aliyun (OutId is our key), US accounts' through Twilio (under the SID the outbox holds).
    assert {row["jurisdiction"] for row in took["aliyun-cn"].values()} == {"CN"}
    assert {row["jurisdiction"] for row in took["twilio-us"].values()} == {"US"}
    out_ids = [row.metadata["out_id"] for row in aliyun]
    assert sorted(out_ids) == sorted(took["aliyun-cn"])
    assert all(
        took["aliyun-cn"][row.metadata["out_id"]]["gateway_message_id"]
        in (row.metadata["biz_id"], row.id)
        for row in aliyun
    )
    assert sorted(row.id for row in twilio) == sorted(
        row["gateway_message_id"] for row in took["twilio-us"].values()
    )
    assert all(row.recipient.startswith("+1") for row in twilio)
    assert first["gateway_accepted"]["sms:aliyun"] == len(aliyun)
    assert first["gateway_accepted"]["sms:twilio"] == len(twilio)

    # Push: CN through JPush's API, US through FCM's; each once, under the id the outbox
    # recorded (JPush's msg_id, FCM's message name).
    engine = create_db_engine(database_url)
    pushes = GatewayLedger(state / "gateway-ledger.db").rows("push")
    for provider, api, jurisdiction in (("jpush-cn", "jpush", "CN"), ("fcm-us", "fcm", "US")):
        with engine.connect() as connection:
            pushed = connection.execute(
                select(OUTBOX.c.gateway_message_id, ACCOUNT.c.jurisdiction)
                .join(ACCOUNT, ACCOUNT.c.id == OUTBOX.c.account_id)
                .where(OUTBOX.c.provider == provider, OUTBOX.c.gateway_message_id.is_not(None))
            ).all()
        assert pushed and {row[1] for row in pushed} == {jurisdiction}
        assert sorted(row.id for row in pushes if row.api == api) == sorted(r[0] for r in pushed)
    # US letters through Lob's API (under the letter id the outbox recorded), CN letters not.
    with engine.connect() as connection:
        mailed = connection.execute(
            select(OUTBOX.c.gateway_message_id, ACCOUNT.c.jurisdiction)
            .join(ACCOUNT, ACCOUNT.c.id == OUTBOX.c.account_id)
            .where(OUTBOX.c.provider == "lob-us", OUTBOX.c.gateway_message_id.is_not(None))
        ).all()
    letters = GatewayLedger(state / "gateway-ledger.db").rows("letter")
    assert mailed and {row[1] for row in mailed} == {"US"}
    assert sorted(r.id for r in letters if r.api == "lob") == sorted(r[0] for r in mailed)
    engine.dispose()

    # The same day again sends nothing twice.
    again = demo(state, database_url, program)
    assert again["daily_outreach"]["this_run"]["dispatch"]["sent"] == 0
    assert len(GatewayLedger(state / "gateway-ledger.db").rows("sms")) == len(ledger)
