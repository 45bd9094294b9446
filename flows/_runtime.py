"""One Outreach per process and program directory, shared by every task in the process; and
the batch worker processes (config/runners.yaml `processes`) the flow's tasks hand batches to."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from dunning.bootstrap import bootstrap, outreach, outreach_in_worker
from dunning.logs import install_masking
from dunning.services.daily import BatchWorkers, Outreach, WorkerSpec, local_processes

_LOCK = threading.Lock()
_PARTS: dict[tuple[str | None, str | None], Outreach] = {}
_WORKERS: dict[tuple[str | None, str | None], BatchWorkers | None] = {}


def _key(project_dir: str | None) -> tuple[str | None, str | None]:
    return (project_dir, os.environ.get("DUNNING_DATABASE_URL"))


def outreach_for(project_dir: str | None) -> Outreach:
    """Build (once) what planning and dispatch need; tasks on Dask workers call this too."""
    key = _key(project_dir)
    with _LOCK:
        parts = _PARTS.get(key)
        if parts is None:
            install_masking()  # every log record of this process, Prefect's API logs too
            runtime = bootstrap(Path(project_dir) if project_dir else None)
            parts = _PARTS[key] = outreach(runtime)
        return parts


def batch_workers(project_dir: str | None) -> BatchWorkers | None:
    """This process's batch worker processes, started on first use and kept for later runs (a
    served deployment runs daily); None when the batches run in the task's own thread."""
    parts = outreach_for(project_dir)
    key = _key(project_dir)
    with _LOCK:
        stale = _WORKERS.get(key)
        if stale is not None and stale.broken:
            # A worker died in an earlier run (which failed for it): start afresh.
            stale.close()
            del _WORKERS[key]
        if key not in _WORKERS:
            processes = local_processes(parts)
            workers = None
            if processes > 1:
                spec = WorkerSpec.of(parts, processes)
                workers = BatchWorkers(spec, outreach_in_worker, processes)
                workers.start()
            _WORKERS[key] = workers
        return _WORKERS[key]


def reset() -> None:
    """Forget cached parts (tests switch databases between cases)."""
    with _LOCK:
        for workers in _WORKERS.values():
            if workers is not None:
                workers.close()
        _WORKERS.clear()
        for parts in _PARTS.values():
            parts.close()
            parts.runtime.close()
        _PARTS.clear()
