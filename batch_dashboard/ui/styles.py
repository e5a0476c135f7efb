"""One status vocabulary and colour everywhere (badges, bars, wall screen), and the words for
failure reasons (never a code alone; they come from the outcome vocabulary)."""

from __future__ import annotations

from batch_dashboard.services import outcomes

STATUS_COLORS = {
    "scheduled": "violet",
    "pending": "gray",
    "running": "blue",
    "dialing": "blue",
    "completed": "green",
    "failed": "red",
    "cancelled": "gray",
}
# Cancelled reads as a lighter, muted gray than pending.
STATUS_VARIANTS = {"cancelled": "outline"}


def failure_words(reason: str | None) -> str:
    return outcomes.words(reason)


SIDEBAR_WIDTH = "240px"
# Phones and narrow windows (below Reflex's `md` breakpoint, 48em = 768px): a menu button instead
# of the sidebar, tables as stacked rows.
PHONE_MAX = "767.98px"
CONTENT_MAX_WIDTH = "1180px"
