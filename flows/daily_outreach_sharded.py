"""The daily outreach across Prefect workers: a parent flow, one child deployment run per shard.

`daily-outreach-sharded` brings the lifecycle up to date, splits the open accounts into
config/runners.yaml `shards.count` id ranges, starts a `daily-outreach-shard` deployment run for
each (`run_deployment`, as subflows) and waits for them; any worker of the pool may take a child.
Each child plans and dispatches its own shard's batches (on threads or Dask, as the daily flow
does) and records its run; the parent's summary adds the children's run rows up.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import date
from typing import TYPE_CHECKING, Any, cast

from prefect import flow
from prefect.runtime import flow_run
from prefect.task_runners import ThreadPoolTaskRunner

from dunning.config.runners import ShardSettings, load_runners
from dunning.errors import DunningError
from dunning.services.daily import (
    DAILY_OUTREACH_SHARD,
    DAILY_OUTREACH_SHARDED,
    Shard,
    ShardStarter,
    run_shard,
    run_sharded,
)
from flows._artifacts import publish_summary
from flows._runners import FLOW_THREADS, batch_task_runner
from flows._runtime import outreach_for
from flows.daily_outreach import PrefectBatches

if TYPE_CHECKING:
    from prefect.client.schemas.objects import FlowRun


class ShardsTimedOut(DunningError):
    """The children did not all end within shards.timeout_seconds."""


def shard_deployment(settings: ShardSettings, program_name: str) -> str:
    """The child deployment's `flow/deployment` name (`dunning deploy` registers it)."""
    return settings.deployment or f"{DAILY_OUTREACH_SHARD}/{program_name}"


def start_children(
    project_dir: str | None, as_of: date, dry_run: bool, deployment: str, settings: ShardSettings
) -> ShardStarter:
    """Start one child deployment run per shard, then wait until every one has ended."""

    def start(parent_run_id: int, shards: Sequence[Shard]) -> None:
        # Prefect loads only for the commands that talk to its server.
        from prefect.deployments import run_deployment

        children = [
            cast(
                "FlowRun",
                run_deployment(
                    name=deployment,
                    parameters={
                        "as_of": as_of.isoformat(),
                        "lo": shard.lo,
                        "hi": shard.hi,
                        "shard": shard.index,
                        "shards": len(shards),
                        "parent_run_id": parent_run_id,
                        "dry_run": dry_run,
                        "project_dir": project_dir,
                    },
                    timeout=0,  # start them all, then wait below
                    idempotency_key=f"dunning-run-{parent_run_id}-shard-{shard.index}",
                    tags=["dunning", "shard"],
                ),
            )
            for shard in shards
        ]
        wait_for_children([child.id for child in children], settings)

    return start


def wait_for_children(ids: Sequence[Any], settings: ShardSettings) -> None:
    # Prefect loads only for the commands that talk to its server.
    from prefect import get_client

    deadline = time.monotonic() + settings.timeout_seconds
    pending = set(ids)
    with get_client(sync_client=True) as client:
        while pending:
            for flow_run_id in sorted(pending, key=str):
                state = client.read_flow_run(flow_run_id).state
                if state is not None and state.is_final():
                    pending.discard(flow_run_id)
            if not pending:
                break
            if time.monotonic() > deadline:
                raise ShardsTimedOut(
                    f"{len(pending)} shard runs still going after {settings.timeout_seconds} s"
                )
            time.sleep(settings.poll_seconds)


def _run_name() -> str:
    as_of = flow_run.parameters.get("as_of") or date.today().isoformat()
    return f"{DAILY_OUTREACH_SHARDED}-{as_of}"


def _shard_run_name() -> str:
    parameters = flow_run.parameters
    return f"{DAILY_OUTREACH_SHARD}-{parameters.get('as_of')}-{parameters.get('shard')}"


@flow(name=DAILY_OUTREACH_SHARDED, flow_run_name=_run_name, log_prints=False)
def daily_outreach_sharded(
    as_of: date | None = None,
    dry_run: bool = False,
    shards: int | None = None,
    project_dir: str | None = None,
) -> dict[str, Any]:
    """The daily outreach for `as_of` (default today) in shards run by Prefect workers."""
    outreach = outreach_for(project_dir)
    project = outreach.runtime.project
    settings = load_runners(project.config_dir, project.root).shards or ShardSettings()
    day = as_of or date.today()
    summary = run_sharded(
        outreach,
        day,
        shards or settings.count,
        start_children(
            project_dir,
            day,
            dry_run,
            shard_deployment(settings, project.settings.name),
            settings,
        ),
        dry_run=dry_run,
        prefect_flow_run_id=str(flow_run.id) if flow_run.id else None,
    )
    publish_summary(DAILY_OUTREACH_SHARDED, summary)
    return summary


@flow(
    name=DAILY_OUTREACH_SHARD,
    flow_run_name=_shard_run_name,
    task_runner=ThreadPoolTaskRunner(max_workers=FLOW_THREADS),  # type: ignore[arg-type]
    log_prints=False,
)
def daily_outreach_shard(
    as_of: date,
    lo: int,
    hi: int,
    shard: int = 0,
    shards: int = 1,
    parent_run_id: int | None = None,
    dry_run: bool = False,
    project_dir: str | None = None,
) -> dict[str, Any]:
    """Plan and dispatch the accounts lo..hi for `as_of`: one shard of a sharded daily run."""
    outreach = outreach_for(project_dir)
    with batch_task_runner(outreach.runtime.project) as runner:
        summary = run_shard(
            outreach,
            as_of,
            Shard(shard, lo, hi),
            parent_run_id=parent_run_id,
            shards=shards,
            dry_run=dry_run,
            executor=PrefectBatches(project_dir, runner),
            prefect_flow_run_id=str(flow_run.id) if flow_run.id else None,
        )
    publish_summary(DAILY_OUTREACH_SHARD, summary)
    return summary
