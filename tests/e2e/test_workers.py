"""The daily run's batches in worker processes (config/runners.yaml `processes`) give the outbox,
letters included, that the run's own process gives.

Two databases seeded alike; the daily run goes once in one process and once with its batches in
worker processes, which build their own environment: through the engine (what `dunning run
daily --in-process` and the single-box scheduler use), and through the Prefect flow, whose batch
tasks hand their batches to the workers.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures.process import BrokenProcessPool
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from dunning.bootstrap import bootstrap, outreach, outreach_in_worker
from dunning.db.engine import create_db_engine
from dunning.db.tables import OUTBOX, RUN
from dunning.demo.population import seed_population
from dunning.project import Project
from dunning.services.daily import (
    BatchWorkers,
    Outreach,
    RunStopped,
    local_executor,
    run_daily_outreach,
    stoppable,
)
from dunning.services.dispatch.send import DispatchReport
from dunning.services.outreach import PlanReport
from dunning.services.runs import Batch
from tests.e2e.test_kill_and_rerun import always_open_program

pytestmark = pytest.mark.slow
AS_OF = date(2026, 11, 24)


def program(repo_dir: Path, target: Path, processes: int | None) -> Path:
    root = always_open_program(repo_dir, target)
    strategy = root / "config" / "strategy.yaml"  # small batches: work for every worker
    strategy.write_text(strategy.read_text().replace("batch_size: 400", "batch_size: 80"))
    if processes is not None:
        (root / "config" / "runners.yaml").write_text(yaml.safe_dump({"processes": processes}))
    return root


def seeded_env(root: Path, url: str) -> Outreach:
    runtime = bootstrap(project=Project(root), database_url=url)
    with runtime.unit_of_work() as connection:
        seed_population(connection, accounts=700, seed=5, as_of=AS_OF)
    return outreach(runtime)


def outbox(url: str) -> dict[str, tuple[Any, ...]]:
    engine = create_db_engine(url)
    o = OUTBOX.c
    with engine.connect() as connection:
        rows = connection.execute(
            select(
                o.idempotency_key,
                o.status,
                o.template_id,
                o.channel,
                o.suppression,
                o.document_sha256,
            )
        ).all()
    engine.dispose()
    return {row[0]: tuple(row[1:]) for row in rows}


def close(env: Outreach) -> None:
    env.close()
    env.runtime.close()


def run_in_one_process(
    repo_dir: Path, tmp_path: Path, url: str, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    """The reference: the daily run of a book seeded like the others, in this process."""
    monkeypatch.setenv("DUNNING_STATE_DIR", str(tmp_path / "one-state"))
    one = seeded_env(program(repo_dir, tmp_path / "one", None), url)
    with local_executor(one, outreach_in_worker) as executor:
        assert not isinstance(executor, BatchWorkers)  # no runners.yaml: this process
        summary = run_daily_outreach(one, AS_OF, executor=executor)
    close(one)
    return summary


def test_batches_in_worker_processes_write_the_outbox_and_letters_of_one_process(
    env: Path,
    repo_dir: Path,
    tmp_path: Path,
    database_url: str,
    other_database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    alone = run_in_one_process(repo_dir, tmp_path, database_url, monkeypatch)

    monkeypatch.setenv("DUNNING_STATE_DIR", str(tmp_path / "two-state"))
    two = seeded_env(program(repo_dir, tmp_path / "two", 2), other_database_url)
    with local_executor(two, outreach_in_worker) as executor:
        assert isinstance(executor, BatchWorkers)
        shared = run_daily_outreach(two, AS_OF, executor=executor)
        ran = dict(executor.batches_by_process)
    close(two)

    # Every batch, planned and dispatched, ran in a worker, none in this process.
    assert os.getpid() not in ran
    assert 1 <= len(ran) <= 2
    assert sum(ran.values()) == 2 * shared["batches"]
    assert shared["batches"] == alone["batches"] == 9  # seed 5's 700 accounts, 80 a batch

    expected, got = outbox(database_url), outbox(other_database_url)
    assert got == expected
    assert Counter(row[0] for row in got.values()) == {"sent": 89, "held": 18}
    letters = [row for row in got.values() if row[2] == "letter" and row[0] == "sent"]
    assert len(letters) == 5 and all(row[4] for row in letters)  # printed, and byte-identical
    assert shared["messages"] == alone["messages"]
    assert shared["this_run"]["new_messages"] == alone["this_run"]["new_messages"]


def test_a_worker_that_dies_fails_the_run_and_the_rerun_sends_each_message_once(
    env: Path, repo_dir: Path, tmp_path: Path, database_url: str
) -> None:
    from sandbox import GatewayLedger

    day = seeded_env(program(repo_dir, tmp_path / "two", 2), database_url)
    with local_executor(day, outreach_in_worker) as workers:
        assert isinstance(workers, BatchWorkers)

        class KillsAWorker:
            """The workers, but one of them is killed once every batch is planned."""

            width = workers.width

            def plan(
                self, run_id: int, as_of: date, batches: Sequence[Batch], dry_run: bool
            ) -> list[PlanReport]:
                return workers.plan(run_id, as_of, batches, dry_run)

            def dispatch(self, as_of: date, batches: Sequence[Batch]) -> list[DispatchReport]:
                os.kill(next(iter(workers.batches_by_process)), signal.SIGKILL)
                time.sleep(0.5)
                return workers.dispatch(as_of, batches)

        with pytest.raises(BrokenProcessPool):
            run_daily_outreach(day, AS_OF, executor=KillsAWorker())
        assert workers.broken
    with day.runtime.engine.connect() as connection:
        (failed,) = connection.execute(select(RUN)).all()
    assert failed.status == "failed" and "BrokenProcessPool" in failed.error

    with local_executor(day, outreach_in_worker) as workers:
        rerun = run_daily_outreach(day, AS_OF, executor=workers)
    close(day)
    assert rerun["this_run"]["new_messages"] == 0  # all planned before the worker died
    got = outbox(database_url)
    assert Counter(row[0] for row in got.values()) == {"sent": 89, "held": 18}  # as in one run
    sent = {key for key, row in got.items() if row[0] == "sent"}
    ledger = GatewayLedger(env / "gateway-ledger.db")
    rows = {row.idempotency_key: row for row in ledger.rows()}
    assert set(rows) == sent
    assert all(row.submissions == 1 for row in rows.values())


def test_a_stop_is_asked_before_each_round_of_worker_batches() -> None:
    calls: list[list[tuple[int, int]]] = []

    class TwoAtATime:
        width = 2

        def plan(
            self, run_id: int, as_of: date, batches: Sequence[Batch], dry_run: bool
        ) -> list[PlanReport]:
            calls.append(list(batches))
            return [PlanReport() for _ in batches]

        def dispatch(self, as_of: date, batches: Sequence[Batch]) -> list[DispatchReport]:
            raise AssertionError("not asked")

    asked: list[int] = []

    def should_stop() -> bool:
        asked.append(len(calls))
        return len(calls) == 2

    batches = [(1, 10), (11, 20), (21, 30), (31, 40), (41, 50)]
    with pytest.raises(RunStopped, match="plan ended after 4 of 5 batches"):
        stoppable(TwoAtATime(), should_stop).plan(1, AS_OF, batches, False)
    assert calls == [[(1, 10), (11, 20)], [(21, 30), (31, 40)]]
    assert asked == [0, 1, 2]


def test_the_daily_flow_hands_its_batches_to_worker_processes(
    flows_env: Path,
    repo_dir: Path,
    tmp_path: Path,
    database_url: str,
    other_database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flows import _runners, _runtime
    from flows.daily_outreach import daily_outreach

    run_in_one_process(repo_dir, tmp_path, database_url, monkeypatch)

    # Three workers: more than the flow's two threads, so the flow runs three tasks at once.
    root = program(repo_dir, tmp_path / "three", 3)
    monkeypatch.setenv("DUNNING_STATE_DIR", str(tmp_path / "three-state"))
    monkeypatch.setenv("DUNNING_DATABASE_URL", other_database_url)
    close(seeded_env(root, other_database_url))
    runners: list[int] = []
    real_runner = _runners.ThreadPoolTaskRunner

    def counted(*args: Any, **kwargs: Any) -> Any:
        runners.append(kwargs["max_workers"])
        return real_runner(*args, **kwargs)

    monkeypatch.setattr(_runners, "ThreadPoolTaskRunner", counted)
    summary = daily_outreach(as_of=AS_OF, project_dir=str(root))
    assert runners == [3]  # a thread per worker for this run's batch tasks

    workers = _runtime.batch_workers(str(root))
    assert isinstance(workers, BatchWorkers) and workers.width == 3
    assert os.getpid() not in workers.batches_by_process
    assert sum(workers.batches_by_process.values()) == 2 * summary["batches"]
    assert outbox(other_database_url) == outbox(database_url)


@pytest.mark.parametrize("value", [0, -2, "two", 257])
def test_a_bad_process_count_is_rejected_naming_the_key(tmp_path: Path, value: Any) -> None:
    from dunning.config.runners import load_runners
    from dunning.errors import ConfigError

    config = tmp_path / "config"
    config.mkdir()
    (config / "runners.yaml").write_text(yaml.safe_dump({"processes": value}))
    with pytest.raises(ConfigError) as caught:
        load_runners(config, tmp_path)
    (problem,) = caught.value.problems
    assert (problem.file, problem.key) == ("config/runners.yaml", "processes")
