"""The Reflex app: the console pages plus the /v1 API on one port."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import reflex as rx
from starlette.types import ASGIApp

from batch_dashboard import sealing
from batch_dashboard.api.app import NewlinePaths, create_api
from batch_dashboard.logs import configure_logging
from batch_dashboard.services import phones
from batch_dashboard.settings import get_settings
from batch_dashboard.ui.pages.agents import agents_page
from batch_dashboard.ui.pages.batches import batch_detail_page, batches_page
from batch_dashboard.ui.pages.dnc import dnc_page
from batch_dashboard.ui.pages.landing import front_door, not_found
from batch_dashboard.ui.pages.login import login
from batch_dashboard.ui.pages.new_batch import new_batch_page
from batch_dashboard.ui.pages.numbers import numbers_page
from batch_dashboard.ui.pages.settings import settings_page
from batch_dashboard.ui.pages.wall import wall_page
from batch_dashboard.ui.states.admin import AgentsState, NumbersState, SettingsState
from batch_dashboard.ui.states.base import AuthState
from batch_dashboard.ui.states.batches import BatchDetailState, BatchesState
from batch_dashboard.ui.states.connections import ConnectionsState
from batch_dashboard.ui.states.dnc import DoNotCallState
from batch_dashboard.ui.states.live import live_updates
from batch_dashboard.ui.states.members import MembersState
from batch_dashboard.ui.states.new_batch import NewBatchState
from batch_dashboard.ui.states.wall import WallState
from batch_dashboard.ui.states.wall_tokens import WallTokensState
from batch_dashboard.worker.main import run_worker

configure_logging()
log = logging.getLogger(__name__)


@asynccontextmanager
async def secret_key_check() -> AsyncIterator[None]:
    """Refuse to start without a key that seals webhook secrets, rather than fail per request."""
    sealing.cipher()
    yield


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


class App(rx.App):
    def __call__(self) -> ASGIApp:
        # The server builds the ASGI app by calling this; NewlinePaths must wrap all of it.
        return NewlinePaths(super().__call__())


app = App(api_transformer=create_api(), toaster=rx.toast.provider(position="bottom-right"))
app.add_page(front_door, route="/", title="Batch calls", on_load=AuthState.open_front_door)
app.add_page(not_found, route="404", title="Page not found · Batch calls")
app.add_page(
    login, route="/login", title="Sign in · Batch calls", on_load=AuthState.redirect_if_signed_in
)
app.add_page(
    batches_page,
    route="/batches",
    title="Batch calls",
    on_load=[AuthState.require_login, BatchesState.open],
)
app.add_page(
    new_batch_page,
    route="/batches/new",
    title="New batch · Batch calls",
    on_load=[AuthState.require_login, NewBatchState.open],
)
app.add_page(
    batch_detail_page,
    route="/batches/[batch_id]",
    title="Batch · Batch calls",
    on_load=[AuthState.require_login, BatchDetailState.open],
)
app.add_page(
    agents_page,
    route="/agents",
    title="Agents · Batch calls",
    on_load=[AuthState.require_login, AgentsState.open],
)
app.add_page(
    numbers_page,
    route="/phone-numbers",
    title="Phone numbers · Batch calls",
    on_load=[AuthState.require_login, NumbersState.open],
)
app.add_page(
    settings_page,
    route="/settings",
    title="Settings · Batch calls",
    on_load=[
        AuthState.require_login,
        ConnectionsState.open,
        SettingsState.open,
        MembersState.open,
        WallTokensState.open,
    ],
)
app.add_page(
    dnc_page,
    route="/do-not-call",
    title="Do not call · Batch calls",
    on_load=[AuthState.require_login, DoNotCallState.open],
)
app.add_page(wall_page, route="/wall", title="Wall · Batch calls", on_load=WallState.open)
app.register_lifespan_task(secret_key_check)
app.register_lifespan_task(validation_pool)
app.register_lifespan_task(embedded_worker)
app.register_lifespan_task(live_updates)
