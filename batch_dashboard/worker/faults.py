"""Crash points for the crash tests: `BATCH_CRASH_AT=<point>` makes the worker SIGKILL itself
there, the moment a real crash would hurt most. Unset (always, outside tests) it costs one
dictionary lookup."""

from __future__ import annotations

import os
import signal

AFTER_CLAIM = "after_claim"  # recipients claimed and committed; nothing placed yet
AFTER_PLACE = "after_place"  # the provider accepted the calls; no outcome stored yet
AFTER_RECORD = "after_record"  # outcomes and their webhook events committed; nothing sent yet


def crash_point(name: str) -> None:
    if os.environ.get("BATCH_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
