"""Backfill: run the daily outreach for each business date of a range, oldest first.

Dates that already have a completed daily-outreach run are skipped unless forced; a forced rerun
is still exactly-once (the outbox's idempotency keys see to that). A date that failed or stopped
half way has no completed run, so backfill runs it again, which resumes it. The first failure ends
the backfill: later dates wait, because caps and cadences look at what earlier dates sent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Engine

from dunning.errors import DunningError
from dunning.logs import get_logger, log_context
from dunning.ops.history import completed_dates
from dunning.services.daily.run import DAILY_OUTREACH
from dunning.services.daily.shards import DAILY_OUTREACH_SHARDED

MAX_DAYS = 366
log = get_logger("dunning.backfill")


class BackfillRejected(DunningError):
    """The range asked for is not one backfill runs."""


class BackfillFailed(DunningError):
    """A date failed; the dates after it were not run."""


@dataclass
class DateOutcome:
    as_of: date
    outcome: str  # ran | skipped | failed | not run
    run_id: int | None = None
    new_messages: int | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of.isoformat(),
            "outcome": self.outcome,
            "run_id": self.run_id,
            "new_messages": self.new_messages,
            "error": self.error,
        }


@dataclass
class BackfillReport:
    start: date
    end: date
    dates: list[DateOutcome] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(d.outcome in {"ran", "skipped"} for d in self.dates)

    def as_dict(self) -> dict[str, Any]:
        return {
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "ok": self.ok,
            "dates": [d.as_dict() for d in self.dates],
        }


def date_range(start: date, end: date) -> Iterator[date]:
    day = start
    while day <= end:
        yield day
        day += timedelta(days=1)


def backfill(
    engine: Engine,
    start: date,
    end: date,
    run_one: Callable[[date], dict[str, Any]],
    *,
    force: bool = False,
) -> BackfillReport:
    """Run `run_one(as_of)` for every date of [start, end] in order; see the module docstring."""
    if end < start:
        raise BackfillRejected(f"--from {start} is after --to {end}")
    if (end - start).days + 1 > MAX_DAYS:
        raise BackfillRejected(f"at most {MAX_DAYS} days at a time; split the range")
    with engine.connect() as connection:
        # A day done by the sharded run is done too.
        day_flows = (DAILY_OUTREACH, DAILY_OUTREACH_SHARDED)
        done = set() if force else completed_dates(connection, day_flows, start, end)
    report = BackfillReport(start, end)
    failed = False
    for as_of in date_range(start, end):
        if failed:
            report.dates.append(DateOutcome(as_of, "not run"))
            continue
        if as_of in done:
            report.dates.append(DateOutcome(as_of, "skipped"))
            log.info("backfill: already completed, skipped", extra={"as_of": as_of})
            continue
        with log_context(flow=DAILY_OUTREACH, as_of=as_of):
            try:
                summary = run_one(as_of)
            except Exception as exc:
                failed = True
                message = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                report.dates.append(DateOutcome(as_of, "failed", error=message))
                log.error("backfill: run failed; later dates not run", extra={"error": message})
                continue
            outcome = DateOutcome(
                as_of,
                "ran",
                run_id=summary.get("run_id"),
                new_messages=summary.get("this_run", {}).get("new_messages"),
            )
            report.dates.append(outcome)
            log.info(
                "backfill: ran",
                extra={"run_id": outcome.run_id, "new_messages": outcome.new_messages},
            )
    return report
