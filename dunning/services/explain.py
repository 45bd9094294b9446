"""`explain`: for one account and date, what was or was not sent, and the rule behind each."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, or_, select

from dunning.db.tables import ACCOUNT, EVENT, INSTALMENT, OUTBOX
from dunning.domain.contact_time import next_opening
from dunning.domain.decide import decide, due_steps
from dunning.domain.keys import idempotency_key
from dunning.domain.zones import candidate_zones
from dunning.errors import NotFound
from dunning.masking import mask_recipient
from dunning.services.contact.policy import NO_CONTACT_WINDOW
from dunning.services.delinquency import account_dpd
from dunning.services.outreach import Planner, select_batch
from dunning.types import Channel, OutboxStatus, Suppression

TIME_RULES = frozenset({NO_CONTACT_WINDOW, Suppression.TIME_ZONE_UNKNOWN.value})
"""Holds by the contact-time rule, for which the candidate zones are the explanation."""


def explain_account(planner: Planner, account: str, as_of: date) -> dict[str, Any]:
    """Everything recorded for the account on `as_of`, and today's reading of the rules."""
    engine = planner.engine
    condition = ACCOUNT.c.external_id == account
    if account.isdigit():
        condition = or_(condition, ACCOUNT.c.id == int(account))
    with engine.connect() as connection:
        found = connection.execute(
            select(
                ACCOUNT.c.id, ACCOUNT.c.external_id, ACCOUNT.c.jurisdiction, ACCOUNT.c.status
            ).where(condition)
        ).first()
        if found is None:
            raise NotFound(f"no account {account}")
        account_id = found.id
        dpd = account_dpd(connection, account_id, as_of)
        rows = select_batch(connection, as_of, planner.strategy, account_id, account_id)
        messages = connection.execute(
            select(OUTBOX)
            .where(OUTBOX.c.account_id == account_id, OUTBOX.c.as_of == as_of)
            .order_by(OUTBOX.c.id)
        ).all()
        events = connection.execute(
            select(
                EVENT.c.outbox_id,
                EVENT.c.status,
                EVENT.c.source,
                EVENT.c.occurred_at,
                EVENT.c.reason,
            )
            .where(EVENT.c.outbox_id.in_([m.id for m in messages]))
            .order_by(EVENT.c.id)
        ).all()
    tier = planner.strategy.tier_for(dpd)
    result: dict[str, Any] = {
        "account": found.external_id,
        "jurisdiction": found.jurisdiction,
        "status": found.status,
        "as_of": as_of.isoformat(),
        "dpd": dpd,
        "tier": tier.name if tier else None,
        "recorded": [
            {
                "step": m.step_id,
                "channel": m.channel,
                "template": m.template_id,
                "status": m.status,
                "rule": m.suppression,
                "not_before": m.not_before.isoformat() if m.not_before else None,
                "recipient": mask_recipient(m.channel, m.recipient),
                "events": [
                    {
                        "status": e.status,
                        "source": e.source,
                        "occurred_at": e.occurred_at.isoformat(),
                        "reason": e.reason,
                    }
                    for e in events
                    if e.outbox_id == m.id
                ],
            }
            for m in messages
        ],
    }
    if tier is None:
        result["why"] = "not delinquent on this date: no collection contact is due"
        return result
    steps = due_steps(tier, dpd)
    if not steps:
        schedule = {
            step.id: [
                d
                for d in range(tier.dpd.min, (tier.dpd.max or dpd + 60) + 1)
                if step.is_due(d, tier.dpd)
            ][:8]
            for step in tier.cadence
        }
        result["why"] = f"no cadence step of tier {tier.name} is due at DPD {dpd}"
        result["cadence"] = schedule
        return result
    row = rows[0] if rows else None
    now = planner.clock()
    recorded = {m.idempotency_key: m for m in messages}
    with engine.connect() as connection:
        cured = found.status != "open" or not _still_owing(connection, account_id, as_of)
    today: list[dict[str, Any]] = []
    if row is not None:
        for decision in decide(
            tier, row.account_state(), row.contact_state(), planner.strategy.channel_fallback
        ):
            entry: dict[str, Any] = {
                "step": decision.step.id,
                "channel": decision.channel.value,
                "key": idempotency_key(
                    row.account_external_id, as_of, decision.step.id, decision.step.channel or ""
                ),
            }
            message = recorded.get(entry["key"])
            if message is not None and message.status != OutboxStatus.PLANNED:
                # Already decided: what happened is the answer, not what the rules would say.
                entry["verdict"] = message.status
                entry["rule"] = message.suppression
                if message.suppression in TIME_RULES:
                    _timing(planner, row, decision.channel, now, entry)  # which zones, now
                today.append(entry)
                continue
            if cured:
                # The dispatcher cancels a waiting message of an account paid up since.
                entry["verdict"], entry["rule"] = "cancel", Suppression.PAID.value
                today.append(entry)
                continue
            rule: str | None = decision.hold
            if rule is None:
                template = planner.templates.find(
                    decision.channel, tier.name, decision.step.template or "", row.locale
                )
                if template is None:
                    rule = "template_missing"
                else:
                    entry["template"] = template.id
                    rule = planner.template_hold(template)
            if rule is None:
                rule = _timing(planner, row, decision.channel, now, entry)
            entry["verdict"] = "hold" if rule else ("defer" if "not_before" in entry else "send")
            entry["rule"] = rule
            today.append(entry)
    result["rules_now"] = today
    return result


def _timing(
    planner: Planner, row: Any, channel: Channel, now: datetime, entry: dict[str, Any]
) -> str | None:
    """The contact-time rule's answer, with the candidate zones behind it in `entry`.

    Zones are shown (never the phone number or the address they come from): `zones` every
    candidate, `closed_now` those in which the channel's window is shut at this moment, which
    are the zones that defer the message (or, when no opening is found, hold it).
    """
    zones = candidate_zones(row.time_zone, row.phone, row.country, row.region)
    timing = planner.policy.timing(row.jurisdiction, channel, zones, now)
    rule = planner.policy.rule(row.jurisdiction, channel)
    if timing.hold is None and timing.not_before is None:
        return None
    if timing.not_before is not None:
        entry["not_before"] = timing.not_before.isoformat()
    if rule is not None:
        entry["zones"] = sorted(zones)
        entry["closed_now"] = sorted(
            zone
            for zone in zones
            if next_opening(now, {zone}, rule, span=planner.policy.send_span) != now
        )
    return timing.hold


def _still_owing(connection: Connection, account_id: int, as_of: date) -> bool:
    """Whether an instalment overdue on `as_of` is still unpaid now (as the send gate asks)."""
    i = INSTALMENT.c
    return (
        connection.execute(
            select(i.id)
            .where(i.account_id == account_id, i.due_on < as_of, i.paid_on.is_(None))
            .limit(1)
        ).first()
        is not None
    )
