"""Named crash points for the kill-and-rerun tests: die exactly where a real crash would hurt.

Set DUNNING_CRASH_POINT to a point's name (and DUNNING_CRASH_AFTER to N to pass it N-1 times
first) and the process SIGKILLs itself there. Unset, each call is one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

_hits: dict[str, int] = {}


def crash_point(name: str) -> None:
    if os.environ.get("DUNNING_CRASH_POINT") != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] >= int(os.environ.get("DUNNING_CRASH_AFTER", "1")):
        os.kill(os.getpid(), signal.SIGKILL)
