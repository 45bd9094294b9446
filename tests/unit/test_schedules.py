"""config/schedules.yaml: cron parsing, the weekday trap, zones, flows, errors naming file/key."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dunning.config import Schedules, load_file
from dunning.config.schedules import FlowSchedule, parse_cron
from dunning.errors import ConfigError
from dunning.ops.scheduler import cron_trigger
from flows.registry import CODE_ROOT, FLOWS


def test_the_shipped_file_schedules_every_registered_flow(repo_dir: Path) -> None:
    schedules = load_file(repo_dir / "config" / "schedules.yaml", Schedules, repo_dir)
    assert set(schedules.flows) == set(FLOWS)
    daily = schedules.flows["daily-outreach"]
    assert (daily.cron, daily.timezone, daily.enabled) == ("30 7 * * *", "Asia/Shanghai", True)
    assert schedules.grace_seconds("daily-outreach") == 21600
    assert schedules.grace_seconds("dispatch-outbox") == schedules.scheduler.misfire_grace_seconds
    assert schedules.flows["legal-escalation"].spec.day_of_week == (1,)  # Monday
    assert set(Schedules().flows) == set(FLOWS)  # defaults in code when the file is absent


def test_registry_entrypoints_exist_except_flows_still_being_written() -> None:
    for spec in FLOWS.values():
        assert spec.entrypoint.count(":") == 1 and spec.engine.count(":") == 1
        if spec.name != "legal-escalation":
            assert spec.available(), spec.entrypoint
            assert (CODE_ROOT / spec.path).is_file()


@pytest.mark.parametrize(
    ("expression", "weekdays"),
    [
        ("0 10 * * 1", (1,)),  # crontab: 1 is Monday (APScheduler 3 would read Tuesday)
        ("0 10 * * 0", (0,)),
        ("0 10 * * 7", (0,)),
        ("0 10 * * mon", (1,)),
        ("0 10 * * 1-5", (1, 2, 3, 4, 5)),
        ("0 10 * * sat,sun", (0, 6)),
        ("0 10 * * */2", (0, 2, 4, 6)),
    ],
)
def test_weekdays_count_from_sunday_as_in_crontab(
    expression: str, weekdays: tuple[int, ...]
) -> None:
    assert parse_cron(expression).day_of_week == weekdays


def _prefect_fire_times(cron: str, zone: str, start: datetime, count: int) -> list[datetime]:
    """When the Prefect server would schedule runs (its own schedule model)."""
    import asyncio
    import inspect

    from prefect.server.schemas.schedules import CronSchedule

    dates = CronSchedule(cron=cron, timezone=zone).get_dates(n=count, start=start)
    if inspect.isawaitable(dates):
        dates = asyncio.run(dates)
    return [datetime.fromtimestamp(d.timestamp(), UTC) for d in dates]


def _apscheduler_fire_times(cron: str, zone: str, start: datetime, count: int) -> list[datetime]:
    trigger = cron_trigger("x", FlowSchedule(cron=cron, timezone=zone))
    times: list[datetime] = []
    previous = None
    now = start + timedelta(microseconds=1)
    for _ in range(count):
        fire = trigger.get_next_fire_time(previous, now)
        assert fire is not None
        times.append(fire.astimezone(UTC))
        previous, now = fire, fire + timedelta(microseconds=1)
    return times


@pytest.mark.parametrize(
    ("cron", "zone"),
    [
        ("30 7 * * *", "Asia/Shanghai"),
        ("*/15 * * * *", "UTC"),
        ("0 10 * * mon", "Asia/Shanghai"),
        ("0 10 * * 1", "America/New_York"),
        ("0 9 * * 1-5", "America/Los_Angeles"),
        ("0 2 * * sun", "America/Chicago"),  # across the DST change in November
        ("5 4 1 * *", "Pacific/Honolulu"),
        ("0 8 * jan,jul *", "UTC"),
    ],
)
def test_prefect_and_apscheduler_fire_at_the_same_instants(cron: str, zone: str) -> None:
    start = datetime(2026, 10, 25, 0, 0, 30, tzinfo=UTC)  # between two firings
    assert _apscheduler_fire_times(cron, zone, start, 12) == _prefect_fire_times(
        cron, zone, start, 12
    )


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config" / "schedules.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        (
            "flows:\n  daily-outreach: {cron: '30 7 * *', timezone: UTC}\n",
            "flows.daily-outreach.cron",
            "has 4 fields",
        ),
        (
            "flows:\n  daily-outreach: {cron: '61 7 * * *', timezone: UTC}\n",
            "flows.daily-outreach.cron",
            "minute: 61 is outside 0-59",
        ),
        (
            "flows:\n  daily-outreach: {cron: '0 7 1 * mon', timezone: UTC}\n",
            "flows.daily-outreach.cron",
            "restricts both",
        ),
        (
            "flows:\n  daily-outreach: {cron: '@daily', timezone: UTC}\n",
            "flows.daily-outreach.cron",
            "five are needed",
        ),
        (
            "flows:\n  daily-outreach: {cron: '0 7 * * *', timezone: Asia/Beijing}\n",
            "flows.daily-outreach.timezone",
            "unknown time zone 'Asia/Beijing'",
        ),
        (
            "flows:\n  daily-outreech: {cron: '0 7 * * *', timezone: UTC}\n",
            "flows",
            "unknown flow daily-outreech",
        ),
        (
            "flows:\n  daily-outreach: {cron: '0 7 * * *', timezone: UTC, enable: false}\n",
            "flows.daily-outreach.enable",
            "Extra inputs are not permitted",
        ),
        ("scheduler: {misfire_grace_seconds: 0}\n", "scheduler.misfire_grace_seconds", ""),
    ],
)
def test_bad_schedules_are_rejected_naming_file_key_and_reason(
    tmp_path: Path, text: str, key: str, reason: str
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_file(path, Schedules, tmp_path)
    problem = caught.value.problems[0]
    assert problem.file == "config/schedules.yaml"
    assert problem.key == key
    assert reason in problem.reason
    assert "config/schedules.yaml" in str(caught.value)


def test_disabled_flows_stay_listed_but_are_not_enabled(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "flows:\n"
        "  daily-outreach: {cron: '0 6 * * *', timezone: America/New_York}\n"
        "  reconcile-receipts: {cron: '0 * * * *', timezone: UTC, enabled: false}\n",
    )
    schedules = load_file(path, Schedules, tmp_path)
    assert list(schedules.enabled()) == ["daily-outreach"]
    assert set(schedules.flows) == {"daily-outreach", "reconcile-receipts"}
