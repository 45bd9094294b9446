"""Delivery receipts: poll gateways for sent messages, or take them from the webhook; record."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, select, update

from adapters.base import AdapterFactory, DeliveryStatus, SentMessage, StatusReport
from dunning.db.models import utcnow
from dunning.db.sql import chunked, insert_ignoring_conflicts
from dunning.db.tables import CUSTOMER, EVENT, NONCE, OUTBOX
from dunning.errors import DunningError, ReceiptConflict
from dunning.services.dispatch.routing import Routing
from dunning.types import Channel, OutboxStatus, Suppression

log = logging.getLogger("dunning.receipts")


_FINAL = {
    DeliveryStatus.DELIVERED: OutboxStatus.DELIVERED,
    DeliveryStatus.FAILED: OutboxStatus.FAILED,
    DeliveryStatus.UNDELIVERABLE: OutboxStatus.UNDELIVERABLE,
}


@dataclass
class ReceiptReport:
    checked: int = 0
    recorded: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    unanswered: dict[str, str] = field(default_factory=dict)
    """Providers that could not be asked, with why: their messages are asked again next poll."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "checked": self.checked,
            "recorded": self.recorded,
            "by_status": dict(self.by_status),
            "unanswered": dict(self.unanswered),
        }


EVENT_ID_LENGTH = 128
"""delivery_event.event_id's width: a longer gateway event id is stored as its digest."""

_IN_FLIGHT = (OutboxStatus.PLANNED.value, OutboxStatus.SENDING.value)


def stored_event_id(event_id: str) -> str:
    """The event id as stored: as given, or `sha256:<hex>` when it is longer than the column
    (still one stored id per event id, so a replay is still recognised)."""
    if len(event_id) <= EVENT_ID_LENGTH:
        return event_id
    return "sha256:" + hashlib.sha256(event_id.encode("utf-8")).hexdigest()


def _by_gateway_id(
    connection: Connection, reports: Sequence[StatusReport]
) -> dict[str, tuple[int, str]]:
    """(outbox id, idempotency key) of the messages the reports name by gateway id."""
    o = OUTBOX.c
    found: dict[str, tuple[int, str]] = {}
    for chunk in chunked([r.gateway_message_id for r in reports], 900):
        query = select(o.gateway_message_id, o.id, o.idempotency_key).where(
            o.gateway_message_id.in_(chunk)
        )
        found.update({row[0]: (row[1], row[2]) for row in connection.execute(query)})
    return found


def _in_flight(
    connection: Connection, reports: Sequence[StatusReport]
) -> dict[str, tuple[int, str]]:
    """Receipts for messages whose send is not recorded yet, by idempotency key.

    A gateway may push a receipt before the dispatcher has written the gateway's answer (the
    send and its record are two steps): such a message has no gateway id yet and is still
    `sending` (or `planned` again, its dispatcher having died). Its rows are locked, so a
    dispatcher recording the send waits for this transaction and then sees its receipt.
    """
    o = OUTBOX.c
    found: dict[str, tuple[int, str]] = {}
    for chunk in chunked([r.idempotency_key for r in reports], 900):
        query = select(o.idempotency_key, o.id, o.status).where(
            o.idempotency_key.in_(chunk),
            o.gateway_message_id.is_(None),
            o.status.in_(_IN_FLIGHT),
        )
        if connection.dialect.name == "postgresql":
            query = query.with_for_update()
        found.update({row[0]: (row[1], row[2]) for row in connection.execute(query)})
    return found


def _crossed(report: StatusReport, outbox: dict[str, tuple[int, str]]) -> bool:
    """Whether the message the report names by gateway id has another idempotency key (a
    report without a key, from an adapter whose gateway gives none, is not checked)."""
    found = outbox.get(report.gateway_message_id)
    return found is not None and bool(report.idempotency_key) and found[1] != report.idempotency_key


def record_receipts(
    connection: Connection,
    reports: Sequence[StatusReport],
    *,
    source: str,
    skip_conflicts: bool = False,
) -> int:
    """Record receipts as delivery events and move sent messages to their final status.

    Returns how many events were new: a receipt already recorded (same event id) changes
    nothing, so polling twice or a replayed webhook is harmless. The first final status wins.
    A receipt for a message whose send is not recorded yet is kept, and the message takes its
    status when the send is recorded (apply_early_receipts); one for no message is ignored.

    A receipt whose gateway id names one message and whose idempotency key another is not
    trusted for either: ReceiptConflict, before anything is written (the caller's transaction
    then records none of `reports`); with skip_conflicts, such receipts are left out instead.
    """
    final = [r for r in reports if r.status != DeliveryStatus.PENDING]
    if not final:
        return 0
    outbox = _by_gateway_id(connection, final)
    unmatched = [r for r in final if r.gateway_message_id not in outbox]
    early = _in_flight(connection, unmatched) if unmatched else {}
    late = [r for r in unmatched if r.idempotency_key not in early]
    if late:
        # A send recorded while _in_flight waited for its row has its gateway id now.
        outbox.update(_by_gateway_id(connection, late))
    crossed = [r for r in final if _crossed(r, outbox)]
    if crossed:
        if not skip_conflicts:
            raise ReceiptConflict(
                f"{len(crossed)} receipt(s) name one message by gateway message id and "
                "another by idempotency key; none was recorded"
            )
        log.warning(
            "%s: %d receipt(s) name one message by gateway message id and another by "
            "idempotency key; left out",
            source,
            len(crossed),
        )
        final = [r for r in final if not _crossed(r, outbox)]
    now = utcnow()
    events = []
    for report in final:
        found = outbox.get(report.gateway_message_id) or early.get(report.idempotency_key)
        if found is None:
            continue
        event_id = report.event_id or f"{source}:{report.gateway_message_id}:{report.status}"
        events.append(
            {
                "outbox_id": found[0],
                "status": report.status.value,
                "source": source,
                "occurred_at": report.occurred_at,
                "recorded_at": now,
                "reason": (report.reason or None) and report.reason[:500],
                "event_id": stored_event_id(event_id),
            }
        )
    if not events:
        return 0
    ids = [event["event_id"] for event in events]
    known: set[str] = set()
    for chunk in chunked(ids, 900):
        known.update(
            row[0]
            for row in connection.execute(
                select(EVENT.c.event_id).where(EVENT.c.event_id.in_(chunk))
            )
        )
    fresh = list(
        {event["event_id"]: event for event in events if event["event_id"] not in known}.values()
    )
    insert_ignoring_conflicts(connection, EVENT, fresh, "event_id")
    moves = [
        {
            "_id": event["outbox_id"],
            "status": _FINAL[DeliveryStatus(str(event["status"]))].value,
            "final_at": event["occurred_at"],
        }
        for event in fresh
    ]
    if moves:
        _move_sent(connection, moves, now)
    return len(fresh)


def _move_sent(connection: Connection, moves: Sequence[dict[str, Any]], now: datetime) -> None:
    o = OUTBOX.c
    connection.execute(
        update(OUTBOX)
        .where(o.id == bindparam("_id"), o.status == OutboxStatus.SENT.value)
        .values(status=bindparam("status"), final_at=bindparam("final_at"), updated_at=now),
        moves,
    )
    returned = [m["_id"] for m in moves if m["status"] == OutboxStatus.UNDELIVERABLE.value]
    if returned:
        _addresses_returned(connection, returned, now)


def _addresses_returned(connection: Connection, letters: Sequence[int], now: datetime) -> None:
    """A letter the mail came back with (undeliverable): its customer's address is no address
    (customer.address_invalid_at) until a new one is imported, and their waiting letters are
    held `no_contact_point` instead of being printed and mailed to it again."""
    o, c = OUTBOX.c, CUSTOMER.c
    customers: set[int] = set()
    for chunk in chunked(list(letters), 900):
        customers.update(
            connection.execute(
                select(o.customer_id).where(o.id.in_(chunk), o.channel == Channel.LETTER.value)
            ).scalars()
        )
    for chunk in chunked(sorted(customers), 900):
        connection.execute(
            update(CUSTOMER)
            .where(c.id.in_(chunk), c.address_invalid_at.is_(None))
            .values(address_invalid_at=now, updated_at=now)
        )
        connection.execute(
            update(OUTBOX)
            .where(
                o.customer_id.in_(chunk),
                o.channel == Channel.LETTER.value,
                o.status == OutboxStatus.PLANNED.value,
            )
            .values(
                status=OutboxStatus.HELD.value,
                suppression=Suppression.NO_CONTACT_POINT.value,
                final_at=now,
                updated_at=now,
            )
        )


def apply_early_receipts(connection: Connection, sent: Sequence[int], now: datetime) -> int:
    """Give messages just recorded as sent the final status of a receipt that came first.

    Called in the transaction that records the sends, after the rows are written: a receipt
    recorded earlier is found here, and one being recorded now waits for these rows' locks
    and then finds them sent (record_receipts). Returns how many messages moved.
    """
    e = EVENT.c
    first: dict[int, dict[str, Any]] = {}
    for chunk in chunked(list(sent), 900):
        rows = connection.execute(
            select(e.outbox_id, e.status, e.occurred_at)
            .where(e.outbox_id.in_(chunk), e.source != "send")
            .order_by(e.id)
        )
        for outbox_id, status, occurred_at in rows:
            first.setdefault(
                outbox_id,
                {
                    "_id": outbox_id,
                    "status": _FINAL[DeliveryStatus(status)].value,
                    "final_at": occurred_at,
                },
            )
    if first:
        _move_sent(connection, list(first.values()), now)
    return len(first)


def reconcile_receipts(
    engine: Engine, factory: AdapterFactory | Routing, *, chunk: int = 1000
) -> ReceiptReport:
    """Poll the gateways for every message still `sent`, and record what they say.

    Each message is asked of the provider that took it (outbox_message.provider; a message
    sent before providers were recorded, of its channel's default provider)."""
    routing = factory if isinstance(factory, Routing) else Routing.by_channel(factory)
    report = ReceiptReport()
    o = OUTBOX.c
    last_id = 0
    while True:
        with engine.connect() as connection:
            rows = connection.execute(
                select(
                    o.id,
                    o.channel,
                    o.provider,
                    o.gateway_message_id,
                    o.idempotency_key,
                    o.recipient,
                    o.sent_at,
                )
                .where(
                    o.status == OutboxStatus.SENT.value,
                    o.id > last_id,
                    o.gateway_message_id.is_not(None),
                )
                .order_by(o.id)
                .limit(chunk)
            ).all()
        if not rows:
            break
        last_id = rows[-1][0]
        by_provider: dict[str, list[SentMessage]] = defaultdict(list)
        for row in rows:
            provider = row.provider
            if provider is None or not routing.knows(provider):
                # Sent before providers were recorded, or through a provider since renamed.
                provider = routing.default(Channel(row.channel)) or row.channel
            by_provider[provider].append(
                SentMessage(
                    gateway_message_id=row.gateway_message_id,
                    idempotency_key=row.idempotency_key,
                    recipient=row.recipient or "",
                    sent_at=row.sent_at,
                )
            )
        reports = asyncio.run(_fetch(routing, by_provider, report.unanswered))
        report.checked += len(rows)
        for item in reports:
            report.by_status[item.status.value] += 1
        with engine.begin() as connection:
            # Asked by gateway id; a gateway that answers with another message's key is not
            # believed for it, and does not stop the others' receipts.
            report.recorded += record_receipts(
                connection, reports, source="poll", skip_conflicts=True
            )
    return report


async def _fetch(
    routing: Routing, by_provider: dict[str, list[SentMessage]], unanswered: dict[str, str]
) -> list[StatusReport]:
    async def one(provider: str, messages: list[SentMessage]) -> list[StatusReport]:
        try:
            async with routing.build(provider) as adapter:
                return await adapter.fetch_receipts(messages)
        except DunningError as exc:
            # One provider's failure (unreachable, a results file it cannot read) must not
            # stop the others' receipts: its messages stay `sent` and are asked again.
            log.error("receipts from provider %s: %s", provider, exc)
            unanswered[provider] = str(exc)[:300]
            return []

    groups = await asyncio.gather(*(one(name, sent) for name, sent in by_provider.items()))
    return [item for group in groups for item in group]


class DatabaseReceiptSink:
    """The webhook's sink: receipts and seen nonces go to the Dunning database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record(self, reports: Sequence[StatusReport]) -> int:
        with self.engine.begin() as connection:
            return record_receipts(connection, reports, source="webhook")

    def seen(self, nonce: str) -> bool:
        with self.engine.begin() as connection:
            exists = connection.execute(select(NONCE.c.nonce).where(NONCE.c.nonce == nonce)).first()
            if exists:
                return True
            insert_ignoring_conflicts(
                connection, NONCE, [{"nonce": nonce, "seen_at": utcnow()}], "nonce"
            )
            return False
