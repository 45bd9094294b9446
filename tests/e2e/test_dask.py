"""The daily flow's batch tasks on a Dask LocalCluster give the outbox the thread runner gives.

Two databases seeded alike; the daily-outreach flow runs on each under the Prefect test harness,
once as shipped (batch tasks on threads), once with config/runners.yaml pointing at `local` (a
LocalCluster of two worker processes, which build their own environment on first use).
"""

from __future__ import annotations

from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from dunning.bootstrap import bootstrap
from dunning.db.engine import create_db_engine
from dunning.db.tables import OUTBOX, RUN
from dunning.demo.population import seed_population
from dunning.project import Project
from flows import _runners
from tests.e2e.test_kill_and_rerun import always_open_program

pytestmark = pytest.mark.slow
AS_OF = date(2026, 11, 24)


def seeded(program: Path, url: str) -> None:
    runtime = bootstrap(project=Project(program), database_url=url)
    with runtime.unit_of_work() as connection:
        seed_population(connection, accounts=1500, seed=5, as_of=AS_OF)
    runtime.close()


def outbox(url: str) -> dict[str, tuple[Any, ...]]:
    engine = create_db_engine(url)
    o = OUTBOX.c
    with engine.connect() as connection:
        rows = connection.execute(
            select(o.idempotency_key, o.status, o.template_id, o.channel, o.suppression)
        ).all()
    engine.dispose()
    return {row[0]: tuple(row[1:]) for row in rows}


def run_flow(
    monkeypatch: pytest.MonkeyPatch, program: Path, url: str, state: Path
) -> dict[str, Any]:
    from flows.daily_outreach import daily_outreach

    monkeypatch.setenv("DUNNING_DATABASE_URL", url)
    monkeypatch.setenv("DUNNING_STATE_DIR", str(state))
    summary: dict[str, Any] = daily_outreach(as_of=AS_OF, project_dir=str(program))
    return summary


def test_the_daily_flow_on_a_dask_cluster_writes_the_outbox_the_local_run_writes(
    flows_env: Path,
    repo_dir: Path,
    tmp_path: Path,
    database_url: str,
    other_database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    local = always_open_program(repo_dir, tmp_path / "local")
    dask = always_open_program(repo_dir, tmp_path / "dask")
    (dask / "config" / "runners.yaml").write_text(
        yaml.safe_dump({"dask": {"address": "local", "local": {"workers": 2, "processes": True}}})
    )
    strategy = dask / "config" / "strategy.yaml"  # small batches: tasks for both workers
    strategy.write_text(strategy.read_text().replace("batch_size: 400", "batch_size: 150"))
    local_strategy = local / "config" / "strategy.yaml"
    local_strategy.write_text(strategy.read_text())
    seeded(local, database_url)
    seeded(dask, other_database_url)

    runners: list[Any] = []
    submitted: list[str] = []
    workers: list[int] = []

    def spied(settings: Any) -> Any:
        runner = make_runner(settings)
        submit = runner.submit

        def counted(task: Any, parameters: dict[str, Any], **kwargs: Any) -> Any:
            future = submit(task, parameters, **kwargs)
            submitted.append(task.name)
            workers.append(len(runner._cluster.workers))
            return future

        runner.submit = counted
        runners.append(runner)
        return runner

    make_runner = _runners.dask_task_runner
    monkeypatch.setattr(_runners, "dask_task_runner", spied)

    threads = run_flow(monkeypatch, local, database_url, tmp_path / "local-state")
    assert runners == []  # no runners.yaml: the flow's own threads
    on_dask = run_flow(monkeypatch, dask, other_database_url, tmp_path / "dask-state")
    (runner,) = runners
    assert type(runner._cluster).__name__ == "LocalCluster"
    assert set(workers) == {2}
    assert sorted(set(submitted)) == ["dispatch-batch", "plan-batch"]
    assert len(submitted) == 2 * on_dask["batches"]

    expected, got = outbox(database_url), outbox(other_database_url)
    assert got == expected
    # Seed 5's 1,500 accounts, windows always open: 234 messages in 10 batches of 150.
    assert Counter(row[0] for row in got.values()) == {"sent": 201, "held": 33}
    assert on_dask["batches"] == threads["batches"] == 10
    assert on_dask["this_run"]["new_messages"] == threads["this_run"]["new_messages"]
    assert on_dask["messages"] == threads["messages"]

    # The workers built their own environments and recorded nothing of their own: the one
    # run row is the flow's.
    engine = create_db_engine(other_database_url)
    with engine.connect() as connection:
        (run,) = connection.execute(select(RUN)).all()
    engine.dispose()
    assert run.status == "completed" and run.prefect_flow_run_id
