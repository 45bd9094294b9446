"""One OutreachEnv per process and program directory, shared by every task in the process."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from dunning.bootstrap import bootstrap
from dunning.logs import install_masking
from dunning.services.outreach_env import OutreachEnv

_LOCK = threading.Lock()
_ENVS: dict[tuple[str | None, str | None], OutreachEnv] = {}


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


def reset() -> None:
    """Forget cached environments (tests switch databases between cases)."""
    with _LOCK:
        for env in _ENVS.values():
            env.close()
            env.runtime.close()
        _ENVS.clear()
