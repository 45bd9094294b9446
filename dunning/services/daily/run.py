"""The runs of the day's work, each a plain function over an `Outreach`: the daily outreach, the
dispatcher (`dispatch-outbox`) and the receipts poll (`reconcile-receipts`). Each records its
run through the run lifecycle (`Runtime.runs`), whoever calls it: the CLI's `--in-process`,
the single-box scheduler, worker processes or the Prefect flows.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date
from functools import partial
from typing import Any, Protocol

from dunning.services.daily.deps import Outreach
from dunning.services.daily.stages import (
    BatchExecutor,
    Clock,
    InThisProcess,
    StopCheck,
    bring_lifecycle_up_to_date,
    dispatch_batch,
    plan_and_dispatch,
    select_batches,
    stoppable,
    summarise,
)
from dunning.services.dispatch.receipts import ReceiptReport, reconcile_receipts
from dunning.services.dispatch.send import DispatchReport

DAILY_OUTREACH = "daily-outreach"
DISPATCH_OUTBOX = "dispatch-outbox"
RECONCILE_RECEIPTS = "reconcile-receipts"


def run_daily_outreach(
    outreach: Outreach,
    as_of: date,
    *,
    dry_run: bool = False,
    executor: BatchExecutor | None = None,
    prefect_flow_run_id: str | None = None,
    should_stop: StopCheck | None = None,
) -> dict[str, Any]:
    """The daily run for one date: select the batches, bring the lifecycle up to date, plan
    every batch, dispatch every batch, and record the summary on the run."""
    batches_run = stoppable(executor or InThisProcess(outreach), should_stop)
    clock = Clock()
    with outreach.runtime.runs.run(
        DAILY_OUTREACH, as_of, dry_run=dry_run, prefect_flow_run_id=prefect_flow_run_id
    ) as run:
        batches = select_batches(outreach)
        clock.lap("start")
        lifecycle = None if dry_run else bring_lifecycle_up_to_date(outreach, as_of, run.id)
        if lifecycle is not None:
            clock.lap("lifecycle")
        plan, sent = plan_and_dispatch(batches_run, run.id, as_of, batches, dry_run, clock)
        summary = summarise(
            outreach,
            DAILY_OUTREACH,
            run.id,
            as_of,
            dry_run,
            len(batches),
            plan,
            sent,
            clock,
            lifecycle_report=lifecycle,
        )
        summary.setdefault("lifecycle", {})
        run.complete(summary)
    return summary


def run_dispatch_outbox(
    outreach: Outreach,
    *,
    work: Callable[[], DispatchReport] | None = None,
    prefect_flow_run_id: str | None = None,
) -> dict[str, Any]:
    """The dispatcher as a run: send what is due now among every date's messages (deferred
    to a contact window, retries). `work` does the sending (a Prefect task in the flow);
    by default here."""
    return _one_pass(
        outreach, DISPATCH_OUTBOX, work or partial(dispatch_due_now, outreach), prefect_flow_run_id
    )


def run_reconcile_receipts(
    outreach: Outreach,
    *,
    work: Callable[[], ReceiptReport] | None = None,
    prefect_flow_run_id: str | None = None,
) -> dict[str, Any]:
    """Polling the gateways for receipts of sent messages, as a run. `work` polls (a Prefect
    task in the flow); by default here."""
    return _one_pass(
        outreach, RECONCILE_RECEIPTS, work or partial(poll_receipts, outreach), prefect_flow_run_id
    )


class _Report(Protocol):
    def as_dict(self) -> dict[str, Any]: ...


def _one_pass(
    outreach: Outreach,
    flow: str,
    work: Callable[[], _Report],
    prefect_flow_run_id: str | None,
) -> dict[str, Any]:
    """One pass of `work` over whatever is due now, as a run of `flow` dated today."""
    started = time.perf_counter()
    as_of = outreach.clock().date()
    with outreach.runtime.runs.run(flow, as_of, prefect_flow_run_id=prefect_flow_run_id) as run:
        result = work().as_dict()
        result.pop("timings", None)
        summary = {
            "run_id": run.id,
            "flow": flow,
            "as_of": as_of.isoformat(),
            **result,
            "duration_seconds": round(time.perf_counter() - started, 3),
        }
        run.complete(summary)
    return summary


def dispatch_due_now(outreach: Outreach) -> DispatchReport:
    """One pass of the dispatcher over every account and date."""
    return dispatch_batch(outreach.dispatcher, None, None, None)


def poll_receipts(outreach: Outreach) -> ReceiptReport:
    """Ask the gateways about every message still `sent`, and record what they say."""
    return reconcile_receipts(outreach.engine, outreach.dispatcher.routing)
