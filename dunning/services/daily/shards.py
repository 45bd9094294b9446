"""The sharded daily run: the day's accounts in N id ranges, each range a child run of its own.

A parent run (`daily-outreach-sharded`) brings promises, plans and treatments up to date once,
splits the open accounts into N contiguous id ranges (shards) on batch boundaries, and hands
them to a `ShardStarter`: the Prefect flow starts one `daily-outreach-shard` deployment run per
shard (on whichever workers pick them up) and waits for them; in-process, the shards run one
after the other. Each child plans and dispatches its shard's batches and records its own `run`
row, pointing at the parent (`run.parent_run_id`). The parent's summary is then added up from
the children's rows in our database, the system of record, not from what Prefect returned.

Exactly-once does not depend on any of this: shards do not overlap, and even if they did, the
outbox's idempotency keys and the dispatchers' claims would keep every message single.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Connection, select

from dunning.db.tables import RUN
from dunning.errors import DunningError
from dunning.services.daily.deps import Outreach
from dunning.services.daily.stages import (
    BatchExecutor,
    Clock,
    InThisProcess,
    RunStopped,
    StopCheck,
    bring_lifecycle_up_to_date,
    message_counts,
    plan_and_dispatch,
    select_batches,
    stoppable,
    summarise,
)
from dunning.services.dispatch.send import DispatchReport
from dunning.services.outreach import PlanReport
from dunning.services.runs import account_batches

DAILY_OUTREACH_SHARDED = "daily-outreach-sharded"
DAILY_OUTREACH_SHARD = "daily-outreach-shard"


@dataclass(frozen=True)
class Shard:
    index: int
    """0-based position among the shards of the run."""
    lo: int
    hi: int
    """The account ids lo..hi (both included)."""

    def as_dict(self) -> dict[str, int]:
        return {"index": self.index, "lo": self.lo, "hi": self.hi}


ShardStarter = Callable[[int, Sequence[Shard]], None]
"""(parent run id, shards): run every shard as a child run and return once all have ended
(each records its own run row; how they went is read from those rows afterwards)."""


class ShardsIncomplete(DunningError):
    """Some shards did not complete; the run failed. Running the date again finishes it."""


def split_shards(connection: Connection, count: int, batch_size: int) -> list[Shard]:
    """Up to `count` contiguous id ranges of about equal numbers of open accounts.

    Shard edges fall on batch edges, so each child's batches are the ones the unsharded run
    would have made; together the shards cover every id from the first open account to the
    last account.
    """
    batches = account_batches(connection, batch_size)
    count = max(1, min(count, len(batches)))
    shards = []
    for index in range(count):
        group = batches[index * len(batches) // count : (index + 1) * len(batches) // count]
        shards.append(Shard(index, group[0][0], group[-1][1]))
    return shards


def run_shard(
    outreach: Outreach,
    as_of: date,
    shard: Shard,
    *,
    parent_run_id: int | None = None,
    shards: int = 1,
    dry_run: bool = False,
    executor: BatchExecutor | None = None,
    prefect_flow_run_id: str | None = None,
) -> dict[str, Any]:
    """One child: plan and dispatch the batches of accounts shard.lo..shard.hi, as a run."""
    batches_run = executor or InThisProcess(outreach)
    clock = Clock()
    # The row says which shard it is from the start, so a child that dies is still accounted.
    mark = {"shard": shard.as_dict() | {"of": shards}, "parent_run_id": parent_run_id}
    with outreach.runtime.runs.run(
        DAILY_OUTREACH_SHARD,
        as_of,
        dry_run=dry_run,
        prefect_flow_run_id=prefect_flow_run_id,
        parent_run_id=parent_run_id,
        summary=mark,
    ) as run:
        batches = select_batches(outreach, shard.lo, shard.hi)
        clock.lap("start")
        plan, sent = plan_and_dispatch(batches_run, run.id, as_of, batches, dry_run, clock)
        summary = summarise(
            outreach,
            DAILY_OUTREACH_SHARD,
            run.id,
            as_of,
            dry_run,
            len(batches),
            plan,
            sent,
            clock,
            account_range=(shard.lo, shard.hi),
        )
        summary.update(mark)
        run.complete(summary)
    return summary


def run_sharded(
    outreach: Outreach,
    as_of: date,
    count: int,
    start: ShardStarter,
    *,
    dry_run: bool = False,
    prefect_flow_run_id: str | None = None,
) -> dict[str, Any]:
    """The parent: lifecycle once, the shards as child runs, one summary adding them up."""
    started = time.perf_counter()
    with outreach.runtime.runs.run(
        DAILY_OUTREACH_SHARDED, as_of, dry_run=dry_run, prefect_flow_run_id=prefect_flow_run_id
    ) as run:
        with outreach.engine.connect() as connection:
            shards = split_shards(connection, count, outreach.strategy.batch_size)
        lifecycle: dict[str, Any] = {}
        if not dry_run:
            lifecycle = bring_lifecycle_up_to_date(outreach, as_of, run.id).as_dict()
        if shards:
            start(run.id, shards)
        with outreach.engine.connect() as connection:
            children = latest_children(connection, run.id)
            messages = None if dry_run else message_counts(connection, as_of)
        summary = sharded_summary(run.id, as_of, dry_run, shards, children)
        summary["lifecycle"] = lifecycle
        if messages is not None:
            summary["messages"] = messages
        summary["duration_seconds"] = round(time.perf_counter() - started, 3)
        run.complete(summary)
        missing = [s for s in summary["shards"] if s["status"] != "completed"]
        if missing:
            error = "shards that did not complete: " + ", ".join(
                f"{s['index']} (accounts {s['lo']}-{s['hi']}: {s['status']})" for s in missing
            )
            raise ShardsIncomplete(f"run {run.id}: {error}; run the date again to finish it")
    return summary


def latest_children(connection: Connection, parent_run_id: int) -> dict[int, Any]:
    """The last child run row of each shard index, from our database."""
    rows = connection.execute(
        select(RUN.c.id, RUN.c.status, RUN.c.summary, RUN.c.prefect_flow_run_id, RUN.c.error)
        .where(RUN.c.parent_run_id == parent_run_id)
        .order_by(RUN.c.id)
    ).all()
    found: dict[int, Any] = {}
    for row in rows:
        index = ((row.summary or {}).get("shard") or {}).get("index")
        if index is not None:
            found[int(index)] = row
    return found


def sharded_summary(
    run_id: int,
    as_of: date,
    dry_run: bool,
    shards: Sequence[Shard],
    children: dict[int, Any],
) -> dict[str, Any]:
    """Counts only (never PII): the children's summaries added up, and each shard's outcome."""
    plan = PlanReport()
    sent = DispatchReport()
    batches = 0
    timings: dict[str, float] = {}
    listed = []
    for shard in shards:
        child = children.get(shard.index)
        status = child.status if child is not None else "not started"
        listed.append(
            shard.as_dict()
            | {
                "run_id": child.id if child is not None else None,
                "status": status,
                "prefect_flow_run_id": child.prefect_flow_run_id if child is not None else None,
            }
        )
        if child is None or status != "completed" or not child.summary:
            continue
        summary = child.summary
        this_run = summary["this_run"]
        batches += int(summary.get("batches", 0))
        plan.merge(
            PlanReport.from_dict(
                {
                    "accounts_by_tier": summary["accounts"]["by_tier"],
                    "decisions_by_channel": this_run["decisions_by_channel"],
                    "held_by_suppression": this_run["held_by_suppression"],
                    "planned_new": this_run["new_messages"],
                    "already_planned": this_run["already_planned"],
                }
            )
        )
        sent.merge(DispatchReport.from_dict(this_run["dispatch"]))
        for stage, seconds in (summary.get("timings_seconds") or {}).items():
            timings[stage] = timings.get(stage, 0.0) + seconds
    dispatch = sent.as_dict()
    dispatch.pop("timings")
    return {
        "run_id": run_id,
        "flow": DAILY_OUTREACH_SHARDED,
        "as_of": as_of.isoformat(),
        "dry_run": dry_run,
        "batches": batches,
        "shards": listed,
        "accounts": {"overdue": sum(plan.accounts.values()), "by_tier": dict(plan.accounts)},
        "this_run": {
            "decisions_by_channel": dict(plan.decisions),
            "held_by_suppression": dict(plan.held),
            "new_messages": plan.planned_new,
            "already_planned": plan.already_planned,
            "dispatch": dispatch,
        },
        "timings_seconds": {k: round(v, 3) for k, v in sorted(timings.items())},
    }


def in_process(
    outreach: Outreach,
    as_of: date,
    *,
    dry_run: bool = False,
    should_stop: StopCheck | None = None,
    executor: BatchExecutor | None = None,
) -> ShardStarter:
    """Run the shards here, one after the other (no Prefect): tests, the single-box scheduler.

    A shard that fails is recorded on its own row and the next one runs, as with Prefect
    workers; a stop request ends them all at a batch boundary.
    """
    batches_run = stoppable(executor or InThisProcess(outreach), should_stop)

    def start(parent_run_id: int, shards: Sequence[Shard]) -> None:
        for shard in shards:
            try:
                run_shard(
                    outreach,
                    as_of,
                    shard,
                    parent_run_id=parent_run_id,
                    shards=len(shards),
                    dry_run=dry_run,
                    executor=batches_run,
                )
            except RunStopped:
                raise
            except Exception:  # recorded on the shard's row; the parent reports it
                continue

    return start
