"""The dispatcher flow: send every outbox message that has become due (deferred ones too)."""

from __future__ import annotations

from typing import Any

from prefect import flow, task
from prefect.runtime import flow_run

from dunning.db.models import utcnow
from dunning.services.daily import DISPATCH_OUTBOX, dispatch_due_now, run_dispatch_outbox
from dunning.services.dispatch.send import DispatchReport
from flows._artifacts import publish_summary
from flows._runtime import outreach_for


@task(name="dispatch-due", retries=2, retry_delay_seconds=10)
def dispatch_due_task(project_dir: str | None) -> DispatchReport:
    """Claim, check and send due messages in chunks until none is due."""
    return dispatch_due_now(outreach_for(project_dir))


@flow(name=DISPATCH_OUTBOX, flow_run_name=lambda: f"{DISPATCH_OUTBOX}-{utcnow():%Y%m%dT%H%M}")
def dispatch_outbox(project_dir: str | None = None) -> dict[str, Any]:
    """Send what is due now: messages deferred to their contact window, and retries."""
    summary = run_dispatch_outbox(
        outreach_for(project_dir),
        work=lambda: dispatch_due_task(project_dir),
        prefect_flow_run_id=str(flow_run.id) if flow_run.id else None,
    )
    publish_summary(DISPATCH_OUTBOX, summary)
    return summary
