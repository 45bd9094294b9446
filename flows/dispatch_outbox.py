"""The dispatcher flow: send every outbox message that has become due (deferred ones too)."""

from __future__ import annotations

from typing import Any

from prefect import flow, task

from dunning.db.models import utcnow
from dunning.services.runs import dispatch_batch, finish_run, start_run
from flows._artifacts import publish_summary
from flows._runtime import outreach_env

DISPATCH_OUTBOX = "dispatch-outbox"


@task(name="dispatch-due", retries=2, retry_delay_seconds=10)
def dispatch_due_task(project_dir: str | None) -> dict[str, Any]:
    """Claim, check and send due messages in chunks until none is due."""
    env = outreach_env(project_dir)
    return dispatch_batch(env, None, None, None).as_dict()


@flow(name=DISPATCH_OUTBOX, flow_run_name=lambda: f"{DISPATCH_OUTBOX}-{utcnow():%Y%m%dT%H%M}")
def dispatch_outbox(project_dir: str | None = None) -> dict[str, Any]:
    """Send what is due now: messages deferred to their contact window, and retries."""
    env = outreach_env(project_dir)
    today = env.clock().date()
    with env.runtime.unit_of_work() as connection:
        run_id = start_run(connection, DISPATCH_OUTBOX, today)
    result = dispatch_due_task(project_dir)
    summary = {"run_id": run_id, "flow": DISPATCH_OUTBOX, "as_of": today.isoformat(), **result}
    with env.runtime.unit_of_work() as connection:
        finish_run(connection, run_id, summary)
    publish_summary(DISPATCH_OUTBOX, summary)
    return summary
