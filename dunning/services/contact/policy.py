"""Contact rules at plan time and at send time, from the jurisdiction's policy pack.

Fail closed: a message is sent only when every rule could be evaluated and allows it. Unknown
jurisdiction (no pack), no candidate time zone, a channel the pack does not name, missing
consent, an opt-out, a stop, a cap, or an unapproved template each hold it with the rule id.
A message outside its contact window is deferred to the next opening, never dropped.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import holidays as holiday_calendars
from sqlalchemy import Connection, select

from dunning.config.compliance import WEEKDAYS, CompliancePack
from dunning.db.tables import ACCOUNT, CUSTOMER, INSTALMENT, OUTBOX
from dunning.domain.contact_time import Cap, ContactRule, cap_exceeded, next_opening
from dunning.domain.zones import candidate_zones
from dunning.services.contact.stops import Stops, stops_in_force
from dunning.services.dispatch.send import Claimed, Verdict
from dunning.types import Channel, OutboxStatus, Suppression

NO_POLICY_PACK = "no_policy_pack"
NO_CONTACT_WINDOW = "no_contact_window"
CHANNEL_NOT_ALLOWED = "channel_not_allowed"
IN_FLIGHT = (
    OutboxStatus.SENDING.value,
    OutboxStatus.SENT.value,
    OutboxStatus.DELIVERED.value,
    OutboxStatus.UNDELIVERABLE.value,
)
"""Statuses that count as contact for frequency caps: accepted by a gateway, or on the way."""

ApprovalCheck = Callable[[str, str], bool]
"""(template id, content hash) -> whether a compliance officer approved exactly that text."""


@dataclass(frozen=True)
class Check:
    """A plan-time verdict: hold with a reason, or go at `not_before` (None: now)."""

    hold: str | None = None
    not_before: datetime | None = None


class ContactPolicy:
    """The policy packs of a program directory, compiled for fast repeated checks."""

    def __init__(self, packs: dict[str, CompliancePack], *, send_span: timedelta) -> None:
        self.packs = packs
        self.send_span = send_span
        """How long after its check a message may still be on its way (the dispatch lease)."""
        self._rules: dict[tuple[str, Channel], ContactRule | None] = {}

    def pack(self, jurisdiction: str) -> CompliancePack | None:
        return self.packs.get(jurisdiction)

    def rule(self, jurisdiction: str, channel: Channel) -> ContactRule | None:
        key = (jurisdiction, channel)
        if key not in self._rules:
            pack = self.packs.get(jurisdiction)
            if pack is None or not pack.allows_channel(channel):
                self._rules[key] = None
            else:
                window = pack.window(channel)
                self._rules[key] = ContactRule(
                    window=(window.start, window.end) if window else None,
                    weekdays=frozenset(WEEKDAYS.index(day) for day in pack.contact_days),
                    is_holiday=self._holidays(pack),
                )
        return self._rules[key]

    def _holidays(self, pack: CompliancePack) -> Callable[[date], bool] | None:
        rule = pack.holidays
        if rule is None or not rule.no_contact:
            return None
        calendar = holiday_calendars.country_holidays(rule.country, subdiv=rule.subdivision)

        def is_holiday(day: date) -> bool:
            return day in calendar

        return is_holiday

    def caps(self, jurisdiction: str) -> list[Cap]:
        pack = self.packs.get(jurisdiction)
        if pack is None:
            return []
        return [Cap(c.id, frozenset(c.channels), c.max, c.per_days) for c in pack.frequency_caps]

    def max_cap_days(self) -> int:
        return max((c.per_days for p in self.packs.values() for c in p.frequency_caps), default=1)

    def consent_required(self, jurisdiction: str, channel: Channel) -> bool:
        pack = self.packs.get(jurisdiction)
        return pack is None or channel in pack.consent_required

    def timing(
        self, jurisdiction: str, channel: Channel, zones: frozenset[str], now: datetime
    ) -> Check:
        """When a message may go: now, later (not_before), or never without a fix (hold)."""
        if jurisdiction not in self.packs:
            return Check(hold=NO_POLICY_PACK)
        rule = self.rule(jurisdiction, channel)
        if rule is None:
            return Check(hold=CHANNEL_NOT_ALLOWED)
        if rule.window is None and rule.is_holiday is None and len(rule.weekdays) == 7:
            return Check()  # letters: mailed, no time-of-day rule, so no zone is needed
        if not zones:
            return Check(hold=Suppression.TIME_ZONE_UNKNOWN.value)
        opening = next_opening(now, zones, rule, span=self.send_span)
        if opening is None:
            return Check(hold=NO_CONTACT_WINDOW)
        return Check(not_before=None if opening == now else opening)


def send_gate(
    policy: ContactPolicy, approved: ApprovalCheck
) -> Callable[[Connection, Sequence[Claimed], datetime], dict[int, Verdict]]:
    """The dispatcher's last look at each claimed message, inside the claim's transaction."""

    def gate(
        connection: Connection, claimed: Sequence[Claimed], now: datetime
    ) -> dict[int, Verdict]:
        ids = [message.id for message in claimed]
        o, a, c = OUTBOX.c, ACCOUNT.c, CUSTOMER.c
        rows = {
            row.id: row
            for row in connection.execute(
                select(
                    o.id,
                    o.channel,
                    o.template_id,
                    o.template_hash,
                    o.customer_id,
                    o.account_id,
                    o.step_id,
                    a.jurisdiction,
                    a.status.label("account_status"),
                    o.as_of,
                    c.time_zone,
                    c.phone,
                    c.country,
                    c.region,
                    c.sms_consent,
                    c.push_consent,
                    c.letter_consent,
                    c.email_consent,
                    c.sms_opted_out_at,
                    c.push_opted_out_at,
                    c.letter_opted_out_at,
                    c.email_opted_out_at,
                )
                .join(ACCOUNT, a.id == o.account_id)
                .join(CUSTOMER, c.id == o.customer_id)
                .where(o.id.in_(ids))
            )
        }
        customers = sorted({row.customer_id for row in rows.values()})
        if connection.dialect.name == "postgresql" and customers:
            # Serialise dispatchers per customer so two of them cannot both pass a cap.
            connection.execute(
                select(c.id).where(c.id.in_(customers)).order_by(c.id).with_for_update()
            )
        pairs = [(row.account_id, row.as_of) for row in rows.values()]
        still_owing = _still_owing(connection, pairs)
        stops = stops_in_force(connection, pairs, now)
        history: dict[int, dict[Channel, list[datetime]]] = defaultdict(lambda: defaultdict(list))
        since = now - timedelta(days=policy.max_cap_days())
        for customer_id, channel, sent_at, updated_at in connection.execute(
            select(o.customer_id, o.channel, o.sent_at, o.updated_at).where(
                o.customer_id.in_(customers),
                o.status.in_(IN_FLIGHT),
                o.updated_at > since,
                o.id.not_in(ids),
            )
        ):
            history[customer_id][Channel(channel)].append(sent_at or updated_at)

        verdicts: dict[int, Verdict] = {}
        for message in claimed:
            row = rows[message.id]
            verdict = _judge(
                policy,
                approved,
                row,
                message,
                now,
                history,
                (row.account_id, row.as_of) in still_owing,
                stops[(row.account_id, row.as_of)],
            )
            if verdict is None:
                history[row.customer_id][message.channel].append(now)
            else:
                verdicts[message.id] = verdict
        return verdicts

    return gate


def _still_owing(
    connection: Connection, pairs: Sequence[tuple[int, date]]
) -> set[tuple[int, date]]:
    """Which (account, as-of) pairs still have an instalment, overdue on that date, unpaid now.

    An account whose every such instalment has been paid since the message was planned has
    cured: its message is cancelled instead of sent.
    """
    found: set[tuple[int, date]] = set()
    by_date: dict[date, set[int]] = defaultdict(set)
    for account_id, as_of in pairs:
        by_date[as_of].add(account_id)
    i = INSTALMENT.c
    for as_of, accounts in by_date.items():
        found.update(
            (account_id, as_of)
            for (account_id,) in connection.execute(
                select(i.account_id)
                .distinct()
                .where(i.account_id.in_(sorted(accounts)), i.due_on < as_of, i.paid_on.is_(None))
            )
        )
    return found


def _judge(
    policy: ContactPolicy,
    approved: ApprovalCheck,
    row: Any,
    message: Claimed,
    now: datetime,
    history: dict[int, dict[Channel, list[datetime]]],
    delinquent: bool,
    stops: Stops,
) -> Verdict | None:
    """None to send now; otherwise why not (in order: cure and the other stops, as the daily
    run weighs them; opt-out, consent, template, time, caps)."""
    channel = message.channel
    stop = stops.first(paid=row.account_status != "open" or not delinquent, step_id=row.step_id)
    if stop == Suppression.PAID:
        return Verdict("cancel", Suppression.PAID.value)
    if stop is not None:
        return Verdict("hold", stop.value)
    if getattr(row, f"{channel.value}_opted_out_at") is not None:
        return Verdict("hold", Suppression.OPTED_OUT.value)
    if policy.consent_required(row.jurisdiction, channel) and not getattr(
        row, f"{channel.value}_consent"
    ):
        return Verdict("hold", Suppression.NO_CONSENT.value)
    if (
        row.template_id is None
        or row.template_hash is None
        or not approved(row.template_id, row.template_hash)
    ):
        return Verdict("hold", Suppression.TEMPLATE_UNAPPROVED.value)
    zones = candidate_zones(row.time_zone, row.phone, row.country, row.region)
    timing = policy.timing(row.jurisdiction, channel, zones, now)
    if timing.hold is not None:
        return Verdict("hold", timing.hold)
    if timing.not_before is not None:
        return Verdict("defer", Suppression.QUIET_HOURS.value, timing.not_before)
    cap = cap_exceeded(policy.caps(row.jurisdiction), channel, history[row.customer_id], now)
    if cap is not None:
        return Verdict("hold", f"{Suppression.FREQUENCY_CAP.value}:{cap.id}")
    return None
