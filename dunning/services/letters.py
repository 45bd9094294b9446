"""The print stage: letter PDFs from their rendered HTML, in a pool of worker processes."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Engine, bindparam, select, update

from dunning.db.outreach_models import OutboxMessage
from dunning.services.documents import DocumentStore
from dunning.types import Channel, OutboxStatus

if TYPE_CHECKING:
    from dunning.rendering import LetterPrinter, RenderedMessage

OUTBOX = OutboxMessage.__table__  # type: ignore[attr-defined]
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


@dataclass
class PrintReport:
    printed: int = 0
    seconds: float = 0.0


def print_letters(
    engine: Engine,
    press: LetterPress,
    documents: DocumentStore,
    *,
    account_lo: int | None = None,
    account_hi: int | None = None,
    chunk: int = 200,
) -> PrintReport:
    """The print stage: turn planned letters' HTML into their PDFs, stored with SHA-256.

    A letter is dispatched only once printed. Printing is deterministic (the same HTML gives the
    same bytes), so a letter printed twice by two stages at once is stored identically.
    """
    from dunning.rendering import RenderedMessage

    o = OUTBOX.c
    report = PrintReport()
    started = time.perf_counter()
    last_id = 0
    while True:
        query = (
            select(o.id, o.idempotency_key, o.as_of, o.document_source, o.body)
            .where(
                o.channel == Channel.LETTER.value,
                o.id > last_id,
                o.status.in_((OutboxStatus.PLANNED.value, OutboxStatus.SENDING.value)),
                o.document_sha256.is_(None),
                o.document_source.is_not(None),
            )
            .order_by(o.id)
            .limit(chunk)
        )
        if account_lo is not None:
            query = query.where(o.account_id >= account_lo)
        if account_hi is not None:
            query = query.where(o.account_id <= account_hi)
        with engine.connect() as connection:
            rows = connection.execute(query).all()
        if not rows:
            break
        last_id = rows[-1].id
        futures = [
            press.submit(
                RenderedMessage(
                    subject=None,
                    text=row.body or "",
                    html=documents.get(row.document_source).decode(),
                )
            )
            for row in rows
        ]
        updates = []
        for row, future in zip(rows, futures, strict=True):
            path, digest = documents.put(row.as_of, row.idempotency_key, future.result())
            updates.append({"_id": row.id, "path": path, "digest": digest})
        with engine.begin() as connection:
            connection.execute(
                update(OUTBOX)
                .where(o.id == bindparam("_id"), o.document_sha256.is_(None))
                .values(document_path=bindparam("path"), document_sha256=bindparam("digest")),
                updates,
            )
        report.printed += len(rows)
    report.seconds = time.perf_counter() - started
    return report
