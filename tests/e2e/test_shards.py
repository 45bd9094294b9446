"""The sharded daily run, in-process: the same outbox as one unsharded run, and one parent run
whose summary adds up its children's rows. (tests/e2e/test_shards_prefect.py runs it through a
real Prefect server, with each shard a deployment run on a process worker.)"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from dunning.bootstrap import Runtime, bootstrap, outreach
from dunning.db.tables import OUTBOX, RUN
from dunning.demo.population import seed_population
from dunning.project import Project
from dunning.services.daily import InThisProcess
from dunning.services.daily.run import run_daily_outreach
from dunning.services.daily.shards import (
    DAILY_OUTREACH_SHARD,
    DAILY_OUTREACH_SHARDED,
    ShardsIncomplete,
    in_process,
    run_sharded,
    split_shards,
)
from dunning.services.outreach import PlanReport
from dunning.services.runs import Batch, account_batches
from tests.e2e.test_kill_and_rerun import always_open_program

AS_OF = date(2026, 11, 24)


@pytest.fixture
def program(tmp_path: Path, repo_dir: Path) -> Path:
    root = always_open_program(repo_dir, tmp_path / "program")
    (root / "config" / "runners.yaml").write_text(yaml.safe_dump({"shards": {"count": 3}}))
    return root


def seeded(program: Path, url: str) -> Runtime:
    runtime = bootstrap(project=Project(program), database_url=url)
    with runtime.unit_of_work() as connection:
        seed_population(connection, accounts=2000, seed=8, as_of=AS_OF)
    return runtime


def outbox(runtime: Runtime) -> dict[str, tuple[Any, ...]]:
    o = OUTBOX.c
    with runtime.engine.connect() as connection:
        rows = connection.execute(
            select(o.idempotency_key, o.status, o.template_id, o.channel, o.suppression)
        ).all()
    return {row[0]: tuple(row[1:]) for row in rows}


def runs(runtime: Runtime) -> list[Any]:
    with runtime.engine.connect() as connection:
        return list(connection.execute(select(RUN).order_by(RUN.c.id)))


def test_shards_cover_the_accounts_on_batch_edges(
    program: Path, database_url: str, env: Path
) -> None:
    runtime = seeded(program, database_url)
    try:
        with runtime.engine.connect() as connection:
            batches = account_batches(connection, 400)
            shards = split_shards(connection, 3, 400)
            # Seed 8's 2,000 accounts: five batches of 400, shared 1, 2, 2 between three shards.
            assert batches == [(1, 400), (401, 800), (801, 1200), (1201, 1600), (1601, 2000)]
            assert [(s.index, s.lo, s.hi) for s in shards] == [
                (0, 1, 400),
                (1, 401, 1200),
                (2, 1201, 2000),
            ]
            # Contiguous, from the first open account to the last account, on batch edges; each
            # shard's own batches are exactly the unsharded run's, shared out evenly.
            assert shards[0].lo == batches[0][0] and shards[-1].hi == batches[-1][1]
            assert all(a.hi + 1 == b.lo for a, b in itertools.pairwise(shards))
            per_shard = [account_batches(connection, 400, s.lo, s.hi) for s in shards]
            assert [b for own in per_shard for b in own] == batches
            assert [len(own) for own in per_shard] == [1, 2, 2]  # evenly
            assert len(split_shards(connection, 50, 400)) == len(batches)  # at most one a batch
    finally:
        runtime.close()


def test_a_sharded_run_writes_the_outbox_of_one_run_and_adds_up_its_children(
    program: Path,
    database_url: str,
    other_database_url: str,
    env: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    single = seeded(program, other_database_url)
    sharded = seeded(program, database_url)
    try:
        monkeypatch.setenv("DUNNING_STATE_DIR", str(env / "single"))  # a gateway ledger each
        one = run_daily_outreach(outreach(single), AS_OF)
        monkeypatch.setenv("DUNNING_STATE_DIR", str(env / "sharded"))
        environment = outreach(sharded)
        summary = run_sharded(environment, AS_OF, 3, in_process(environment, AS_OF))

        expected = outbox(single)
        assert len(expected) == 291
        assert outbox(sharded) == expected
        parent, *children = runs(sharded)
        assert (parent.flow, parent.status, parent.parent_run_id) == (
            DAILY_OUTREACH_SHARDED,
            "completed",
            None,
        )
        assert [(c.flow, c.status, c.parent_run_id) for c in children] == [
            (DAILY_OUTREACH_SHARD, "completed", parent.id)
        ] * 3
        assert parent.summary == summary
        assert [s["run_id"] for s in summary["shards"]] == [c.id for c in children]
        assert [c.summary["shard"]["index"] for c in children] == [0, 1, 2]
        # The children's counts add up to what the one unsharded run counted.
        for key in ("accounts", "this_run", "messages", "batches", "lifecycle"):
            assert summary[key] == one[key], key
        assert (
            sum(c.summary["this_run"]["new_messages"] for c in children)
            == (one["this_run"]["new_messages"])
        )
        assert sum(sum(c.summary["messages"]["by_status"].values()) for c in children) == sum(
            one["messages"]["by_status"].values()
        )
    finally:
        single.close()
        sharded.close()


def test_a_failed_shard_fails_the_parent_and_a_rerun_finishes_the_day(
    program: Path, database_url: str, env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = seeded(program, database_url)
    environment = outreach(runtime)
    try:
        with runtime.engine.connect() as connection:
            doomed = split_shards(connection, 3, environment.strategy.batch_size)[1]

        class LosesAWorker(InThisProcess):
            """Plans as usual, except the doomed shard's batches: their worker is lost."""

            def plan(
                self, run_id: int, as_of: date, batches: Sequence[Batch], dry_run: bool
            ) -> list[PlanReport]:
                if any(doomed.lo <= lo <= doomed.hi for lo, _ in batches):
                    raise RuntimeError("worker lost")
                return super().plan(run_id, as_of, batches, dry_run)

        losing = in_process(environment, AS_OF, executor=LosesAWorker(environment))
        with pytest.raises(ShardsIncomplete, match=r"shards that did not complete: 1 \(accounts"):
            run_sharded(environment, AS_OF, 3, losing)
        parent, *children = runs(runtime)
        assert parent.status == "failed" and "1 (accounts" in parent.error
        assert [c.status for c in children] == ["completed", "failed", "completed"]
        assert parent.summary["shards"][1]["status"] == "failed"
        first = outbox(runtime)
        # The two shards that completed planned and sent their messages; the lost one none.
        assert Counter(row[0] for row in first.values()) == {"sent": 152, "held": 28}

        summary = run_sharded(environment, AS_OF, 3, in_process(environment, AS_OF))
        again = outbox(runtime)
        assert {k: v for k, v in again.items() if k in first} == first  # nothing redone
        assert len(again) == 291  # what one run of the whole book plans
        assert summary["this_run"]["new_messages"] == len(again) - len(first) == 111
        assert summary["this_run"]["already_planned"] == len(first)
        assert runs(runtime)[-4].status == "completed"
    finally:
        runtime.close()
