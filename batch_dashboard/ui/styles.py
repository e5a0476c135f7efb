"""One status vocabulary and colour everywhere (badges, bars, wall screen), and the words for
failure reasons (docs/api.md lists them: never a code alone)."""

from __future__ import annotations

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

FAILURE_WORDS = {
    "no_answer": "No answer",
    "busy": "Busy",
    "voicemail": "Voicemail",
    "do_not_call": "On do-not-call list",
    "invalid_number": "Invalid number",
    "provider_error": "Telephony error",
    "outcome_unknown": "Outcome unknown",
    "batch_failed": "Batch failed",
    "call_failed": "Call failed",
    "hung_up": "Hung up",
    "timezone_unknown": "Time zone unknown",
}


def failure_words(reason: str | None) -> str:
    if not reason:
        return ""
    return FAILURE_WORDS.get(reason, reason.replace("_", " ").capitalize())


SIDEBAR_WIDTH = "240px"
CONTENT_MAX_WIDTH = "1180px"
