"""A letter carries its postal address as fields (outbox_message.address, and the adapter's
OutboundMessage.address); a dead device token or a returned address is no contact point."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest
from sqlalchemy import select, update

from adapters import (
    DeliveryStatus,
    GatewayAdapter,
    OutboundMessage,
    RejectCode,
    SendOutcome,
    SendResult,
    StatusReport,
)
from dunning.bootstrap import Runtime
from dunning.db.tables import ACCOUNT, CUSTOMER, OUTBOX
from dunning.errors import TransientGatewayError
from dunning.services.daily import Outreach, poll_receipts, run_daily_outreach
from dunning.types import Channel
from tests.factories import CN_CUSTOMER, OPEN_FOR_ALL, US_CUSTOMER, add_account
from tests.helpers import invoke, outreach_at, write_csv

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


class DeadTokens(GatewayAdapter):
    """A push provider that knows none of the device tokens (FCM's UNREGISTERED)."""

    name = "dead-tokens"
    channel = Channel.PUSH

    async def send(self, batch: Sequence[OutboundMessage]) -> list[SendResult]:
        return [
            SendResult(
                m.idempotency_key,
                SendOutcome.REJECTED,
                reason="UNREGISTERED",
                code=RejectCode.INVALID_NUMBER.value,
            )
            for m in batch
        ]

    async def fetch_statuses(self, gateway_message_ids: Sequence[str]) -> list[StatusReport]:
        return []


class ReturnsLetters(Keeps):
    """Takes every message; every letter comes back (undeliverable)."""

    async def fetch_statuses(self, gateway_message_ids: Sequence[str]) -> list[StatusReport]:
        return [
            StatusReport(gid, "", DeliveryStatus.UNDELIVERABLE, GONE, "returned_to_sender")
            for gid in gateway_message_ids
        ]


def customer(runtime: Runtime, account_id: int) -> dict[str, Any]:
    a, c = ACCOUNT.c, CUSTOMER.c
    with runtime.engine.connect() as connection:
        row = connection.execute(
            select(CUSTOMER).join(ACCOUNT, a.customer_id == c.id).where(a.id == account_id)
        ).one()
    return dict(row._mapping)


def test_a_push_provider_calling_a_token_dead_marks_it_and_the_next_push_goes_by_sms(
    runtime: Runtime,
) -> None:
    def adapters(channel: Channel) -> GatewayAdapter:
        return DeadTokens() if channel == Channel.PUSH else Keeps()

    with runtime.unit_of_work() as c:
        account = add_account(c, dpd=1, as_of=AS_OF)
    parts = outreach_at(runtime, approved=True, adapters=adapters)
    try:
        summary = run_daily_outreach(parts, AS_OF)
    finally:
        parts.close()
    assert summary["this_run"]["dispatch"]["dead_contacts"] == 1
    assert customer(runtime, account)["push_token_invalid_at"] is not None
    with runtime.engine.connect() as connection:
        rows = connection.execute(select(OUTBOX.c.channel, OUTBOX.c.status)).all()
    assert [tuple(r) for r in rows] == [("push", "failed")]


def test_a_returned_letter_marks_the_address_and_holds_the_next_letter(runtime: Runtime) -> None:
    with runtime.unit_of_work() as c:
        account = add_account(c, dpd=31, as_of=AS_OF)
    parts = outreach_at(runtime, approved=True, adapters=lambda channel: ReturnsLetters())
    try:
        run_daily_outreach(parts, AS_OF)
        assert poll_receipts(parts).recorded == 1
    finally:
        parts.close()
    assert customer(runtime, account)["address_invalid_at"] is not None
    later = AS_OF + timedelta(days=30)  # DPD 61: the final demand letter
    parts = outreach_at(runtime, OPEN_FOR_ALL + timedelta(days=30), approved=True)
    try:
        run_daily_outreach(parts, later)
    finally:
        parts.close()
    with runtime.engine.connect() as connection:
        rows = connection.execute(
            select(OUTBOX.c.as_of, OUTBOX.c.status, OUTBOX.c.suppression)
            .where(OUTBOX.c.channel == "letter")
            .order_by(OUTBOX.c.id)
        ).all()
    assert [tuple(r)[1:] for r in rows] == [
        ("undeliverable", None),
        ("held", "no_contact_point"),
    ]


def test_an_import_clears_a_dead_token_or_address_only_when_it_brings_a_new_one(
    capsys: pytest.CaptureFixture[str], runtime: Runtime, tmp_path: Path
) -> None:
    header = ["external_id", "name", "locale", "push_token", "address_line1", "city", "country"]
    row = ["C1", "Ann Lee", "en-US", "tok-1", "1 Main St", "Springfield", "US"]
    path = write_csv(tmp_path / "customers.csv", header, [row])
    assert invoke(capsys, "import", "customers", str(path)).code == 0
    with runtime.unit_of_work() as c:
        c.execute(update(CUSTOMER).values(push_token_invalid_at=GONE, address_invalid_at=GONE))

    def dead() -> tuple[bool, bool]:
        with runtime.engine.connect() as connection:
            found = connection.execute(
                select(CUSTOMER.c.push_token_invalid_at, CUSTOMER.c.address_invalid_at)
            ).one()
        return found[0] is not None, found[1] is not None

    assert invoke(capsys, "import", "customers", str(path)).code == 0
    assert dead() == (True, True)  # the same token and address: still dead
    write_csv(path, header, [[*row[:3], "tok-2", *row[4:]]])
    assert invoke(capsys, "import", "customers", str(path)).code == 0
    assert dead() == (False, True)
    write_csv(path, header, [[*row[:3], "tok-2", "2 Elm St", *row[5:]]])
    assert invoke(capsys, "import", "customers", str(path)).code == 0
    assert dead() == (False, False)


class Unreachable(Keeps):
    """Takes messages, but cannot be asked about them afterwards."""

    async def fetch_statuses(self, gateway_message_ids: Sequence[str]) -> list[StatusReport]:
        raise TransientGatewayError("cannot reach http://gateway.invalid")


class Delivers(Keeps):
    async def fetch_statuses(self, gateway_message_ids: Sequence[str]) -> list[StatusReport]:
        return [StatusReport(g, "", DeliveryStatus.DELIVERED, GONE) for g in gateway_message_ids]


def test_one_provider_that_cannot_be_asked_leaves_the_others_receipts_recorded(
    runtime: Runtime,
) -> None:
    def adapters(channel: Channel) -> GatewayAdapter:
        return Unreachable() if channel == Channel.PUSH else Delivers()

    with runtime.unit_of_work() as c:
        add_account(c, dpd=1, as_of=AS_OF)  # a push
        add_account(c, dpd=31, as_of=AS_OF)  # a letter
    parts = outreach_at(runtime, approved=True, adapters=adapters)
    try:
        run_daily_outreach(parts, AS_OF)
        report = poll_receipts(parts)
    finally:
        parts.close()
    assert report.recorded == 1
    assert report.unanswered == {"push": "cannot reach http://gateway.invalid"}
    with runtime.engine.connect() as connection:
        rows = connection.execute(select(OUTBOX.c.channel, OUTBOX.c.status)).all()
    assert sorted(tuple(r) for r in rows) == [("letter", "delivered"), ("push", "sent")]
