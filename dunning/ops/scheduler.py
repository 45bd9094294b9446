"""The single-box scheduler: APScheduler 3 runs the flows in-process on the cron triggers of
config/schedules.yaml, with its job store in the Dunning database.

- One job per enabled flow, id = flow name; at most one instance of each runs at a time, missed
  runs are coalesced into one and still start up to the misfire grace time late (also after a
  restart: the job store remembers each job's next run time, and an unchanged job is kept).
- The flows run as plain engine functions (dunning.ops.engines), no Prefect.
- `request_stop()` (SIGTERM, SIGINT) stops new runs; a running daily outreach ends at the next
  batch boundary (its run is marked failed with the reason and resumes when run again), other
  flows finish their pass; then the scheduler shuts down.
- One scheduler per state directory: a file lock refuses a second one on the same box.
"""

from __future__ import annotations

import fcntl
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from types import FrameType
from typing import IO, Any
from zoneinfo import ZoneInfo

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger

from dunning.bootstrap import Runtime, outreach
from dunning.config.schedules import FlowSchedule, Schedules
from dunning.errors import DunningError
from dunning.logs import get_logger, log_context
from dunning.ops.engines import Engine, FlowUnavailable, engine_for
from dunning.services.daily import Outreach, RunStopped
from flows.registry import SCHEDULABLE, FlowSpec

log = get_logger("dunning.scheduler")

TriggerFactory = Callable[[str, FlowSchedule], BaseTrigger]
JOB_FUNCTION = "dunning.ops.scheduler:run_job"


class SchedulerError(DunningError):
    pass


def cron_trigger(flow: str, entry: FlowSchedule) -> CronTrigger:
    """The APScheduler trigger of a schedule entry (weekdays already converted by name)."""
    return CronTrigger(**entry.spec.apscheduler_fields(), timezone=ZoneInfo(entry.timezone))


@dataclass(frozen=True)
class Execution:
    """One scheduled execution, as this process saw it (the run table has the details)."""

    flow: str
    as_of: date
    started: float
    finished: float
    outcome: str  # completed | failed | stopped | skipped
    run_id: int | None = None


@dataclass
class PlannedJob:
    flow: str
    entry: FlowSchedule
    trigger: BaseTrigger
    grace: int
    engine: Engine


@dataclass
class SingleBoxScheduler:
    runtime: Runtime
    schedules: Schedules
    flows: Mapping[str, FlowSpec] = field(default_factory=lambda: dict(SCHEDULABLE))
    trigger_for: TriggerFactory = cron_trigger
    outreach_factory: Callable[[Runtime], Outreach] = outreach
    executions: list[Execution] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _scheduler: BackgroundScheduler | None = field(default=None, repr=False)
    _jobs: dict[str, PlannedJob] = field(default_factory=dict, repr=False)
    _lock_file: IO[str] | None = field(default=None, repr=False)

    # --- planning -------------------------------------------------------------------------

    def plan(self) -> dict[str, PlannedJob]:
        """The jobs to run: every enabled flow whose engine is present (others are skipped)."""
        jobs: dict[str, PlannedJob] = {}
        self.skipped = {}
        for flow, entry in self.schedules.flows.items():
            if not entry.enabled:
                self.skipped[flow] = "disabled in config/schedules.yaml"
                continue
            spec = self.flows.get(flow)
            if spec is None:
                self.skipped[flow] = "not in the flow registry"
                continue
            try:
                engine = engine_for(spec.engine, flow)
            except FlowUnavailable as exc:
                self.skipped[flow] = str(exc)
                continue
            jobs[flow] = PlannedJob(
                flow,
                entry,
                self.trigger_for(flow, entry),
                self.schedules.grace_seconds(flow),
                engine,
            )
        return jobs

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Start in the background: sync the job store with the schedule, then run jobs."""
        global _ACTIVE
        if self._scheduler is not None:
            raise SchedulerError("the scheduler is already started")
        self._take_lock()
        try:
            self._jobs = self.plan()
            for flow, reason in self.skipped.items():
                log.warning("flow not scheduled: %s", reason, extra={"flow": flow})
            settings = self.schedules.scheduler
            scheduler = BackgroundScheduler(
                jobstores={
                    "default": SQLAlchemyJobStore(
                        engine=self.runtime.engine, tablename=settings.job_table
                    )
                },
                executors={"default": ThreadPoolExecutor(max_workers=max(1, len(self._jobs)))},
                job_defaults={
                    "coalesce": True,
                    "max_instances": 1,
                    "misfire_grace_time": settings.misfire_grace_seconds,
                },
                timezone=UTC,
            )
            with _ACTIVE_LOCK:
                if _ACTIVE is not None:
                    raise SchedulerError("another scheduler is active in this process")
                _ACTIVE = self
            self._scheduler = scheduler
            scheduler.start(paused=True)
            self._sync_jobs(scheduler)
            scheduler.resume()
        except BaseException:
            if self._scheduler is not None and self._scheduler.running:
                self._scheduler.shutdown(wait=False)
            self._scheduler = None
            self._release()
            raise
        for job in scheduler.get_jobs():
            log.info(
                "job scheduled",
                extra={"flow": job.id, "next_run": _iso(job.next_run_time)},
            )

    def _sync_jobs(self, scheduler: BackgroundScheduler) -> None:
        existing = {job.id: job for job in scheduler.get_jobs()}
        for job_id in sorted(set(existing) - set(self._jobs)):
            scheduler.remove_job(job_id)
            log.info("job removed: no longer scheduled", extra={"flow": job_id})
        for flow, planned in self._jobs.items():
            old = existing.get(flow)
            if (
                old is not None
                and repr(old.trigger) == repr(planned.trigger)
                and old.misfire_grace_time == planned.grace
                and old.func_ref == JOB_FUNCTION
                and tuple(old.args) == (flow,)
            ):
                continue  # unchanged: keep its next run time, so a missed run still happens
            scheduler.add_job(
                JOB_FUNCTION,
                trigger=planned.trigger,
                args=[flow],
                id=flow,
                name=flow,
                replace_existing=True,
                misfire_grace_time=planned.grace,
                coalesce=True,
                max_instances=1,
            )

    def jobs(self) -> list[dict[str, Any]]:
        """The scheduled jobs and their next run times."""
        if self._scheduler is None:
            return []
        return [
            {
                "flow": job.id,
                "cron": self.schedules.flows[job.id].cron if job.id in self.schedules.flows else "",
                "timezone": self.schedules.flows[job.id].timezone
                if job.id in self.schedules.flows
                else "",
                "next_run": _iso(job.next_run_time),
            }
            for job in self._scheduler.get_jobs()
        ]

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def request_stop(self) -> None:
        """Stop soon: no new runs; a running daily outreach ends at its next batch boundary."""
        if not self._stop.is_set():
            log.info("stop requested: waiting for running flows to finish or reach a boundary")
        self._stop.set()

    def shutdown(self, wait: bool = True) -> None:
        self.request_stop()
        scheduler, self._scheduler = self._scheduler, None
        if scheduler is not None:
            scheduler.shutdown(wait=wait)
        self._release()
        log.info("scheduler stopped")

    def run_forever(self, handle_signals: bool = True) -> None:
        """Start, then block until SIGTERM/SIGINT (or request_stop), then shut down cleanly."""
        if handle_signals:
            previous = {
                sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)
            }
        try:
            self.start()
            while not self._stop.wait(0.5):
                pass
        finally:
            self.shutdown(wait=True)
            if handle_signals:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        log.info("signal received", extra={"signal": signal.Signals(signum).name})
        self.request_stop()

    # --- executing ------------------------------------------------------------------------

    def execute(self, flow: str) -> Execution:
        """Run one flow now, in this thread, as a scheduled execution."""
        planned = self._jobs.get(flow)
        if planned is None:
            raise SchedulerError(f"{flow} is not scheduled here")
        as_of = datetime.now(ZoneInfo(planned.entry.timezone)).date()
        started = time.monotonic()
        outcome, run_id = "skipped", None
        with log_context(flow=flow, as_of=as_of):
            if self._stop.is_set():
                log.info("run not started: the scheduler is stopping")
            else:
                log.info("run started")
                parts = self.outreach_factory(self.runtime)
                try:
                    summary = planned.engine(parts, as_of, self._stop.is_set)
                    outcome, run_id = "completed", summary.get("run_id")
                    log.info("run completed", extra={"run_id": run_id})
                except RunStopped as exc:
                    outcome = "stopped"
                    log.warning("run stopped at a batch boundary", extra={"reason": str(exc)})
                except FlowUnavailable as exc:
                    log.warning("run skipped: %s", exc)
                except Exception as exc:
                    outcome = "failed"
                    log.error(
                        "run failed",
                        extra={"error": f"{type(exc).__name__}: {_first_line(exc)}"},
                    )
                finally:
                    parts.close()
        execution = Execution(flow, as_of, started, time.monotonic(), outcome, run_id)
        self.executions.append(execution)
        return execution

    # --- one scheduler per box ------------------------------------------------------------

    def _take_lock(self) -> None:
        path = Path(self.runtime.project.state_dir) / "scheduler.lock"
        handle = path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            handle.close()
            raise SchedulerError(
                f"another dunning scheduler (pid {holder}) holds {path}; run only one per database"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._lock_file = handle

    def _release(self) -> None:
        global _ACTIVE
        with _ACTIVE_LOCK:
            if _ACTIVE is self:
                _ACTIVE = None
        if self._lock_file is not None:
            fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None


_ACTIVE: SingleBoxScheduler | None = None
_ACTIVE_LOCK = threading.Lock()


def run_job(flow: str) -> None:
    """What the job store points at (a textual reference survives restarts): run `flow`."""
    scheduler = _ACTIVE
    if scheduler is None:
        raise SchedulerError("no dunning scheduler is active in this process")
    scheduler.execute(flow)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else ""
