"""The run history from our `run` table: what ran, for which date, how it ended, what it did."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, not_, or_, select

from dunning.db.models import utcnow
from dunning.db.tables import RUN
from dunning.errors import NotFound
from dunning.masking import mask_text
from dunning.services.runs.book import Liveness, RunStatus, abandoned, status_of


@dataclass(frozen=True)
class RunView:
    id: int
    flow: str
    as_of: date
    status: str
    dry_run: bool
    started_at: datetime
    finished_at: datetime | None
    duration_seconds: float | None
    counts: dict[str, int]
    error: str | None
    prefect_flow_run_id: str | None
    summary: dict[str, Any] | None

    def as_dict(self, *, summary: bool = True) -> dict[str, Any]:
        data = asdict(self)
        for key in ("as_of", "started_at", "finished_at"):
            if data[key] is not None:
                data[key] = data[key].isoformat()
        if not summary:
            data.pop("summary")
        return data


def headline_counts(flow: str, summary: dict[str, Any] | None) -> dict[str, int]:
    """The few numbers that say what a run did, whatever the flow."""
    if not summary:
        return {}
    counts: dict[str, int] = {}
    this_run = summary.get("this_run")
    if isinstance(this_run, dict):  # the daily outreach
        dispatch = this_run.get("dispatch") or {}
        counts["overdue"] = int(summary.get("accounts", {}).get("overdue", 0))
        counts["new_messages"] = int(this_run.get("new_messages", 0))
        counts["held"] = sum(int(n) for n in (this_run.get("held_by_suppression") or {}).values())
        for key in ("sent", "failed", "deferred"):
            counts[key] = int(dispatch.get(key, 0))
        return counts
    for key, value in summary.items():
        if key in {"run_id", "duration_seconds"} or isinstance(value, bool):
            continue
        if isinstance(value, int):
            counts[key] = value
        elif isinstance(value, dict) and key.startswith("held"):
            counts[key] = sum(int(n) for n in value.values() if isinstance(n, int))
    return counts


def _view(row: Any, now: datetime, liveness: Liveness) -> RunView:
    duration = None
    if row.finished_at is not None:
        duration = round((row.finished_at - row.started_at).total_seconds(), 3)
    error = mask_text(row.error) if row.error else None  # errors of foreign code may carry PII
    status = status_of(row, now, liveness)
    if status != row.status and error is None:
        error = f"no heartbeat since {row.heartbeat_at or row.started_at:%Y-%m-%d %H:%M:%S} UTC"
    return RunView(
        id=row.id,
        flow=row.flow,
        as_of=row.as_of,
        status=status,
        dry_run=bool(row.dry_run),
        started_at=row.started_at,
        finished_at=row.finished_at,
        duration_seconds=duration,
        counts=headline_counts(row.flow, row.summary),
        error=error,
        prefect_flow_run_id=row.prefect_flow_run_id,
        summary=row.summary,
    )


def list_runs(
    connection: Connection,
    *,
    flow: str | None = None,
    as_of: date | None = None,
    status: str | None = None,
    limit: int = 50,
    liveness: Liveness | None = None,
) -> list[RunView]:
    """Runs, newest first. A `running` run whose heartbeat stopped is shown (and filtered)
    as `abandoned`."""
    liveness = liveness or Liveness()
    now = utcnow()
    query = select(RUN).order_by(RUN.c.id.desc()).limit(limit)
    if flow:
        query = query.where(RUN.c.flow == flow)
    if as_of:
        query = query.where(RUN.c.as_of == as_of)
    if status == RunStatus.ABANDONED.value:
        query = query.where(or_(RUN.c.status == status, abandoned(now, liveness)))
    elif status == RunStatus.RUNNING.value:
        query = query.where(RUN.c.status == status, not_(abandoned(now, liveness)))
    elif status:
        query = query.where(RUN.c.status == status)
    return [_view(row, now, liveness) for row in connection.execute(query)]


def get_run(connection: Connection, run_id: int, liveness: Liveness | None = None) -> RunView:
    row = connection.execute(select(RUN).where(RUN.c.id == run_id)).first()
    if row is None:
        raise NotFound(f"no run {run_id}")
    return _view(row, utcnow(), liveness or Liveness())


def completed_dates(
    connection: Connection, flow: str | Sequence[str], start: date, end: date
) -> set[date]:
    """Business dates in [start, end] with a completed, real (not dry) run of `flow` (or of
    any of several flows that do the same day's work)."""
    flows = [flow] if isinstance(flow, str) else list(flow)
    rows = connection.execute(
        select(RUN.c.as_of)
        .where(
            RUN.c.flow.in_(flows),
            RUN.c.status == "completed",
            RUN.c.dry_run.is_(False),
            RUN.c.as_of >= start,
            RUN.c.as_of <= end,
        )
        .distinct()
    )
    return {row[0] for row in rows}
