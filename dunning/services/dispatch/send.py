"""Dispatch: claim due outbox messages, send them through the adapters, record the answers.

Exactly once, by construction:
1. claim: one UPDATE moves due rows to `sending` with a claim token and a lease (PostgreSQL
   picks them with FOR UPDATE SKIP LOCKED; SQLite's single writer makes the statement atomic),
   and commits before anything is sent;
2. send: every request carries the message's idempotency key;
3. record: each answer is written only if the row still holds our claim token.
A crash after 1 leaves rows `sending`; once their lease expires any dispatcher claims them
again and resends with the same key, and the gateway answers with its first acceptance
instead of sending twice. Nothing is lost and nothing goes out twice.

A gateway that does not deduplicate is kept to the same promise by its adapter: a message
claimed back from `sending` goes out marked `in_doubt`, and the adapter asks the vendor before
sending it again (adapters._http). An AMBIGUOUS answer (the gateway may have it) is not
recorded: the row stays `sending` under its claim until the lease runs out, which is the wait
before that question is asked.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, bindparam, case, or_, select, update

from adapters.base import AdapterFactory, OutboundMessage, RejectCode, SendOutcome, SendResult
from dunning.crashpoints import crash_point
from dunning.db.claims import new_token
from dunning.db.documents import DocumentStore
from dunning.db.models import utcnow
from dunning.db.ranges import in_accounts
from dunning.db.sql import chunked
from dunning.db.tables import ACCOUNT, CUSTOMER, EVENT, OUTBOX
from dunning.errors import ConfigError
from dunning.services.dispatch.receipts import apply_early_receipts
from dunning.services.dispatch.routing import Circuits, Routing, SharedPace
from dunning.types import Channel, OutboxStatus

log = logging.getLogger("dunning.dispatch")

RETRY_DELAY = timedelta(minutes=5)
"""A message the gateway could not take (retries used up) waits this long before the next try."""
IN_DOUBT = "claimed again after its lease ran out while sending: the gateway may have it"
"""last_error of a message claimed back from `sending`; it marks the claim as in doubt."""


@dataclass(frozen=True)
class Claimed:
    id: int
    idempotency_key: str
    channel: Channel
    recipient: str | None
    subject: str | None
    body: str | None
    document_path: str | None
    document_sha256: str | None
    attempts: int
    template_id: str | None
    locale: str
    tier: str
    run_id: int
    in_doubt: bool = False
    """Claimed back from `sending` (a lease ran out): an earlier send may have reached the
    gateway."""
    provider: str | None = None
    """The provider an earlier attempt went to (in doubt: the only one that may have it)."""
    vendor: Mapping[str, Any] | None = None
    """The template's vendor metadata and rendered parameters (outbox_message.vendor)."""
    address: Mapping[str, Any] | None = None
    """A letter's postal address as fields (outbox_message.address)."""


@dataclass(frozen=True)
class VendorRefusal:
    """A message a vendor refused for its recipient, which Dunning records on the customer:
    opted out there (Twilio's 21610: the number replied STOP to that sender), or an address
    that is no address (a dead push token: FCM's UNREGISTERED, JPush's unknown registration
    id)."""

    outbox_id: int
    channel: Channel
    provider: str | None
    code: str
    """RejectCode.OPTED_OUT or RejectCode.INVALID_NUMBER."""


RefusalHook = Callable[[Connection, Sequence[VendorRefusal], datetime], int]
"""Records vendors' refusals on the customers, in the transaction that records the sends
(contact.stops.vendor_refusals)."""

_RECORDED_REFUSALS = frozenset({RejectCode.OPTED_OUT.value, RejectCode.INVALID_NUMBER.value})


@dataclass(frozen=True)
class Recipient:
    """What the adapter may know about a message's account and customer besides the text."""

    jurisdiction: str | None = None
    country: str | None = None


@dataclass
class DispatchReport:
    printed: int = 0
    """Letters the print stage made PDFs of, before dispatch."""
    claimed: int = 0
    sent: int = 0
    duplicates: int = 0
    failed: int = 0
    retry: int = 0
    deferred: int = 0
    in_doubt: int = 0
    """Answers the adapter could not settle (AMBIGUOUS): left `sending` until the lease ends."""
    failed_over: int = 0
    """Sends that a provider certainly did not take and that went on to the next provider."""
    vendor_opt_outs: int = 0
    """Messages refused because the recipient opted out at the vendor: recorded as opt-outs."""
    dead_contacts: int = 0
    """Messages refused because their address is none (a dead push token): recorded so."""
    held: Counter[str] = field(default_factory=Counter)
    by_channel: Counter[str] = field(default_factory=Counter)
    by_provider: Counter[str] = field(default_factory=Counter)
    """Messages sent (accepted) by each provider."""
    actions: Counter[str] = field(default_factory=Counter)
    """Counts of the action dispatch that ran with this one (see lifecycle.actions)."""
    timings: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))

    def merge(self, other: DispatchReport) -> None:
        for name in _COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.held.update(other.held)
        self.by_channel.update(other.by_channel)
        self.by_provider.update(other.by_provider)
        self.actions.update(other.actions)
        for stage, seconds in other.timings.items():
            self.timings[stage] += seconds

    def as_dict(self) -> dict[str, Any]:
        return {
            "printed": self.printed,
            "claimed": self.claimed,
            "sent": self.sent,
            "duplicates": self.duplicates,
            "failed": self.failed,
            "retry": self.retry,
            "deferred": self.deferred,
            "in_doubt": self.in_doubt,
            "failed_over": self.failed_over,
            "vendor_opt_outs": self.vendor_opt_outs,
            "dead_contacts": self.dead_contacts,
            "held_by_suppression": dict(self.held),
            "sent_by_channel": dict(self.by_channel),
            "sent_by_provider": dict(self.by_provider),
            "actions": dict(self.actions),
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DispatchReport:
        report = cls(**{k: data.get(k, 0) for k in _COUNTS})
        report.held.update(data.get("held_by_suppression", {}))
        report.by_channel.update(data.get("sent_by_channel", {}))
        report.by_provider.update(data.get("sent_by_provider", {}))
        report.actions.update(data.get("actions", {}))
        for stage, seconds in data.get("timings", {}).items():
            report.timings[stage] += seconds
        return report


_COUNTS = (
    "printed",
    "claimed",
    "sent",
    "duplicates",
    "failed",
    "retry",
    "deferred",
    "in_doubt",
    "failed_over",
    "vendor_opt_outs",
    "dead_contacts",
)


@dataclass(frozen=True)
class Scope:
    """Which messages a dispatcher may claim: all due ones, or those of some accounts/date."""

    account_lo: int | None = None
    account_hi: int | None = None
    as_of: Any = None
    channel: Channel | None = None

    def conditions(self) -> list[Any]:
        found = [in_accounts(OUTBOX.c.account_id, self.account_lo, self.account_hi)]
        if self.as_of is not None:
            found.append(OUTBOX.c.as_of == self.as_of)
        if self.channel is not None:
            found.append(OUTBOX.c.channel == self.channel.value)
        return found


def claim(
    connection: Connection,
    *,
    now: datetime,
    lease: timedelta,
    limit: int,
    scope: Scope,
    token: str,
) -> list[Claimed]:
    """Move up to `limit` due messages to `sending` under `token`; return them."""
    o = OUTBOX.c
    due = and_(
        or_(
            and_(
                o.status == OutboxStatus.PLANNED.value,
                or_(o.not_before.is_(None), o.not_before <= now),
            ),
            and_(o.status == OutboxStatus.SENDING.value, o.claimed_until < now),
        ),
        # A letter goes only once the print stage has made its PDF.
        or_(o.channel != Channel.LETTER.value, o.document_sha256.is_not(None)),
    )
    pick = select(o.id).where(due, *scope.conditions()).order_by(o.id).limit(limit)
    if connection.dialect.name == "postgresql":
        pick = pick.with_for_update(skip_locked=True)
    statement = (
        update(OUTBOX)
        .where(o.id.in_(pick.scalar_subquery()))
        .values(
            status=OutboxStatus.SENDING.value,
            claim_token=token,
            claimed_until=now + lease,
            attempts=o.attempts + 1,
            # SET sees the row as it was: a row still `sending` had its lease run out.
            last_error=case((o.status == OutboxStatus.SENDING.value, IN_DOUBT), else_=o.last_error),
            updated_at=now,
        )
        .returning(
            o.id,
            o.idempotency_key,
            o.channel,
            o.recipient,
            o.subject,
            o.body,
            o.document_path,
            o.document_sha256,
            o.attempts,
            o.template_id,
            o.locale,
            o.tier,
            o.run_id,
            o.last_error,
            o.provider,
            o.vendor,
            o.address,
        )
    )
    rows = connection.execute(statement).all()
    claimed = [
        Claimed(
            id=r.id,
            idempotency_key=r.idempotency_key,
            channel=Channel(r.channel),
            recipient=r.recipient,
            subject=r.subject,
            body=r.body,
            document_path=r.document_path,
            document_sha256=r.document_sha256,
            attempts=r.attempts,
            template_id=r.template_id,
            locale=r.locale,
            tier=r.tier,
            run_id=r.run_id,
            in_doubt=r.last_error == IN_DOUBT,
            provider=r.provider,
            vendor=r.vendor,
            address=r.address,
        )
        for r in rows
    ]
    return sorted(claimed, key=lambda c: c.id)


def recipients(connection: Connection, claimed: Sequence[Claimed]) -> dict[int, Recipient]:
    """Each claimed message's account jurisdiction and customer country (one query)."""
    if not claimed:
        return {}
    o, a, c = OUTBOX.c, ACCOUNT.c, CUSTOMER.c
    rows = connection.execute(
        select(o.id, a.jurisdiction, c.country)
        .join(ACCOUNT, a.id == o.account_id)
        .join(CUSTOMER, c.id == o.customer_id)
        .where(o.id.in_([message.id for message in claimed]))
    )
    return {row[0]: Recipient(row[1], row[2]) for row in rows}


def to_outbound(
    message: Claimed, documents: DocumentStore, recipient: Recipient | None = None
) -> OutboundMessage:
    recipient = recipient or Recipient()
    document = None
    if message.document_path is not None:
        document = documents.get(message.document_path, message.document_sha256)
    return OutboundMessage(
        idempotency_key=message.idempotency_key,
        channel=message.channel,
        recipient=message.recipient or "",
        body=message.body or "",
        subject=message.subject,
        document=document,
        document_sha256=message.document_sha256,
        metadata={
            "template_id": message.template_id or "",
            "locale": message.locale,
            "tier": message.tier,
            "run_id": str(message.run_id),
        },
        template_id=message.template_id,
        vendor=message.vendor or {},
        address=message.address,
        jurisdiction=recipient.jurisdiction,
        country=recipient.country,
        in_doubt=message.in_doubt,
    )


async def send_to(
    routing: Routing, pace: SharedPace | None, provider: str, batch: Sequence[OutboundMessage]
) -> list[SendResult]:
    """Send one provider's messages through its adapter, within its shared rate."""
    results: list[SendResult] = []
    rate = routing.rates.get(provider)
    try:
        built = routing.build(provider)
    except ConfigError as exc:
        # A provider that cannot be built (a missing secret, say) took nothing: the others of
        # the route may send what it was given. A message in doubt there stays in doubt:
        # only that provider can say whether it has it.
        log.error("provider %s cannot be built: %s", provider, exc)
        reason = f"provider {provider!r} cannot be built: {exc}"[:500]
        return [
            SendResult(m.idempotency_key, SendOutcome.AMBIGUOUS, reason=reason)
            if m.in_doubt
            else SendResult(m.idempotency_key, SendOutcome.RETRY, reason=reason, not_taken=True)
            for m in batch
        ]
    async with built as adapter:
        # An adapter runs up to max_concurrency requests of max_batch at once.
        # (getattr: wrappers that pass an adapter through may not declare it).
        size = max(1, adapter.max_batch) * max(1, getattr(adapter, "max_concurrency", 1))
        for start in range(0, len(batch), size):
            part = batch[start : start + size]
            if rate is not None and pace is not None:
                await pace.reserve(provider, len(part), rate)
            results.extend(await adapter.send(part))
    return results


async def send_all(
    factory: AdapterFactory | Routing, messages: Sequence[OutboundMessage]
) -> list[SendResult]:
    """Send each channel's messages through its default provider, channels concurrently
    (no failover: `send_routed` is what the dispatcher uses)."""
    routing = factory if isinstance(factory, Routing) else Routing.by_channel(factory)
    by_provider: dict[str, list[OutboundMessage]] = defaultdict(list)
    for message in messages:
        by_provider[routing.default(message.channel) or message.channel.value].append(message)
    groups = await asyncio.gather(
        *(send_to(routing, None, name, batch) for name, batch in by_provider.items())
    )
    return [result for group in groups for result in group]


def _route(routing: Routing, message: Claimed, jurisdiction: str | None) -> tuple[str, ...]:
    """The providers a claimed message may go to, in order: a message in doubt goes first
    to the provider that may have it (its lookup settles it there)."""
    route = routing.candidates(message.channel, jurisdiction)
    if message.in_doubt and message.provider is not None:
        return (message.provider, *(name for name in route if name != message.provider))
    return route


@dataclass
class Routed:
    """The answers of one claim's sends, and the provider each message went to last."""

    results: list[SendResult] = field(default_factory=list)
    providers: dict[int, str] = field(default_factory=dict)
    failed_over: int = 0


async def _send_each(
    routing: Routing, pace: SharedPace | None, batches: Mapping[str, Sequence[OutboundMessage]]
) -> list[list[SendResult]]:
    """Each provider's batch, providers concurrently; answers in the order of `batches`."""
    return await asyncio.gather(
        *(send_to(routing, pace, name, batch) for name, batch in batches.items())
    )


def send_routed(
    engine: Any,
    routing: Routing,
    claimed: Sequence[Claimed],
    outbound: Mapping[int, OutboundMessage],
    facts: Mapping[int, Recipient],
    *,
    token: str,
    clock: Callable[[], datetime],
    circuits: Circuits,
    pace: SharedPace | None,
) -> Routed:
    """Send claimed messages, each through the first provider of its route that takes it.

    Before each round the chosen provider is written on every row (under our claim), so that
    a crash or an ambiguous answer leaves the row naming the one vendor that may have it. A
    RETRY the adapter marks `not_taken` (the vendor certainly does not have it) moves the
    message to its route's next provider; a RETRY it does not mark stays with its provider
    (left `sending` as an AMBIGUOUS answer when the route has others); every other answer is
    final for this claim.
    """
    routed = Routed()
    pending = []
    for message in claimed:
        if message.in_doubt and message.provider and not routing.knows(message.provider):
            # Only that vendor can say whether it has the message: never send it elsewhere.
            routed.results.append(
                SendResult(
                    message.idempotency_key,
                    SendOutcome.REJECTED,
                    code=RejectCode.IN_DOUBT.value,
                    reason=f"in doubt at provider {message.provider!r}, which no route names "
                    "any more: not sent again; check with that vendor",
                )
            )
        else:
            pending.append(message)
    routes = {m.id: _route(routing, m, facts.get(m.id, Recipient()).jurisdiction) for m in pending}
    hop = dict.fromkeys(routes, 0)
    while pending:
        assigned: dict[str, list[Claimed]] = defaultdict(list)
        for message in pending:
            route = routes[message.id]
            index = hop[message.id]
            settling = message.in_doubt and index == 0 and message.provider is not None
            while index < len(route) and not settling and circuits.is_open(route[index]):
                index += 1  # down a moment ago: send past it
            if index >= len(route):
                reason = (
                    f"no provider of its route took it ({', '.join(route)})"
                    if route
                    else f"no provider routes {message.channel.value}"
                )
                routed.results.append(
                    SendResult(message.idempotency_key, SendOutcome.RETRY, reason=reason)
                )
                continue
            hop[message.id] = index
            assigned[route[index]].append(message)
        if not assigned:
            break
        with engine.begin() as connection:
            for provider, messages in assigned.items():
                for part in chunked([m.id for m in messages], 900):
                    connection.execute(
                        update(OUTBOX)
                        .where(OUTBOX.c.id.in_(part), OUTBOX.c.claim_token == token)
                        .values(provider=provider, updated_at=clock())
                    )
        crash_point("dispatch.after-route")
        batches = {
            provider: [
                outbound[m.id] if hop[m.id] == 0 else replace(outbound[m.id], in_doubt=False)
                for m in messages
            ]
            for provider, messages in assigned.items()
        }

        answers = asyncio.run(_send_each(routing, pace, batches))
        pending = []
        for (provider, messages), results in zip(assigned.items(), answers, strict=True):
            by_key = {result.idempotency_key: result for result in results}
            if results and all(r.outcome == SendOutcome.RETRY for r in results):
                circuits.trip(provider)
            elif any(r.outcome == SendOutcome.ACCEPTED for r in results):
                circuits.close(provider)
            for message in messages:
                routed.providers[message.id] = provider
                result = by_key.get(message.idempotency_key) or SendResult(
                    message.idempotency_key, SendOutcome.RETRY, reason="the adapter gave no answer"
                )
                moves_on = hop[message.id] + 1 < len(routes[message.id])
                if result.outcome == SendOutcome.RETRY and moves_on and result.not_taken:
                    hop[message.id] += 1
                    routed.failed_over += 1
                    pending.append(message)
                elif (
                    result.outcome == SendOutcome.RETRY
                    and not result.not_taken
                    and len(routes[message.id]) > 1
                ):
                    # Not certainly not taken (a timeout on the way), and another provider
                    # could be chosen next time: keep it with this one, as an ambiguous answer.
                    # (Certainly not taken by the route's last provider: a plain RETRY, planned
                    # again for later.)
                    routed.results.append(replace(result, outcome=SendOutcome.AMBIGUOUS))
                else:
                    routed.results.append(result)
    return routed


def record_results(
    connection: Connection,
    claimed: Sequence[Claimed],
    results: Sequence[SendResult],
    *,
    token: str,
    now: datetime,
    max_attempts: int,
    report: DispatchReport,
    providers: Mapping[int, str] | None = None,
    refusals: RefusalHook | None = None,
) -> None:
    """Write each gateway answer onto its row, if the row still holds our claim.

    `providers`: the provider each message went to last (its sent count, per provider)."""
    by_key = {result.idempotency_key: result for result in results}
    updates: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    for message in claimed:
        result = by_key.get(message.idempotency_key) or SendResult(
            message.idempotency_key, SendOutcome.RETRY, reason="the adapter gave no answer"
        )
        values: dict[str, Any] = {
            "_id": message.id,
            "_token": token,
            "status": None,
            "gateway_message_id": None,
            "last_error": None,
            "not_before": None,
            "sent_at": None,
            "final_at": None,
            "segments": None,
            "price": None,
            "price_unit": None,
        }
        if result.outcome == SendOutcome.ACCEPTED:
            values.update(
                status=OutboxStatus.SENT.value,
                gateway_message_id=result.gateway_message_id,
                sent_at=now,
                segments=result.segments,
                price=result.price,
                price_unit=result.price_unit,
            )
            report.sent += 1
            report.duplicates += int(result.duplicate)
            report.by_channel[message.channel.value] += 1
            provider = (providers or {}).get(message.id)
            if provider is not None:
                report.by_provider[provider] += 1
        elif result.outcome == SendOutcome.AMBIGUOUS and message.attempts < max_attempts:
            # The gateway may have it: leave the row `sending` under our claim. When the
            # lease runs out it is claimed again, in doubt, and its adapter asks the gateway
            # before sending it again (never blindly).
            report.in_doubt += 1
            continue
        elif result.outcome == SendOutcome.REJECTED or message.attempts >= max_attempts:
            reason = result.reason or "rejected by the gateway"
            if result.outcome != SendOutcome.REJECTED:
                reason = f"gave up after {message.attempts} attempts: {reason}"
            values.update(status=OutboxStatus.FAILED.value, last_error=reason[:500], final_at=now)
            report.failed += 1
        else:
            values.update(
                status=OutboxStatus.PLANNED.value,
                not_before=now + RETRY_DELAY,
                last_error=(result.reason or "transient gateway error")[:500],
            )
            report.retry += 1
        updates.append(values)
        if values["status"] != OutboxStatus.PLANNED.value:
            events.append(
                {
                    "outbox_id": message.id,
                    "status": values["status"],
                    "source": "send",
                    "occurred_at": now,
                    "recorded_at": now,
                    "reason": values["last_error"],
                }
            )
    if not updates:
        return
    o = OUTBOX.c
    # Only rows that still hold our claim are ours to record (a lease may have expired and
    # another dispatcher re-claimed them; it records its own answer).
    mine = select(o.id).where(
        o.id.in_([message.id for message in claimed]),  # by primary key, not a table scan
        o.claim_token == token,
        o.status == OutboxStatus.SENDING.value,
    )
    if connection.dialect.name == "postgresql":
        mine = mine.with_for_update()
    held_by_us = {row[0] for row in connection.execute(mine)}
    updates = [u for u in updates if u["_id"] in held_by_us]
    events = [e for e in events if e["outbox_id"] in held_by_us]
    if not updates:
        return
    statement = (
        update(OUTBOX)
        .where(and_(o.id == bindparam("_id"), o.claim_token == bindparam("_token")))
        .values(
            status=bindparam("status"),
            gateway_message_id=bindparam("gateway_message_id"),
            last_error=bindparam("last_error"),
            not_before=bindparam("not_before"),
            sent_at=bindparam("sent_at"),
            final_at=bindparam("final_at"),
            segments=bindparam("segments"),
            price=bindparam("price"),
            price_unit=bindparam("price_unit"),
            claim_token=None,
            claimed_until=None,
            updated_at=now,
        )
    )
    connection.execute(statement, updates)
    if events:
        connection.execute(EVENT.insert(), events)
    sent = [u["_id"] for u in updates if u["status"] == OutboxStatus.SENT.value]
    if sent:
        apply_early_receipts(connection, sent, now)
    codes = {
        key: str(answer.code)
        for key, answer in by_key.items()
        if answer.outcome == SendOutcome.REJECTED and answer.code in _RECORDED_REFUSALS
    }
    refused = [
        VendorRefusal(
            message.id,
            message.channel,
            (providers or {}).get(message.id),
            codes[message.idempotency_key],
        )
        for message in claimed
        if message.id in held_by_us and message.idempotency_key in codes
    ]
    if refused and refusals is not None:
        refusals(connection, refused, now)
        report.vendor_opt_outs += sum(r.code == RejectCode.OPTED_OUT.value for r in refused)
        report.dead_contacts += sum(r.code == RejectCode.INVALID_NUMBER.value for r in refused)


@dataclass(frozen=True)
class Verdict:
    """A send-time rule's word on one claimed message."""

    action: str  # "send" | "defer" | "hold" | "cancel"
    reason: str | None = None
    until: datetime | None = None


SEND = Verdict("send")
SendGate = Callable[[Connection, Sequence[Claimed], datetime], dict[int, Verdict]]
"""Checks claimed messages against the rules at send time; absent ids are sent."""


def apply_verdicts(
    connection: Connection,
    claimed: Sequence[Claimed],
    verdicts: dict[int, Verdict],
    *,
    token: str,
    now: datetime,
    report: DispatchReport,
) -> list[Claimed]:
    """Release deferred messages, hold or cancel stopped ones; return those to send now."""
    o = OUTBOX.c
    keep: list[Claimed] = []
    changes: list[dict[str, Any]] = []
    for message in claimed:
        verdict = verdicts.get(message.id, SEND)
        if verdict.action == "send":
            keep.append(message)
            continue
        if verdict.action == "defer":
            report.deferred += 1
            changes.append(
                {
                    "_id": message.id,
                    "status": OutboxStatus.PLANNED.value,
                    "not_before": verdict.until,
                    "suppression": None,
                    "attempts": message.attempts - 1,
                    "final_at": None,
                }
            )
        else:
            status = OutboxStatus.HELD if verdict.action == "hold" else OutboxStatus.CANCELLED
            report.held[verdict.reason or status.value] += 1
            changes.append(
                {
                    "_id": message.id,
                    "status": status.value,
                    "not_before": None,
                    "suppression": verdict.reason,
                    "attempts": message.attempts - 1,
                    "final_at": now,
                }
            )
    if changes:
        connection.execute(
            update(OUTBOX)
            .where(and_(o.id == bindparam("_id"), o.claim_token == token))
            .values(
                status=bindparam("status"),
                not_before=bindparam("not_before"),
                suppression=bindparam("suppression"),
                attempts=bindparam("attempts"),
                final_at=bindparam("final_at"),
                claim_token=None,
                claimed_until=None,
                updated_at=now,
            ),
            changes,
        )
    return keep


def dispatch_due(
    engine: Any,
    factory: AdapterFactory | Routing,
    documents: DocumentStore,
    *,
    scope: Scope,
    clock: Callable[[], datetime] = utcnow,
    lease: timedelta = timedelta(seconds=120),
    max_attempts: int = 8,
    chunk: int = 2000,
    gate: SendGate | None = None,
    circuits: Circuits | None = None,
    pace: SharedPace | None = None,
    refusals: RefusalHook | None = None,
) -> DispatchReport:
    """Claim, check, send (routed, with failover) and record until nothing in scope is due.

    `factory`: the routes and providers, or (tests, embedders) an adapter per channel."""

    routing = factory if isinstance(factory, Routing) else Routing.by_channel(factory)
    circuits = circuits or Circuits()
    if pace is None and routing.rates:
        pace = SharedPace(engine)
    report = DispatchReport()
    while True:
        token = new_token()
        started = time.perf_counter()
        now = clock()
        with engine.begin() as connection:
            claimed = claim(connection, now=now, lease=lease, limit=chunk, scope=scope, token=token)
            if not claimed:
                break
            report.claimed += len(claimed)
            if gate is not None:
                claimed = apply_verdicts(
                    connection,
                    claimed,
                    gate(connection, claimed, now),
                    token=token,
                    now=now,
                    report=report,
                )
            facts = recipients(connection, claimed)
        report.timings["record"] += time.perf_counter() - started
        crash_point("dispatch.after-claim")
        if not claimed:
            continue
        started = time.perf_counter()
        outbound = {m.id: to_outbound(m, documents, facts.get(m.id)) for m in claimed}
        routed = send_routed(
            engine,
            routing,
            claimed,
            outbound,
            facts,
            token=token,
            clock=clock,
            circuits=circuits,
            pace=pace,
        )
        report.failed_over += routed.failed_over
        crash_point("dispatch.after-send")
        report.timings["dispatch"] += time.perf_counter() - started
        started = time.perf_counter()
        with engine.begin() as connection:
            record_results(
                connection,
                claimed,
                routed.results,
                token=token,
                now=clock(),
                max_attempts=max_attempts,
                report=report,
                providers=routed.providers,
                refusals=refusals,
            )
            crash_point("dispatch.before-record-commit")
        report.timings["record"] += time.perf_counter() - started
    return report
