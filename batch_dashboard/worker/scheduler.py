"""Timed work on APScheduler's AsyncIOScheduler: promote due batches, recover leases, tidy up.

Every job is a compare-and-set in the database, so several schedulers (one per worker and per
backend) at once are harmless: the database decides.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from batch_dashboard.clock import Clock, system_clock
from batch_dashboard.db import session_scope
from batch_dashboard.services import auth, idempotency, transitions
from batch_dashboard.worker.dialer import Dialer

log = logging.getLogger(__name__)

PROMOTE_EVERY_SECONDS = 0.5  # a scheduled batch starts within a second of its time
HOUSEKEEPING_EVERY_SECONDS = 600


def promote_due(clock: Clock = system_clock) -> int:
    with session_scope(write=True) as session:
        promoted = transitions.promote_due(session, now=clock.now())
    if promoted:
        log.info("%d scheduled batch(es) are due", promoted)
    return promoted


def housekeeping(clock: Clock = system_clock) -> None:
    with session_scope(write=True) as session:
        purged = idempotency.purge_expired(session, now=clock.now())
        forgotten = auth.purge_sign_in_throttle(session, now=clock.now())
    if purged:
        log.info("forgot %d expired idempotency keys", purged)
    if forgotten:
        log.info("forgot %d old sign-in failure counts", forgotten)


def build_scheduler(dialer: Dialer, *, clock: Clock = system_clock) -> AsyncIOScheduler:
    scheduler = AsyncIOScheduler(
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30}
    )

    watch = dialer.watch

    def while_reachable(job: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
        """Skipped while the database is out of reach (the dialer probes it); a job that meets
        the outage reports it to the watch rather than logging a traceback every turn."""

        @functools.wraps(job)
        async def guarded() -> None:
            if watch.down:
                return
            try:
                await job()
            except Exception as error:
                if watch.failed(error) is None:
                    raise

        return guarded

    @while_reachable
    async def promote() -> None:
        if await asyncio.to_thread(promote_due, clock):
            dialer._capacity_signal.set()  # wake the dialer now rather than at its next look

    @while_reachable
    async def recover() -> None:
        await dialer.recover_expired()

    @while_reachable
    async def tidy() -> None:
        await asyncio.to_thread(housekeeping, clock)

    scheduler.add_job(promote, "interval", seconds=PROMOTE_EVERY_SECONDS, id="promote-due")
    scheduler.add_job(
        recover, "interval", seconds=dialer.settings.recovery_interval_seconds, id="recover-leases"
    )
    scheduler.add_job(tidy, "interval", seconds=HOUSEKEEPING_EVERY_SECONDS, id="housekeeping")
    return scheduler
