"""A letter carries its postal address as fields (outbox_message.address, and the adapter's
OutboundMessage.address); a dead device token or a returned address is no contact point."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

import pytest
from sqlalchemy import select

from adapters import GatewayAdapter, OutboundMessage, SendOutcome, SendResult, StatusReport
from dunning.bootstrap import Runtime
from dunning.db.tables import OUTBOX
from dunning.services.daily import Outreach, run_daily_outreach
from dunning.types import Channel
from tests.factories import CN_CUSTOMER, OPEN_FOR_ALL, US_CUSTOMER, add_account
from tests.helpers import outreach_at

AS_OF = OPEN_FOR_ALL.date()
GONE = datetime(2026, 11, 1, tzinfo=UTC)


class Keeps(GatewayAdapter):
    """Takes every message and keeps what the adapter was given."""

    name = "keeps"
    channel = Channel.LETTER
    seen: ClassVar[list[OutboundMessage]] = []

    async def send(self, batch: Sequence[OutboundMessage]) -> list[SendResult]:
        Keeps.seen.extend(batch)
        return [
            SendResult(m.idempotency_key, SendOutcome.ACCEPTED, f"k-{i}")
            for i, m in enumerate(batch)
        ]

    async def fetch_statuses(self, gateway_message_ids: Sequence[str]) -> list[StatusReport]:
        return []


@pytest.fixture
def outreach(runtime: Runtime) -> Iterator[Outreach]:
    Keeps.seen = []
    parts = outreach_at(runtime, approved=True, adapters=lambda channel: Keeps())
    yield parts
    parts.close()


def outbox(env: Outreach) -> dict[int, list[dict[str, Any]]]:
    found: dict[int, list[dict[str, Any]]] = {}
    with env.runtime.engine.connect() as c:
        for row in c.execute(select(OUTBOX).order_by(OUTBOX.c.id)):
            found.setdefault(row.account_id, []).append(dict(row._mapping))
    return found


def test_letters_carry_their_address_as_fields_and_other_channels_none(
    outreach: Outreach,
) -> None:
    with outreach.runtime.unit_of_work() as c:
        us_letter = add_account(c, dpd=31, as_of=AS_OF)
        cn_letter = add_account(c, dpd=31, as_of=AS_OF, jurisdiction="CN")
        us_sms = add_account(c, dpd=3, as_of=AS_OF)
    run_daily_outreach(outreach, AS_OF)
    rows = outbox(outreach)
    (letter,) = [r for r in rows[us_letter] if r["channel"] == "letter"]
    assert letter["address"] == {
        "name": US_CUSTOMER["name"],
        "lines": [US_CUSTOMER["address_line1"]],
        "city": US_CUSTOMER["city"],
        "region": US_CUSTOMER["region"],
        "postal_code": US_CUSTOMER["postal_code"],
        "country": US_CUSTOMER["country"],
    }
    (cn,) = [r for r in rows[cn_letter] if r["channel"] == "letter"]
    assert cn["address"]["city"] == CN_CUSTOMER["city"]
    assert all(r["address"] is None for r in rows[us_sms])
    given = {m.idempotency_key: m for m in Keeps.seen if m.channel == Channel.LETTER}
    assert given[letter["idempotency_key"]].address == letter["address"]


def test_a_returned_address_and_a_dead_device_token_are_no_contact_point(
    outreach: Outreach,
) -> None:
    with outreach.runtime.unit_of_work() as c:
        returned = add_account(c, dpd=31, as_of=AS_OF, address_invalid_at=GONE)
        dead = add_account(c, dpd=1, as_of=AS_OF, push_token_invalid_at=GONE)
        alive = add_account(c, dpd=1, as_of=AS_OF)
    run_daily_outreach(outreach, AS_OF)
    rows = outbox(outreach)
    letters = [r for r in rows.get(returned, []) if r["channel"] == "letter"]
    assert [(r["status"], r["suppression"]) for r in letters] == [("held", "no_contact_point")]
    # The push step falls back to SMS when the customer has no push contact point.
    assert [(r["channel"], r["status"]) for r in rows[dead]] == [("sms", "sent")]
    assert [(r["channel"], r["status"]) for r in rows[alive]] == [("push", "sent")]
