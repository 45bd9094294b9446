"""The receipts flow: poll the gateways for delivery receipts of messages still `sent`."""

from __future__ import annotations

from datetime import date
from typing import Any

from prefect import flow, task

from dunning.db.models import utcnow
from dunning.services.receipts import reconcile_receipts as reconcile
from dunning.services.runs import finish_run, start_run
from flows._artifacts import publish_summary
from flows._runtime import outreach_env

RECONCILE_RECEIPTS = "reconcile-receipts"


@task(name="poll-receipts", retries=2, retry_delay_seconds=10)
def poll_receipts(project_dir: str | None) -> dict[str, Any]:
    env = outreach_env(project_dir)
    return reconcile(env.runtime.engine, env.adapter_factory).as_dict()


@flow(name=RECONCILE_RECEIPTS, flow_run_name=lambda: f"{RECONCILE_RECEIPTS}-{utcnow():%Y%m%dT%H%M}")
def reconcile_receipts(project_dir: str | None = None) -> dict[str, Any]:
    """Record what the gateways now say about every sent message."""
    env = outreach_env(project_dir)
    with env.runtime.unit_of_work() as connection:
        run_id = start_run(connection, RECONCILE_RECEIPTS, date.today())
    result = poll_receipts(project_dir)
    summary = {
        "run_id": run_id,
        "flow": RECONCILE_RECEIPTS,
        "as_of": date.today().isoformat(),
        **result,
    }
    with env.runtime.unit_of_work() as connection:
        finish_run(connection, run_id, summary)
    publish_summary(RECONCILE_RECEIPTS, summary)
    return summary
