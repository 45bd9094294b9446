"""One OutreachEnv per process and program directory, shared by every task in the process; and
the batch worker processes (config/runners.yaml `processes`) the flow's tasks hand batches to."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from dunning.bootstrap import bootstrap
from dunning.logs import install_masking
from dunning.services.daily.env import OutreachEnv
from dunning.services.daily.workers import BatchWorkers, WorkerSpec, local_processes

_LOCK = threading.Lock()
_ENVS: dict[tuple[str | None, str | None], OutreachEnv] = {}
_WORKERS: dict[tuple[str | None, str | None], BatchWorkers | None] = {}


def outreach_env(project_dir: str | None) -> OutreachEnv:
    """Build (once) what planning and dispatch need; tasks on workers call this too."""
    key = (project_dir, os.environ.get("DUNNING_DATABASE_URL"))
    with _LOCK:
        env = _ENVS.get(key)
        if env is None:
            install_masking()  # every log record of this process, Prefect's API logs too
            runtime = bootstrap(Path(project_dir) if project_dir else None)
            env = _ENVS[key] = OutreachEnv(runtime)
        return env


def batch_workers(project_dir: str | None) -> BatchWorkers | None:
    """This process's batch worker processes, started on first use and kept for later runs (a
    served deployment runs daily); None when the batches run in the task's own thread."""
    env = outreach_env(project_dir)
    key = (project_dir, os.environ.get("DUNNING_DATABASE_URL"))
    with _LOCK:
        stale = _WORKERS.get(key)
        if stale is not None and stale.broken:
            # A worker died in an earlier run (which failed for it): start afresh.
            stale.close()
            del _WORKERS[key]
        if key not in _WORKERS:
            processes = local_processes(env)
            workers = None
            if processes > 1:
                workers = BatchWorkers(WorkerSpec.of(env, processes), processes)
                workers.start()
            _WORKERS[key] = workers
        return _WORKERS[key]


def reset() -> None:
    """Forget cached environments (tests switch databases between cases)."""
    with _LOCK:
        for workers in _WORKERS.values():
            if workers is not None:
                workers.close()
        _WORKERS.clear()
        for env in _ENVS.values():
            env.close()
            env.runtime.close()
        _ENVS.clear()
