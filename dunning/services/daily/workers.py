"""Batches in worker processes on this machine: the run's use of every core without Dask.

One Python process plans and dispatches one batch at a time on one core (the engine is Python,
so threads share one core). With `processes: N` in config/runners.yaml, the daily run hands its
batches to N worker processes instead, each with its own OutreachEnv over the same database,
state directory and strategy; the run's own process keeps the run row, the lifecycle and the
summary. Nothing about sending changes: every batch still goes through the outbox's claims, so
a worker that dies leaves its claims to run out and the rerun finishes its batch, as after any
crash. Dask (`dask.address`) and the sharded run are the ways across machines; these workers are
for one machine.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dunning.config import Strategy
from dunning.config.runners import load_runners
from dunning.services.daily.run import BatchMapper, dispatch_batch, sequential
from dunning.services.dispatch.printing import default_workers, exit_with_parent
from dunning.services.runs.batches import Batch

if TYPE_CHECKING:
    from dunning.services.daily.env import OutreachEnv

_ENV: OutreachEnv | None = None


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker process needs to build the run's OutreachEnv (picklable)."""

    project_root: Path
    state_dir: Path
    database_url: str
    strategy: Strategy
    """The run's strategy as its process loaded it, so every worker plans by the same one."""

    @classmethod
    def of(cls, env: OutreachEnv, processes: int) -> WorkerSpec:
        project = env.runtime.project
        strategy = env.strategy
        # The machine's letter printers are shared out among the workers (each worker prints
        # its own batches' letters); one printer per worker prints in the worker itself.
        printers = max(1, (strategy.letter_workers or default_workers()) // processes)
        return cls(
            project_root=project.root,
            state_dir=project.state_dir,
            database_url=env.runtime.engine.url.render_as_string(hide_password=False),
            strategy=strategy.model_copy(update={"letter_workers": printers}),
        )


def _start_worker(spec: WorkerSpec, parent: int) -> None:
    global _ENV
    threading.Thread(target=exit_with_parent, args=(parent,), daemon=True).start()
    os.environ["DUNNING_STATE_DIR"] = str(spec.state_dir)
    from dunning.bootstrap import bootstrap
    from dunning.logs import install_masking
    from dunning.project import Project
    from dunning.services.daily.env import OutreachEnv

    install_masking()
    project = Project(spec.project_root)
    project.__dict__["strategy"] = spec.strategy
    runtime = bootstrap(project=project, database_url=spec.database_url, migrate=False)
    _ENV = OutreachEnv(runtime)


def _work(
    stage: str, run_id: int, as_of: date, batch: Batch, dry_run: bool
) -> tuple[int, dict[str, Any]]:
    """(this worker's process id, the batch's report)."""
    assert _ENV is not None, "worker started without its environment"
    lo, hi = batch
    if stage == "plan":
        from dunning.services.outreach.plan import plan_batch

        return os.getpid(), plan_batch(_ENV, run_id, as_of, lo, hi, dry_run=dry_run).as_dict()
    return os.getpid(), dispatch_batch(_ENV, as_of, lo, hi).as_dict()


def _ready(_: int) -> int:
    return os.getpid()


class BatchWorkers:
    """A BatchMapper over `processes` worker processes (spawned, so they inherit no locks)."""

    def __init__(self, spec: WorkerSpec, processes: int) -> None:
        if processes < 2:
            raise ValueError("worker processes are for two or more; one is the run's own")
        self.width = processes
        """Batches in flight at once: a stoppable run hands over this many at a time."""
        self.broken = False
        """A worker died (killed, out of memory): the pool takes no more batches."""
        self.batches_by_process: Counter[int] = Counter()
        """How many batches (of either stage) each worker process ran, by process id."""
        self._pool = ProcessPoolExecutor(
            max_workers=processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(spec, os.getpid()),
        )

    def start(self) -> None:
        """Start every worker now (a worker takes a second or two to import and connect)."""
        list(self._pool.map(_ready, range(self.width)))

    def __call__(
        self, stage: str, run_id: int, as_of: date, batches: Sequence[Batch], dry_run: bool
    ) -> list[dict[str, Any]]:
        futures = []
        try:
            for batch in batches:
                futures.append(self._pool.submit(_work, stage, run_id, as_of, batch, dry_run))
            done = [future.result() for future in futures]
        except BrokenProcessPool:
            self.broken = True
            raise
        except BaseException:
            for future in futures:
                future.cancel()
            raise
        self.batches_by_process.update(pid for pid, _ in done)
        return [report for _, report in done]

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def local_processes(env: OutreachEnv) -> int:
    """Worker processes for the batches by config/runners.yaml (1 when a Dask cluster is named:
    the batches go there instead)."""
    project = env.runtime.project
    runners = load_runners(project.config_dir, project.root)
    return 1 if runners.dask.address is not None else runners.processes


@contextmanager
def local_mapper(env: OutreachEnv, processes: int | None = None) -> Iterator[BatchMapper]:
    """The batches' mapper for a run on this machine: `processes` worker processes (default
    from config/runners.yaml), or this process when that is one."""
    processes = local_processes(env) if processes is None else processes
    if processes < 2:
        yield sequential(env)
        return
    workers = BatchWorkers(WorkerSpec.of(env, processes), processes)
    try:
        workers.start()
        yield workers
    finally:
        workers.close()
