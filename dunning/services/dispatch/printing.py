"""The print stage: letter PDFs from their rendered Typst source, in a pool of worker processes
(each with one printer, whose Typst compiler is reused for every letter it prints)."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
import uuid
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import Engine, Select, bindparam, func, or_, select, update

from dunning.db.documents import DocumentStore
from dunning.db.models import utcnow
from dunning.db.ranges import in_accounts
from dunning.db.tables import OUTBOX
from dunning.errors import TemplateError
from dunning.rendering import LetterPrinter, RenderedMessage
from dunning.types import Channel, OutboxStatus, Suppression

if TYPE_CHECKING:
    from dunning.rendering import LetterPrinter, RenderedMessage

_PRINTER: LetterPrinter | None = None


def _start_worker(parent: int) -> None:
    global _PRINTER
    threading.Thread(target=exit_with_parent, args=(parent,), daemon=True).start()

    _PRINTER = LetterPrinter()


def exit_with_parent(parent: int) -> None:
    """A printer whose process was killed (SIGKILL leaves no time to stop the pool) exits too,
    instead of lingering with the dead process's stderr and pipes open."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)


def _print(rendered: RenderedMessage) -> bytes:
    assert _PRINTER is not None, "worker started without a printer"
    return _PRINTER.pdf(rendered)


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)


_POOLS: dict[int, Executor] = {}
_POOLS_LOCK = threading.Lock()


def _shared_pool(workers: int) -> Executor:
    """One pool per process (started on first use, joined at exit): workers take seconds to
    start, so every run and batch of the process shares them."""
    with _POOLS_LOCK:
        pool = _POOLS.get(workers)
        if pool is None:
            pool = _POOLS[workers] = ProcessPoolExecutor(
                max_workers=workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker,
                initargs=(os.getpid(),),
            )
        return pool


def shutdown_printers() -> None:
    """Stop this process's printer pools (they are otherwise joined at exit)."""
    with _POOLS_LOCK:
        pools = list(_POOLS.values())
        _POOLS.clear()
    for pool in pools:
        pool.shutdown(wait=True)


class LetterPress:
    """Prints letters in the process's pool of printer processes (spawned, so they inherit no
    lock from threads), or in this process when configured with one worker."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._inline: LetterPrinter | None = None
        # A printer (its Typst compiler, WeasyPrint for documents) is not thread-safe:
        # in-process printing is serialised.
        self._lock = threading.Lock()

    def submit(self, rendered: RenderedMessage) -> Future[bytes]:
        # A daemonic process (a Dask worker, a pool worker) may not start a pool: print here.
        if self.workers > 1 and not multiprocessing.current_process().daemon:
            return _shared_pool(self.workers).submit(_print, rendered)
        with self._lock:
            future: Future[bytes] = Future()
            if self._inline is None:
                self._inline = LetterPrinter()
            future.set_result(self._inline.pdf(rendered))
            return future

    def close(self) -> None:
        """Nothing to release: the shared pool outlives any one run."""


@dataclass
class PrintReport:
    printed: int = 0
    seconds: float = 0.0
    """Time spent printing (in the background, overlapping other work)."""
    waited: float = 0.0
    """Time dispatch waited for printing: what printing added to the run's critical path."""
    held: int = 0
    """Letters whose PDF could not be made: held (print_failed), the others went on."""

    def add(self, other: PrintReport) -> None:
        self.printed += other.printed
        self.seconds += other.seconds
        self.held += other.held


def _unprinted(account_lo: int | None, account_hi: int | None) -> Select[tuple[int]]:
    """Planned letters in the account range whose PDF is still to be printed."""
    o = OUTBOX.c
    return select(o.id).where(
        o.channel == Channel.LETTER.value,
        o.status == OutboxStatus.PLANNED.value,
        o.document_sha256.is_(None),
        o.document_source.is_not(None),
        in_accounts(o.account_id, account_lo, account_hi),
    )


def _stored(documents: DocumentStore, source_path: str, body: str | None) -> RenderedMessage:
    """A planned letter as stored: its Typst source (or HTML, planned before letters were
    Typst: a run planned by the old version still prints)."""
    source = documents.get(source_path).decode()
    if source_path.endswith(".typ"):
        return RenderedMessage(subject=None, text=body or "", html=None, typst=source)
    return RenderedMessage(subject=None, text=body or "", html=source)


def printing_elsewhere(engine: Engine, account_lo: int | None, account_hi: int | None) -> int:
    """How many of the range's unprinted letters another printer holds under a live claim."""
    o = OUTBOX.c
    claimed = _unprinted(account_lo, account_hi).where(o.claimed_until >= utcnow())
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(claimed.subquery())).scalar_one()


def print_letters(
    engine: Engine,
    press: LetterPress,
    documents: DocumentStore,
    *,
    lease: timedelta,
    account_lo: int | None = None,
    account_hi: int | None = None,
    chunk: int = 200,
) -> PrintReport:
    """The print stage: turn planned letters' HTML into their PDFs, stored with SHA-256.

    A letter is dispatched only once printed. Printers claim letters under the dispatch lease
    (the claim columns are free until a letter is printed: dispatch never claims an unprinted
    letter), so several dispatchers do not print the same letters, and letters claimed by a
    printer that died are printed by the next run once the lease has run out. Printing is
    deterministic, so a letter printed again after a lease ran out is stored identically.
    """

    # A claim must be printed well within its lease: a printer does at least 5 letters a
    # second, so two letters per second of lease leaves a wide margin.
    chunk = max(1, min(chunk, int(lease.total_seconds() * 2)))
    o = OUTBOX.c
    report = PrintReport()
    started = time.perf_counter()
    while True:
        token = uuid.uuid4().hex
        now = utcnow()
        pick = (
            _unprinted(account_lo, account_hi)
            .where(or_(o.claimed_until.is_(None), o.claimed_until < now))
            .order_by(o.id)
            .limit(chunk)
        )
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                pick = pick.with_for_update(skip_locked=True)
            rows = connection.execute(
                update(OUTBOX)
                .where(o.id.in_(pick.scalar_subquery()))
                .values(claim_token=token, claimed_until=now + lease)
                .returning(o.id, o.idempotency_key, o.as_of, o.document_source, o.body)
            ).all()
        if not rows:
            break
        futures = [press.submit(_stored(documents, row.document_source, row.body)) for row in rows]
        updates, failures = [], []
        for row, future in zip(rows, futures, strict=True):
            try:
                pdf = future.result()
            except TemplateError as exc:
                # This letter's HTML does not lay out: it is held, the batch's others go on.
                failures.append({"_id": row.id, "_token": token, "error": str(exc)[:500]})
                continue
            path, digest = documents.put(row.as_of, row.idempotency_key, pdf)
            updates.append({"_id": row.id, "_token": token, "path": path, "digest": digest})
        mine = (
            o.id == bindparam("_id"),
            o.claim_token == bindparam("_token"),
            o.document_sha256.is_(None),
        )
        with engine.begin() as connection:
            if updates:
                connection.execute(
                    update(OUTBOX)
                    .where(*mine)
                    .values(
                        document_path=bindparam("path"),
                        document_sha256=bindparam("digest"),
                        claim_token=None,
                        claimed_until=None,
                    ),
                    updates,
                )
            if failures:
                held_at = utcnow()
                connection.execute(
                    update(OUTBOX)
                    .where(*mine, o.status == OutboxStatus.PLANNED.value)
                    .values(
                        status=OutboxStatus.HELD.value,
                        suppression=Suppression.PRINT_FAILED.value,
                        last_error=bindparam("error"),
                        final_at=held_at,
                        updated_at=held_at,
                        claim_token=None,
                        claimed_until=None,
                    ),
                    failures,
                )
        report.printed += len(updates)
        report.held += len(failures)
    report.seconds = time.perf_counter() - started
    return report


class Printing:
    """Background printing per batch range, so layout overlaps with planning the next batch."""

    def __init__(
        self, engine: Engine, press: LetterPress, documents: DocumentStore, lease: timedelta
    ) -> None:
        self.engine, self.press, self.documents, self.lease = engine, press, documents, lease
        self._threads = ThreadPoolExecutor(max_workers=1, thread_name_prefix="print")
        self._jobs: dict[tuple[int | None, int | None], Future[PrintReport]] = {}
        self._lock = threading.Lock()

    def _print(self, lo: int | None, hi: int | None) -> PrintReport:
        return print_letters(
            self.engine, self.press, self.documents, lease=self.lease, account_lo=lo, account_hi=hi
        )

    def start(self, lo: int, hi: int) -> None:
        with self._lock:
            self._jobs[(lo, hi)] = self._threads.submit(self._print, lo, hi)

    def finish(self, lo: int | None, hi: int | None) -> PrintReport:
        started = time.perf_counter()
        with self._lock:
            job = self._jobs.pop((lo, hi), None)
        total = PrintReport()
        if job is not None:
            total.add(job.result())
        # Anything planned earlier or by another process. Letters another process is printing
        # (a batch planned on one Dask worker and dispatched from another) are waited for: the
        # batch goes out with them. A printer that died leaves its claims to run out; they are
        # printed here then, so the wait is bounded by the lease.
        pause = 0.05
        while True:
            total.add(self._print(lo, hi))
            if not printing_elsewhere(self.engine, lo, hi):
                break
            time.sleep(pause)
            pause = min(pause * 2, 1.0)
        total.waited = time.perf_counter() - started
        return total

    def close(self) -> None:
        self._threads.shutdown(wait=True)
