"""Lob's signed letter events end to end: a daily run mails a US letter through the lob-letter
provider (the served mock's Lob API), and the events Lob POSTs to the provider webhook route
(/webhooks/providers/lob-us/status), signed as Lob signs them, move the outbox and, for a
letter returned to sender, mark the customer's address so the next letter is held.

The events are made here as Lob makes them (an `evt_` id, the letter as Lob answers it in
`body`, `event_type.id`), the letter's body read from the mock's own GET /v1/letters/{id};
the webhook app's clock is stopped, so the signatures' timestamps are checked against it.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import select

from adapters.lob import lob_signature
from dunning.bootstrap import Runtime
from dunning.cli.commands_gateway import inbound_handler, vendor_hooks
from dunning.db.tables import ACCOUNT, CUSTOMER, EVENT, OUTBOX
from dunning.services.daily import run_daily_outreach
from dunning.services.dispatch.receipts import DatabaseReceiptSink
from dunning.webhooks import create_webhook_app
from sandbox import GatewayLedger
from tests.factories import OPEN_FOR_ALL, add_account
from tests.helpers import dunning_served, outreach_at
from tests.integration import _vendor_mocks as mocks
from tests.integration.test_vendor_webhooks import with_channels

API_KEY = "test_0dc8d51e0acffcb1880e0f19c79b2f5b0cc"
API_KEY_ENV = "E2E_LOB_API_KEY"
WEBHOOK_SECRET = "lob-e2e-webhook-secret"
WEBHOOK_SECRET_ENV = "E2E_LOB_WEBHOOK_SECRET"
HOOK_SECRET = "a-test-secret-of-some-length"
PUBLIC = "https://hooks.lender.example"
ROUTE = "/webhooks/providers/lob-us/status"
AS_OF = OPEN_FOR_ALL.date()
LETTER_DPD = 31  # the first US letter step
NOW = OPEN_FOR_ALL + timedelta(days=3)
"""The webhook app's clock: three days after the letters went out."""
TOLERANCE = 300.0  # lob-letter's default webhook_tolerance_seconds
RETURN_ADDRESS = {
    "company": "Example Lending",
    "address_line1": "185 Berry St",
    "address_line2": "Suite 6100",
    "address_city": "San Francisco",
    "address_state": "CA",
    "address_zip": "94107",
}


def lob_channels(gateway_url: str) -> dict[str, Any]:
    """US letters through Lob (the served mock's Lob API); the rest through the mocks."""
    return {
        "providers": {
            "lob-us": {
                "adapter": "lob-letter",
                "options": {
                    "url": f"{gateway_url}/v1",
                    "api_key_env": API_KEY_ENV,
                    "webhook_secret_env": WEBHOOK_SECRET_ENV,
                    "from_address": RETURN_ADDRESS,
                },
            }
        },
        "channels": {
            "sms": {"adapter": "mock-sms"},
            "push": {"adapter": "mock-push"},
            "letter": {"routes": {"US": ["lob-us"], "default": ["mock-letter"]}},
        },
    }


@dataclass
class Lob:
    """The served mock gateway (Lob's API on it) and the webhook app over the runtime."""

    url: str
    ledger: GatewayLedger
    runtime: Runtime
    app: Any

    def letter(self, letter_id: str) -> dict[str, Any]:
        """The letter as Lob answers GET /v1/letters/{id}."""
        answer = httpx.get(f"{self.url}/v1/letters/{letter_id}", auth=(API_KEY, ""))
        assert answer.status_code == 200, answer.text
        found: dict[str, Any] = answer.json()
        return found

    def event(self, letter_id: str, kind: str) -> bytes:
        """A letter event as Lob POSTs it (its body: the letter)."""
        event = {
            "id": f"evt_{uuid.uuid4().hex[:24]}",
            "body": self.letter(letter_id),
            "reference_id": letter_id,
            "event_type": {
                "id": kind,
                "enabled_for_test": True,
                "resource": "letters",
                "object": "event_type",
            },
            "date_created": (NOW - timedelta(minutes=1)).isoformat().replace("+00:00", "Z"),
            "object": "event",
        }
        return json.dumps(event, separators=(",", ":")).encode()

    def post(self, body: bytes, headers: Mapping[str, str]) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://10.0.0.7") as c:
                return await c.post(
                    ROUTE, content=body, headers={"Content-Type": "application/json", **headers}
                )

        return asyncio.run(go())

    def signed(
        self, body: bytes, *, at: float | None = None, secret: str = WEBHOOK_SECRET
    ) -> httpx.Response:
        """POST `body` signed as Lob signs it, stamped `at` (Unix seconds; default: now) in
        milliseconds."""
        stamp = str(int((NOW.timestamp() if at is None else at) * 1000))
        return self.post(
            body,
            {
                "Lob-Signature-Timestamp": stamp,
                "Lob-Signature": lob_signature(secret, stamp, body),
            },
        )


@pytest.fixture
def lob(
    repo_dir: Path, tmp_path: Path, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Lob]:
    monkeypatch.setenv(API_KEY_ENV, API_KEY)
    monkeypatch.setenv(WEBHOOK_SECRET_ENV, WEBHOOK_SECRET)
    root = tmp_path / "gateway"
    with mocks.receiver() as hooks:
        program = mocks.vendor_program(
            repo_dir,
            root,
            hooks.url,
            # Polls see letters pending: only the webhook moves them here.
            delay_seconds=7 * 86400,
        )
        path = program / "config" / "channels.yaml"
        config = yaml.safe_load(path.read_text())
        config["mock_gateway"]["lob"] = {"api_key_env": "MOCK_LOB_API_KEY"}
        path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False))
        state = root / "state"
        env = {**mocks.SECRETS, "MOCK_LOB_API_KEY": API_KEY}
        with dunning_served(program, state, "gateway", env=env) as (url, _):
            routed = with_channels(runtime, lob_channels(url))
            app = create_webhook_app(
                HOOK_SECRET,
                DatabaseReceiptSink(routed.engine),
                clock=NOW.timestamp,
                inbound=inbound_handler(routed),
                vendors=vendor_hooks(routed),
                public_url=PUBLIC,
            )
            yield Lob(url, GatewayLedger(state / "gateway-ledger.db"), routed, app)


def letters(runtime: Runtime) -> dict[str, list[dict[str, Any]]]:
    """account external id -> its letters' outbox rows, in order."""
    o, a = OUTBOX.c, ACCOUNT.c
    found: dict[str, list[dict[str, Any]]] = {}
    with runtime.engine.connect() as connection:
        rows = connection.execute(
            select(a.external_id, o.as_of, o.status, o.suppression, o.provider)
            .add_columns(o.gateway_message_id)
            .join(OUTBOX, o.account_id == a.id)
            .where(o.channel == "letter")
            .order_by(o.id)
        )
        for row in rows:
            found.setdefault(row.external_id, []).append(dict(row._mapping))
    return found


def webhook_events(runtime: Runtime) -> list[tuple[str, str, str]]:
    """(event id, status, gateway id) of every delivery event the webhook recorded."""
    e, o = EVENT.c, OUTBOX.c
    with runtime.engine.connect() as connection:
        rows = connection.execute(
            select(e.event_id, e.status, o.gateway_message_id)
            .join(OUTBOX, o.id == e.outbox_id)
            .where(e.source == "webhook")
            .order_by(e.id)
        )
        return [(row[0], row[1], row[2]) for row in rows]


def address_returned(runtime: Runtime) -> dict[str, bool]:
    """account external id -> whether its customer's address is marked returned."""
    a, c = ACCOUNT.c, CUSTOMER.c
    with runtime.engine.connect() as connection:
        rows = connection.execute(
            select(a.external_id, c.address_invalid_at).join(CUSTOMER, a.customer_id == c.id)
        )
        return {row[0]: row[1] is not None for row in rows}


def names(runtime: Runtime) -> dict[int, str]:
    with runtime.engine.connect() as connection:
        return dict(connection.execute(select(ACCOUNT.c.id, ACCOUNT.c.external_id)).all())


def mail_letters(lob: Lob, count: int) -> list[tuple[str, str]]:
    """`count` US customers a letter is due to today; the daily run mails them through Lob.
    Returns (account external id, Lob letter id) of each."""
    runtime = lob.runtime
    with runtime.unit_of_work() as c:
        accounts = [add_account(c, dpd=LETTER_DPD, as_of=AS_OF) for _ in range(count)]
    summary = run_daily_outreach(outreach_at(runtime, approved=True), AS_OF)
    assert summary["this_run"]["dispatch"]["sent"] >= count
    external = names(runtime)
    found = letters(runtime)
    mailed = []
    for account in accounts:
        (row,) = found[external[account]]
        assert (row["status"], row["provider"]) == ("sent", "lob-us")
        assert str(row["gateway_message_id"]).startswith("ltr_")
        mailed.append((external[account], str(row["gateway_message_id"])))
    # Each is one letter at Lob, under the id the outbox holds.
    lob_ids = sorted(row.id for row in lob.ledger.rows() if row.channel == "letter")
    assert lob_ids == sorted(letter_id for _, letter_id in mailed)
    return mailed


def test_lobs_events_move_a_letter_to_delivered_and_a_retried_event_is_recorded_once(
    lob: Lob,
) -> None:
    runtime = lob.runtime
    ((account, letter_id),) = mail_letters(lob, 1)

    mailed = lob.signed(lob.event(letter_id, "letter.mailed"))
    assert mailed.is_success, mailed.text
    assert letters(runtime)[account][0]["status"] == "sent"  # on its way: no receipt yet

    delivered = lob.event(letter_id, "letter.delivered")
    first = lob.signed(delivered)
    again = lob.signed(delivered)  # Lob retries a call it got no 2xx for, or twice anyway
    assert first.is_success and again.is_success, (first.text, again.text)
    assert letters(runtime)[account][0]["status"] == "delivered"
    event_id = json.loads(delivered)["id"]
    assert webhook_events(runtime) == [(event_id, "delivered", letter_id)]
    assert address_returned(runtime) == {account: False}


def test_a_letter_returned_to_sender_marks_the_address_and_holds_the_next_letter(
    lob: Lob,
) -> None:
    runtime = lob.runtime
    (kept, kept_id), (returned, returned_id) = mail_letters(lob, 2)

    for kind in ("letter.mailed", "letter.in_transit", "letter.returned_to_sender"):
        answer = lob.signed(lob.event(returned_id, kind))
        assert answer.is_success, answer.text
    assert lob.signed(lob.event(kept_id, "letter.delivered")).is_success

    found = letters(runtime)
    assert [r["status"] for r in found[returned]] == ["undeliverable"]
    assert [r["status"] for r in found[kept]] == ["delivered"]
    assert address_returned(runtime) == {returned: True, kept: False}

    later = AS_OF + timedelta(days=30)  # DPD 61: the final demand letter
    moment = OPEN_FOR_ALL + timedelta(days=30)
    run_daily_outreach(outreach_at(runtime, moment, approved=True), later)

    found = letters(runtime)
    assert [(r["as_of"], r["status"], r["suppression"]) for r in found[returned]] == [
        (AS_OF, "undeliverable", None),
        (later, "held", "no_contact_point"),
    ]
    # The customer whose letter arrived gets the final demand through Lob.
    final = found[kept][-1]
    assert (final["as_of"], final["status"], final["provider"]) == (later, "sent", "lob-us")
    at_lob = {row.id for row in lob.ledger.rows() if row.channel == "letter"}
    assert at_lob == {kept_id, returned_id, final["gateway_message_id"]}


def test_forged_stale_and_unsigned_events_are_refused_and_change_nothing(lob: Lob) -> None:
    runtime = lob.runtime
    ((account, letter_id),) = mail_letters(lob, 1)
    returned = lob.event(letter_id, "letter.returned_to_sender")
    stamp = str(int(NOW.timestamp() * 1000))

    forged = lob.signed(returned, secret="a-guessed-secret")
    tampered = lob.post(
        returned.replace(b"returned_to_sender", b"delivered"),
        {
            "Lob-Signature-Timestamp": stamp,
            "Lob-Signature": lob_signature(WEBHOOK_SECRET, stamp, returned),
        },
    )
    stale = lob.signed(returned, at=NOW.timestamp() - TOLERANCE - 60)  # a replay of an old call
    ahead = lob.signed(returned, at=NOW.timestamp() + TOLERANCE + 60)
    unsigned = lob.post(returned, {})
    no_timestamp = lob.post(
        returned, {"Lob-Signature": lob_signature(WEBHOOK_SECRET, stamp, returned)}
    )
    for name, answer in {
        "forged": forged,
        "tampered": tampered,
        "stale": stale,
        "ahead": ahead,
        "unsigned": unsigned,
        "no timestamp": no_timestamp,
    }.items():
        assert answer.status_code == 401, (name, answer.status_code, answer.text)
        assert letter_id not in answer.text, name

    assert webhook_events(runtime) == []
    assert [r["status"] for r in letters(runtime)[account]] == ["sent"]
    assert address_returned(runtime) == {account: False}

    # The same event, signed now with the webhook's secret, is taken.
    assert lob.signed(returned).is_success
    assert [r["status"] for r in letters(runtime)[account]] == ["undeliverable"]
    assert address_returned(runtime) == {account: True}
