"""The day's work put together: the daily outreach (select, lifecycle, plan, dispatch,
summarise) as typed stages over any `BatchExecutor`, the sharded daily run, worker processes,
and the dispatcher and receipts runs.

    outreach = dunning.bootstrap.outreach(runtime)          # built once per process
    summary = run_daily_outreach(outreach, as_of)           # batches in this process
"""

from __future__ import annotations

from dunning.services.daily.deps import ActionDispatch, Dispatcher, Outreach
from dunning.services.daily.run import (
    DAILY_OUTREACH,
    DISPATCH_OUTBOX,
    RECONCILE_RECEIPTS,
    dispatch_due_now,
    poll_receipts,
    run_daily_outreach,
    run_dispatch_outbox,
    run_reconcile_receipts,
)
from dunning.services.daily.shards import (
    DAILY_OUTREACH_SHARD,
    DAILY_OUTREACH_SHARDED,
    Shard,
    ShardsIncomplete,
    ShardStarter,
    in_process,
    run_shard,
    run_sharded,
)
from dunning.services.daily.stages import (
    BatchExecutor,
    InThisProcess,
    LifecycleReport,
    RunStopped,
    StopCheck,
    Stoppable,
    dispatch_batch,
    stoppable,
)
from dunning.services.daily.workers import (
    BatchWorkers,
    OutreachBuilder,
    WorkerSpec,
    local_executor,
    local_processes,
)

__all__ = [
    "DAILY_OUTREACH",
    "DAILY_OUTREACH_SHARD",
    "DAILY_OUTREACH_SHARDED",
    "DISPATCH_OUTBOX",
    "RECONCILE_RECEIPTS",
    "ActionDispatch",
    "BatchExecutor",
    "BatchWorkers",
    "Dispatcher",
    "InThisProcess",
    "LifecycleReport",
    "Outreach",
    "OutreachBuilder",
    "RunStopped",
    "Shard",
    "ShardStarter",
    "ShardsIncomplete",
    "StopCheck",
    "Stoppable",
    "WorkerSpec",
    "dispatch_batch",
    "dispatch_due_now",
    "in_process",
    "local_executor",
    "local_processes",
    "poll_receipts",
    "run_daily_outreach",
    "run_dispatch_outbox",
    "run_reconcile_receipts",
    "run_shard",
    "run_sharded",
    "stoppable",
]
