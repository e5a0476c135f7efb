"""Calling windows: a recipient is dialed only inside the batch's hours, in its own time zone.

A number's zone comes from its own `timezone` variable, else the window's fixed zone, else
libphonenumber's zones for the number; a number with several candidate zones is called only
when the time is inside the window in all of them. Everything is computed with zoneinfo, so
DST changes are handled by the zone rules, not by fixed offsets.
"""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

import phonenumbers
from phonenumbers import PhoneNumberType
from phonenumbers import timezone as number_zones

from batch_dashboard.clock import to_utc
from batch_dashboard.services.errors import Problems, json_object_field

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
LOOKAHEAD_DAYS = 8


@lru_cache(maxsize=1)
def _known_zones() -> frozenset[str]:
    return frozenset(available_timezones())


def parse_window(value: object, problems: Problems, *, from_form: bool) -> dict[str, Any] | None:
    value = json_object_field(
        value,
        problems,
        field="calling_window",
        allowed={"start", "end", "days", "timezone", "unknown_timezone"},
        shape='like {"start": "09:00", "end": "20:00"}',
        from_form=from_form,
    )
    if value is None:
        return None
    window: dict[str, Any] = {}
    for name in ("start", "end"):
        clock = value.get(name)
        if not isinstance(clock, str) or not _CLOCK.match(clock):
            problems.add(["calling_window", name], "must be a time like 09:00 (24-hour clock)")
        window[name] = clock
    if (
        window.get("start")
        and window.get("end")
        and _CLOCK.match(str(window["start"]))
        and _CLOCK.match(str(window["end"]))
        and window["start"] >= window["end"]
    ):
        problems.add(["calling_window", "end"], "must be later than start")
    days = value.get("days", list(DAYS))
    if not isinstance(days, list) or not days or not all(d in DAYS for d in days):
        problems.add(["calling_window", "days"], f"must be a non-empty list of: {', '.join(DAYS)}")
    window["days"] = days
    zone = value.get("timezone", "recipient")
    if not isinstance(zone, str) or (zone != "recipient" and zone not in _known_zones()):
        problems.add(
            ["calling_window", "timezone"], '"recipient" or an IANA zone like Europe/Berlin'
        )
    window["timezone"] = zone
    unknown = value.get("unknown_timezone", "fail")
    if unknown not in ("fail", "call"):
        problems.add(["calling_window", "unknown_timezone"], '"fail" (default) or "call"')
    window["unknown_timezone"] = unknown
    return window


def zones_for(phone: str, variables: dict[str, Any], window: dict[str, Any]) -> list[str] | None:
    """The zones a recipient may be in; None when nobody can tell."""
    own = variables.get("timezone")
    if isinstance(own, str) and own in _known_zones():
        return [own]
    if window["timezone"] != "recipient":
        return [window["timezone"]]
    try:
        number = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return None
    # A toll-free number has no place, whatever zones its country spans.
    if phonenumbers.number_type(number) == PhoneNumberType.TOLL_FREE:
        return None
    zones = [z for z in number_zones.time_zones_for_number(number) if z in _known_zones()]
    return zones or None


def _inside(moment: datetime, zone: str, window: dict[str, Any]) -> bool:
    local = moment.astimezone(ZoneInfo(zone))
    start, end = time.fromisoformat(window["start"]), time.fromisoformat(window["end"])
    return (
        DAYS[local.weekday()] in window["days"] and start <= local.time().replace(tzinfo=None) < end
    )


def allowed(now: datetime, zones: list[str], window: dict[str, Any]) -> bool:
    return all(_inside(to_utc(now), zone, window) for zone in zones)


def next_open(now: datetime, zones: list[str], window: dict[str, Any]) -> datetime | None:
    """The first moment after `now` inside the window in every zone (None: none within 8 days)."""
    now = to_utc(now)
    start = time.fromisoformat(window["start"])
    candidates = []
    for zone in zones:
        tz = ZoneInfo(zone)
        today = now.astimezone(tz).date()
        for offset in range(LOOKAHEAD_DAYS + 1):
            opening = datetime.combine(today + timedelta(days=offset), start, tzinfo=tz)
            if opening > now:
                candidates.append(to_utc(opening))
    for moment in sorted(candidates):
        if allowed(moment, zones, window):
            return moment
    return None
