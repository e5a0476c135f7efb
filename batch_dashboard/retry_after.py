"""`Retry-After`, read one way for every answer we get (webhook receivers, call platforms)."""

from __future__ import annotations

import math
from datetime import datetime
from email.utils import parsedate_to_datetime

from batch_dashboard.clock import to_utc


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """The wait a `Retry-After` value asks for, in seconds from `now` (never negative): a number
    of seconds or an HTTP date. None when absent or unreadable."""
    value = (value or "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = (to_utc(parsedate_to_datetime(value)) - now).total_seconds()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    return max(seconds, 0.0) if math.isfinite(seconds) else None
