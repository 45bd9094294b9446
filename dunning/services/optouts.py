"""Opt-outs: a STOP-type reply, or an operator's record of a request, ends a channel for good."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, select, update

from dunning.config.compliance import CompliancePack
from dunning.db.models import Account, Customer, utcnow
from dunning.db.outreach_models import OutboxMessage
from dunning.errors import NotFound
from dunning.types import Channel, OutboxStatus, Suppression

CUSTOMER = Customer.__table__  # type: ignore[attr-defined]
ACCOUNT = Account.__table__  # type: ignore[attr-defined]
OUTBOX = OutboxMessage.__table__  # type: ignore[attr-defined]


def opt_out(connection: Connection, customer_ids: list[int], channel: Channel, at: datetime) -> int:
    """Record the opt-out (the first time is kept) and hold the channel's waiting messages."""
    column = CUSTOMER.c[f"{channel.value}_opted_out_at"]
    connection.execute(
        update(CUSTOMER)
        .where(CUSTOMER.c.id.in_(customer_ids), column.is_(None))
        .values({column: at, CUSTOMER.c.updated_at: utcnow()})
    )
    result = connection.execute(
        update(OUTBOX)
        .where(
            OUTBOX.c.customer_id.in_(customer_ids),
            OUTBOX.c.channel == channel.value,
            OUTBOX.c.status == OutboxStatus.PLANNED.value,
        )
        .values(
            status=OutboxStatus.HELD.value,
            hold_reason=Suppression.OPTED_OUT.value,
            final_at=at,
            updated_at=utcnow(),
        )
    )
    return int(result.rowcount or 0)


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
