"""The worker: dialer + scheduler, embedded in the backend or alone (`python -m batch_dashboard worker`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from batch_dashboard import sealing
from batch_dashboard.clock import Clock, system_clock
from batch_dashboard.settings import Settings, get_settings
from batch_dashboard.telemetry import set_dialer_running
from batch_dashboard.worker.dialer import Dialer
from batch_dashboard.worker.scheduler import build_scheduler
from batch_dashboard.worker.sender import Sender

log = logging.getLogger(__name__)


async def run_worker(
    stop: asyncio.Event, *, settings: Settings | None = None, clock: Clock = system_clock
) -> Dialer:
    """Dial and schedule until `stop` is set, then shut down gracefully."""
    settings = settings or get_settings()
    sealing.cipher()  # no key, no webhooks: say so now, not at the first delivery
    dialer = Dialer(settings=settings, clock=clock)
    sender = Sender(settings=settings, clock=clock)
    scheduler = build_scheduler(dialer, clock=clock)
    scheduler.start()
    set_dialer_running(True)
    log.info("worker %s started", dialer.worker_id)
    sending = asyncio.create_task(sender.run(stop), name="webhook-sender")
    try:
        await dialer.run(stop)
    finally:
        stop.set()
        await sending
        set_dialer_running(False)
        scheduler.shutdown(wait=False)
        await dialer.registry.aclose()
        log.info("worker %s stopped (%s)", dialer.worker_id, dict(dialer.stats))
    return dialer


def main() -> int:
    """`python -m batch_dashboard worker`: SIGTERM or SIGINT stops claiming and exits cleanly."""

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await run_worker(stop)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())
    return 0
