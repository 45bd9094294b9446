"""Planning the daily outreach for one batch of accounts: select, decide, render, write.

A batch is a range of account ids. Everything here is set-based or per batch: one query loads
the batch's delinquent accounts with their customer state, decisions and renders happen in
memory, and the outbox rows go in with one INSERT ... ON CONFLICT DO NOTHING on their
idempotency keys, so a rerun of the same date plans nothing new.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    and_,
    cast,
    exists,
    false,
    func,
    or_,
    select,
)

from dunning.config import Strategy
from dunning.config.strategy import Step
from dunning.crashpoints import crash_point
from dunning.db.lifecycle_models import AccountAction, PaymentPlan
from dunning.db.models import Account, Customer, Payment, PromiseToPay
from dunning.db.outreach_models import OutboxMessage
from dunning.db.sql import chunked, insert_ignoring_conflicts
from dunning.domain.decide import (
    AccountState,
    ContactState,
    Decision,
    decide,
    decide_message,
    due_steps,
)
from dunning.domain.money import to_decimal
from dunning.errors import TemplateError
from dunning.rendering.context import (
    AccountView,
    AddressView,
    Amounts,
    CustomerView,
    MessageContext,
    ValidationNotice,
)
from dunning.services.actions import action_payload
from dunning.services.delinquency import delinquency, in_accounts
from dunning.services.documents import DocumentStore
from dunning.services.lifecycle import grace_in_force, plan_states, reaged_since, treatment_in_force
from dunning.services.outreach_env import OutreachEnv
from dunning.types import ActionKind, Channel, OutboxStatus, PromiseStatus, Suppression

ACCOUNT = Account.__table__  # type: ignore[attr-defined]
CUSTOMER = Customer.__table__  # type: ignore[attr-defined]
PAYMENT = Payment.__table__  # type: ignore[attr-defined]
PROMISE = PromiseToPay.__table__  # type: ignore[attr-defined]
OUTBOX = OutboxMessage.__table__  # type: ignore[attr-defined]
ACTION = AccountAction.__table__  # type: ignore[attr-defined]
PLAN = PaymentPlan.__table__  # type: ignore[attr-defined]

STAGES = ("select", "decide", "render", "outbox_write", "dispatch", "record")
PAY_BY_DAYS = 7
"""Messages ask for payment within a week of the run date."""
VALIDATION_RECEIPT_BUSINESS_DAYS = 5
VALIDATION_PERIOD_DAYS = 30


def idempotency_key(account_external_id: str, as_of: date, step_id: str, channel: str) -> str:
    """Stable per account, date, step and the step's channel: the same decision, the same key.

    The step's configured channel is used (not a fallback), so a rerun after the customer's
    contact data changed still finds the message planned the first time.
    """
    raw = f"{account_external_id}|{as_of.isoformat()}|{step_id}|{channel}"
    return "dn1-" + hashlib.sha256(raw.encode()).hexdigest()[:40]


def mask_reference(reference: str) -> str:
    tail = reference[-4:]
    return "*" * max(len(reference) - 4, 4) + tail


def add_business_days(day: date, days: int) -> date:
    while days > 0:
        day += timedelta(days=1)
        if day.weekday() < 5:
            days -= 1
    return day


@dataclass(slots=True)
class BatchRow:
    account_id: int
    account_external_id: str
    customer_id: int
    jurisdiction: str
    currency: str
    dpd: int
    tier: str | None
    overdue_minor: int
    oldest_due_on: date
    product: str
    agreement_ref: str | None
    opened_on: date
    principal_minor: int
    interest_minor: int
    fees_minor: int
    penalty_minor: int
    name: str
    locale: str
    time_zone: str | None
    phone: str | None
    push_token: str | None
    email: str | None
    address_line1: str | None
    address_line2: str | None
    city: str | None
    region: str | None
    postal_code: str | None
    country: str | None
    sms_consent: bool
    push_consent: bool
    letter_consent: bool
    email_consent: bool
    sms_opted_out: bool
    push_opted_out: bool
    letter_opted_out: bool
    email_opted_out: bool
    deceased: bool
    bankruptcy: bool
    attorney_on_file: bool
    cease_communication: bool
    dispute_open: bool
    hardship_hold: bool
    promise_active: bool
    payments_since_minor: int
    customer_external_id: str
    credit_limit_minor: int
    grace: bool
    hardship_grace: bool
    plan_id: int | None
    plan_broken: bool
    broken_promise_minor: int | None
    broken_promise_on: date | None
    frozen: bool
    placed: bool

    def account_state(self, *, ignore_plan: bool = False) -> AccountState:
        return AccountState(
            dpd=self.dpd,
            deceased=self.deceased,
            bankruptcy=self.bankruptcy,
            attorney_on_file=self.attorney_on_file,
            cease_communication=self.cease_communication,
            dispute_open=self.dispute_open,
            hardship_hold=self.hardship_hold or self.hardship_grace,
            promise_active=self.promise_active,
            grace=self.grace,
            plan_active=self.plan_id is not None and not ignore_plan,
        )

    def contact_state(self) -> ContactState:
        points = set()
        if self.phone:
            points.add(Channel.SMS)
        if self.push_token:
            points.add(Channel.PUSH)
        if self.address_line1 and (self.city or self.postal_code):
            points.add(Channel.LETTER)
        if self.email:
            points.add(Channel.EMAIL)
        consents = {
            channel
            for channel, given in (
                (Channel.SMS, self.sms_consent),
                (Channel.PUSH, self.push_consent),
                (Channel.LETTER, self.letter_consent),
                (Channel.EMAIL, self.email_consent),
            )
            if given
        }
        opted_out = {
            channel
            for channel, out in (
                (Channel.SMS, self.sms_opted_out),
                (Channel.PUSH, self.push_opted_out),
                (Channel.LETTER, self.letter_opted_out),
                (Channel.EMAIL, self.email_opted_out),
            )
            if out
        }
        return ContactState(frozenset(points), frozenset(consents), frozenset(opted_out))

    def recipient(self, channel: Channel) -> str | None:
        if channel == Channel.SMS:
            return self.phone
        if channel == Channel.PUSH:
            return self.push_token
        if channel == Channel.EMAIL:
            return self.email
        return "\n".join(self.address_lines(with_name=True))

    def address_lines(self, *, with_name: bool = False) -> list[str]:
        if self.locale.startswith("zh"):
            # Chinese addresses run from the largest unit down: postcode, city, street, name.
            lines = [
                f"{self.postal_code or ''} {self.city or ''}".strip(),
                self.address_line1 or "",
                self.address_line2 or "",
            ]
            if with_name:
                lines.append(self.name)
            return [line for line in lines if line]
        city_line = " ".join(
            part
            for part in (f"{self.city}," if self.city else None, self.region, self.postal_code)
            if part
        )
        lines = [self.address_line1 or "", self.address_line2 or "", city_line]
        if with_name:
            lines.insert(0, self.name)
        return [line for line in lines if line]


def due_today(dpd: ColumnElement[int], strategy: Strategy) -> ColumnElement[bool]:
    """SQL: a cadence step (message or action) of some tier falls on this DPD."""
    clauses: list[ColumnElement[bool]] = []
    for tier in strategy.tiers:
        for step in tier.cadence:
            if step.days:
                clauses.append(dpd.in_(step.days))
            first = step.first_repeat(tier.dpd.min)
            if first is not None and step.every is not None:
                repeat = and_(dpd >= first, (dpd - first) % step.every == 0)
                last = step.until if step.until is not None else tier.dpd.max
                clauses.append(and_(repeat, dpd <= last) if last is not None else repeat)
    return or_(*clauses) if clauses else false()


def tier_counts(
    connection: Connection, as_of: date, strategy: Strategy, lo: int, hi: int
) -> Counter[str]:
    """The batch's delinquent accounts by tier (all of them, due today or not)."""
    d = delinquency(as_of, strategy, lo, hi)
    query = (
        select(d.tier, func.count())
        .select_from(d.overdue)
        .join(ACCOUNT, ACCOUNT.c.id == d.overdue.c.account_id)
        .where(ACCOUNT.c.status == "open", in_accounts(ACCOUNT.c.id, lo, hi))
        .group_by(d.tier)
    )
    return Counter({tier: int(n) for tier, n in connection.execute(query) if tier is not None})


def select_batch(
    connection: Connection, as_of: date, strategy: Strategy, lo: int, hi: int
) -> list[BatchRow]:
    """The batch's delinquent accounts with everything deciding and rendering need."""
    d = delinquency(as_of, strategy, lo, hi)
    # DPD and the step due are as of the run's date; the amounts a message states are those
    # owed today. For a backfilled day they differ when the customer paid since, and a message
    # sent today must never ask for money already paid (a false statement of the debt).
    a, c, overdue = ACCOUNT.c, CUSTOMER.c, d.overdue.c
    # Every table read is bounded by the batch's range (see in_accounts).
    promise_active = exists().where(
        PROMISE.c.account_id == a.id,
        in_accounts(PROMISE.c.account_id, lo, hi),
        PROMISE.c.status == PromiseStatus.ACTIVE.value,
        PROMISE.c.promised_on >= as_of,
    )
    payments_since = (
        select(cast(func.coalesce(func.sum(PAYMENT.c.amount_minor), 0), BigInteger))
        .where(
            PAYMENT.c.account_id == a.id,
            in_accounts(PAYMENT.c.account_id, lo, hi),
            PAYMENT.c.paid_on >= overdue.oldest_due_on,
            PAYMENT.c.paid_on <= as_of,
        )
        .scalar_subquery()
    )
    plan_id = (
        select(func.max(PLAN.c.id))
        .where(
            PLAN.c.account_id == a.id,
            in_accounts(PLAN.c.account_id, lo, hi),
            PLAN.c.status == "active",
        )
        .scalar_subquery()
    )
    plan_broken = exists().where(
        PLAN.c.account_id == a.id,
        in_accounts(PLAN.c.account_id, lo, hi),
        PLAN.c.status == "broken",
    )
    broken = (
        select(PROMISE.c.amount_minor, PROMISE.c.promised_on)
        .where(
            PROMISE.c.account_id == a.id,
            in_accounts(PROMISE.c.account_id, lo, hi),
            PROMISE.c.status == PromiseStatus.BROKEN.value,
            PROMISE.c.resolved_on == as_of,
        )
        .order_by(PROMISE.c.id.desc())
        .limit(1)
    )
    broken_today = exists().where(
        PROMISE.c.account_id == a.id,
        in_accounts(PROMISE.c.account_id, lo, hi),
        PROMISE.c.status == PromiseStatus.BROKEN.value,
        PROMISE.c.resolved_on == as_of,
    )
    in_force = treatment_in_force
    query = (
        select(
            a.id,
            a.external_id,
            a.customer_id,
            a.jurisdiction,
            a.currency,
            d.dpd,
            d.tier,
            overdue.owed_now_minor.label("overdue_minor"),
            overdue.oldest_due_on,
            a.product,
            a.agreement_ref,
            a.opened_on,
            a.principal_minor,
            a.interest_minor,
            a.fees_minor,
            a.penalty_minor,
            c.name,
            c.locale,
            c.time_zone,
            c.phone,
            c.push_token,
            c.email,
            c.address_line1,
            c.address_line2,
            c.city,
            c.region,
            c.postal_code,
            c.country,
            c.sms_consent,
            c.push_consent,
            c.letter_consent,
            c.email_consent,
            c.sms_opted_out_at.is_not(None),
            c.push_opted_out_at.is_not(None),
            c.letter_opted_out_at.is_not(None),
            c.email_opted_out_at.is_not(None),
            c.deceased,
            c.bankruptcy,
            c.attorney_on_file,
            c.cease_communication,
            c.dispute_open,
            c.hardship_hold,
            promise_active,
            payments_since,
            c.external_id,
            a.credit_limit_minor,
            grace_in_force(as_of, "grace", lo, hi),
            grace_in_force(as_of, "hardship", lo, hi),
            plan_id,
            plan_broken,
            broken.with_only_columns(PROMISE.c.amount_minor).scalar_subquery(),
            broken.with_only_columns(PROMISE.c.promised_on).scalar_subquery(),
            in_force(ActionKind.CREDIT_FREEZE, lo, hi),
            in_force(ActionKind.AGENCY_PLACEMENT, lo, hi),
        )
        .select_from(d.overdue)
        .join(ACCOUNT, a.id == overdue.account_id)
        .join(CUSTOMER, c.id == a.customer_id)
        # Most accounts have nothing due on a given day: only those that may are loaded.
        .where(
            a.status == "open",
            in_accounts(a.id, lo, hi),
            or_(due_today(d.dpd, strategy), plan_id.is_not(None), plan_broken, broken_today),
        )
        .order_by(a.id)
    )
    return [BatchRow(*row) for row in connection.execute(query)]


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
    not_before: datetime | None = None


@dataclass
class BatchReport:
    """What one batch did: counts for the run summary, seconds per stage for benchmarks."""

    accounts: Counter[str] = field(default_factory=Counter)
    decisions: Counter[str] = field(default_factory=Counter)
    held: Counter[str] = field(default_factory=Counter)
    actions: Counter[str] = field(default_factory=Counter)
    planned_new: int = 0
    already_planned: int = 0
    timings: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))

    def merge(self, other: BatchReport) -> None:
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
            "held_by_reason": dict(self.held),
            "actions": dict(self.actions),
            "planned_new": self.planned_new,
            "already_planned": self.already_planned,
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BatchReport:
        return cls(
            accounts=Counter[str](data.get("accounts_by_tier", {})),
            decisions=Counter[str](data.get("decisions_by_channel", {})),
            held=Counter[str](data.get("held_by_reason", {})),
            actions=Counter[str](data.get("actions", {})),
            planned_new=data.get("planned_new", 0),
            already_planned=data.get("already_planned", 0),
            timings=defaultdict(float, data.get("timings", {})),
        )


def build_context(
    env: OutreachEnv,
    row: BatchRow,
    tier: str,
    as_of: date,
    key: str,
    extra: dict[str, Any] | None = None,
) -> MessageContext:
    currency = row.currency

    def money(minor: int) -> Decimal:
        return to_decimal(minor, currency)

    total = row.principal_minor + row.interest_minor + row.fees_minor + row.penalty_minor
    validation = None
    if row.jurisdiction == "US":
        sent_on = as_of
        receipt = add_business_days(sent_on, VALIDATION_RECEIPT_BUSINESS_DAYS)
        interest_since = row.interest_minor
        fees_since = row.fees_minor + row.penalty_minor
        payments_since = row.payments_since_minor
        validation = ValidationNotice(
            itemization_date=row.oldest_due_on,
            amount_on_itemization_date=money(total - interest_since - fees_since + payments_since),
            interest_since=money(interest_since),
            fees_since=money(fees_since),
            payments_since=money(payments_since),
            current_amount=money(total),
            dispute_by=receipt + timedelta(days=VALIDATION_PERIOD_DAYS),
        )
    greeting = row.name if row.locale.startswith("zh") else row.name.split(" ")[0]
    return MessageContext(
        customer=CustomerView(name=row.name, greeting_name=greeting, locale=row.locale),
        account=AccountView(
            reference_masked=mask_reference(row.agreement_ref or row.account_external_id),
            product=row.product,
            currency=currency,
            jurisdiction=row.jurisdiction,
            opened_on=row.opened_on,
        ),
        amount=Amounts(
            overdue=money(row.overdue_minor),
            principal=money(row.principal_minor),
            interest=money(row.interest_minor),
            fees=money(row.fees_minor),
            penalty=money(row.penalty_minor),
            total=money(total),
        ),
        lender=env.lender_view(row.locale),
        address=AddressView(lines=row.address_lines(), country=row.country),
        as_of=as_of,
        dpd=row.dpd,
        tier=tier,
        oldest_due_on=row.oldest_due_on,
        pay_by=as_of + timedelta(days=PAY_BY_DAYS),
        reference=key[4:14].upper(),
        validation=validation,
        extra=extra or {},
    )


def existing_keys(connection: Connection, table: Any, keys: Iterable[str]) -> set[str]:
    """Which of these idempotency keys are already planned (so they are not rendered again)."""
    found: set[str] = set()
    for chunk in chunked(sorted(set(keys)), 900):
        query = select(table.c.idempotency_key).where(table.c.idempotency_key.in_(chunk))
        found.update(key for (key,) in connection.execute(query))
    return found


@dataclass
class PlannedAction:
    row: BatchRow
    step: Step
    kind: ActionKind
    key: str
    hold: str | None
    payload: dict[str, Any]
    cost_minor: int | None


def _reage(env: OutreachEnv, connection: Connection, rows: list[BatchRow], as_of: date) -> None:
    """A broken plan set to `reage` makes DPD count from its first missed instalment."""
    policy = env.strategy.plans
    broken = [row.account_id for row in rows if row.plan_broken and row.plan_id is None]
    for account_id, since in reaged_since(connection, broken, policy).items():
        for row in rows:
            if row.account_id == account_id and (as_of - since).days < row.dpd:
                row.dpd = max((as_of - since).days, 0)
                tier = env.strategy.tier_for(row.dpd)
                row.tier = tier.name if tier else None


def _plan_messages(
    env: OutreachEnv, row: BatchRow, as_of: date, plans: dict[int, Any]
) -> Iterator[PlannedMessage]:
    """Messages of an active payment plan: its confirmation letter and instalment reminders."""
    policy = env.strategy.plans
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
            decision = decide_message(reminder, account, contact, env.strategy.channel_fallback)
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
    env: OutreachEnv, rows: list[BatchRow], as_of: date, report: BatchReport, plans: dict[int, Any]
) -> Iterator[PlannedMessage]:
    fallback = env.strategy.channel_fallback
    for row in rows:
        if row.tier is None:
            continue
        tier = env.tiers[row.tier]
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
                template=env.strategy.promises.broken_template,
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
        yield from _plan_messages(env, row, as_of, plans)


def _actions(env: OutreachEnv, rows: list[BatchRow], as_of: date) -> Iterator[PlannedAction]:
    config = env.actions_config
    for row in rows:
        if row.tier is None:
            continue
        tier = env.tiers[row.tier]
        steps = [step for step in due_steps(tier, row.dpd) if step.action is not None]
        if not steps:
            continue
        stop = row.account_state().stop()
        for step in steps:
            assert step.action is not None
            kind = step.action
            if (kind == ActionKind.CREDIT_FREEZE and row.frozen) or (
                kind == ActionKind.AGENCY_PLACEMENT and row.placed
            ):
                continue  # already in force: nothing new to do
            agency = config.agency_for(row.jurisdiction, row.tier)
            hold = stop.value if stop is not None else None
            if kind == ActionKind.AGENCY_PLACEMENT and agency is None and hold is None:
                hold = "no_agency"
            payload: dict[str, Any] = {}
            cost: int | None = None
            if hold is None:
                payload, cost = action_payload(
                    kind, row, as_of, freeze=config.credit_freeze, agency=agency
                )
            key = idempotency_key(row.account_external_id, as_of, step.id, kind.value)
            yield PlannedAction(row, step, kind, key, hold, payload, cost)


def plan_batch(
    env: OutreachEnv,
    run_id: int,
    as_of: date,
    lo: int,
    hi: int,
    *,
    dry_run: bool = False,
) -> BatchReport:
    """Select, decide, render and write the outbox (and actions) for account ids in [lo, hi]."""
    report = BatchReport()
    clock = time.perf_counter
    started = clock()
    with env.runtime.engine.connect() as connection:
        rows = select_batch(connection, as_of, env.strategy, lo, hi)
        report.accounts.update(tier_counts(connection, as_of, env.strategy, lo, hi))
        _reage(env, connection, rows, as_of)
        plan_ids = [row.plan_id for row in rows if row.plan_id is not None]
        plans = {s.plan_id: s for s in plan_states(connection, as_of, plan_ids)} if plan_ids else {}
    report.timings["select"] += clock() - started

    started = clock()
    now = env.clock()
    candidates = list(_messages(env, rows, as_of, report, plans))
    actions = list(_actions(env, rows, as_of)) if env.strategy_has_actions else []
    with env.runtime.engine.connect() as connection:
        known = existing_keys(connection, OUTBOX, (m.key for m in candidates))
        known_actions = existing_keys(connection, ACTION, (a.key for a in actions))
    planned: list[PlannedMessage] = []
    for message in candidates:
        if message.key in known:
            report.already_planned += 1
            continue
        row, decision = message.row, message.decision
        if message.hold is None:
            template = env.store.find(
                decision.channel, message.folder, decision.step.template or "", row.locale
            )
            if template is None:
                message.hold = Suppression.TEMPLATE_MISSING
            else:
                message.template_id = template.id
                message.template_hash = template.content_hash
                message.hold = env.template_hold(template)
        if message.hold is None:
            timing = env.timing(row, decision.channel, now)
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
        template = env.store.get(message.template_id)
        context = build_context(
            env, message.row, message.row.tier or "", as_of, message.key, message.extra
        )
        try:
            rendered = env.renderer.render(template, context)
        except TemplateError as exc:
            # One account's data must not stop the day's outreach: this message is held with
            # the reason, the others go on. The error names the template, line and kind only.
            message.hold, message.error = Suppression.RENDER_FAILED, str(exc)
            report.held[message.hold] += 1
            continue
        message.subject, message.body = rendered.subject, rendered.text
        if message.decision.channel == Channel.LETTER:
            # Printed to PDF by the print stage (services.letters.print_letters) before
            # dispatch: layout is the slowest work there is, and it scales out separately.
            message.document = (rendered.html or "").encode()
    report.timings["render"] += clock() - started

    if dry_run:
        return report
    started = clock()
    documents: DocumentStore = env.documents
    records: list[dict[str, Any]] = []
    for message in planned:
        row, decision = message.row, message.decision
        source = None
        if message.document is not None:
            source = documents.put_source(as_of, message.key, message.document)
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
                "subject": message.subject,
                "body": message.body,
                "document_source": source,
                "status": (OutboxStatus.HELD if held else OutboxStatus.PLANNED).value,
                "hold_reason": message.hold,
                "last_error": message.error,
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
            "hold_reason": action.hold,
            "payload": action.payload,
            "cost_minor": action.cost_minor,
            "attempts": 0,
            "created_at": now,
            "updated_at": now,
        }
        for action in actions
    ]
    with env.runtime.unit_of_work() as connection:
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
    if any(message.document is not None for message in planned):
        env.start_printing(lo, hi)
    return report
