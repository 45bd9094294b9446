"""Contact windows, candidate zones and caps as pure functions, with property tests."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from dunning.domain.contact_time import (
    Cap,
    ContactRule,
    allowed_at,
    allowed_throughout,
    cap_exceeded,
    next_opening,
)
from dunning.domain.zones import candidate_zones
from dunning.types import Channel

ZONES = [
    "Asia/Shanghai",
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
    "America/Anchorage",
    "Pacific/Honolulu",
    "Europe/London",
    "Australia/Sydney",
    "America/St_Johns",
]
US = ContactRule((time(8), time(21)))


def test_candidate_zones_agree_disagree_and_unknown() -> None:
    assert candidate_zones("America/Chicago", "+13125550142", "US", "IL") == {"America/Chicago"}
    # Recorded Chicago, but a New York phone: both count.
    assert candidate_zones("America/Chicago", "+12125550142", "US", "IL") == {
        "America/Chicago",
        "America/New_York",
    }
    # No record: the phone says New York, the address California: both count.
    assert candidate_zones(None, "+12125550142", "US", "CA") == {
        "America/New_York",
        "America/Los_Angeles",
    }
    # No record, phone and address overlap: the overlap.
    assert candidate_zones(None, "+19075550142", "US", "AK") == {
        "America/Anchorage",
        "America/Adak",
    }
    assert candidate_zones(None, None, None, None) == frozenset()
    assert candidate_zones(None, "+8613812345678", "CN", None) == {"Asia/Shanghai"}


def test_window_in_every_zone() -> None:
    zones = {"America/New_York", "America/Los_Angeles"}
    # 14:00 UTC is 09:00 in New York but 06:00 in Los Angeles: not yet.
    assert not allowed_at(datetime(2026, 11, 24, 14, tzinfo=UTC), zones, US)
    opening = next_opening(datetime(2026, 11, 24, 14, tzinfo=UTC), zones, US)
    assert opening == datetime(2026, 11, 24, 16, tzinfo=UTC)  # 08:00 in Los Angeles
    # The end is exclusive: 21:00 in New York is already too late.
    assert not allowed_at(datetime(2026, 11, 25, 2, tzinfo=UTC), {"America/New_York"}, US)
    assert next_opening(datetime(2026, 11, 24, 14, tzinfo=UTC), set(), US) is None


def test_send_span_must_fit_before_the_window_closes() -> None:
    zone = {"Asia/Shanghai"}
    rule = ContactRule((time(8), time(22)))
    late = datetime(2026, 11, 24, 13, 59, tzinfo=UTC)  # 21:59 in Shanghai
    assert allowed_at(late, zone, rule)
    opening = next_opening(late, zone, rule, span=timedelta(minutes=2))
    assert opening == datetime(2026, 11, 25, 0, tzinfo=UTC)  # 08:00 the next morning


def test_holidays_and_weekdays_push_the_opening() -> None:
    new_year = ContactRule((time(8), time(22)), is_holiday=lambda d: d == date(2027, 1, 1))
    eve = datetime(2026, 12, 31, 14, 30, tzinfo=UTC)  # 22:30 in Shanghai on Dec 31
    assert next_opening(eve, {"Asia/Shanghai"}, new_year) == datetime(2027, 1, 2, 0, tzinfo=UTC)
    weekdays = ContactRule((time(9), time(17)), weekdays=frozenset(range(5)))
    saturday = datetime(2026, 11, 28, 12, tzinfo=UTC)
    assert next_opening(saturday, {"Europe/London"}, weekdays) == datetime(
        2026, 11, 30, 9, tzinfo=UTC
    )


def test_caps_count_rolling_windows_across_channels() -> None:
    caps = [
        Cap("sms-daily", frozenset({Channel.SMS}), 1, 1),
        Cap("all-weekly", frozenset({Channel.SMS, Channel.PUSH}), 3, 7),
    ]
    now = datetime(2026, 11, 24, 12, tzinfo=UTC)
    history = {Channel.SMS: [now - timedelta(hours=23)]}
    assert cap_exceeded(caps, Channel.SMS, history, now) == caps[0]
    assert cap_exceeded(caps, Channel.SMS, history, now + timedelta(hours=2)) is None
    history = {
        Channel.SMS: [now - timedelta(days=3)],
        Channel.PUSH: [now - timedelta(days=1), now - timedelta(days=6)],
    }
    assert cap_exceeded(caps, Channel.PUSH, history, now) == caps[1]
    assert cap_exceeded(caps, Channel.LETTER, history, now) is None


moments = st.datetimes(
    min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
)
zone_sets = st.sets(st.sampled_from(ZONES), min_size=1, max_size=3)
windows = st.tuples(st.integers(0, 20), st.integers(1, 14)).map(
    lambda sw: (time(sw[0]), time(min(sw[0] + sw[1], 23), 59 if sw[0] + sw[1] > 23 else 0))
)
rules = st.builds(
    ContactRule,
    window=st.one_of(st.none(), windows),
    weekdays=st.sets(st.integers(0, 6), min_size=1).map(frozenset),
)
spans = st.sampled_from([timedelta(), timedelta(minutes=2), timedelta(minutes=30)])


@settings(max_examples=300, deadline=None)
@given(moments, zone_sets, rules, spans)
def test_next_opening_is_allowed_and_never_early(
    moment: datetime, zones: set[str], rule: ContactRule, span: timedelta
) -> None:
    opening = next_opening(moment, zones, rule, span=span)
    probe = moment
    step = timedelta(minutes=10)
    limit = opening if opening is not None else moment + timedelta(days=14)
    while probe < limit:
        # Nothing earlier was allowed (checked on a 10-minute grid): the message was not due.
        assert not allowed_throughout(probe, probe + span, zones, rule)
        probe += step
    if opening is not None:
        assert opening >= moment
        assert allowed_throughout(opening, opening + span, zones, rule)
        for name in zones:
            local = opening.astimezone(ZoneInfo(name))
            assert local.weekday() in rule.weekdays
            if rule.window is not None:
                assert rule.window[0] <= local.time() < rule.window[1]
