"""`dunning scheduler` on a real database: fast triggers, no overlap, the job store, misfires,
a stop at a batch boundary, SIGTERM, and one scheduler per box."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import inspect, select

from dunning.bootstrap import Runtime, bootstrap
from dunning.config.schedules import FlowSchedule, SchedulerSettings, Schedules
from dunning.db.tables import OUTBOX, RUN
from dunning.ops import engines
from dunning.ops.scheduler import SchedulerError, SingleBoxScheduler
from dunning.rendering import MessageContext, RenderedMessage, Renderer, TemplateRef
from dunning.services.daily import Outreach
from dunning.services.daily.run import StopCheck, run_daily_outreach
from flows.registry import FLOWS, FlowSpec
from tests.factories import add_account
from tests.helpers import outreach_at

DUNNING = str(Path(sys.executable).parent / "dunning")


def open_outreach(runtime: Runtime) -> Outreach:
    """Contact windows open, every template approved: what goes out does not hang on the clock."""
    return outreach_at(runtime, approved=True)


def _recorded(parts: Outreach, as_of: date, seconds: float = 0) -> dict[str, Any]:
    with parts.runtime.runs.run("daily-outreach", as_of) as run:
        time.sleep(seconds)
        summary = {"run_id": run.id, "slept": seconds}
        run.complete(summary)
    return summary


def slow_engine(parts: Outreach, as_of: date, should_stop: StopCheck | None) -> dict[str, Any]:
    """A flow that takes longer than its 1-second interval."""
    return _recorded(parts, as_of, 1.3)


def quick_engine(parts: Outreach, as_of: date, should_stop: StopCheck | None) -> dict[str, Any]:
    return _recorded(parts, as_of)


def every_second(flow: str, entry: FlowSchedule) -> IntervalTrigger:
    return IntervalTrigger(seconds=1, timezone=UTC)


def schedules(*flows: str, cron: str = "0 3 1 1 *", grace: int = 600) -> Schedules:
    return Schedules(
        flows={flow: FlowSchedule(cron=cron, timezone="UTC") for flow in flows},
        scheduler=SchedulerSettings(misfire_grace_seconds=grace),
    )


def registry(engine: str) -> dict[str, FlowSpec]:
    spec = FLOWS["daily-outreach"]
    return {"daily-outreach": FlowSpec(spec.name, spec.entrypoint, engine, dated=True)}


def runs(runtime: Runtime, flow: str | None = None) -> list[Any]:
    query = select(RUN).order_by(RUN.c.id)
    if flow:
        query = query.where(RUN.c.flow == flow)
    with runtime.engine.connect() as connection:
        return list(connection.execute(query))


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


@pytest.fixture
def boxes() -> Iterator[list[SingleBoxScheduler]]:
    started: list[SingleBoxScheduler] = []
    yield started
    for box in started:
        box.shutdown(wait=True)


def test_a_flow_slower_than_its_interval_never_overlaps_itself(
    runtime: Runtime, boxes: list[SingleBoxScheduler], caplog: pytest.LogCaptureFixture
) -> None:
    box = SingleBoxScheduler(
        runtime,
        schedules("daily-outreach"),
        flows=registry("tests.integration.test_scheduler:slow_engine"),
        trigger_for=every_second,
        outreach_factory=open_outreach,
    )
    boxes.append(box)
    box.start()
    wait_for(lambda: len([r for r in runs(runtime) if r.status == "completed"]) >= 2)
    box.shutdown(wait=True)
    assert "maximum number of running instances reached" in caplog.text  # a firing was skipped
    rows = runs(runtime)
    assert all(r.status == "completed" for r in rows)
    for earlier, later in itertools.pairwise(rows):
        assert later.started_at >= earlier.finished_at, "two runs of one job overlapped"
    assert [e.outcome for e in box.executions] == ["completed"] * len(rows)


def test_the_flows_run_in_process_on_their_triggers(
    runtime: Runtime, boxes: list[SingleBoxScheduler]
) -> None:
    today = datetime.now(UTC).date()
    with runtime.unit_of_work() as c:
        for dpd in (3, 7, 14, 31, 61):
            add_account(c, dpd=dpd, as_of=today)
    box = SingleBoxScheduler(
        runtime,
        schedules("daily-outreach", "dispatch-outbox", "reconcile-receipts", "legal-escalation"),
        trigger_for=every_second,
        outreach_factory=open_outreach,
    )
    boxes.append(box)
    box.start()
    assert {job["flow"] for job in box.jobs()} == set(FLOWS)

    def done(flow: str) -> int:
        return len([r for r in runs(runtime, flow) if r.status == "completed"])

    wait_for(lambda: min(done(f) for f in ("daily-outreach", "dispatch-outbox")) >= 2)
    wait_for(lambda: min(done("reconcile-receipts"), done("legal-escalation")) >= 1)
    box.shutdown(wait=True)
    for r in runs(runtime):  # a run the shutdown caught ends at a batch boundary, nothing else
        assert r.status == "completed" or r.error.startswith("RunStopped"), r.error
    daily = [r for r in runs(runtime, "daily-outreach") if r.status == "completed"]
    assert {r.as_of for r in daily} == {today}
    assert daily[0].summary["this_run"]["new_messages"] == 5
    assert all(r.summary["this_run"]["new_messages"] == 0 for r in daily[1:])  # nothing twice
    with runtime.engine.connect() as c:
        statuses = [row[0] for row in c.execute(select(OUTBOX.c.status))]
    assert len(statuses) == 5 and set(statuses) <= {"sent", "delivered", "failed", "undeliverable"}
    dispatch = runs(runtime, "dispatch-outbox")[0]
    assert dispatch.summary["flow"] == "dispatch-outbox" and "claimed" in dispatch.summary


def test_jobs_live_in_the_dunning_database_and_survive_a_restart(
    runtime: Runtime, boxes: list[SingleBoxScheduler]
) -> None:
    plan = schedules("daily-outreach", "dispatch-outbox")
    first = SingleBoxScheduler(runtime, plan, outreach_factory=open_outreach)
    boxes.append(first)
    first.start()
    assert "apscheduler_jobs" in inspect(runtime.engine).get_table_names()
    kept = {job["flow"]: job["next_run"] for job in first.jobs()}
    assert set(kept) == {"daily-outreach", "dispatch-outbox"}
    first.shutdown()

    changed = Schedules(
        flows={"daily-outreach": FlowSchedule(cron="0 4 1 1 *", timezone="Asia/Shanghai")}
    )
    second = SingleBoxScheduler(runtime, changed, outreach_factory=open_outreach)
    boxes.append(second)
    second.start()
    jobs = {job["flow"]: job for job in second.jobs()}
    assert set(jobs) == {"daily-outreach"}  # dispatch-outbox is no longer scheduled: removed
    assert jobs["daily-outreach"]["next_run"] != kept["daily-outreach"]
    assert jobs["daily-outreach"]["timezone"] == "Asia/Shanghai"
    second.shutdown()

    third = SingleBoxScheduler(runtime, changed, outreach_factory=open_outreach)
    boxes.append(third)
    third.start()
    assert [job["next_run"] for job in third.jobs()] == [jobs["daily-outreach"]["next_run"]]


def test_missed_runs_are_coalesced_into_one_within_the_grace_time(
    runtime: Runtime, boxes: list[SingleBoxScheduler]
) -> None:
    plan = schedules("daily-outreach", cron="* * * * *", grace=600)
    quick = registry("tests.integration.test_scheduler:quick_engine")
    first = SingleBoxScheduler(runtime, plan, flows=quick, outreach_factory=open_outreach)
    boxes.append(first)
    first.start()
    first.shutdown()
    # The box was down for five minutes: five firings of the every-minute job were missed.
    store = SQLAlchemyJobStore(engine=runtime.engine, tablename="apscheduler_jobs")
    job = store.lookup_job("daily-outreach")
    job.next_run_time = datetime.now(UTC) - timedelta(minutes=5)
    store.update_job(job)
    assert runs(runtime) == []

    # The job also fires at every minute's start: keep that regular firing out of the seconds
    # this test watches, or it counts as a second execution.
    while datetime.now(UTC).second >= 55:
        time.sleep(0.1)
    second = SingleBoxScheduler(runtime, plan, flows=quick, outreach_factory=open_outreach)
    boxes.append(second)
    second.start()
    wait_for(lambda: len(second.executions) >= 1)
    time.sleep(1.0)
    second.shutdown()
    assert len(second.executions) == 1 and len(runs(runtime)) == 1


def test_a_stop_ends_the_daily_run_at_a_batch_boundary_and_a_rerun_resumes_it(
    runtime: Runtime, boxes: list[SingleBoxScheduler], monkeypatch: pytest.MonkeyPatch
) -> None:
    today = datetime.now(UTC).date()
    with runtime.unit_of_work() as c:
        for _ in range(12):
            add_account(c, dpd=3, as_of=today)
    small = runtime.project.with_config(
        strategy=runtime.project.strategy.model_copy(update={"batch_size": 2})
    )
    small_batches = bootstrap(project=small)

    def slow_outreach(runtime: Runtime) -> Outreach:
        parts = open_outreach(runtime)
        return outreach_at(runtime, approved=True, renderer=SlowRenderer(parts.planner.templates))

    box = SingleBoxScheduler(
        small_batches,
        schedules("daily-outreach"),
        trigger_for=every_second,
        outreach_factory=slow_outreach,
    )
    boxes.append(box)
    box.start()
    wait_for(lambda: any(r.status == "running" for r in runs(runtime)))
    time.sleep(0.3)
    box.shutdown(wait=True)  # what SIGTERM does

    (stopped,) = runs(runtime)
    assert stopped.status == "failed"
    assert stopped.error.startswith("RunStopped: stop requested: plan ended after")
    assert [e.outcome for e in box.executions] == ["stopped"]
    with runtime.engine.connect() as c:
        planned = c.execute(select(OUTBOX.c.id)).all()
    assert 0 < len(planned) < 12

    parts = open_outreach(small_batches)
    summary = run_daily_outreach(parts, today)
    parts.close()
    small_batches.close()
    assert summary["this_run"]["new_messages"] == 12 - len(planned)
    with runtime.engine.connect() as c:
        rows = c.execute(select(OUTBOX.c.account_id, OUTBOX.c.status)).all()
    assert len(rows) == len({r.account_id for r in rows}) == 12
    assert {r.status for r in rows} == {"sent"}


def test_flows_without_code_are_skipped_with_a_reason(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engines, "LEGAL_ENGINE", "dunning.services.no_such_module:run")
    plan = Schedules(
        flows={
            "legal-escalation": FlowSchedule(cron="0 10 * * mon", timezone="Asia/Shanghai"),
            "dispatch-outbox": FlowSchedule(cron="*/15 * * * *", timezone="UTC", enabled=False),
        }
    )
    box = SingleBoxScheduler(runtime, plan)
    assert box.plan() == {}
    assert "is not in this checkout" in box.skipped["legal-escalation"]
    assert box.skipped["dispatch-outbox"] == "disabled in config/schedules.yaml"


def test_only_one_scheduler_per_box(runtime: Runtime, boxes: list[SingleBoxScheduler]) -> None:
    first = SingleBoxScheduler(runtime, schedules("daily-outreach"), outreach_factory=open_outreach)
    boxes.append(first)
    first.start()
    second = SingleBoxScheduler(
        runtime, schedules("daily-outreach"), outreach_factory=open_outreach
    )
    with pytest.raises(SchedulerError, match="another dunning scheduler"):
        second.start()


def test_sigterm_stops_the_scheduler_cleanly(env: Path, database_url: str) -> None:
    process = subprocess.Popen(
        [DUNNING, "scheduler", "--log-format", "kv"],
        env={**os.environ, "DUNNING_LOG_LEVEL": "INFO"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    lines: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        lines.append(line)
        if sum("job scheduled" in seen for seen in lines) == 3:
            break
    else:
        process.kill()
    process.send_signal(signal.SIGTERM)
    _, rest = process.communicate(timeout=30)
    output = "".join(lines) + rest
    assert process.returncode == 0, output
    assert "signal=SIGTERM" in output and 'event="scheduler stopped"' in output
    assert "flow=daily-outreach" in output and "level=info" in output


def test_scheduler_show_prints_the_schedule_without_running(
    capsys: pytest.CaptureFixture[str], runtime: Runtime
) -> None:
    from tests.helpers import invoke

    result = invoke(capsys, "scheduler", "--show")
    assert result.code == 0, result.err
    assert "daily-outreach" in result.out and "Asia/Shanghai" in result.out
    assert runs(runtime) == []


class SlowRenderer(Renderer):
    """Renders as the real one does, a quarter of a second later: a run long enough to stop."""

    def render(self, ref: TemplateRef, context: MessageContext) -> RenderedMessage:
        time.sleep(0.25)
        return super().render(ref, context)
