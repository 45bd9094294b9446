"""The receipts flow: poll the gateways for delivery receipts of messages still `sent`."""

from __future__ import annotations

from typing import Any

from prefect import flow, task
from prefect.runtime import flow_run

from dunning.db.models import utcnow
from dunning.services.daily import RECONCILE_RECEIPTS, poll_receipts, run_reconcile_receipts
from dunning.services.dispatch.receipts import ReceiptReport
from flows._artifacts import publish_summary
from flows._runtime import outreach_for


@task(name="poll-receipts", retries=2, retry_delay_seconds=10)
def poll_receipts_task(project_dir: str | None) -> ReceiptReport:
    return poll_receipts(outreach_for(project_dir))


@flow(name=RECONCILE_RECEIPTS, flow_run_name=lambda: f"{RECONCILE_RECEIPTS}-{utcnow():%Y%m%dT%H%M}")
def reconcile_receipts(project_dir: str | None = None) -> dict[str, Any]:
    """Record what the gateways now say about every sent message."""
    summary = run_reconcile_receipts(
        outreach_for(project_dir),
        work=lambda: poll_receipts_task(project_dir),
        prefect_flow_run_id=str(flow_run.id) if flow_run.id else None,
    )
    publish_summary(RECONCILE_RECEIPTS, summary)
    return summary
