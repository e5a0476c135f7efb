"""Live pages at a constant cost: one backend loop per process polls the change markers of the
things being watched and writes them into shared states, which Reflex fans out to every tab
linked to them. Ten people watching a batch cost one poll a second, not ten.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import reflex as rx

from batch_dashboard.db import session_scope
from batch_dashboard.services import batches
from batch_dashboard.ui.states import wall_live
from batch_dashboard.ui.states.rows import BatchRow, RecipientRow, batch_snapshot, list_rows

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5
FORGET_AFTER_SECONDS = 600  # a token nobody opened for ten minutes is no longer polled

# token → when a tab last linked to it (this process's tabs only: each process serves its own).
watched: dict[str, float] = {}


def batch_token(batch_id: str) -> str:
    return "batch-" + batch_id.replace("_", "-")  # link tokens cannot contain "_"


def workspace_token(workspace_id: str) -> str:
    return "ws-" + workspace_id.replace("_", "-")


def watch(token: str) -> None:
    watched[token] = time.monotonic()


# Open tabs say so this often (a timer in the page: a closed tab stops, so its token is
# forgotten after FORGET_AFTER_SECONDS and no longer polled).
HEARTBEAT_MS = 60_000


async def keep_watching(state: rx.State, shared_class: type[rx.SharedState]) -> None:
    shared = await state.get_state(shared_class)
    if shared._linked_to:
        watch(shared._linked_to)


def heartbeat(event: Any) -> rx.Component:
    """An invisible timer that sends `event` every HEARTBEAT_MS while the page is open."""
    return rx.moment(interval=HEARTBEAT_MS, on_change=event, display="none")


def apply_snapshot(shared: BatchLive, snapshot: tuple[Any, ...]) -> None:
    """A `batch_snapshot` into the batch's shared state. Every process with a tab on the batch
    writes there (the poller, and a tab's own pause/resume/cancel; several backends and web
    workers when scaled out): one that read before another wrote must not put older numbers
    back. Versions only grow; calls per minute move with time at the same version."""
    row, first_page, per_minute, version = snapshot
    if version > shared.version:
        shared.batch, shared.first_page = row, first_page
    if version >= shared.version:
        shared.version, shared.calls_per_minute = version, per_minute


class WorkspaceLive(rx.SharedState):
    """The newest batches of one workspace, as every viewer of /batches sees them."""

    marker: str = ""
    rows: list[BatchRow] = []
    loaded: bool = False


class BatchLive(rx.SharedState):
    """One batch as every viewer of its page sees it."""

    batch: BatchRow = BatchRow()
    first_page: list[RecipientRow] = []
    calls_per_minute: int = 0
    version: int = -1
    missing: bool = False


def _workspace_markers(tokens: dict[str, str]) -> dict[str, str]:
    with session_scope() as session:
        return {
            token: batches.workspace_marker(session, workspace_id=workspace_id)
            for token, workspace_id in tokens.items()
        }


def _batch_versions(batch_ids: list[str]) -> dict[str, int]:
    with session_scope() as session:
        return batches.versions(session, batch_ids=batch_ids)


async def live_updates(app: rx.App) -> None:
    """The one poller of this process (a lifespan task)."""
    known: dict[str, Any] = {}
    tick = 0
    while True:
        await asyncio.sleep(POLL_SECONDS)
        tick += 1
        now = time.monotonic()
        for token in [t for t, seen in watched.items() if now - seen > FORGET_AFTER_SECONDS]:
            watched.pop(token, None)
            known.pop(token, None)
        try:
            await _push_changes(app, known)
            if tick % 2 == 0:
                await wall_live.push_walls(
                    app, {t: _wall_of_token[t] for t in watched if t in _wall_of_token}
                )
        except Exception:  # keep the loop alive through a database hiccup
            log.exception("live updates failed; retrying")


_workspace_of_token: dict[str, str] = {}
_batch_of_token: dict[str, tuple[str, str]] = {}


def remember_workspace(token: str, workspace_id: str) -> None:
    _workspace_of_token[token] = workspace_id
    watch(token)


def remember_batch(token: str, workspace_id: str, batch_id: str) -> None:
    _batch_of_token[token] = (workspace_id, batch_id)
    watch(token)


async def _push_changes(app: rx.App, known: dict[str, Any]) -> None:
    workspaces = {t: _workspace_of_token[t] for t in watched if t in _workspace_of_token}
    batch_tokens = {t: _batch_of_token[t] for t in watched if t in _batch_of_token}
    if workspaces:
        markers = await asyncio.to_thread(_workspace_markers, workspaces)
        for token, marker in markers.items():
            if known.get(token) != marker:
                rows = await asyncio.to_thread(list_rows, workspaces[token], status=None)
                async with app.modify_state(
                    rx.BaseStateToken(ident=token, cls=WorkspaceLive)
                ) as root:
                    live = await root.get_state(WorkspaceLive)
                    live.marker, live.rows, live.loaded = marker, rows, True
                known[token] = marker
    if batch_tokens:
        versions = await asyncio.to_thread(_batch_versions, [b for _, b in batch_tokens.values()])
        for token, (workspace_id, batch_id) in batch_tokens.items():
            version = versions.get(batch_id)
            previous = known.get(token)
            running = isinstance(previous, tuple) and previous[1] == "running"
            # Calls per minute slides with time, so a running batch is refreshed every tick.
            if version is None or (previous and previous[0] == version and not running):
                continue
            row, first_page, per_minute, version = await asyncio.to_thread(
                batch_snapshot, workspace_id, batch_id
            )
            state = (version, row.status, per_minute)
            if previous == state:
                continue
            async with app.modify_state(rx.BaseStateToken(ident=token, cls=BatchLive)) as root:
                apply_snapshot(
                    await root.get_state(BatchLive), (row, first_page, per_minute, version)
                )
            known[token] = state


_wall_of_token: dict[str, str] = {}


def remember_wall(token: str, workspace_id: str) -> None:
    _wall_of_token[token] = workspace_id
    watch(token)
