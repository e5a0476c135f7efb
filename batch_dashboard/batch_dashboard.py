"""The Reflex app: the console pages plus the /v1 API on one port."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import reflex as rx

from batch_dashboard.api.app import create_api
from batch_dashboard.logs import configure_logging
from batch_dashboard.services import phones
from batch_dashboard.settings import get_settings
from batch_dashboard.ui.pages.landing import landing
from batch_dashboard.worker.main import run_worker

configure_logging()
log = logging.getLogger(__name__)


@asynccontextmanager
async def validation_pool() -> AsyncIterator[None]:
    """Start the number-validation processes before the first large upload needs them."""
    try:
        await asyncio.to_thread(phones.warm_pool)
    except (OSError, RuntimeError):
        log.warning("number validation pool unavailable; large batches validate on one core")
    try:
        yield
    finally:
        await asyncio.to_thread(phones.shutdown_pool)


@asynccontextmanager
async def embedded_worker() -> AsyncIterator[None]:
    """BATCH_DIALER=embedded: dialer, scheduler and webhook delivery live in this backend."""
    if get_settings().dialer != "embedded":
        yield
        return
    stop = asyncio.Event()
    task = asyncio.create_task(run_worker(stop), name="embedded-worker")
    try:
        yield
    finally:
        stop.set()
        try:
            await asyncio.wait_for(task, timeout=get_settings().shutdown_grace_seconds + 10)
        except (TimeoutError, asyncio.CancelledError):
            log.warning("embedded worker did not stop in time")


app = rx.App(api_transformer=create_api())
app.add_page(landing, route="/", title="Batch calls")
app.register_lifespan_task(validation_pool)
app.register_lifespan_task(embedded_worker)
