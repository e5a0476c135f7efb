"""The injectable clock: services take `now` from here, so time can be frozen in tests.

Times are timezone-aware UTC everywhere (SQLModel's UTCDateTime columns insist on it);
`to_rfc3339` is the one place that turns them into the API's `…Z` strings.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class Clock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FrozenClock(Clock):
    """A clock that moves only when told to (tests)."""

    def __init__(self, start: datetime) -> None:
        self._now = to_utc(start)

    def now(self) -> datetime:
        return self._now

    def advance(self, **delta: float) -> datetime:
        self._now += timedelta(**delta)
        return self._now


system_clock = Clock()


def to_utc(moment: datetime) -> datetime:
    """Aware UTC; a naive value is taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def to_rfc3339(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    moment = to_utc(moment).replace(tzinfo=None)
    return moment.isoformat(timespec="milliseconds" if moment.microsecond else "seconds") + "Z"
