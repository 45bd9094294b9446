"""Batches in worker processes on this machine: the run's use of every core without Dask.

One Python process plans and dispatches one batch at a time on one core (the engine is Python,
so threads share one core). With `processes: N` in config/runners.yaml, the daily run hands its
batches to N worker processes instead, each with its own `Outreach` over the same database,
state directory and strategy; the run's own process keeps the run row, the lifecycle and the
summary. Nothing about sending changes: every batch still goes through the outbox's claims, so
a worker that dies leaves its claims to run out and the rerun finishes its batch, as after any
crash. Dask (`dask.address`) and the sharded run are the ways across machines; these workers are
for one machine.

A worker builds its `Outreach` with the `OutreachBuilder` it is given (the composition root's,
`dunning.bootstrap.outreach_in_worker`): the service layer never reaches up for it.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

from dunning.config import Strategy
from dunning.config.runners import load_runners
from dunning.services.daily.deps import Outreach
from dunning.services.daily.stages import BatchExecutor, InThisProcess, dispatch_batch
from dunning.services.dispatch.printing import default_workers, exit_with_parent
from dunning.services.dispatch.send import DispatchReport
from dunning.services.outreach import PlanReport, plan_batch
from dunning.services.runs import Batch

_OUTREACH: Outreach | None = None
R = TypeVar("R")


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker process needs to build the run's `Outreach` (picklable)."""

    project_root: Path
    state_dir: Path
    database_url: str
    strategy: Strategy
    """The run's strategy as its process loaded it, so every worker plans by the same one."""

    @classmethod
    def of(cls, outreach: Outreach, processes: int) -> WorkerSpec:
        project = outreach.runtime.project
        strategy = outreach.strategy
        # The machine's letter printers are shared out among the workers (each worker prints
        # its own batches' letters); one printer per worker prints in the worker itself.
        printers = max(1, (strategy.letter_workers or default_workers()) // processes)
        return cls(
            project_root=project.root,
            state_dir=project.state_dir,
            database_url=outreach.engine.url.render_as_string(hide_password=False),
            strategy=strategy.model_copy(update={"letter_workers": printers}),
        )


OutreachBuilder = Callable[[WorkerSpec], Outreach]
"""Builds a worker's Outreach from its spec; a module-level function, so it pickles."""


def _start_worker(spec: WorkerSpec, build: OutreachBuilder, parent: int) -> None:
    global _OUTREACH
    threading.Thread(target=exit_with_parent, args=(parent,), daemon=True).start()
    _OUTREACH = build(spec)


def _plan(run_id: int, as_of: date, batch: Batch, dry_run: bool) -> tuple[int, PlanReport]:
    """(this worker's process id, the batch's report)."""
    assert _OUTREACH is not None, "worker started without its Outreach"
    lo, hi = batch
    return os.getpid(), plan_batch(_OUTREACH.planner, run_id, as_of, lo, hi, dry_run=dry_run)


def _dispatch(as_of: date, batch: Batch) -> tuple[int, DispatchReport]:
    assert _OUTREACH is not None, "worker started without its Outreach"
    lo, hi = batch
    return os.getpid(), dispatch_batch(_OUTREACH.dispatcher, as_of, lo, hi)


def _ready(_: int) -> int:
    return os.getpid()


class BatchWorkers:
    """A BatchExecutor over `processes` worker processes (spawned, so they inherit no locks)."""

    def __init__(self, spec: WorkerSpec, build: OutreachBuilder, processes: int) -> None:
        if processes < 2:
            raise ValueError("worker processes are for two or more; one is the run's own")
        self.width = processes
        self.broken = False
        """A worker died (killed, out of memory): the pool takes no more batches."""
        self.batches_by_process: Counter[int] = Counter()
        """How many batches (of either stage) each worker process ran, by process id."""
        self._pool = ProcessPoolExecutor(
            max_workers=processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(spec, build, os.getpid()),
        )

    def start(self) -> None:
        """Start every worker now (a worker takes a second or two to import and connect)."""
        list(self._pool.map(_ready, range(self.width)))

    def plan(
        self, run_id: int, as_of: date, batches: Sequence[Batch], dry_run: bool
    ) -> list[PlanReport]:
        return self._each(_plan, [(run_id, as_of, batch, dry_run) for batch in batches])

    def dispatch(self, as_of: date, batches: Sequence[Batch]) -> list[DispatchReport]:
        return self._each(_dispatch, [(as_of, batch) for batch in batches])

    def _each(
        self, work: Callable[..., tuple[int, R]], arguments: Sequence[tuple[Any, ...]]
    ) -> list[R]:
        futures: list[Future[tuple[int, R]]] = []
        try:
            for args in arguments:
                futures.append(self._pool.submit(work, *args))
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


def local_processes(outreach: Outreach) -> int:
    """Worker processes for the batches by config/runners.yaml (1 when a Dask cluster is named:
    the batches go there instead)."""
    project = outreach.runtime.project
    runners = load_runners(project.config_dir, project.root)
    return 1 if runners.dask.address is not None else runners.processes


@contextmanager
def local_executor(
    outreach: Outreach, build: OutreachBuilder, processes: int | None = None
) -> Iterator[BatchExecutor]:
    """Where a run on this machine runs its batches: `processes` worker processes (default
    from config/runners.yaml), or this process when that is one."""
    processes = local_processes(outreach) if processes is None else processes
    if processes < 2:
        yield InThisProcess(outreach)
        return
    workers = BatchWorkers(WorkerSpec.of(outreach, processes), build, processes)
    try:
        workers.start()
        yield workers
    finally:
        workers.close()
