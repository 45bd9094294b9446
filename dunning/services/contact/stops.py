"""Opt-outs and stops: both take effect at once, on the messages already waiting to go.

An opt-out (a STOP-type reply, an operator's record of a request, or an import) ends a channel
for good. A stop ends ordinary collection contact: the customer's flags (deceased, bankruptcy,
attorney on file, cease request, dispute, hardship hold), and on an account a grace period or
hardship hold, a payment plan or a promise to pay. Either way every waiting (planned) message it
covers is held at once with the rule's id, as the daily run would have held it: the send-time
gate is not the first to know. What stops contact at a given moment (stops_in_force) is the one
definition the send-time gate, the action dispatcher and these holds share.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, func, or_, select, update

from adapters.base import RejectCode
from dunning.config.compliance import CompliancePack
from dunning.db.models import utcnow
from dunning.db.sql import chunked
from dunning.db.tables import ACCOUNT, ACTION, CUSTOMER, GRACE, OUTBOX, PLAN, PROMISE
from dunning.domain.decide import CUSTOMER_STOPS, first_stop
from dunning.errors import NotFound
from dunning.services.dispatch.send import VendorRefusal
from dunning.types import Channel, OutboxStatus, PromiseStatus, Suppression

STOPS = CUSTOMER_STOPS
"""The customer's flags that stop ordinary collection contact, in the order the daily run weighs
them (decide.STOP_ORDER): the first one set is the reason recorded."""
CHUNK = 900
STOPS_CHUNK = 2000
"""Accounts per query of stops_in_force: a dispatcher's default claim in one pass, far below
SQLite's 32,766 bound variables."""
AHEAD_OF_UTC = timedelta(hours=14)
"""The furthest any time zone runs ahead of UTC (UTC+14): a grace period granted "today" where
the operator is has begun by the date UTC reaches this much later."""


@dataclass(frozen=True)
class Stops:
    """What stops ordinary collection contact on an account, for what was planned on a date."""

    found: frozenset[Suppression]
    """The customer's stop flags, a grace period or hardship hold, an active promise to pay."""
    plan_id: int | None
    """The account's active payment plan."""

    def first(self, *, paid: bool = False, step_id: str | None = None) -> Suppression | None:
        """The rule the daily run would record (decide.first_stop), `paid` (cured) first.

        The active plan stops every message but its own (its confirmation letter and
        instalment reminders: step ids plan-<plan id>-..., see outreach._plan_messages), which
        the daily run decides as if there were no plan; forward actions (no step id of that
        form) are stopped by it.
        """
        found = set(self.found)
        if paid:
            found.add(Suppression.PAID)
        if self.plan_id is not None and not (step_id or "").startswith(f"plan-{self.plan_id}-"):
            found.add(Suppression.PAYMENT_PLAN)
        return first_stop(found)


def stops_in_force(
    connection: Connection, pairs: Iterable[tuple[int, date]], now: datetime
) -> dict[tuple[int, date], Stops]:
    """For each (account, date planned for): the stops in force at `now`.

    The daily run's rules (outreach.select_batch), so that what a message or an action meets at
    the last moment is what planning would decide; each time-bound rule holds if it applies on
    the date planned for or at `now`, or in between, as recording it holds at once:
    - the customer's flags (CUSTOMER_STOPS);
    - a grace period or hardship hold not revoked, begun by now, not ended before that date;
    - a promise to pay still active whose date is not before that date;
    - an active payment plan.

    Set-based, for the dispatchers' claimed chunks: four indexed queries per STOPS_CHUNK accounts,
    whatever the dates, each returning only the accounts a stop applies to (most have none).
    """
    pairs = list(pairs)
    accounts = sorted({account_id for account_id, _ in pairs})
    if not accounts:
        return {}
    earliest = min(as_of for _, as_of in pairs)
    begun_by = (now + AHEAD_OF_UTC).date()
    a, c, g, p, plan = ACCOUNT.c, CUSTOMER.c, GRACE.c, PROMISE.c, PLAN.c
    flags: dict[int, set[Suppression]] = defaultdict(set)
    # Per account, the last day of a grace period (GRACE) or hardship hold (HARDSHIP_HOLD) and
    # the date of an active promise (PROMISE_TO_PAY): the latest, if several.
    until: dict[tuple[int, Suppression], date] = {}
    plans: dict[int, int] = {}
    kinds = {"grace": Suppression.GRACE, "hardship": Suppression.HARDSHIP_HOLD}

    def latest(account_id: int, reason: Suppression, day: date) -> None:
        key = (account_id, reason)
        until[key] = max(day, until.get(key, day))

    for chunk in chunked(accounts, STOPS_CHUNK):
        columns = [c[flag] for flag, _ in CUSTOMER_STOPS]
        for row in connection.execute(
            select(a.id, *columns)
            .join(CUSTOMER, c.id == a.customer_id)
            .where(a.id.in_(chunk), or_(*(column.is_(True) for column in columns)))
        ):
            flags[row[0]] = {
                reason for (_, reason), hit in zip(CUSTOMER_STOPS, row[1:], strict=True) if hit
            }
        for account_id, kind, ends_on in connection.execute(
            select(g.account_id, g.kind, g.ends_on).where(
                g.account_id.in_(chunk),
                g.revoked_at.is_(None),
                g.starts_on <= begun_by,
                g.ends_on >= earliest,
            )
        ):
            if kind in kinds:
                latest(account_id, kinds[kind], ends_on)
        for account_id, promised_on in connection.execute(
            select(p.account_id, p.promised_on).where(
                p.account_id.in_(chunk),
                p.status == PromiseStatus.ACTIVE.value,
                p.promised_on >= earliest,
            )
        ):
            latest(account_id, Suppression.PROMISE_TO_PAY, promised_on)
        for account_id, plan_id in connection.execute(
            select(plan.account_id, func.max(plan.id))
            .where(plan.account_id.in_(chunk), plan.status == "active")
            .group_by(plan.account_id)
        ):
            plans[account_id] = plan_id
    timed = (Suppression.GRACE, Suppression.HARDSHIP_HOLD, Suppression.PROMISE_TO_PAY)
    found: dict[tuple[int, date], Stops] = {}
    for account_id, as_of in pairs:
        stops = set(flags.get(account_id, ()))
        for reason in timed:
            last = until.get((account_id, reason))
            if last is not None and last >= as_of:
                stops.add(reason)
        found[(account_id, as_of)] = Stops(frozenset(stops), plans.get(account_id))
    return found


def _hold_messages(
    connection: Connection,
    which: ColumnElement[bool],
    channel: Channel | None,
    reason: Suppression,
    at: datetime,
) -> int:
    """Hold the waiting messages `which` selects (on one channel, or all); how many were held."""
    conditions = [which, OUTBOX.c.status == OutboxStatus.PLANNED.value]
    if channel is not None:
        conditions.append(OUTBOX.c.channel == channel.value)
    result = connection.execute(
        update(OUTBOX)
        .where(*conditions)
        .values(
            status=OutboxStatus.HELD.value,
            suppression=reason.value,
            final_at=at,
            updated_at=utcnow(),
        )
    )
    return int(result.rowcount or 0)


def opt_out(
    connection: Connection,
    customer_ids: list[int],
    channel: Channel,
    at: datetime,
    source: str | None = None,
) -> int:
    """Record the opt-out (the first time, and for SMS its source, are kept) and hold the
    channel's waiting messages.

    `source` says who recorded it ("operator", "import", "reply:<provider>"): an opt-in reply
    lifts only an opt-out made by reply (replies.record_reply)."""
    column = CUSTOMER.c[f"{channel.value}_opted_out_at"]
    values: dict[Any, Any] = {column: at, CUSTOMER.c.updated_at: utcnow()}
    if channel == Channel.SMS:
        values[CUSTOMER.c.sms_opt_out_source] = source
    for chunk in chunked(customer_ids, CHUNK):
        connection.execute(
            update(CUSTOMER).where(CUSTOMER.c.id.in_(chunk), column.is_(None)).values(values)
        )
    return _hold_messages(
        connection, OUTBOX.c.customer_id.in_(customer_ids), channel, Suppression.OPTED_OUT, at
    )


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
            held += _hold_messages(
                connection, OUTBOX.c.customer_id.in_(ids), channel, Suppression.OPTED_OUT, at
            )
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
        accounts = connection.execute(
            select(ACCOUNT.c.id)
            .join(CUSTOMER, CUSTOMER.c.id == ACCOUNT.c.customer_id)
            .where(CUSTOMER.c.id.in_(chunk), or_(*(flag.is_(True) for flag in flags)))
        ).scalars()
        held += hold_suppressed(connection, list(accounts), at)
    return held


def hold_suppressed(connection: Connection, account_ids: Iterable[int], at: datetime) -> int:
    """Hold at once, with the rule the send-time gate would give, every waiting message of these
    accounts that a stop in force now stops, and every waiting forward action (a freeze, a
    placement, a report; not a reversal: undoing a treatment is never held); how many messages
    were held. For a stop just recorded: a customer's flag, a promise to pay, a grace period or
    hardship hold, a payment plan.
    """
    held = 0
    o, a = OUTBOX.c, ACTION.c
    planned = OutboxStatus.PLANNED.value
    for chunk in chunked(sorted(set(account_ids)), CHUNK):
        messages = connection.execute(
            select(o.id, o.account_id, o.as_of, o.step_id).where(
                o.account_id.in_(chunk), o.status == planned
            )
        ).all()
        actions = connection.execute(
            select(a.id, a.account_id, a.as_of).where(
                a.account_id.in_(chunk), a.status == "planned", a.reverses_id.is_(None)
            )
        ).all()
        if not messages and not actions:
            continue
        stops = stops_in_force(
            connection, [(row.account_id, row.as_of) for row in (*messages, *actions)], at
        )
        message_holds: dict[Suppression, list[int]] = defaultdict(list)
        for row in messages:
            reason = stops[(row.account_id, row.as_of)].first(step_id=row.step_id)
            if reason is not None:
                message_holds[reason].append(row.id)
        action_holds: dict[Suppression, list[int]] = defaultdict(list)
        for action in actions:
            reason = stops[(action.account_id, action.as_of)].first()
            if reason is not None:
                action_holds[reason].append(action.id)
        for reason, ids in message_holds.items():
            for part in chunked(ids, CHUNK):
                held += _hold_messages(connection, o.id.in_(part), None, reason, at)
        for reason, ids in action_holds.items():
            for part in chunked(ids, CHUNK):
                connection.execute(
                    update(ACTION)
                    .where(a.id.in_(part), a.status == "planned")
                    .values(
                        status="held",
                        suppression=reason.value,
                        claim_token=None,
                        claimed_until=None,
                        updated_at=at,
                    )
                )
    return held


def vendor_refusals(connection: Connection, refused: Sequence[VendorRefusal], at: datetime) -> int:
    """Record on the customers what vendors said by refusing messages; how many waiting
    messages were held.

    - Opted out there (Twilio's 21610: the number replied STOP to that sender): the opt-out of
      every customer with the message's contact point, on its channel, source
      `vendor:<provider>`; their waiting messages on it are held.
    - No such address on a push message (FCM's UNREGISTERED, JPush's unknown registration id):
      the device token is dead (customer.push_token_invalid_at) until a new one is imported;
      the customer's waiting push messages are held `no_contact_point`.
    """
    held = 0
    o, c = OUTBOX.c, CUSTOMER.c
    opted: dict[tuple[Channel, str], set[int]] = defaultdict(set)
    dead: set[int] = set()
    for chunk in chunked(list(refused), CHUNK):
        rows = connection.execute(
            select(o.id, o.customer_id, o.recipient).where(o.id.in_([r.outbox_id for r in chunk]))
        ).all()
        facts = {row.id: row for row in rows}
        for refusal in chunk:
            row = facts.get(refusal.outbox_id)
            if row is None:
                continue
            if refusal.code == RejectCode.INVALID_NUMBER.value:
                if refusal.channel == Channel.PUSH:
                    dead.add(int(row.customer_id))
                continue
            customers = {int(row.customer_id)}
            if refusal.channel == Channel.SMS and row.recipient:
                # The number opted out, whoever's it is.
                customers |= {
                    int(found)
                    for found in connection.execute(
                        select(c.id).where(c.phone == row.recipient)
                    ).scalars()
                }
            source = f"vendor:{refusal.provider or refusal.channel.value}"
            opted[(refusal.channel, source)] |= customers
    for (channel, source), customers in opted.items():
        held += opt_out(connection, sorted(customers), channel, at, source=source)
    for part in chunked(sorted(dead), CHUNK):
        connection.execute(
            update(CUSTOMER)
            .where(c.id.in_(part), c.push_token_invalid_at.is_(None))
            .values(push_token_invalid_at=at, updated_at=utcnow())
        )
        held += _hold_messages(
            connection, o.customer_id.in_(part), Channel.PUSH, Suppression.NO_CONTACT_POINT, at
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
    return opt_out(connection, [int(found[0])], channel, at, source="operator")


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
    opt_out(connection, customers, Channel.SMS, received_at, source="reply")
    return True
