"""The daily outreach flow: select, decide, render, write, dispatch, record, one task per batch."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from prefect import flow, task
from prefect.runtime import flow_run
from prefect.task_runners import ThreadPoolTaskRunner

from dunning.services.daily.run import DAILY_OUTREACH, BatchMapper, run_daily_outreach, sequential
from dunning.services.runs.batches import Batch
from flows._artifacts import log_batch, publish_summary
from flows._runners import FLOW_THREADS, batch_task_runner
from flows._runtime import batch_workers, outreach_env


def _one_batch(
    project_dir: str | None, stage: str, run_id: int, as_of: date, batch: Batch, dry_run: bool
) -> dict[str, Any]:
    """The batch's report, from this process's worker processes or from this thread."""
    mapper = batch_workers(project_dir) or sequential(outreach_env(project_dir))
    return mapper(stage, run_id, as_of, [batch], dry_run)[0]


@task(name="plan-batch", task_run_name="plan-{lo}-{hi}")
def plan_batch_task(
    project_dir: str | None, run_id: int, as_of: date, lo: int, hi: int, dry_run: bool
) -> dict[str, Any]:
    """Select, decide, render and write the outbox for one batch of accounts."""
    report = _one_batch(project_dir, "plan", run_id, as_of, (lo, hi), dry_run)
    log_batch("plan", run_id, as_of, lo, hi, report)
    return report


@task(name="dispatch-batch", task_run_name="dispatch-{lo}-{hi}", retries=2, retry_delay_seconds=5)
def dispatch_batch_task(project_dir: str | None, as_of: date, lo: int, hi: int) -> dict[str, Any]:
    """Send the batch's due messages through the gateways and record the answers."""
    report = _one_batch(project_dir, "dispatch", 0, as_of, (lo, hi), False)
    log_batch("dispatch", None, as_of, lo, hi, report)
    return report


def batch_mapper(project_dir: str | None, runner: Any | None = None) -> BatchMapper:
    """One task per batch, on `runner` (a started Dask task runner) or the flow's own."""

    def submit(task: Any, **parameters: Any) -> Any:
        if runner is None:
            return task.submit(**parameters)
        return runner.submit(task, parameters=parameters)

    def run(
        stage: str, run_id: int, as_of: date, batches: Sequence[Batch], dry_run: bool
    ) -> list[dict[str, Any]]:
        if stage == "plan":
            futures = [
                submit(
                    plan_batch_task,
                    project_dir=project_dir,
                    run_id=run_id,
                    as_of=as_of,
                    lo=lo,
                    hi=hi,
                    dry_run=dry_run,
                )
                for lo, hi in batches
            ]
        else:
            futures = [
                submit(dispatch_batch_task, project_dir=project_dir, as_of=as_of, lo=lo, hi=hi)
                for lo, hi in batches
            ]
        return [future.result() for future in futures]

    return run


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
    env = outreach_env(project_dir)
    with batch_task_runner(env.runtime.project) as runner:
        summary = run_daily_outreach(
            env,
            as_of or date.today(),
            dry_run=dry_run,
            mapper=batch_mapper(project_dir, runner),
            prefect_flow_run_id=str(flow_run.id) if flow_run.id else None,
        )
    publish_summary(DAILY_OUTREACH, summary)
    return summary
