"""Planning the daily outreach, one batch of accounts at a time: select the accounts a step is
due for, decide each message (or hold it with its suppression), render it, and write it to the
outbox with its idempotency key, so a rerun plans nothing twice.

    planner = Planner(...)                     # once per process (dunning.bootstrap.outreach)
    report = plan_batch(planner, run_id, as_of, lo, hi)
"""

from __future__ import annotations

from dunning.services.outreach.plan import PlanReport, plan_batch
from dunning.services.outreach.planner import ApprovalCheck, Planner, PrintStarter
from dunning.services.outreach.select import BatchRow, select_batch, tier_counts

__all__ = [
    "ApprovalCheck",
    "BatchRow",
    "PlanReport",
    "Planner",
    "PrintStarter",
    "plan_batch",
    "select_batch",
    "tier_counts",
]
