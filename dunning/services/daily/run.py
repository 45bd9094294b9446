"""Runs: the record of each flow execution, batch boundaries, and the daily outreach itself.

`run_daily_outreach` is the whole daily process as plain Python over batches. It takes a
`BatchMapper` that executes one stage over every batch: the Prefect flow passes one that maps
Prefect tasks (one task per batch); tests and the single-box scheduler can pass `sequential`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Connection, func, select

from dunning.db.ranges import in_accounts
from dunning.db.tables import OUTBOX
from dunning.errors import DunningError
from dunning.services.daily.env import OutreachEnv
from dunning.services.dispatch.receipts import ReceiptReport, reconcile_receipts
from dunning.services.dispatch.send import DispatchReport, Scope, dispatch_due
from dunning.services.outreach.plan import BatchReport, plan_batch
from dunning.services.runs.batches import Batch, account_batches
from dunning.types import Suppression

DAILY_OUTREACH = "daily-outreach"
DISPATCH_OUTBOX = "dispatch-outbox"
RECONCILE_RECEIPTS = "reconcile-receipts"

BatchMapper = Callable[[str, int, date, Sequence[Batch], bool], list[dict[str, Any]]]
"""(stage "plan" or "dispatch", run id, as-of, batches, dry run) -> one report dict per batch."""
StopCheck = Callable[[], bool]
"""Asked between batches; True ends the run there (the single-box scheduler's shutdown)."""


class RunStopped(DunningError):
    """A stop was requested: the run ended at a batch boundary; running it again resumes it."""


def message_counts(
    connection: Connection, as_of: date, account_range: tuple[int, int] | None = None
) -> dict[str, dict[str, int]]:
    """Every message for the date (of the accounts in the range, if given), by tier, channel,
    status and hold reason."""
    o = OUTBOX.c
    lo, hi = account_range or (None, None)
    rows = connection.execute(
        select(o.tier, o.channel, o.status, o.hold_reason, func.count())
        .where(o.as_of == as_of, in_accounts(o.account_id, lo, hi))
        .group_by(o.tier, o.channel, o.status, o.hold_reason)
    ).all()
    counts: dict[str, dict[str, int]] = {
        "by_tier": {},
        "by_channel": {},
        "by_status": {},
        "held_by_reason": {},
    }
    for tier, channel, status, reason, n in rows:
        for bucket, key in (("by_tier", tier), ("by_channel", channel), ("by_status", status)):
            counts[bucket][key] = counts[bucket].get(key, 0) + n
        if reason:
            counts["held_by_reason"][reason] = counts["held_by_reason"].get(reason, 0) + n
    return counts


def sequential(env: OutreachEnv) -> BatchMapper:
    """Run every batch in this process, one after the other (no Prefect)."""

    def run(
        stage: str, run_id: int, as_of: date, batches: Sequence[Batch], dry_run: bool
    ) -> list[dict[str, Any]]:
        if stage == "plan":
            return [
                plan_batch(env, run_id, as_of, lo, hi, dry_run=dry_run).as_dict()
                for lo, hi in batches
            ]
        return [dispatch_batch(env, as_of, lo, hi).as_dict() for lo, hi in batches]

    return run


def stoppable(mapper: BatchMapper, should_stop: StopCheck) -> BatchMapper:
    """The mapper, asking `should_stop` before each batch (before each `width` batches for a
    mapper that runs that many at once, as worker processes do)."""
    width = max(1, int(getattr(mapper, "width", 1)))

    def run(
        stage: str, run_id: int, as_of: date, batches: Sequence[Batch], dry_run: bool
    ) -> list[dict[str, Any]]:
        reports: list[dict[str, Any]] = []
        for index in range(0, len(batches), width):
            if should_stop():
                raise RunStopped(
                    f"stop requested: {stage} ended after {index} of {len(batches)} batches; "
                    "run the date again to resume"
                )
            reports.extend(mapper(stage, run_id, as_of, batches[index : index + width], dry_run))
        return reports

    return run


def dispatch_batch(
    env: OutreachEnv, as_of: date | None, lo: int | None, hi: int | None
) -> DispatchReport:
    """Send what is due now among the batch's messages (all dates if as_of is None), and
    perform the batch's due actions (freezes, placements, reports and their reversals)."""
    settings = env.dispatch_settings
    printed = env.finish_printing(lo, hi)
    report = dispatch_due(
        env.runtime.engine,
        env.adapter_factory,
        env.documents,
        scope=Scope(account_lo=lo, account_hi=hi, as_of=as_of),
        clock=env.clock,
        lease=timedelta(seconds=settings.lease_seconds),
        max_attempts=settings.max_attempts,
        chunk=settings.claim_size,
        gate=env.send_gate,
    )
    report.timings["print_letters"] += printed.seconds
    report.timings["print_wait"] += printed.waited
    report.printed += printed.printed
    if printed.held:
        report.held[Suppression.PRINT_FAILED.value] += printed.held
    if env.actions_enabled:
        from dunning.services.lifecycle.actions import dispatch_actions

        action_settings = env.actions_config.dispatch
        actions = dispatch_actions(
            env.runtime.engine,
            env.action_factory,
            clock=env.clock,
            lease=timedelta(seconds=action_settings.lease_seconds),
            max_attempts=action_settings.max_attempts,
            account_lo=lo,
            account_hi=hi,
        )
        report.timings["actions"] += actions.seconds
        report.actions.update(
            {key: value for key, value in actions.as_dict().items() if isinstance(value, int)}
        )
        report.actions.update({f"done:{kind}": n for kind, n in actions.by_kind.items()})
        report.actions.update({f"held:{reason}": n for reason, n in actions.held.items()})
    return report


def run_daily_outreach(
    env: OutreachEnv,
    as_of: date,
    *,
    dry_run: bool = False,
    mapper: BatchMapper | None = None,
    prefect_flow_run_id: str | None = None,
    should_stop: StopCheck | None = None,
) -> dict[str, Any]:
    """Select, decide, render, write, dispatch and record: the daily run for one date."""
    mapper = mapper or sequential(env)
    if should_stop is not None:
        mapper = stoppable(mapper, should_stop)
    started = time.perf_counter()
    with env.runtime.runs.run(
        DAILY_OUTREACH, as_of, dry_run=dry_run, prefect_flow_run_id=prefect_flow_run_id
    ) as run:
        with env.runtime.engine.connect() as connection:
            batches = account_batches(connection, env.strategy.batch_size)
        lifecycle: dict[str, Any] = {}
        walls = {"start": time.perf_counter() - started}
        if not dry_run:
            clock = time.perf_counter()
            lifecycle = bring_lifecycle_up_to_date(env, as_of, run.id)
            walls["lifecycle"] = time.perf_counter() - clock
        plan, sent = plan_and_dispatch(mapper, run.id, as_of, batches, dry_run, walls)
        summary = build_summary(
            env,
            run.id,
            as_of,
            dry_run,
            len(batches),
            plan,
            sent,
            time.perf_counter() - started,
            walls,
        )
        summary["lifecycle"] = lifecycle
        run.complete(summary)
    return summary


def run_dispatch_outbox(
    env: OutreachEnv,
    *,
    work: Callable[[], dict[str, Any]] | None = None,
    prefect_flow_run_id: str | None = None,
) -> dict[str, Any]:
    """The dispatcher as a run: send what is due now among every date's messages (deferred
    to a contact window, retries). `work` does the sending (a Prefect task in the flow);
    by default here."""
    started = time.perf_counter()
    as_of = env.clock().date()
    with env.runtime.runs.run(
        DISPATCH_OUTBOX, as_of, prefect_flow_run_id=prefect_flow_run_id
    ) as run:
        result = work() if work is not None else dispatch_batch(env, None, None, None).as_dict()
        result.pop("timings", None)
        summary = {"run_id": run.id, "flow": DISPATCH_OUTBOX, "as_of": as_of.isoformat()}
        summary |= result
        summary["duration_seconds"] = round(time.perf_counter() - started, 3)
        run.complete(summary)
    return summary


def run_reconcile_receipts(
    env: OutreachEnv,
    *,
    work: Callable[[], dict[str, Any]] | None = None,
    prefect_flow_run_id: str | None = None,
) -> dict[str, Any]:
    """Polling the gateways for receipts of sent messages, as a run. `work` polls (a Prefect
    task in the flow); by default here."""
    started = time.perf_counter()
    as_of = env.clock().date()
    with env.runtime.runs.run(
        RECONCILE_RECEIPTS, as_of, prefect_flow_run_id=prefect_flow_run_id
    ) as run:
        result = work() if work is not None else poll_receipts(env).as_dict()
        summary = {"run_id": run.id, "flow": RECONCILE_RECEIPTS, "as_of": as_of.isoformat()}
        summary |= result
        summary["duration_seconds"] = round(time.perf_counter() - started, 3)
        run.complete(summary)
    return summary


def poll_receipts(env: OutreachEnv) -> ReceiptReport:
    """Ask the gateways about every message still `sent`, and record what they say."""
    return reconcile_receipts(env.runtime.engine, env.adapter_factory)


def plan_and_dispatch(
    mapper: BatchMapper,
    run_id: int,
    as_of: date,
    batches: Sequence[Batch],
    dry_run: bool,
    walls: dict[str, float],
) -> tuple[BatchReport, DispatchReport]:
    """Every batch planned, then (unless a dry run) every batch dispatched; their reports.
    Each stage's wall-clock seconds go in `walls`."""
    plan = BatchReport()
    sent = DispatchReport()
    clock = time.perf_counter()
    for report in mapper("plan", run_id, as_of, batches, dry_run):
        plan.merge(BatchReport.from_dict(report))
    walls["plan"] = time.perf_counter() - clock
    if not dry_run:
        clock = time.perf_counter()
        for report in mapper("dispatch", run_id, as_of, batches, dry_run):
            sent.merge(DispatchReport.from_dict(report))
        walls["dispatch"] = time.perf_counter() - clock
    return plan, sent


def bring_lifecycle_up_to_date(env: OutreachEnv, as_of: date, run_id: int) -> dict[str, Any]:
    """Before the batches: resolve promises and plans, and review treatments for cure."""
    from dunning.services import lifecycle

    with env.runtime.unit_of_work() as connection:
        promises = lifecycle.resolve_promises(connection, as_of)
        plans = lifecycle.evaluate_plans(connection, as_of, env.strategy.plans)
        treatments = lifecycle.review_treatments(connection, as_of, run_id)
    return {"promises": promises, "plans": plans, "treatments": treatments}


def build_summary(
    env: OutreachEnv,
    run_id: int,
    as_of: date,
    dry_run: bool,
    batches: int,
    plan: BatchReport,
    sent: DispatchReport,
    seconds: float,
    walls: dict[str, float],
    *,
    account_range: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """The run summary: counts only, never PII (it becomes a Prefect artifact). `messages`
    counts the date's messages of the accounts in `account_range` (a shard), or of all.

    `timings_seconds` adds up each step over the batches (time spent, in any process);
    `wall_seconds` is the run's own clock per part: start (batch ranges), lifecycle, plan,
    dispatch, and summary (these counts)."""
    timings = dict(plan.timings)
    timings.update(sent.timings)
    summary: dict[str, Any] = {
        "run_id": run_id,
        "flow": DAILY_OUTREACH,
        "as_of": as_of.isoformat(),
        "dry_run": dry_run,
        "batches": batches,
        "accounts": {
            "overdue": sum(plan.accounts.values()),
            "by_tier": {
                t.name: plan.accounts[t.name] for t in env.strategy.tiers if t.name in plan.accounts
            },
        },
        "this_run": {
            "decisions_by_channel": dict(plan.decisions),
            "held_by_reason": dict(plan.held),
            "new_messages": plan.planned_new,
            "already_planned": plan.already_planned,
            "dispatch": sent.as_dict() | {"timings": None},
        },
        "timings_seconds": {k: round(v, 3) for k, v in sorted(timings.items())},
        "duration_seconds": round(seconds, 3),
    }
    summary["this_run"]["dispatch"].pop("timings")
    clock = time.perf_counter()
    if not dry_run:
        with env.runtime.engine.connect() as connection:
            summary["messages"] = message_counts(connection, as_of, account_range)
    walls["summary"] = time.perf_counter() - clock
    summary["wall_seconds"] = {k: round(v, 3) for k, v in walls.items()}
    return summary
