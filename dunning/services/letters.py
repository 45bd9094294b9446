"""Letter PDFs in worker processes: layout is CPU-bound and the rest of a batch need not wait."""

from __future__ import annotations

import multiprocessing
import os
import threading
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dunning.rendering import LetterPrinter, RenderedMessage

_PRINTER: LetterPrinter | None = None


def _start_worker() -> None:
    global _PRINTER
    from dunning.rendering import LetterPrinter

    _PRINTER = LetterPrinter()


def _print(rendered: RenderedMessage) -> bytes:
    assert _PRINTER is not None, "worker started without a printer"
    return _PRINTER.pdf(rendered)


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)


POOL_AFTER = 40
"""Letters printed in this process before a pool is worth its start-up (a few seconds)."""


class LetterPress:
    """Prints letters in a pool of processes (spawned, so no lock is inherited from threads).

    Small runs print in-process; the pool starts once a run has printed POOL_AFTER letters.
    """

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._pool: Executor | None = None
        self._inline: LetterPrinter | None = None
        self._printed = 0
        # WeasyPrint (Pango, fontconfig) is not thread-safe: batches planned in parallel
        # threads print in-process one at a time; the process pool has no such limit.
        self._lock = threading.Lock()

    def submit(self, rendered: RenderedMessage) -> Future[bytes]:
        with self._lock:
            self._printed += 1
            if self.workers <= 1 or (self._pool is None and self._printed <= POOL_AFTER):
                future: Future[bytes] = Future()
                if self._inline is None:
                    from dunning.rendering import LetterPrinter

                    self._inline = LetterPrinter()
                future.set_result(self._inline.pdf(rendered))
                return future
            return self._pooled(rendered)

    def _pooled(self, rendered: RenderedMessage) -> Future[bytes]:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker,
            )
        return self._pool.submit(_print, rendered)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
