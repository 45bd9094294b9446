"""When a message may go: contact windows in every candidate zone, allowed days, holidays.

A moment is allowed when, in every candidate zone, it falls on an allowed weekday that is not a
no-contact holiday, inside the channel's window. The next opening after a moment is always
either the moment itself or the start of some zone's window (or local midnight, for channels
without a window), so searching those instants finds it exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from dunning.domain.zones import zone
from dunning.types import Channel

HORIZON_DAYS = 15
"""How far ahead to look for an opening before giving up (and holding the message)."""


@dataclass(frozen=True)
class ContactRule:
    """One channel's time rules in one jurisdiction."""

    window: tuple[time, time] | None
    """[start, end) in local time; None: any time of day (letters)."""
    weekdays: frozenset[int] = frozenset(range(7))
    """Allowed days, Monday = 0."""
    is_holiday: Callable[[date], bool] | None = None
    """True for a local date with no contact."""

    def allows_local(self, local: datetime) -> bool:
        if local.weekday() not in self.weekdays:
            return False
        if self.is_holiday is not None and self.is_holiday(local.date()):
            return False
        if self.window is None:
            return True
        start, end = self.window
        return start <= local.time().replace(tzinfo=None) < end


def allowed_at(moment: datetime, zones: Collection[str], rule: ContactRule) -> bool:
    """Whether `moment` (aware) is inside the rule in every candidate zone."""
    if not zones:
        return False
    return all(rule.allows_local(moment.astimezone(zone(name))) for name in zones)


def allowed_throughout(
    start: datetime, end: datetime, zones: Collection[str], rule: ContactRule
) -> bool:
    """Whether the whole span [start, end] is allowed (a send takes time after its check).

    Windows are single intervals within a local day, so checking both ends is enough when
    they fall on the same local date in every zone.
    """
    if not (allowed_at(start, zones, rule) and allowed_at(end, zones, rule)):
        return False
    return all(
        start.astimezone(zone(name)).date() == end.astimezone(zone(name)).date() for name in zones
    )


def _openings(after: datetime, zones: Iterable[str], rule: ContactRule) -> list[datetime]:
    """Window starts (or local midnights) in every zone over the horizon, after `after`."""
    found = set()
    opening = rule.window[0] if rule.window else time(0, 0)
    for name in zones:
        tz = zone(name)
        first_day = after.astimezone(tz).date()
        for offset in range(HORIZON_DAYS + 1):
            local = datetime.combine(first_day + timedelta(days=offset), opening, tzinfo=tz)
            instant = local.astimezone(UTC)
            if instant > after:
                found.add(instant)
    return sorted(found)


def next_opening(
    moment: datetime, zones: Collection[str], rule: ContactRule, *, span: timedelta = timedelta()
) -> datetime | None:
    """The earliest instant at or after `moment` from which `span` is allowed throughout.

    None when no candidate zone is known or nothing opens within the horizon.
    """
    if not zones:
        return None
    if allowed_throughout(moment, moment + span, zones, rule):
        return moment
    for candidate in _openings(moment, zones, rule):
        if allowed_throughout(candidate, candidate + span, zones, rule):
            return candidate
    return None


@dataclass(frozen=True)
class Cap:
    id: str
    channels: frozenset[Channel]
    max: int
    per_days: int


def cap_exceeded(
    caps: Sequence[Cap],
    channel: Channel,
    history: Mapping[Channel, Sequence[datetime]],
    moment: datetime,
) -> Cap | None:
    """The first cap one more `channel` message at `moment` would break, if any.

    `history` holds the times of the customer's earlier contacts (accepted or in flight) per
    channel. Windows are rolling: (moment - per_days, moment].
    """
    for cap in caps:
        if channel not in cap.channels:
            continue
        since = moment - timedelta(days=cap.per_days)
        used = sum(1 for ch in cap.channels for when in history.get(ch, ()) if since < when)
        if used + 1 > cap.max:
            return cap
    return None
