"""Opt-outs and stops: both take effect at once, on the messages already waiting to go.

An opt-out (a STOP-type reply, an operator's record of a request, or an import) ends a channel
for good. A stop (deceased, bankruptcy, attorney on file, cease request, dispute, hardship hold)
ends ordinary collection contact. Either way every waiting (planned) message it covers is held
at once with the rule's id, as the daily run would have held it: the send-time gate is not the
first to know.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Connection, or_, select, update

from dunning.config.compliance import CompliancePack
from dunning.db.lifecycle_models import AccountAction
from dunning.db.models import Account, Customer, utcnow
from dunning.db.outreach_models import OutboxMessage
from dunning.db.sql import chunked
from dunning.errors import NotFound
from dunning.types import Channel, OutboxStatus, Suppression

CUSTOMER = Customer.__table__  # type: ignore[attr-defined]
ACCOUNT = Account.__table__  # type: ignore[attr-defined]
OUTBOX = OutboxMessage.__table__  # type: ignore[attr-defined]
ACTION = AccountAction.__table__  # type: ignore[attr-defined]

STOPS: tuple[tuple[str, Suppression], ...] = (
    ("deceased", Suppression.DECEASED),
    ("bankruptcy", Suppression.BANKRUPTCY),
    ("attorney_on_file", Suppression.ATTORNEY),
    ("cease_communication", Suppression.CEASE_REQUEST),
    ("dispute_open", Suppression.DISPUTE),
    ("hardship_hold", Suppression.HARDSHIP_HOLD),
)
"""The customer's flags that stop ordinary collection contact, in the order the daily run weighs
them (AccountState.stop): the first one set is the reason recorded."""
CHUNK = 900


def _hold_messages(
    connection: Connection,
    customer_ids: list[int],
    channel: Channel | None,
    reason: Suppression,
    at: datetime,
) -> int:
    """Hold the customers' waiting messages (on one channel, or all); how many were held."""
    conditions = [
        OUTBOX.c.customer_id.in_(customer_ids),
        OUTBOX.c.status == OutboxStatus.PLANNED.value,
    ]
    if channel is not None:
        conditions.append(OUTBOX.c.channel == channel.value)
    result = connection.execute(
        update(OUTBOX)
        .where(*conditions)
        .values(
            status=OutboxStatus.HELD.value,
            hold_reason=reason.value,
            final_at=at,
            updated_at=utcnow(),
        )
    )
    return int(result.rowcount or 0)


def opt_out(connection: Connection, customer_ids: list[int], channel: Channel, at: datetime) -> int:
    """Record the opt-out (the first time is kept) and hold the channel's waiting messages."""
    column = CUSTOMER.c[f"{channel.value}_opted_out_at"]
    connection.execute(
        update(CUSTOMER)
        .where(CUSTOMER.c.id.in_(customer_ids), column.is_(None))
        .values({column: at, CUSTOMER.c.updated_at: utcnow()})
    )
    return _hold_messages(connection, customer_ids, channel, Suppression.OPTED_OUT, at)


def hold_opted_out(connection: Connection, customer_ids: Iterable[int], at: datetime) -> int:
    """Hold the waiting messages on every channel these customers are opted out of (their
    opt-outs already recorded, by an import); how many were held."""
    held = 0
    columns = {channel: CUSTOMER.c[f"{channel.value}_opted_out_at"] for channel in Channel}
    for chunk in chunked(sorted(set(customer_ids)), CHUNK):
        by_channel: dict[Channel, list[int]] = defaultdict(list)
        for row in connection.execute(
            select(CUSTOMER.c.id, *columns.values()).where(
                CUSTOMER.c.id.in_(chunk), or_(*(c.is_not(None) for c in columns.values()))
            )
        ):
            for channel, column in columns.items():
                if row._mapping[column] is not None:
                    by_channel[channel].append(int(row.id))
        for channel, ids in by_channel.items():
            held += _hold_messages(connection, ids, channel, Suppression.OPTED_OUT, at)
    return held


def hold_stopped(connection: Connection, customer_ids: Iterable[int], at: datetime) -> int:
    """Hold every waiting message, and every waiting forward action (a freeze, a placement, a
    report; not a reversal), of those customers who have a stop; how many messages were held.

    This is what the daily run decides for them from now on, and what the dispatchers would
    find at the last moment.
    """
    held = 0
    flags = [CUSTOMER.c[flag] for flag, _ in STOPS]
    for chunk in chunked(sorted(set(customer_ids)), CHUNK):
        by_reason: dict[Suppression, list[int]] = defaultdict(list)
        for row in connection.execute(
            select(CUSTOMER.c.id, *flags).where(
                CUSTOMER.c.id.in_(chunk), or_(*(flag.is_(True) for flag in flags))
            )
        ):
            reason = next(reason for flag, reason in STOPS if row._mapping[flag])
            by_reason[reason].append(int(row.id))
        for reason, ids in by_reason.items():
            held += _hold_messages(connection, ids, None, reason, at)
            connection.execute(
                update(ACTION)
                .where(
                    ACTION.c.account_id.in_(
                        select(ACCOUNT.c.id).where(ACCOUNT.c.customer_id.in_(ids))
                    ),
                    ACTION.c.status == "planned",
                    ACTION.c.reverses_id.is_(None),
                )
                .values(
                    status="held",
                    hold_reason=reason.value,
                    claim_token=None,
                    claimed_until=None,
                    updated_at=at,
                )
            )
    return held


def opt_out_customer(
    connection: Connection, external_id: str, channel: Channel, at: datetime
) -> int:
    found = connection.execute(
        select(CUSTOMER.c.id).where(CUSTOMER.c.external_id == external_id)
    ).first()
    if found is None:
        raise NotFound(f"no customer {external_id}")
    return opt_out(connection, [int(found[0])], channel, at)


def inbound_sms(
    connection: Connection,
    sender: str,
    text: str,
    received_at: datetime,
    packs: dict[str, CompliancePack],
) -> bool:
    """A reply from a phone: if it is an opt-out keyword in the customer's pack, honour it.

    Returns whether it was an opt-out. The text is not stored: it may say anything.
    """
    rows = connection.execute(
        select(CUSTOMER.c.id, ACCOUNT.c.jurisdiction)
        .join(ACCOUNT, ACCOUNT.c.customer_id == CUSTOMER.c.id, isouter=True)
        .where(CUSTOMER.c.phone == sender)
    ).all()
    customers = sorted(
        {
            int(customer_id)
            for customer_id, jurisdiction in rows
            if any(
                pack.is_opt_out(text)
                for code, pack in packs.items()
                if jurisdiction in (None, code)
            )
        }
    )
    if not customers:
        return False
    opt_out(connection, customers, Channel.SMS, received_at)
    return True
