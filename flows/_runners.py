"""Where batch tasks run: the flow's own thread runner (its tasks hand batches to worker
processes with `processes` set), or Dask (config/runners.yaml).

A deployment's flow object is fixed when its module is imported, but the Dask address belongs to
the program directory, a run parameter. So the choice is made per run: with an address, the flow
enters a DaskTaskRunner of its own for the run and submits the batch tasks to it; without, the
tasks go to the flow's ThreadPoolTaskRunner as before. Dask workers build their own environment
(flows._runtime.outreach_for) the first time a task runs in them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prefect.task_runners import ThreadPoolTaskRunner

from dunning.config.runners import LOCAL, DaskSettings, load_runners
from dunning.project import Project

FLOW_THREADS = 2
"""Threads of the batch flows' own task runner: batch tasks that run at once without Dask."""


def dask_task_runner(settings: DaskSettings) -> Any:
    """A DaskTaskRunner for the configured address (`local`: a LocalCluster per run)."""
    # Dask loads only when config/runners.yaml names a cluster.
    from prefect_dask.task_runners import DaskTaskRunner

    if settings.address == LOCAL:
        local = settings.local
        return DaskTaskRunner(
            cluster_kwargs={
                "n_workers": local.workers,
                "threads_per_worker": local.threads_per_worker,
                "processes": local.processes,
                "dashboard_address": None,
            }
        )
    return DaskTaskRunner(address=settings.address)


@contextmanager
def batch_task_runner(project: Project) -> Iterator[Any | None]:
    """The task runner for this run's batch tasks, started; None means the flow's own."""
    runners = load_runners(project.config_dir, project.root)
    settings = runners.dask
    if settings.address is None:
        if runners.processes <= FLOW_THREADS:
            yield None  # the flow's own threads already keep every worker busy
            return
        # One thread per worker process, so every worker has a batch to work on.
        threads: ThreadPoolTaskRunner[Any]
        with ThreadPoolTaskRunner(max_workers=runners.processes) as threads:
            yield threads
        return
    with dask_task_runner(settings) as runner:
        yield runner
