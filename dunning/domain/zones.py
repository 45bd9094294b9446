"""Which time zones a customer may be in: the record, the phone number and the address.

When they agree, the customer's zone is known. When they disagree, or only loose evidence
exists, every candidate counts: a message may go only at a time inside the contact window in
all of them (US Reg F 1006.6(b)(1)). No candidate at all means the rule cannot be evaluated,
and the message is held.
"""

from __future__ import annotations

from functools import lru_cache
from zoneinfo import ZoneInfo, available_timezones

import phonenumbers
from phonenumbers import timezone as phone_timezone

# States that span zones list every zone in them.
US_STATE_ZONES: dict[str, tuple[str, ...]] = {
    "AL": ("America/Chicago",),
    "AK": ("America/Anchorage", "America/Adak"),
    "AZ": ("America/Phoenix",),
    "AR": ("America/Chicago",),
    "CA": ("America/Los_Angeles",),
    "CO": ("America/Denver",),
    "CT": ("America/New_York",),
    "DE": ("America/New_York",),
    "DC": ("America/New_York",),
    "FL": ("America/New_York", "America/Chicago"),
    "GA": ("America/New_York",),
    "HI": ("Pacific/Honolulu",),
    "ID": ("America/Boise", "America/Los_Angeles"),
    "IL": ("America/Chicago",),
    "IN": ("America/Indiana/Indianapolis", "America/Chicago"),
    "IA": ("America/Chicago",),
    "KS": ("America/Chicago", "America/Denver"),
    "KY": ("America/New_York", "America/Chicago"),
    "LA": ("America/Chicago",),
    "ME": ("America/New_York",),
    "MD": ("America/New_York",),
    "MA": ("America/New_York",),
    "MI": ("America/Detroit", "America/Chicago"),
    "MN": ("America/Chicago",),
    "MS": ("America/Chicago",),
    "MO": ("America/Chicago",),
    "MT": ("America/Denver",),
    "NE": ("America/Chicago", "America/Denver"),
    "NV": ("America/Los_Angeles",),
    "NH": ("America/New_York",),
    "NJ": ("America/New_York",),
    "NM": ("America/Denver",),
    "NY": ("America/New_York",),
    "NC": ("America/New_York",),
    "ND": ("America/Chicago", "America/Denver"),
    "OH": ("America/New_York",),
    "OK": ("America/Chicago",),
    "OR": ("America/Los_Angeles", "America/Boise"),
    "PA": ("America/New_York",),
    "RI": ("America/New_York",),
    "SC": ("America/New_York",),
    "SD": ("America/Chicago", "America/Denver"),
    "TN": ("America/Chicago", "America/New_York"),
    "TX": ("America/Chicago", "America/Denver"),
    "UT": ("America/Denver",),
    "VT": ("America/New_York",),
    "VA": ("America/New_York",),
    "WA": ("America/Los_Angeles",),
    "WV": ("America/New_York",),
    "WI": ("America/Chicago",),
    "WY": ("America/Denver",),
    "PR": ("America/Puerto_Rico",),
    "GU": ("Pacific/Guam",),
}
# Countries with a single civil time zone.
COUNTRY_ZONES: dict[str, tuple[str, ...]] = {
    "CN": ("Asia/Shanghai",),
    "HK": ("Asia/Hong_Kong",),
    "SG": ("Asia/Singapore",),
    "JP": ("Asia/Tokyo",),
    "KR": ("Asia/Seoul",),
    "GB": ("Europe/London",),
    "DE": ("Europe/Berlin",),
    "FR": ("Europe/Paris",),
    "IN": ("Asia/Kolkata",),
    "PH": ("Asia/Manila",),
    "ID": ("Asia/Jakarta", "Asia/Makassar", "Asia/Jayapura"),
}


@lru_cache(maxsize=1)
def _known() -> frozenset[str]:
    return frozenset(available_timezones())


PREFIX_DIGITS = 10
"""Time zones depend on a number's prefix only (country code and area): numbers sharing their
first characters share zones, so lookups are cached by prefix, not by number."""


def phone_zones(phone: str | None) -> frozenset[str]:
    """Zones the number's prefix belongs to (phonenumbers' geocoding data), if any."""
    if not phone:
        return frozenset()
    return _prefix_zones(phone[:PREFIX_DIGITS], len(phone))


@lru_cache(maxsize=65_536)
def _prefix_zones(prefix: str, length: int) -> frozenset[str]:
    # Pad the prefix back to the number's length so it parses as a number of that shape.
    phone = prefix + "0" * (length - len(prefix))
    try:
        parsed = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return frozenset()
    zones = phone_timezone.time_zones_for_number(parsed)
    return frozenset(z for z in zones if z in _known())


def address_zones(country: str | None, region: str | None) -> frozenset[str]:
    if not country:
        return frozenset()
    if country == "US":
        return frozenset(US_STATE_ZONES.get((region or "").upper(), ()))
    return frozenset(COUNTRY_ZONES.get(country, ()))


def candidate_zones(
    recorded: str | None, phone: str | None, country: str | None, region: str | None
) -> frozenset[str]:
    """Every zone the customer may be in; empty when nothing is known (hold)."""
    evidence = [zones for zones in (phone_zones(phone), address_zones(country, region)) if zones]
    if recorded and recorded in _known():
        if all(recorded in zones for zones in evidence):
            return frozenset({recorded})
        return frozenset({recorded}).union(*evidence)
    if not evidence:
        return frozenset()
    common = frozenset.intersection(*evidence)
    return common if common else frozenset().union(*evidence)


@lru_cache(maxsize=1024)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)
