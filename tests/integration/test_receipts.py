"""Receipts recorded in the database: early receipts, unknown messages, long event ids."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from adapters import DeliveryStatus, GatewayAdapter, OutboundMessage, SendResult, StatusReport
from adapters.base import SentMessage
from dunning.bootstrap import Runtime
from dunning.db.tables import EVENT, OUTBOX
from dunning.services.daily import Outreach
from dunning.services.daily.run import run_daily_outreach
from dunning.services.dispatch.receipts import (
    DatabaseReceiptSink,
    apply_early_receipts,
    reconcile_receipts,
    record_receipts,
)
from dunning.types import Channel
from dunning.webhooks import create_webhook_app, sign
from tests.factories import OPEN_FOR_ALL, add_account
from tests.helpers import outreach_at

AS_OF = OPEN_FOR_ALL.date()
RECEIVED = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
SECRET = "whsec-0123456789abcdef"
SIGNED_AT = 1_800_000_000


@pytest.fixture
def outreach(runtime: Runtime) -> Iterator[Outreach]:
    parts = outreach_at(runtime)
    yield parts
    parts.close()


class ReceiptsFirst:
    """A gateway that pushes each message's receipt to the webhook's sink before it answers the
    send: what a fast gateway does to a dispatcher that records the answer after the request."""

    def __init__(self, inner: GatewayAdapter, sink: DatabaseReceiptSink) -> None:
        self.inner, self.sink = inner, sink
        self.max_batch = inner.max_batch
        self.recorded = 0

    async def __aenter__(self) -> ReceiptsFirst:
        await self.inner.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.inner.__aexit__(*exc)

    async def send(self, batch: Sequence[OutboundMessage]) -> list[SendResult]:
        results = await self.inner.send(batch)
        self.recorded += self.sink.record(
            [
                StatusReport(
                    gateway_message_id=result.gateway_message_id or "",
                    idempotency_key=result.idempotency_key,
                    status=DeliveryStatus.UNDELIVERABLE,
                    occurred_at=RECEIVED,
                    event_id=f"evt-{result.idempotency_key}",
                )
                for result in results
            ]
        )
        return results


def outbox(env: Outreach) -> list[dict[str, Any]]:
    with env.runtime.engine.connect() as c:
        return [dict(r._mapping) for r in c.execute(select(OUTBOX).order_by(OUTBOX.c.id))]


def receipt_for(
    row: dict[str, Any], status: DeliveryStatus, event_id: str | None = None
) -> StatusReport:
    """The gateway's receipt for an outbox row (as it was sent)."""
    return StatusReport(
        gateway_message_id=row["gateway_message_id"],
        idempotency_key=row["idempotency_key"],
        status=status,
        occurred_at=RECEIVED,
        event_id=event_id,
    )


def post_receipts(env: Outreach, reports: Sequence[StatusReport]) -> httpx.Response:
    """POST the receipts, signed, to the webhook over the engine's sink, as a gateway does."""
    app = create_webhook_app(
        SECRET, DatabaseReceiptSink(env.runtime.engine), clock=lambda: SIGNED_AT
    )
    body = json.dumps(
        [
            {
                "event_id": r.event_id,
                "gateway_message_id": r.gateway_message_id,
                "idempotency_key": r.idempotency_key,
                "status": r.status.value,
                "occurred_at": r.occurred_at.isoformat(),
                "reason": r.reason,
            }
            for r in reports
        ]
    ).encode()

    async def go() -> httpx.Response:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://dunning.test"
        ) as client:
            return await client.post(
                "/webhooks/receipts/sms",
                content=body,
                headers={"Dunning-Signature": sign(SECRET, body, SIGNED_AT)},
            )

    return asyncio.run(go())


def events(env: Outreach) -> list[tuple[int, str, str]]:
    e = EVENT.c
    with env.runtime.engine.connect() as c:
        query = select(e.outbox_id, e.source, e.status).order_by(e.outbox_id, e.source)
        return [tuple(row) for row in c.execute(query)]  # type: ignore[misc]


def test_a_receipt_pushed_before_the_send_is_recorded_gives_the_message_its_status(
    runtime: Runtime,
) -> None:
    with runtime.unit_of_work() as c:
        for dpd in (3, 7, 14):
            add_account(c, dpd=dpd, as_of=AS_OF)
    build = outreach_at(runtime).dispatcher.adapters
    gateways: list[ReceiptsFirst] = []

    def factory(channel: Channel) -> ReceiptsFirst:
        gateways.append(ReceiptsFirst(build(channel), DatabaseReceiptSink(runtime.engine)))
        return gateways[-1]

    outreach = outreach_at(runtime, adapters=factory)
    run_daily_outreach(outreach, AS_OF)
    rows = outbox(outreach)
    assert len(rows) == 3
    # Each receipt was kept although its message was still `sending` when it came...
    assert sum(g.recorded for g in gateways) == 3
    # ... and the message took it when the dispatcher recorded the send.
    assert [row["status"] for row in rows] == ["undeliverable"] * 3
    assert all(row["gateway_message_id"] for row in rows)
    assert all(row["final_at"] == RECEIVED for row in rows)
    assert events(outreach) == sorted(
        [(row["id"], "send", "sent") for row in rows]
        + [(row["id"], "webhook", "undeliverable") for row in rows]
    )


def test_a_receipt_for_a_message_not_recorded_as_sent_is_applied_when_it_is(
    outreach: Outreach,
) -> None:
    """A dispatcher died after the gateway took the message: the receipt comes while the
    message waits to be claimed again; the next dispatch records the send and the receipt."""
    with outreach.runtime.unit_of_work() as c:
        add_account(c, dpd=3, as_of=AS_OF)
    run_daily_outreach(outreach, AS_OF, dry_run=False)
    [row] = outbox(outreach)
    with outreach.runtime.engine.begin() as c:
        c.execute(
            update(OUTBOX).values(
                status="sending", gateway_message_id=None, sent_at=None, claim_token="dead"
            )
        )
        c.execute(EVENT.delete())
        report = receipt_for(row, DeliveryStatus.DELIVERED)
        assert record_receipts(c, [report], source="webhook") == 1
        # The claim ran out: planned again, as a dispatcher finds it.
        c.execute(update(OUTBOX).values(status="planned", claim_token=None, claimed_until=None))
    run_daily_outreach(outreach, AS_OF)
    [after] = outbox(outreach)
    assert (after["status"], after["gateway_message_id"]) == (
        "delivered",
        row["gateway_message_id"],
    )
    assert events(outreach) == [(row["id"], "send", "sent"), (row["id"], "webhook", "delivered")]


def test_a_receipt_that_comes_while_the_send_is_being_recorded_waits_and_applies(
    outreach: Outreach,
) -> None:
    """The receipt's transaction meets the dispatcher's, which has written the send but not
    committed it: the receipt waits for it (PostgreSQL: the row's lock; SQLite: the write lock),
    then finds the message sent and gives it its final status."""
    with outreach.runtime.unit_of_work() as c:
        add_account(c, dpd=3, as_of=AS_OF)
    run_daily_outreach(outreach, AS_OF)
    [row] = outbox(outreach)
    engine = outreach.runtime.engine
    with engine.begin() as c:
        c.execute(update(OUTBOX).values(status="sending", gateway_message_id=None, sent_at=None))
        c.execute(EVENT.delete())
    report = receipt_for(row, DeliveryStatus.FAILED, event_id="evt-during")
    recorded: list[int] = []
    receipt = threading.Thread(
        target=lambda: recorded.append(DatabaseReceiptSink(engine).record([report]))
    )
    with engine.connect() as dispatcher:
        with dispatcher.begin():
            # What record_results does: lock the claimed row, write the answer.
            mine = select(OUTBOX.c.id).where(OUTBOX.c.id == row["id"])
            if dispatcher.dialect.name == "postgresql":
                mine = mine.with_for_update()
            dispatcher.execute(mine).one()
            dispatcher.execute(
                update(OUTBOX).values(
                    status="sent", gateway_message_id=row["gateway_message_id"], sent_at=RECEIVED
                )
            )
            receipt.start()
            time.sleep(1.0)
            assert receipt.is_alive(), "the receipt did not wait for the dispatcher"
            assert apply_early_receipts(dispatcher, [row["id"]], RECEIVED) == 0
        receipt.join(timeout=30)
    assert recorded == [1]
    [after] = outbox(outreach)
    assert (after["status"], after["final_at"]) == ("failed", RECEIVED)
    assert events(outreach) == [(row["id"], "webhook", "failed")]


def test_a_receipt_for_no_known_message_changes_nothing(outreach: Outreach) -> None:
    with outreach.runtime.unit_of_work() as c:
        add_account(c, dpd=3, as_of=AS_OF)
    run_daily_outreach(outreach, AS_OF)
    before = outbox(outreach)
    stranger = StatusReport(
        gateway_message_id="sms_unknown",
        idempotency_key="not-a-key-of-ours",
        status=DeliveryStatus.DELIVERED,
        occurred_at=RECEIVED,
    )
    assert DatabaseReceiptSink(outreach.runtime.engine).record([stranger]) == 0
    assert outbox(outreach) == before
    assert [source for _, source, _ in events(outreach)] == ["send"]


def test_a_long_event_id_is_stored_as_its_digest_and_its_replay_is_recognised(
    outreach: Outreach,
) -> None:
    with outreach.runtime.unit_of_work() as c:
        add_account(c, dpd=3, as_of=AS_OF)
    run_daily_outreach(outreach, AS_OF)
    [row] = outbox(outreach)
    long_id = "evt_" + "x" * 196  # the webhook takes event ids up to 200 characters
    report = receipt_for(row, DeliveryStatus.DELIVERED, event_id=long_id)
    sink = DatabaseReceiptSink(outreach.runtime.engine)
    assert sink.record([report, report]) == 1
    assert sink.record([report]) == 0
    with outreach.runtime.engine.connect() as c:
        stored = c.execute(select(EVENT.c.event_id).where(EVENT.c.source == "webhook")).scalars()
        assert [len(event_id) for event_id in stored] == [len("sha256:") + 64]
    assert outbox(outreach)[0]["status"] == "delivered"


def test_a_receipt_naming_two_messages_is_refused_and_changes_nothing(
    outreach: Outreach,
) -> None:
    """One message's gateway id with another's idempotency key: 409, whatever else the request
    carries, and neither message moves."""
    with outreach.runtime.unit_of_work() as c:
        for dpd in (3, 7):
            add_account(c, dpd=dpd, as_of=AS_OF)
    run_daily_outreach(outreach, AS_OF)
    first, second = before = outbox(outreach)
    assert [row["status"] for row in before] == ["sent", "sent"]
    crossed = StatusReport(
        gateway_message_id=first["gateway_message_id"],
        idempotency_key=second["idempotency_key"],
        status=DeliveryStatus.UNDELIVERABLE,
        occurred_at=RECEIVED,
        event_id="evt-crossed",
    )
    answer = post_receipts(outreach, [crossed])
    assert answer.status_code == 409 and answer.json()["error"]["code"] == "conflict"
    good = receipt_for(second, DeliveryStatus.DELIVERED, event_id="evt-good")
    assert post_receipts(outreach, [good, crossed]).status_code == 409
    assert outbox(outreach) == before
    assert [source for _, source, _ in events(outreach)] == ["send", "send"]
    # The gateway's own receipts still go through.
    assert post_receipts(outreach, [good]).status_code == 200
    assert [row["status"] for row in outbox(outreach)] == ["sent", "delivered"]


def test_an_early_receipt_is_taken_over_http_and_checked_against_sent_messages(
    outreach: Outreach,
) -> None:
    """A receipt for a message whose send is not recorded yet is kept (matched by idempotency
    key); one that carries a sent message's gateway id with that key is refused."""
    with outreach.runtime.unit_of_work() as c:
        for dpd in (3, 7):
            add_account(c, dpd=dpd, as_of=AS_OF)
    run_daily_outreach(outreach, AS_OF)
    sent, waiting = outbox(outreach)
    with outreach.runtime.engine.begin() as c:
        c.execute(
            update(OUTBOX)
            .where(OUTBOX.c.id == waiting["id"])
            .values(status="sending", gateway_message_id=None, sent_at=None, claim_token="dead")
        )
        c.execute(EVENT.delete().where(EVENT.c.outbox_id == waiting["id"]))
    before = outbox(outreach)
    crossed = StatusReport(
        gateway_message_id=sent["gateway_message_id"],
        idempotency_key=waiting["idempotency_key"],
        status=DeliveryStatus.FAILED,
        occurred_at=RECEIVED,
        event_id="evt-crossed",
    )
    assert post_receipts(outreach, [crossed]).status_code == 409
    assert outbox(outreach) == before and len(events(outreach)) == 1
    early = receipt_for(waiting, DeliveryStatus.UNDELIVERABLE, event_id="evt-early")
    answer = post_receipts(outreach, [early])
    assert answer.status_code == 200 and answer.json() == {"recorded": 1, "duplicates": 0}
    assert outbox(outreach) == before, "kept until the send is recorded"
    # The claim ran out: the next dispatch records the send, and the message takes the receipt.
    with outreach.runtime.engine.begin() as c:
        c.execute(
            update(OUTBOX)
            .where(OUTBOX.c.id == waiting["id"])
            .values(status="planned", claim_token=None, claimed_until=None)
        )
    run_daily_outreach(outreach, AS_OF)
    after = outbox(outreach)
    assert [row["status"] for row in after] == ["sent", "undeliverable"]
    assert after[1]["gateway_message_id"] == waiting["gateway_message_id"]


class SwapsKeys:
    """A gateway that answers a status poll with the first two messages' keys swapped."""

    def __init__(self, inner: GatewayAdapter) -> None:
        self.inner = inner

    async def __aenter__(self) -> SwapsKeys:
        await self.inner.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.inner.__aexit__(*exc)

    async def fetch_statuses(self, gateway_message_ids: Sequence[str]) -> list[StatusReport]:
        reports = await self.inner.fetch_statuses(gateway_message_ids)
        first, second, *rest = sorted(reports, key=lambda r: r.gateway_message_id)
        return [
            replace(first, idempotency_key=second.idempotency_key),
            replace(second, idempotency_key=first.idempotency_key),
            *rest,
        ]

    async def fetch_receipts(self, messages: Sequence[SentMessage]) -> list[StatusReport]:
        return await self.fetch_statuses([m.gateway_message_id for m in messages])


def test_a_polled_receipt_naming_two_messages_is_left_out_and_the_others_recorded(
    outreach: Outreach,
) -> None:
    with outreach.runtime.unit_of_work() as c:
        for dpd in (3, 7, 14):
            add_account(c, dpd=dpd, as_of=AS_OF)
    run_daily_outreach(outreach, AS_OF)
    build = outreach.dispatcher.adapters
    report = reconcile_receipts(outreach.engine, lambda channel: SwapsKeys(build(channel)))
    assert (report.checked, report.recorded) == (3, 1)
    rows = sorted(outbox(outreach), key=lambda row: row["gateway_message_id"])
    assert [row["status"] for row in rows[:2]] == ["sent", "sent"]
    assert rows[2]["status"] != "sent"
    assert [source for _, source, _ in events(outreach)].count("poll") == 1
