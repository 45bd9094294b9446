"""Named crash points for the kill-and-rerun tests: die exactly where a real crash would hurt.

Set DUNNING_CRASH_POINT to a point's name (and DUNNING_CRASH_AFTER to N to pass it N-1 times
first) and the process SIGKILLs itself there; with DUNNING_CRASH_MODE=raise it raises
InjectedFault there instead (a bug or an outage, where SIGKILL is a power cut). Unset, each
call is one dictionary lookup.

Points: `plan.batch` and `dispatch.batch` at the start of each batch, `plan.*` and
`dispatch.*` inside them, and `run.<flow>` just inside every run (dunning.services.runs), e.g.
`run.dispatch-outbox`. The count of passes is per process; `reset()` starts it again (tests).
"""

from __future__ import annotations

import os
import signal

_hits: dict[str, int] = {}


class InjectedFault(RuntimeError):
    """Raised at a crash point with DUNNING_CRASH_MODE=raise."""


def reset() -> None:
    """Forget how often each point was passed."""
    _hits.clear()


def crash_point(name: str) -> None:
    if os.environ.get("DUNNING_CRASH_POINT") != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] >= int(os.environ.get("DUNNING_CRASH_AFTER", "1")):
        if os.environ.get("DUNNING_CRASH_MODE") == "raise":
            raise InjectedFault(f"injected fault at crash point {name}")
        os.kill(os.getpid(), signal.SIGKILL)
