"""What a worker does while its database cannot be reached: wait, longer each time, and say so
once — not a traceback per loop turn, and not a connection attempt every few milliseconds
against a server that is restarting.

One `DatabaseWatch` per worker is shared by the dialer, the webhook sender and the scheduler:
whichever of them meets the outage first logs it, the dialer's claim loop alone probes (with
exponential backoff, capped), and the others pause until it finds the database back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from batch_dashboard.db import is_unreachable
from batch_dashboard.telemetry import set_waiting_for_database

log = logging.getLogger(__name__)

FIRST_WAIT_SECONDS = 0.5
MAX_WAIT_SECONDS = 30.0


def _reason(error: BaseException) -> str:
    text = str(getattr(error, "orig", None) or error).strip().splitlines()
    return text[0][:200] if text else type(error).__name__


class DatabaseWatch:
    def __init__(
        self, *, first_wait: float = FIRST_WAIT_SECONDS, max_wait: float = MAX_WAIT_SECONDS
    ) -> None:
        self.first_wait = first_wait
        self.max_wait = max_wait
        self.down_since: float | None = None
        self.attempts = 0  # failed attempts in this outage
        self._back: asyncio.Event | None = None

    @property
    def down(self) -> bool:
        return self.down_since is not None

    def failed(self, error: BaseException) -> float | None:
        """Seconds to wait before the next attempt when `error` says the database cannot be
        reached; None for any other error (the caller handles it as before)."""
        if not is_unreachable(error):
            return None
        if self.down_since is None:
            self.down_since = time.monotonic()
            self._event().clear()
            set_waiting_for_database(True)
            log.warning(
                "database unreachable (%s); dialing paused, retrying every %g s up to every %g s",
                _reason(error),
                self.first_wait,
                self.max_wait,
            )
        wait = min(self.max_wait, self.first_wait * 2**self.attempts)
        self.attempts += 1
        return wait

    def reached(self) -> None:
        """A unit of work went through: the outage, if there was one, is over."""
        if self.down_since is None:
            return
        log.info(
            "database back after %.1f s (%d attempts); dialing resumes",
            time.monotonic() - self.down_since,
            self.attempts,
        )
        self.down_since, self.attempts = None, 0
        self._event().set()
        set_waiting_for_database(False)

    async def wait_until_back(self, stop: asyncio.Event) -> None:
        """Until the prober finds the database back, the worker is told to stop, or the longest
        wait has passed (then the caller tries for itself: a sender running without a dialer
        has nobody probing for it)."""
        if not self.down:
            return
        waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._event().wait())]
        try:
            await asyncio.wait(waiters, timeout=self.max_wait, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    @staticmethod
    async def pause(stop: asyncio.Event, seconds: float) -> None:
        """Sleep `seconds`, or less if the worker is told to stop."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=seconds)

    def _event(self) -> asyncio.Event:
        # Made on first use, inside the running loop (the watch may be built outside it).
        if self._back is None:
            self._back = asyncio.Event()
            self._back.set()
        return self._back
