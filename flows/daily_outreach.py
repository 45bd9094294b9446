"""The daily outreach flow: one Prefect task per batch for planning and one for dispatch.

The process itself (select the batches, bring the lifecycle up to date, plan, dispatch,
summarise, under one run) is `dunning.services.daily.run_daily_outreach`, the same for every
way of running it; the flow hands it `PrefectBatches`, which runs each stage's batches as
Prefect tasks (on the flow's threads, or on Dask).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from prefect import flow, task
from prefect.runtime import flow_run
from prefect.task_runners import ThreadPoolTaskRunner

from dunning.services.daily import DAILY_OUTREACH, dispatch_batch, run_daily_outreach
from dunning.services.dispatch.send import DispatchReport
from dunning.services.outreach import PlanReport, plan_batch
from dunning.services.runs import Batch
from flows._artifacts import log_batch, publish_summary
from flows._runners import FLOW_THREADS, batch_task_runner
from flows._runtime import batch_workers, outreach_for


@task(name="plan-batch", task_run_name="plan-{lo}-{hi}")
def plan_batch_task(
    project_dir: str | None, run_id: int, as_of: date, lo: int, hi: int, dry_run: bool
) -> PlanReport:
    """Select, decide, render and write the outbox for one batch of accounts."""
    workers = batch_workers(project_dir)
    if workers is not None:
        [report] = workers.plan(run_id, as_of, [(lo, hi)], dry_run)
    else:
        report = plan_batch(
            outreach_for(project_dir).planner, run_id, as_of, lo, hi, dry_run=dry_run
        )
    log_batch("plan", run_id, as_of, lo, hi, report.as_dict())
    return report


@task(name="dispatch-batch", task_run_name="dispatch-{lo}-{hi}", retries=2, retry_delay_seconds=5)
def dispatch_batch_task(project_dir: str | None, as_of: date, lo: int, hi: int) -> DispatchReport:
    """Send the batch's due messages through the gateways and record the answers."""
    workers = batch_workers(project_dir)
    if workers is not None:
        [report] = workers.dispatch(as_of, [(lo, hi)])
    else:
        report = dispatch_batch(outreach_for(project_dir).dispatcher, as_of, lo, hi)
    log_batch("dispatch", None, as_of, lo, hi, report.as_dict())
    return report


@dataclass
class PrefectBatches:
    """A BatchExecutor of Prefect tasks: one per batch, on `runner` (a started Dask task
    runner) or on the flow's own task runner."""

    project_dir: str | None
    runner: Any | None = None
    width: int = FLOW_THREADS

    def _submit(self, task: Any, **parameters: Any) -> Any:
        if self.runner is None:
            return task.submit(**parameters)
        return self.runner.submit(task, parameters=parameters)

    def plan(
        self, run_id: int, as_of: date, batches: Sequence[Batch], dry_run: bool
    ) -> list[PlanReport]:
        futures = [
            self._submit(
                plan_batch_task,
                project_dir=self.project_dir,
                run_id=run_id,
                as_of=as_of,
                lo=lo,
                hi=hi,
                dry_run=dry_run,
            )
            for lo, hi in batches
        ]
        return [future.result() for future in futures]

    def dispatch(self, as_of: date, batches: Sequence[Batch]) -> list[DispatchReport]:
        futures = [
            self._submit(
                dispatch_batch_task, project_dir=self.project_dir, as_of=as_of, lo=lo, hi=hi
            )
            for lo, hi in batches
        ]
        return [future.result() for future in futures]


def _run_name() -> str:
    as_of = flow_run.parameters.get("as_of") or date.today().isoformat()
    return f"{DAILY_OUTREACH}-{as_of}"


@flow(
    name=DAILY_OUTREACH,
    flow_run_name=_run_name,
    task_runner=ThreadPoolTaskRunner(max_workers=FLOW_THREADS),  # type: ignore[arg-type]
    log_prints=False,
)
def daily_outreach(
    as_of: date | None = None, dry_run: bool = False, project_dir: str | None = None
) -> dict[str, Any]:
    """Run the daily outreach for `as_of` (default today). Safe to rerun: nothing goes twice.

    The batch tasks run on threads here (handing their batches to worker processes when
    config/runners.yaml sets `processes`), or on Dask when it names a cluster.
    """
    outreach = outreach_for(project_dir)
    with batch_task_runner(outreach.runtime.project) as runner:
        summary = run_daily_outreach(
            outreach,
            as_of or date.today(),
            dry_run=dry_run,
            executor=PrefectBatches(project_dir, runner),
            prefect_flow_run_id=str(flow_run.id) if flow_run.id else None,
        )
    publish_summary(DAILY_OUTREACH, summary)
    return summary
