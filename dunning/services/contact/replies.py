"""Customers' replies that vendors push (STOP, 退订, START), and the vendors' delivery receipts.

One vendor webhook call is recorded in one transaction (record_vendor_webhook): its receipts as
delivery events, and each reply once per (provider, vendor event id) in `inbound_reply`, with
what it meant. A reply is read against the policy packs of the customers whose phone sent it:

- **opt_out** (a pack's opt_out_keywords: STOP, 退订, ...): every customer with that phone is
  opted out of SMS at once (their waiting SMS held), the source `reply:<provider>`;
- **opt_in** (a pack's opt_in_keywords: START, UNSTOP): lifts an SMS opt-out that was made by
  reply, for each customer with that phone whose every account's pack lists the word. An
  opt-out recorded by an operator or an import is the customer's word given another way, or the
  lender's record: a text does not undo it. A pack without opt_in_keywords never re-subscribes
  (fail closed), and an opt-in never gives consent (sms_consent is the lender's record);
- **other**: anything else; nothing happens.

The text of a reply is never stored or logged: only what it meant.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import Connection, select, update
from sqlalchemy.dialects import postgresql, sqlite

from adapters.base import InboundReply, StatusReport
from dunning.config.compliance import CompliancePack
from dunning.db.models import utcnow
from dunning.db.tables import ACCOUNT, CUSTOMER, REPLY
from dunning.services.contact.stops import opt_out
from dunning.services.dispatch.receipts import record_receipts, stored_event_id
from dunning.types import Channel

log = logging.getLogger("dunning.replies")

REPLY_SOURCE = "reply"
"""An opt-out's source starts with this when a reply made it: reply:<provider>, or reply alone
(the signed /webhooks/inbound/sms)."""


class ReplyMeaning(StrEnum):
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    OTHER = "other"


@dataclass
class VendorWebhookRecord:
    """What one vendor webhook call changed."""

    receipts: int = 0
    """Delivery events recorded (a receipt already recorded is not counted)."""
    replies: int = 0
    """Replies recorded for the first time."""
    duplicates: int = 0
    """Replies recorded before (the vendor pushed them again): nothing done."""
    opted_out: int = 0
    """Customers opted out by a reply (already opted out or not)."""
    opted_in: int = 0
    """Customers whose opt-out a reply lifted."""


def record_vendor_webhook(
    connection: Connection,
    provider: str,
    statuses: Sequence[StatusReport],
    replies: Sequence[InboundReply],
    packs: Mapping[str, CompliancePack],
) -> VendorWebhookRecord:
    """Record one vendor webhook call's receipts and replies, in the caller's transaction.

    A receipt that names one message by the vendor's id and another by our key is believed for
    neither and left out (the vendor would only push it again: its answer is not an error).
    """
    record = VendorWebhookRecord()
    record.receipts = record_receipts(connection, statuses, source="webhook", skip_conflicts=True)
    # In the order the customer sent them: STOP then START in one push ends subscribed.
    for reply in sorted(replies, key=lambda r: r.received_at):
        meaning, customers = record_reply(connection, provider, reply, packs)
        if meaning is None:
            record.duplicates += 1
            continue
        record.replies += 1
        if meaning == ReplyMeaning.OPT_OUT:
            record.opted_out += customers
        elif meaning == ReplyMeaning.OPT_IN:
            record.opted_in += customers
    return record


def record_reply(
    connection: Connection,
    provider: str,
    reply: InboundReply,
    packs: Mapping[str, CompliancePack],
) -> tuple[ReplyMeaning | None, int]:
    """Record one reply and act on it; (its meaning, customers it applied to), or (None, 0)
    when this provider's event was recorded before (a vendor's retry: nothing is done again).
    """
    if not _first_time(connection, provider, reply):
        return None, 0
    customers = _customers_of(connection, reply.sender)
    out = sorted(
        customer
        for customer, jurisdictions in customers.items()
        if any(pack.is_opt_out(reply.text) for pack in _packs_for_opt_out(jurisdictions, packs))
    )
    meaning = ReplyMeaning.OTHER
    applied = 0
    if out:
        meaning, applied = ReplyMeaning.OPT_OUT, len(out)
        opt_out(
            connection, out, Channel.SMS, reply.received_at, source=f"{REPLY_SOURCE}:{provider}"
        )
    else:
        allowed = [
            customer
            for customer, jurisdictions in customers.items()
            if _opt_in_allowed(reply.text, jurisdictions, packs)
        ]
        if allowed:
            meaning, applied = ReplyMeaning.OPT_IN, _lift_reply_opt_outs(connection, allowed)
        elif not customers and any(pack.is_opt_out(reply.text) for pack in packs.values()):
            meaning = ReplyMeaning.OPT_OUT  # from a phone no customer has: nothing to stop
        elif not customers and any(pack.is_opt_in(reply.text) for pack in packs.values()):
            meaning = ReplyMeaning.OPT_IN
    connection.execute(
        update(REPLY)
        .where(REPLY.c.provider == provider, REPLY.c.event_id == _event_id(reply))
        .values(meaning=meaning.value, customers=applied)
    )
    log.info("%s: a reply recorded (%s, %d customer(s))", provider, meaning.value, applied)
    return meaning, applied


def _event_id(reply: InboundReply) -> str:
    return stored_event_id(reply.event_id)


def _first_time(connection: Connection, provider: str, reply: InboundReply) -> bool:
    """Claim (provider, event id): True for the first call that records it.

    A second call waits on the unique index for the first one's transaction (PostgreSQL) and
    then inserts nothing, so a reply is acted on once however many pushes of it race.
    """
    row = {
        "provider": provider,
        "event_id": _event_id(reply),
        "received_at": reply.received_at,
        "recorded_at": utcnow(),
        "meaning": ReplyMeaning.OTHER.value,
        "customers": 0,
    }
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = (
        dialect.insert(REPLY)
        .values(row)
        .on_conflict_do_nothing(index_elements=["provider", "event_id"])
        .returning(REPLY.c.id)
    )
    # The row it returns, not rowcount: PostgreSQL's driver gives -1 for this statement.
    return connection.execute(statement).first() is not None


def _customers_of(connection: Connection, phone: str) -> dict[int, set[str | None]]:
    """Each customer with this phone, and their accounts' jurisdictions (None: no account)."""
    found: dict[int, set[str | None]] = defaultdict(set)
    rows = connection.execute(
        select(CUSTOMER.c.id, ACCOUNT.c.jurisdiction)
        .join(ACCOUNT, ACCOUNT.c.customer_id == CUSTOMER.c.id, isouter=True)
        .where(CUSTOMER.c.phone == phone)
    )
    for customer_id, jurisdiction in rows:
        found[int(customer_id)].add(jurisdiction)
    return dict(found)


def _packs_for_opt_out(
    jurisdictions: set[str | None], packs: Mapping[str, CompliancePack]
) -> list[CompliancePack]:
    """The packs whose opt-out words count for a customer: those of their accounts, and every
    pack when one of their accounts has none (or they have no account): fail closed, a word
    that opts out anywhere opts out a customer whose rules are unknown."""
    known = [packs[code] for code in jurisdictions if code is not None and code in packs]
    if len(known) < len(jurisdictions):
        return list(packs.values())
    return known


def _opt_in_allowed(
    text: str, jurisdictions: set[str | None], packs: Mapping[str, CompliancePack]
) -> bool:
    """Whether every pack of the customer's accounts takes `text` as an opt-in (a customer
    without accounts, or with one under no pack, is never re-subscribed by a reply)."""
    if not jurisdictions or None in jurisdictions:
        return False
    return all(code in packs and packs[code].is_opt_in(text) for code in jurisdictions if code)


def _lift_reply_opt_outs(connection: Connection, customer_ids: Sequence[int]) -> int:
    """Clear the SMS opt-outs of these customers that a reply made; how many were cleared."""
    c = CUSTOMER.c
    result = connection.execute(
        update(CUSTOMER)
        .where(
            c.id.in_(list(customer_ids)),
            c.sms_opted_out_at.is_not(None),
            (c.sms_opt_out_source == REPLY_SOURCE)
            | c.sms_opt_out_source.startswith(f"{REPLY_SOURCE}:"),
        )
        .values(sms_opted_out_at=None, sms_opt_out_source=None, updated_at=utcnow())
    )
    return int(result.rowcount or 0)
