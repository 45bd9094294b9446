"""config/schedules.yaml: when each flow runs (cron, IANA time zone), for Prefect and APScheduler.

One file drives both ways of running Dunning on a schedule: `dunning deploy` turns each entry into a
Prefect deployment schedule, `dunning scheduler` into an APScheduler cron trigger. Only the cron
syntax both read the same way is accepted: five fields of numbers, ranges, steps, lists and
three-letter month and weekday names. Weekdays count from Sunday (0 or 7) as in crontab; the
conversion for APScheduler (which counts from Monday) happens here, once.
"""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator

from dunning.config._base import ConfigModel

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# field name, lowest, highest, names (index + lowest is the value)
_FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _WEEKDAYS),
)


@dataclass(frozen=True)
class CronSpec:
    """A parsed five-field cron expression: the values each field allows."""

    minute: tuple[int, ...]
    hour: tuple[int, ...]
    day: tuple[int, ...]
    month: tuple[int, ...]
    day_of_week: tuple[int, ...]  # 0 = Sunday ... 6 = Saturday
    day_restricted: bool
    day_of_week_restricted: bool

    def apscheduler_fields(self) -> dict[str, str]:
        """Keyword arguments for apscheduler's CronTrigger, weekdays by name."""

        def listed(values: tuple[int, ...], everything: int) -> str:
            return "*" if len(values) == everything else ",".join(str(v) for v in values)

        return {
            "minute": listed(self.minute, 60),
            "hour": listed(self.hour, 24),
            "day": listed(self.day, 31),
            "month": listed(self.month, 12),
            "day_of_week": (
                ",".join(_WEEKDAYS[d] for d in self.day_of_week)
                if self.day_of_week_restricted
                else "*"
            ),
        }


def _value(token: str, low: int, high: int, names: tuple[str, ...], field: str) -> int:
    lowered = token.lower()
    if lowered in names:
        return names.index(lowered) + low
    if not token.isdigit():
        raise ValueError(f"{field}: {token!r} is not a number" + (" or name" if names else ""))
    number = int(token)
    if not low <= number <= high:
        raise ValueError(f"{field}: {number} is outside {low}-{high}")
    return number


def _parse_field(text: str, low: int, high: int, names: tuple[str, ...], field: str) -> set[int]:
    values: set[int] = set()
    for part in text.split(","):
        if not part:
            raise ValueError(f"{field}: empty item in {text!r}")
        span, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) == 0:
                raise ValueError(f"{field}: step {step_text!r} must be a positive number")
            step = int(step_text)
        if span == "*":
            first, last = low, high
        elif "-" in span:
            start, _, end = span.partition("-")
            first = _value(start, low, high, names, field)
            last = _value(end, low, high, names, field)
            if last < first:
                raise ValueError(f"{field}: range {span!r} runs backwards")
        else:
            first = _value(span, low, high, names, field)
            if slash:
                raise ValueError(f"{field}: a step needs a range or *, not {part!r}")
            last = first
        values.update(range(first, last + 1, step))
    return values


def parse_cron(expression: str) -> CronSpec:
    """Parse a five-field cron expression; ValueError says which field is wrong and why."""
    parts = expression.split()
    if len(parts) != 5:
        raise ValueError(
            f"cron {expression!r} has {len(parts)} fields; five are needed: "
            "minute hour day-of-month month day-of-week"
        )
    parsed = [
        _parse_field(text, low, high, names, field)
        for text, (field, low, high, names) in zip(parts, _FIELDS, strict=True)
    ]
    weekdays = {0 if day == 7 else day for day in parsed[4]}
    day_restricted = parts[2] != "*"
    dow_restricted = parts[4] != "*" and len(weekdays) < 7
    if day_restricted and dow_restricted:
        # cron fires when either matches, APScheduler only when both do: refuse the ambiguity.
        raise ValueError(
            f"cron {expression!r} restricts both the day of the month and the day of the week; "
            "restrict one of them"
        )
    return CronSpec(
        minute=tuple(sorted(parsed[0])),
        hour=tuple(sorted(parsed[1])),
        day=tuple(sorted(parsed[2])),
        month=tuple(sorted(parsed[3])),
        day_of_week=tuple(sorted(weekdays)),
        day_restricted=day_restricted,
        day_of_week_restricted=dow_restricted,
    )


class FlowSchedule(ConfigModel):
    """When one flow runs."""

    cron: str = Field(description="five fields: minute hour day-of-month month day-of-week")
    timezone: str = Field(description="IANA zone the cron is read in; also the zone of the as-of")
    enabled: bool = True
    misfire_grace_seconds: int | None = Field(
        default=None, ge=1, le=7 * 86400, description="override the scheduler's default"
    )

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        parse_cron(value)
        return " ".join(value.split())

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name)") from None
        return value

    @property
    def spec(self) -> CronSpec:
        return parse_cron(self.cron)


class SchedulerSettings(ConfigModel):
    """The single-box scheduler (`dunning scheduler`)."""

    misfire_grace_seconds: int = Field(
        default=900,
        ge=1,
        le=7 * 86400,
        description="a run missed (scheduler down or busy) still starts this long after its time",
    )
    job_table: str = Field(
        default="apscheduler_jobs",
        pattern=r"^[a-z_][a-z0-9_]*$",
        max_length=63,
        description="table in the Dunning database holding the scheduler's jobs",
    )


class PrefectSettings(ConfigModel):
    """Prefect deployments (`dunning deploy`)."""

    work_pool: str = Field(default="dunning", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


FLOW_NAMES: tuple[str, ...] = (
    "daily-outreach",
    "dispatch-outbox",
    "reconcile-receipts",
    "legal-escalation",
    "daily-outreach-sharded",
)
"""Every flow config/schedules.yaml may name. Plain data here, so configuration imports no
flows; flows/registry.py refuses to load if its SCHEDULABLE table names other flows."""


def _default_flows() -> dict[str, FlowSchedule]:
    return {
        "daily-outreach": FlowSchedule(cron="30 7 * * *", timezone="Asia/Shanghai"),
        "dispatch-outbox": FlowSchedule(cron="*/15 * * * *", timezone="UTC"),
        "reconcile-receipts": FlowSchedule(cron="*/30 * * * *", timezone="UTC"),
        "legal-escalation": FlowSchedule(cron="0 10 * * mon", timezone="Asia/Shanghai"),
    }


class Schedules(ConfigModel):
    """config/schedules.yaml. A flow that is not listed is not scheduled."""

    flows: dict[str, FlowSchedule] = Field(default_factory=_default_flows)
    scheduler: SchedulerSettings = Field(default_factory=SchedulerSettings)
    prefect: PrefectSettings = Field(default_factory=PrefectSettings)

    @field_validator("flows")
    @classmethod
    def _known_flows(cls, value: dict[str, FlowSchedule]) -> dict[str, FlowSchedule]:
        unknown = sorted(set(value) - set(FLOW_NAMES))
        if unknown:
            raise ValueError(
                f"unknown flow {', '.join(unknown)}; known flows: {', '.join(sorted(FLOW_NAMES))}"
            )
        return value

    def enabled(self) -> dict[str, FlowSchedule]:
        return {name: entry for name, entry in self.flows.items() if entry.enabled}

    def grace_seconds(self, flow: str) -> int:
        entry = self.flows[flow]
        return entry.misfire_grace_seconds or self.scheduler.misfire_grace_seconds
