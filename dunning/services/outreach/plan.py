"""Planning the daily outreach for one batch of accounts: select, decide, render, write.

A batch is a range of account ids. Everything here is set-based or per batch: one query loads
the batch's delinquent accounts with their customer state, decisions and renders happen in
memory, and the outbox rows go in with one INSERT ... ON CONFLICT DO NOTHING on their
idempotency keys, so a rerun of the same date plans nothing new.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    Connection,
    func,
    null,
    select,
)

from dunning.config.strategy import Step
from dunning.crashpoints import crash_point
from dunning.db.documents import DocumentStore
from dunning.db.ranges import in_accounts
from dunning.db.sql import insert_ignoring_conflicts
from dunning.db.tables import ACTION, OUTBOX
from dunning.domain.decide import (
    Decision,
    decide,
    decide_message,
)
from dunning.domain.keys import idempotency_key
from dunning.domain.money import to_decimal
from dunning.errors import TemplateError
from dunning.rendering import TYPST_MARKER
from dunning.services.lifecycle.plans import plan_states, reaged_since
from dunning.services.outreach.actions import due_actions
from dunning.services.outreach.outbox import existing_keys
from dunning.services.outreach.planner import Planner
from dunning.services.outreach.render import build_context
from dunning.services.outreach.select import BatchRow, select_batch, tier_counts
from dunning.types import Channel, OutboxStatus, Suppression

STAGES = ("select", "decide", "render", "outbox_write", "dispatch", "record")


@dataclass
class PlannedMessage:
    row: BatchRow
    decision: Decision
    key: str
    folder: str
    """The template folder under the channel: the account's tier, or `plan`."""
    extra: dict[str, Any] = field(default_factory=dict)
    template_id: str | None = None
    template_hash: str | None = None
    subject: str | None = None
    body: str | None = None
    document: bytes | None = None
    hold: str | None = None
    error: str | None = None
    """Why the message could not be rendered (no PII: template id, line and kind of error)."""
    vendor: dict[str, dict[str, Any]] | None = None
    """The template's vendor code and rendered parameters (Planner.vendor); None without."""
    not_before: datetime | None = None


@dataclass
class PlanReport:
    """What one batch did: counts for the run summary, seconds per stage for benchmarks."""

    accounts: Counter[str] = field(default_factory=Counter)
    decisions: Counter[str] = field(default_factory=Counter)
    held: Counter[str] = field(default_factory=Counter)
    actions: Counter[str] = field(default_factory=Counter)
    planned_new: int = 0
    already_planned: int = 0
    timings: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))

    def merge(self, other: PlanReport) -> None:
        self.accounts.update(other.accounts)
        self.decisions.update(other.decisions)
        self.held.update(other.held)
        self.actions.update(other.actions)
        self.planned_new += other.planned_new
        self.already_planned += other.already_planned
        for stage, seconds in other.timings.items():
            self.timings[stage] += seconds

    def as_dict(self) -> dict[str, Any]:
        return {
            "accounts_by_tier": dict(self.accounts),
            "decisions_by_channel": dict(self.decisions),
            "held_by_suppression": dict(self.held),
            "actions": dict(self.actions),
            "planned_new": self.planned_new,
            "already_planned": self.already_planned,
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PlanReport:
        return cls(
            accounts=Counter[str](data.get("accounts_by_tier", {})),
            decisions=Counter[str](data.get("decisions_by_channel", {})),
            held=Counter[str](data.get("held_by_suppression", {})),
            actions=Counter[str](data.get("actions", {})),
            planned_new=data.get("planned_new", 0),
            already_planned=data.get("already_planned", 0),
            timings=defaultdict(float, data.get("timings", {})),
        )


def _reage(planner: Planner, connection: Connection, rows: list[BatchRow], as_of: date) -> None:
    """A broken plan set to `reage` makes DPD count from its first missed instalment."""
    policy = planner.strategy.plans
    broken = [row.account_id for row in rows if row.plan_broken and row.plan_id is None]
    for account_id, since in reaged_since(connection, broken, policy).items():
        for row in rows:
            if row.account_id == account_id and (as_of - since).days < row.dpd:
                row.dpd = max((as_of - since).days, 0)
                tier = planner.strategy.tier_for(row.dpd)
                row.tier = tier.name if tier else None


def _plan_messages(
    planner: Planner, row: BatchRow, as_of: date, plans: dict[int, Any]
) -> Iterator[PlannedMessage]:
    """Messages of an active payment plan: its confirmation letter and instalment reminders."""
    policy = planner.strategy.plans
    state = plans.get(row.plan_id or 0)
    if state is None:
        return
    account = row.account_state(ignore_plan=True)
    contact = row.contact_state()
    terms = {
        "plan": {
            "id": state.plan_id,
            "created_on": state.created_on,
            "total": to_decimal(sum(line.amount_minor for line in state.lines), row.currency),
            "instalments": [
                {
                    "seq": line.seq,
                    "due_on": line.due_on,
                    "amount": to_decimal(line.amount_minor, row.currency),
                }
                for line in state.lines
            ],
        }
    }
    confirmation = Step(
        id=f"plan-{state.plan_id}-confirmation",
        channel=Channel.LETTER,
        template=policy.confirmation_template,
        days=[max(row.dpd, 1)],
    )
    decision = decide_message(confirmation, account, contact, {})
    key = idempotency_key(row.account_external_id, state.created_on, confirmation.id, "letter")
    yield PlannedMessage(row, decision, key, "plan", terms, hold=decision.hold)
    for line in state.lines:
        if (line.due_on - as_of).days == policy.reminder_days_before:
            reminder = Step(
                id=f"plan-{state.plan_id}-{line.seq}-reminder",
                channel=Channel.SMS,
                template=policy.reminder_template,
                days=[max(row.dpd, 1)],
            )
            decision = decide_message(reminder, account, contact, planner.strategy.channel_fallback)
            key = idempotency_key(row.account_external_id, as_of, reminder.id, "sms")
            due = {
                "due_on": line.due_on,
                "amount": to_decimal(line.amount_minor, row.currency),
                "seq": line.seq,
            }
            yield PlannedMessage(
                row, decision, key, "plan", {**terms, "instalment": due}, hold=decision.hold
            )


def _messages(
    planner: Planner, rows: list[BatchRow], as_of: date, report: PlanReport, plans: dict[int, Any]
) -> Iterator[PlannedMessage]:
    fallback = planner.strategy.channel_fallback
    for row in rows:
        if row.tier is None:
            continue
        tier = planner.tiers[row.tier]
        state = row.account_state()
        contact = row.contact_state()
        for decision in decide(tier, state, contact, fallback):
            key = idempotency_key(
                row.account_external_id, as_of, decision.step.id, decision.step.channel or ""
            )
            yield PlannedMessage(row, decision, key, row.tier, hold=decision.hold)
        if row.broken_promise_on is not None and row.broken_promise_minor is not None:
            # The promise was broken on this run: the cadence resumes with a word about it.
            step = Step(
                id="broken-promise",
                channel=Channel.SMS,
                template=planner.strategy.promises.broken_template,
                days=[row.dpd],
            )
            decision = decide_message(step, state, contact, fallback)
            key = idempotency_key(row.account_external_id, as_of, step.id, "sms")
            promise = {
                "promise": {
                    "amount": to_decimal(row.broken_promise_minor, row.currency),
                    "promised_on": row.broken_promise_on,
                }
            }
            yield PlannedMessage(row, decision, key, row.tier, promise, hold=decision.hold)
        yield from _plan_messages(planner, row, as_of, plans)


def plan_batch(
    planner: Planner,
    run_id: int,
    as_of: date,
    lo: int,
    hi: int,
    *,
    dry_run: bool = False,
) -> PlanReport:
    """Select, decide, render and write the outbox (and actions) for account ids in [lo, hi]."""
    crash_point("plan.batch")
    report = PlanReport()
    clock = time.perf_counter
    started = clock()
    with planner.engine.connect() as connection:
        rows = select_batch(connection, as_of, planner.strategy, lo, hi)
        report.accounts.update(tier_counts(connection, as_of, planner.strategy, lo, hi))
        _reage(planner, connection, rows, as_of)
        plan_ids = [row.plan_id for row in rows if row.plan_id is not None]
        plans = {s.plan_id: s for s in plan_states(connection, as_of, plan_ids)} if plan_ids else {}
    report.timings["select"] += clock() - started

    started = clock()
    now = planner.clock()
    candidates = list(_messages(planner, rows, as_of, report, plans))
    actions = list(due_actions(planner, rows, as_of)) if planner.has_actions else []
    with planner.engine.connect() as connection:
        known = existing_keys(connection, OUTBOX, (m.key for m in candidates))
        known_actions = existing_keys(connection, ACTION, (a.key for a in actions))
    planned: list[PlannedMessage] = []
    for message in candidates:
        if message.key in known:
            report.already_planned += 1
            continue
        row, decision = message.row, message.decision
        if message.hold is None:
            template = planner.templates.find(
                decision.channel, message.folder, decision.step.template or "", row.locale
            )
            if template is None:
                message.hold = Suppression.TEMPLATE_MISSING
            else:
                message.template_id = template.id
                message.template_hash = template.content_hash
                message.hold = planner.template_hold(template)
        if message.hold is None:
            timing = planner.timing(row, decision.channel, now)
            message.hold, message.not_before = timing.hold, timing.not_before
        planned.append(message)
    actions = [action for action in actions if action.key not in known_actions]
    for action in actions:
        report.actions[action.hold or action.kind.value] += 1
    report.timings["decide"] += clock() - started

    started = clock()
    for message in planned:
        report.decisions[message.decision.channel.value] += 1
        if message.hold is not None:
            report.held[message.hold] += 1
            continue
        assert message.template_id is not None
        template = planner.templates.get(message.template_id)
        context = build_context(
            planner, message.row, message.row.tier or "", as_of, message.key, message.extra
        )
        try:
            rendered = planner.renderer.render(template, context)
            message.vendor = planner.vendor(template, context, rendered.text)
        except TemplateError as exc:
            # One account's data must not stop the day's outreach: this message is held with
            # the reason, the others go on. The error names the template, line and kind only.
            message.hold, message.error = Suppression.RENDER_FAILED, str(exc)
            report.held[message.hold] += 1
            continue
        message.subject, message.body = rendered.subject, rendered.text
        if message.decision.channel == Channel.LETTER:
            # Printed to PDF by the print stage (dispatch.printing.print_letters) before
            # dispatch: layout is the slowest work there is, and it scales out separately.
            message.document = (rendered.typst or rendered.html or "").encode()
    report.timings["render"] += clock() - started

    if dry_run:
        return report
    started = clock()
    documents: DocumentStore = planner.documents
    records: list[dict[str, Any]] = []
    for message in planned:
        row, decision = message.row, message.decision
        source = None
        if message.document is not None:
            suffix = "typ" if message.document.startswith(TYPST_MARKER.encode()) else "html"
            source = documents.put_source(as_of, message.key, message.document, suffix)
        held = message.hold is not None
        records.append(
            {
                "idempotency_key": message.key,
                "run_id": run_id,
                "account_id": row.account_id,
                "customer_id": row.customer_id,
                "as_of": as_of,
                "tier": row.tier,
                "step_id": decision.step.id,
                "channel": decision.channel.value,
                "template_id": message.template_id,
                "template_hash": message.template_hash,
                "locale": row.locale,
                "recipient": None if held else row.recipient(decision.channel),
                "address": row.address()
                if decision.channel == Channel.LETTER and not held
                else null(),
                "subject": message.subject,
                "body": message.body,
                "document_source": source,
                "status": (OutboxStatus.HELD if held else OutboxStatus.PLANNED).value,
                "suppression": message.hold,
                "last_error": message.error,
                # SQL NULL, not JSON null, for a template without vendor metadata.
                "vendor": null() if message.vendor is None else message.vendor,
                "not_before": message.not_before,
                "attempts": 0,
                "created_at": now,
                "updated_at": now,
                "final_at": now if held else None,
            }
        )
    action_records = [
        {
            "idempotency_key": action.key,
            "run_id": run_id,
            "account_id": action.row.account_id,
            "as_of": as_of,
            "kind": action.kind.value,
            "step_id": action.step.id,
            "status": "held" if action.hold else "planned",
            "suppression": action.hold,
            "payload": action.payload,
            "cost_minor": action.cost_minor,
            "attempts": 0,
            "created_at": now,
            "updated_at": now,
        }
        for action in actions
    ]
    with planner.engine.begin() as connection:
        insert_ignoring_conflicts(connection, ACTION, action_records, "idempotency_key")
        insert_ignoring_conflicts(connection, OUTBOX, records, "idempotency_key")
        crash_point("plan.before-outbox-commit")
        if records:
            # Through the (account, date) index: only this batch's rows are counted.
            report.planned_new = int(
                connection.execute(
                    select(func.count()).where(
                        in_accounts(OUTBOX.c.account_id, lo, hi),
                        OUTBOX.c.as_of == as_of,
                        OUTBOX.c.run_id == run_id,
                    )
                ).scalar_one()
            )
    report.timings["outbox_write"] += clock() - started
    crash_point("plan.after-outbox-commit")
    if planner.start_printing and any(message.document is not None for message in planned):
        planner.start_printing(lo, hi)
    return report
