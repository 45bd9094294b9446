"""The daily run's stages, each a plain function with a typed result:

    batches = select_batches(outreach, as_of)                      # the day's account ranges
    lifecycle = bring_lifecycle_up_to_date(outreach, as_of, run)   # promises, plans, cure
    plan = plan_all(executor, run_id, as_of, batches, dry_run)     # PlanReport
    sent = dispatch_all(executor, as_of, batches)                  # DispatchReport
    summary = summarise(outreach, ...)                             # counts only, for the row

Where the batches run is the executor's business (`BatchExecutor`): in this process
(`InThisProcess`), in worker processes on this machine (`daily.workers.BatchWorkers`), or as
Prefect tasks, on threads or Dask (`flows.daily_outreach.PrefectBatches`). Each executor takes
the same two batch functions, `plan_batch` and `dispatch_batch`, so every path does the same.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any, Protocol

from sqlalchemy import Connection, func, select

from dunning.crashpoints import crash_point
from dunning.db.ranges import in_accounts
from dunning.db.tables import OUTBOX
from dunning.errors import DunningError
from dunning.services import lifecycle
from dunning.services.daily.deps import Dispatcher, Outreach
from dunning.services.dispatch.send import DispatchReport, Scope, dispatch_due
from dunning.services.outreach import PlanReport, plan_batch
from dunning.services.runs import Batch, account_batches
from dunning.types import OutboxStatus, Suppression

StopCheck = Callable[[], bool]
"""Asked between batches; True ends the run there (the single-box scheduler's shutdown)."""


class RunStopped(DunningError):
    """A stop was requested: the run ended at a batch boundary; running it again resumes it."""


class BatchExecutor(Protocol):
    """Runs one stage over many batches and gives each batch's report, in the batches' order."""

    @property
    def width(self) -> int:
        """Batches in flight at once: a stoppable run hands over this many at a time."""

    def plan(
        self, run_id: int, as_of: date, batches: Sequence[Batch], dry_run: bool
    ) -> list[PlanReport]: ...

    def dispatch(self, as_of: date, batches: Sequence[Batch]) -> list[DispatchReport]: ...


def dispatch_batch(
    dispatcher: Dispatcher, as_of: date | None, lo: int | None, hi: int | None
) -> DispatchReport:
    """Send what is due now among the batch's messages (all dates if as_of is None), after
    their letters are printed, and perform the batch's due actions (freezes, placements,
    registry reports and their reversals)."""
    crash_point("dispatch.batch")
    settings = dispatcher.settings
    printed = dispatcher.printing.finish(lo, hi)
    report = dispatch_due(
        dispatcher.engine,
        dispatcher.routing,
        dispatcher.documents,
        scope=Scope(account_lo=lo, account_hi=hi, as_of=as_of),
        clock=dispatcher.clock,
        lease=dispatcher.lease,
        max_attempts=settings.max_attempts,
        chunk=settings.claim_size,
        gate=dispatcher.gate,
        circuits=dispatcher.circuits,
        refusals=dispatcher.refusals,
    )
    report.timings["print_letters"] += printed.seconds
    report.timings["print_wait"] += printed.waited
    report.printed += printed.printed
    if printed.held:
        report.held[Suppression.PRINT_FAILED.value] += printed.held
    if dispatcher.actions is not None:
        actions = lifecycle.dispatch_actions(
            dispatcher.engine,
            dispatcher.actions.adapters,
            clock=dispatcher.clock,
            lease=dispatcher.actions.lease,
            max_attempts=dispatcher.actions.max_attempts,
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


@dataclass
class InThisProcess:
    """Every batch in this process, one after the other (no Prefect, no worker processes)."""

    outreach: Outreach
    width: int = 1

    def plan(
        self, run_id: int, as_of: date, batches: Sequence[Batch], dry_run: bool
    ) -> list[PlanReport]:
        planner = self.outreach.planner
        return [plan_batch(planner, run_id, as_of, lo, hi, dry_run=dry_run) for lo, hi in batches]

    def dispatch(self, as_of: date, batches: Sequence[Batch]) -> list[DispatchReport]:
        dispatcher = self.outreach.dispatcher
        return [dispatch_batch(dispatcher, as_of, lo, hi) for lo, hi in batches]


@dataclass
class Stoppable:
    """An executor that asks `should_stop` before each `width` batches, and ends the stage
    with RunStopped when it says so."""

    inner: BatchExecutor
    should_stop: StopCheck

    @property
    def width(self) -> int:
        return self.inner.width

    def _check(self, stage: str, done: int, total: int) -> None:
        if self.should_stop():
            raise RunStopped(
                f"stop requested: {stage} ended after {done} of {total} batches; "
                "run the date again to resume"
            )

    def plan(
        self, run_id: int, as_of: date, batches: Sequence[Batch], dry_run: bool
    ) -> list[PlanReport]:
        reports: list[PlanReport] = []
        for index in range(0, len(batches), max(1, self.width)):
            self._check("plan", index, len(batches))
            part = batches[index : index + max(1, self.width)]
            reports.extend(self.inner.plan(run_id, as_of, part, dry_run))
        return reports

    def dispatch(self, as_of: date, batches: Sequence[Batch]) -> list[DispatchReport]:
        reports: list[DispatchReport] = []
        for index in range(0, len(batches), max(1, self.width)):
            self._check("dispatch", index, len(batches))
            reports.extend(self.inner.dispatch(as_of, batches[index : index + max(1, self.width)]))
        return reports


def stoppable(executor: BatchExecutor, should_stop: StopCheck | None) -> BatchExecutor:
    return executor if should_stop is None else Stoppable(executor, should_stop)


@dataclass
class LifecycleReport:
    """What bringing promises, plans and treatments up to date did, before the batches."""

    promises: dict[str, int] = field(default_factory=dict)
    plans: dict[str, int] = field(default_factory=dict)
    treatments: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Clock:
    """The run's own clock, part by part (`wall_seconds` in the summary)."""

    started: float = field(default_factory=time.perf_counter)
    walls: dict[str, float] = field(default_factory=dict)
    _last: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        self._last = self.started

    def lap(self, part: str) -> None:
        now = time.perf_counter()
        self.walls[part] = self.walls.get(part, 0.0) + now - self._last
        self._last = now

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started


def select_batches(outreach: Outreach, lo: int | None = None, hi: int | None = None) -> list[Batch]:
    """The day's batches: ranges of open account ids (among lo..hi, for a shard)."""
    with outreach.engine.connect() as connection:
        return account_batches(connection, outreach.strategy.batch_size, lo, hi)


def bring_lifecycle_up_to_date(outreach: Outreach, as_of: date, run_id: int) -> LifecycleReport:
    """Before the batches: resolve promises and plans, and review treatments for cure."""
    with outreach.runtime.unit_of_work() as connection:
        return LifecycleReport(
            promises=lifecycle.resolve_promises(connection, as_of),
            plans=lifecycle.evaluate_plans(connection, as_of, outreach.strategy.plans),
            treatments=lifecycle.review_treatments(connection, as_of, run_id),
        )


def plan_all(
    executor: BatchExecutor, run_id: int, as_of: date, batches: Sequence[Batch], dry_run: bool
) -> PlanReport:
    """Every batch planned: selected, decided, rendered and written to the outbox."""
    total = PlanReport()
    for report in executor.plan(run_id, as_of, batches, dry_run):
        total.merge(report)
    return total


def dispatch_all(executor: BatchExecutor, as_of: date, batches: Sequence[Batch]) -> DispatchReport:
    """Every batch dispatched: its letters printed, its due messages sent, its actions done."""
    total = DispatchReport()
    for report in executor.dispatch(as_of, batches):
        total.merge(report)
    return total


def plan_and_dispatch(
    executor: BatchExecutor,
    run_id: int,
    as_of: date,
    batches: Sequence[Batch],
    dry_run: bool,
    clock: Clock,
) -> tuple[PlanReport, DispatchReport]:
    """Every batch planned, then (unless a dry run) every batch dispatched, each stage on the
    run's clock."""
    plan = plan_all(executor, run_id, as_of, batches, dry_run)
    clock.lap("plan")
    if dry_run:
        return plan, DispatchReport()
    sent = dispatch_all(executor, as_of, batches)
    clock.lap("dispatch")
    return plan, sent


def message_counts(
    connection: Connection, as_of: date, account_range: tuple[int, int] | None = None
) -> dict[str, dict[str, int]]:
    """Every message for the date (of the accounts in the range, if given), by tier, channel,
    status and suppression; and those a provider took (sent or later), by provider."""
    o = OUTBOX.c
    lo, hi = account_range or (None, None)
    rows = connection.execute(
        select(o.tier, o.channel, o.status, o.suppression, o.provider, func.count())
        .where(o.as_of == as_of, in_accounts(o.account_id, lo, hi))
        .group_by(o.tier, o.channel, o.status, o.suppression, o.provider)
    ).all()
    counts: dict[str, dict[str, int]] = {
        "by_tier": {},
        "by_channel": {},
        "by_status": {},
        "held_by_suppression": {},
        "by_provider": {},
    }
    for tier, channel, status, reason, provider, n in rows:
        for bucket, key in (("by_tier", tier), ("by_channel", channel), ("by_status", status)):
            counts[bucket][key] = counts[bucket].get(key, 0) + n
        if reason:
            counts["held_by_suppression"][reason] = counts["held_by_suppression"].get(reason, 0) + n
        if provider and status in _TAKEN:
            key = f"{channel}:{provider}"
            counts["by_provider"][key] = counts["by_provider"].get(key, 0) + n
    return counts


_TAKEN = frozenset(
    status.value
    for status in (
        OutboxStatus.SENT,
        OutboxStatus.DELIVERED,
        OutboxStatus.FAILED,
        OutboxStatus.UNDELIVERABLE,
    )
)
"""Statuses of a message a provider took (failed: a receipt said so, or a refusal)."""


def summarise(
    outreach: Outreach,
    flow: str,
    run_id: int,
    as_of: date,
    dry_run: bool,
    batches: int,
    plan: PlanReport,
    sent: DispatchReport,
    clock: Clock,
    *,
    lifecycle_report: LifecycleReport | None = None,
    account_range: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """The run summary: counts only, never PII (it is kept on the run row and becomes a Prefect
    artifact). `messages` counts the date's messages of the accounts in `account_range` (a
    shard), or of all.

    `timings_seconds` adds up each step over the batches (time spent, in any process);
    `wall_seconds` is the run's own clock per part: start (batch ranges), lifecycle, plan,
    dispatch, and summary (these counts)."""
    timings = dict(plan.timings)
    timings.update(sent.timings)
    dispatch = sent.as_dict()
    dispatch.pop("timings")
    summary: dict[str, Any] = {
        "run_id": run_id,
        "flow": flow,
        "as_of": as_of.isoformat(),
        "dry_run": dry_run,
        "batches": batches,
        "accounts": {
            "overdue": sum(plan.accounts.values()),
            "by_tier": {
                t.name: plan.accounts[t.name]
                for t in outreach.strategy.tiers
                if t.name in plan.accounts
            },
        },
        "this_run": {
            "decisions_by_channel": dict(plan.decisions),
            "held_by_suppression": dict(plan.held),
            "new_messages": plan.planned_new,
            "already_planned": plan.already_planned,
            "dispatch": dispatch,
        },
        "timings_seconds": {k: round(v, 3) for k, v in sorted(timings.items())},
        "duration_seconds": round(clock.seconds, 3),
    }
    if not dry_run:
        with outreach.engine.connect() as connection:
            summary["messages"] = message_counts(connection, as_of, account_range)
    clock.lap("summary")
    summary["wall_seconds"] = {k: round(v, 3) for k, v in clock.walls.items()}
    if lifecycle_report is not None:
        summary["lifecycle"] = lifecycle_report.as_dict()
    return summary
