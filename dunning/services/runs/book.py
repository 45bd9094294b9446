"""The run lifecycle: the one way every flow and command starts, finishes and fails a run.

    book = RunBook(engine)
    with book.run("dispatch-outbox", as_of) as run:
        ...                          # the work; run.id is the `run` row's id
        run.complete(summary)        # counts only: the row keeps it, Prefect shows it

- The body returns: the run ends `completed` with the summary it gave (or none).
- The body raises (anything, KeyboardInterrupt too): the run ends `failed` with the error's
  class and its message, masked of personal data; the exception goes on to the caller.
- The process dies (SIGKILL, power loss): the row stays `running`, but its heartbeat stops.
  Once the heartbeat is older than `abandoned_after`, the run reads as `abandoned`
  (`dunning runs list`), and the next run of the same flow and date marks it so for good and
  takes over: every stage is idempotent, so the new run finishes what the dead one left.

The heartbeat is a daemon thread per run that stamps `heartbeat_at` every `heartbeat`
seconds on a connection of its own; a beat that cannot be written (the database busy) is
tried again at the next one, and a run is only called abandoned after several missed beats.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, Engine, and_, func, select, update

from dunning.crashpoints import crash_point
from dunning.db.models import utcnow
from dunning.db.tables import RUN
from dunning.masking import mask_text

log = logging.getLogger("dunning.runs")

ERROR_LIMIT = 2000
"""Characters of an error kept on the row (the whole traceback is in the process's log)."""


class RunStatus(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    ABANDONED = "abandoned"
    """Its process died: no heartbeat for `abandoned_after` (shown so, or marked so when a
    later run of the same flow and date takes over)."""


@dataclass(frozen=True)
class Liveness:
    """How often a running run beats, and how long without a beat makes it abandoned."""

    heartbeat: timedelta = timedelta(seconds=30)
    abandoned_after: timedelta = timedelta(minutes=5)

    def __post_init__(self) -> None:
        if self.abandoned_after <= self.heartbeat:
            raise ValueError("abandoned_after must be longer than the heartbeat")


def describe_error(exc: BaseException) -> str:
    """`ClassName: message`, with phone numbers and e-mail addresses masked: this text is kept
    on the run row and shown by `dunning runs`, and exceptions of foreign code may carry PII."""
    message = mask_text(str(exc)).strip()
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return text[:ERROR_LIMIT]


def abandoned(now: datetime, liveness: Liveness) -> ColumnElement[bool]:
    """SQL: the row is `running` but its last beat (or start) is older than the limit."""
    last_sign = func.coalesce(RUN.c.heartbeat_at, RUN.c.started_at)
    return and_(RUN.c.status == RunStatus.RUNNING.value, last_sign < now - liveness.abandoned_after)


def status_of(row: Any, now: datetime, liveness: Liveness) -> str:
    """The status a reader should see: `running` rows whose heartbeat stopped are abandoned."""
    if row.status != RunStatus.RUNNING.value:
        return str(row.status)
    last_sign = row.heartbeat_at or row.started_at
    if last_sign < now - liveness.abandoned_after:
        return RunStatus.ABANDONED.value
    return RunStatus.RUNNING.value


@dataclass
class ActiveRun:
    """The run in progress: its id, and the summary it will end with."""

    id: int
    flow: str
    as_of: date
    dry_run: bool
    summary: dict[str, Any] | None = None
    took_over: list[int] = field(default_factory=list)
    """Ids of abandoned runs of the same flow and date that this run marked and took over."""

    def complete(self, summary: dict[str, Any]) -> None:
        """The summary the row keeps (also kept if the run then fails on its way out)."""
        self.summary = summary


class _Heartbeat:
    def __init__(
        self, engine: Engine, run_id: int, every: timedelta, clock: Callable[[], datetime]
    ) -> None:
        self._engine = engine
        self._run_id = run_id
        self._every = every.total_seconds()
        self._clock = clock
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._beat, name=f"run-{run_id}-heartbeat", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self._every + 5)

    def _beat(self) -> None:
        while not self._stop.wait(self._every):
            try:
                with self._engine.begin() as connection:
                    connection.execute(
                        update(RUN)
                        .where(RUN.c.id == self._run_id, RUN.c.status == RunStatus.RUNNING.value)
                        .values(heartbeat_at=self._clock())
                    )
            except Exception as exc:  # the next beat tries again; missing a few is allowed
                log.warning("run %d: heartbeat not recorded (%s)", self._run_id, type(exc).__name__)


class RunBook:
    """Starts, finishes and fails runs in the `run` table, and keeps each one's heartbeat."""

    def __init__(
        self,
        engine: Engine,
        liveness: Liveness | None = None,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.engine = engine
        self.liveness = liveness or Liveness()
        self._clock = clock

    @contextmanager
    def run(
        self,
        flow: str,
        as_of: date,
        *,
        dry_run: bool = False,
        prefect_flow_run_id: str | None = None,
        parent_run_id: int | None = None,
        summary: dict[str, Any] | None = None,
    ) -> Iterator[ActiveRun]:
        """A run row for the body: `running` with a heartbeat, then `completed` or `failed`.

        `summary` is what the row says from the start (a shard says which it is, so one
        that dies is still accounted); the body's `complete()` replaces it.
        """
        active = self._start(flow, as_of, dry_run, prefect_flow_run_id, parent_run_id, summary)
        heartbeat = _Heartbeat(self.engine, active.id, self.liveness.heartbeat, self._clock)
        heartbeat.start()
        try:
            crash_point(f"run.{flow}")
            yield active
        except BaseException as exc:
            heartbeat.stop()
            self._end(active, RunStatus.FAILED, describe_error(exc))
            raise
        heartbeat.stop()
        self._end(active, RunStatus.COMPLETED, None)

    def _start(
        self,
        flow: str,
        as_of: date,
        dry_run: bool,
        prefect_flow_run_id: str | None,
        parent_run_id: int | None,
        summary: dict[str, Any] | None,
    ) -> ActiveRun:
        now = self._clock()
        with self.engine.begin() as connection:
            result = connection.execute(
                RUN.insert().values(
                    flow=flow,
                    as_of=as_of,
                    status=RunStatus.RUNNING.value,
                    dry_run=dry_run,
                    started_at=now,
                    heartbeat_at=now,
                    prefect_flow_run_id=prefect_flow_run_id,
                    parent_run_id=parent_run_id,
                    summary=summary,
                )
            )
            run_id = int(result.inserted_primary_key[0])  # type: ignore[index]
            # Take over what a dead run of the same work left: mark it, say by whom. A run
            # past the limit is dead whatever it was (a shard of an earlier parent too).
            took_over = sorted(
                int(row[0])
                for row in connection.execute(
                    select(RUN.c.id).where(
                        RUN.c.flow == flow,
                        RUN.c.as_of == as_of,
                        RUN.c.id != run_id,
                        abandoned(now, self.liveness),
                    )
                )
            )
            if took_over:
                connection.execute(
                    update(RUN)
                    .where(RUN.c.id.in_(took_over), RUN.c.status == RunStatus.RUNNING.value)
                    .values(
                        status=RunStatus.ABANDONED.value,
                        finished_at=now,
                        error=f"its process stopped beating; taken over by run {run_id}",
                    )
                )
        if took_over:
            log.warning("run %d of %s took over abandoned run(s) %s", run_id, flow, took_over)
        return ActiveRun(run_id, flow, as_of, dry_run, summary, took_over)

    def _end(self, active: ActiveRun, status: RunStatus, error: str | None) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                update(RUN)
                .where(RUN.c.id == active.id)
                .values(
                    status=status.value,
                    finished_at=self._clock(),
                    error=error,
                    summary=active.summary,
                )
            )
