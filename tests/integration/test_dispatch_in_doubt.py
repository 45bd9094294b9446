"""A gateway that does not deduplicate never gets a message twice through the daily run.

The vendor here takes the message and then lets the answer time out. The dispatcher must
leave it `sending`, claim it again only after the lease, hand it to the adapter `in_doubt`,
and the adapter must ask the vendor before sending: the vendor's ledger holds it once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from adapters import (
    Classified,
    HttpGatewayAdapter,
    OutboundMessage,
    SendOutcome,
    SendResult,
    StatusReport,
    VendorRequest,
)
from dunning.bootstrap import Runtime
from dunning.db.tables import OUTBOX
from dunning.services.daily.run import run_daily_outreach
from dunning.types import Channel
from tests.factories import OPEN_FOR_ALL, add_account
from tests.helpers import outreach_at

AS_OF = OPEN_FOR_ALL.date()
LEASE = timedelta(seconds=120)  # config/channels.yaml dispatch.lease_seconds (the default)


@dataclass
class Vendor:
    """Keeps every message it takes (by our reference); times out its first `drop` answers."""

    drop: int = 1
    taken: dict[str, int] = field(default_factory=dict)  # reference -> times taken
    lookups: int = 0

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/lookup":
            self.lookups += 1
            ref = request.url.params["ref"]
            return httpx.Response(200, json={"sid": f"V-{ref}" if ref in self.taken else None})
        (item,) = json.loads(request.content)["messages"]
        self.taken[item["ref"]] = self.taken.get(item["ref"], 0) + 1
        if self.drop:
            self.drop -= 1
            raise httpx.ReadTimeout("the answer never came")
        return httpx.Response(200, json={"sid": f"V-{item['ref']}"})


class NoDedupSms(HttpGatewayAdapter):
    name = "test-no-dedup-sms"
    channel = Channel.SMS
    max_batch = 1
    default_url = "https://vendor.test"
    seen: list[OutboundMessage]

    def send_request(self, batch: Sequence[OutboundMessage]) -> VendorRequest:
        self.seen.extend(batch)
        refs = [{"ref": m.idempotency_key, "to": m.recipient, "text": m.body} for m in batch]
        return VendorRequest("POST", "/send", json={"messages": refs})

    def send_answers(self, batch: Sequence[OutboundMessage], payload: Any) -> Classified:
        (message,) = batch
        key = message.idempotency_key
        return {key: SendResult(key, SendOutcome.ACCEPTED, payload["sid"])}

    async def lookup(self, message: OutboundMessage) -> SendResult | None:
        self.seen.append(message)
        answer = await self.call(
            VendorRequest("GET", "/lookup", params={"ref": message.idempotency_key})
        )
        sid = answer.json()["sid"]
        if sid is None:
            return None
        return SendResult(message.idempotency_key, SendOutcome.ACCEPTED, sid)

    def status_request(self, gateway_message_ids: Sequence[str]) -> VendorRequest:
        return VendorRequest("GET", "/statuses")

    def status_answers(self, payload: Any) -> list[StatusReport]:
        return []


@pytest.fixture
def vendor() -> Iterator[Vendor]:
    yield Vendor()


def rows(runtime: Runtime) -> list[Mapping[str, Any]]:
    with runtime.engine.connect() as c:
        return [dict(r._mapping) for r in c.execute(select(OUTBOX).order_by(OUTBOX.c.id))]


def test_a_send_that_timed_out_is_looked_up_after_the_lease_and_not_sent_again(
    runtime: Runtime, vendor: Vendor
) -> None:
    with runtime.unit_of_work() as c:
        add_account(c, dpd=3, as_of=AS_OF, jurisdiction="US")
    seen: list[OutboundMessage] = []

    def factory(channel: Channel) -> NoDedupSms:
        adapter = NoDedupSms(transport=httpx.MockTransport(vendor.handle))
        adapter.seen = seen
        return adapter

    first = run_daily_outreach(outreach_at(runtime, adapters=factory), AS_OF)
    (row,) = rows(runtime)
    assert first["this_run"]["dispatch"]["in_doubt"] == 1
    assert (row["status"], row["attempts"], row["claim_token"] is not None) == ("sending", 1, True)
    (message,) = seen
    assert (message.in_doubt, message.jurisdiction, message.country) == (False, "US", "US")
    assert message.template_id == row["template_id"] and message.template_id

    # Within the lease, nothing claims it: the vendor's records get time to catch up.
    within = run_daily_outreach(
        outreach_at(runtime, OPEN_FOR_ALL + LEASE / 2, adapters=factory), AS_OF
    )
    assert within["this_run"]["dispatch"]["claimed"] == 0
    assert rows(runtime)[0]["status"] == "sending"

    later = OPEN_FOR_ALL + LEASE + timedelta(seconds=1)
    second = run_daily_outreach(outreach_at(runtime, later, adapters=factory), AS_OF)
    (row,) = rows(runtime)
    assert second["this_run"]["dispatch"]["duplicates"] == 1
    assert (row["status"], row["gateway_message_id"]) == ("sent", f"V-{row['idempotency_key']}")
    assert vendor.taken == {row["idempotency_key"]: 1}  # sent once, never twice
    assert vendor.lookups == 1
    assert [m.in_doubt for m in seen] == [False, True]


def test_an_in_doubt_message_the_vendor_never_got_is_sent_after_the_lookup(
    runtime: Runtime,
) -> None:
    vendor = Vendor(drop=0)
    with runtime.unit_of_work() as c:
        add_account(c, dpd=3, as_of=AS_OF, jurisdiction="US")
    # A dispatcher died after its claim, before the send: the row is `sending`, lease over.
    seen: list[OutboundMessage] = []

    class Crashing(NoDedupSms):
        def send_request(self, batch: Sequence[OutboundMessage]) -> VendorRequest:
            raise KeyboardInterrupt  # stands for the process dying before the request

    def crashing(channel: Channel) -> NoDedupSms:
        adapter = Crashing(transport=httpx.MockTransport(vendor.handle))
        adapter.seen = seen
        return adapter

    with pytest.raises(KeyboardInterrupt):
        run_daily_outreach(outreach_at(runtime, adapters=crashing), AS_OF)
    assert rows(runtime)[0]["status"] == "sending"

    def factory(channel: Channel) -> NoDedupSms:
        adapter = NoDedupSms(transport=httpx.MockTransport(vendor.handle))
        adapter.seen = seen
        return adapter

    later = OPEN_FOR_ALL + LEASE + timedelta(seconds=1)
    run_daily_outreach(outreach_at(runtime, later, adapters=factory), AS_OF)
    (row,) = rows(runtime)
    assert row["status"] == "sent" and vendor.taken == {row["idempotency_key"]: 1}
    assert vendor.lookups == 1
