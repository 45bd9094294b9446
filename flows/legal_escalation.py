"""The legal escalation flow: review the late accounts, propose cases, one task per batch."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from prefect import flow, task
from prefect.runtime import flow_run
from prefect.task_runners import ThreadPoolTaskRunner

from dunning.legal.service import (
    LEGAL_ESCALATION,
    ReviewBatches,
    ReviewReport,
    review_batch,
    run_legal_escalation,
)
from dunning.services.runs import Batch
from flows._artifacts import publish_summary
from flows._runtime import outreach_for


@task(name="legal-review-batch", task_run_name="legal-review-{lo}-{hi}")
def review_batch_task(
    project_dir: str | None, run_id: int, as_of: date, lo: int, hi: int
) -> ReviewReport:
    """Check the batch's accounts against the legal rules; record each outcome; open cases."""
    runtime = outreach_for(project_dir).runtime
    return review_batch(runtime, run_id, as_of, lo, hi)


def prefect_tasks(project_dir: str | None) -> ReviewBatches:
    """One Prefect task per batch."""

    def run(run_id: int, as_of: date, batches: Sequence[Batch]) -> list[ReviewReport]:
        futures = [
            review_batch_task.submit(project_dir, run_id, as_of, lo, hi) for lo, hi in batches
        ]
        return [future.result() for future in futures]

    return run


def _run_name() -> str:
    as_of = flow_run.parameters.get("as_of") or date.today().isoformat()
    return f"{LEGAL_ESCALATION}-{as_of}"


@flow(
    name=LEGAL_ESCALATION,
    flow_run_name=_run_name,
    task_runner=ThreadPoolTaskRunner(max_workers=2),  # type: ignore[arg-type]
    log_prints=False,
)
def legal_escalation(as_of: date | None = None, project_dir: str | None = None) -> dict[str, Any]:
    """Propose a legal case for each eligible account on `as_of` (default today); rerun-safe."""
    runtime = outreach_for(project_dir).runtime
    summary = run_legal_escalation(
        runtime,
        as_of or date.today(),
        batches_run=prefect_tasks(project_dir),
        prefect_flow_run_id=str(flow_run.id) if flow_run.id else None,
    )
    publish_summary(LEGAL_ESCALATION, summary)
    return summary
