"""Live pages at a constant cost: one backend loop per process polls the change markers of the
things being watched and writes them into shared states, which Reflex fans out to every tab
linked to them. Ten people watching a batch cost one poll a second, not ten.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from typing import Any

import reflex as rx

from batch_dashboard.db import is_unreachable, session_scope
from batch_dashboard.services import batches
from batch_dashboard.ui.states import rows, wall_live
from batch_dashboard.ui.states.changes import assign_changed
from batch_dashboard.ui.states.rows import BatchRow, RecipientRow, Snapshot
from batch_dashboard.ui.states.wall_live import WallLive

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5
FORGET_AFTER_SECONDS = 600  # a token nobody opened for ten minutes is no longer polled
# Open tabs say so this often (a timer in the page: a closed tab stops, so its token is
# forgotten after FORGET_AFTER_SECONDS and no longer polled).
HEARTBEAT_MS = 60_000


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


# What the shared states last received, in this process's memory: batch id → (version, total)
# and workspace id → marker, for the tabs' follow loops. After any event of a tab linked to a
# shared state, Reflex re-sends that state's last changed vars (a batch's first page: ~17 kB)
# to every other tab linked to it; follow loops that entered their state every tick to read
# the shared one made n tabs receive n copies a tick each (bench/console.py: ~10 frames a
# second per tab with 5 tabs). With these the loops enter their state only when their own
# view must change (BatchDetailState.follow).
batch_seen: dict[str, tuple[int, int]] = {}
workspace_seen: dict[str, str] = {}


def apply_snapshot(shared: BatchLive, snapshot: Snapshot) -> None:
    """A `batch_snapshot` into the batch's shared state. Every process with a tab on the batch
    writes there (the poller, and a tab's own pause/resume/cancel; several backends and web
    workers when scaled out): one that read before another wrote must not put older numbers
    back. Versions only grow; calls per minute move with time at the same version."""
    if snapshot.version > shared.version:
        shared.batch = snapshot.batch
        # The counters move the version on every tick of a running batch, while its first page
        # stays the same once its 50 calls have ended.
        assign_changed(shared, first_page=snapshot.first_page)
    elif snapshot.version == shared.version and snapshot.batch.time_left != shared.batch.time_left:
        # The estimate moves with time, like calls per minute.
        shared.batch = dataclasses.replace(shared.batch, time_left=snapshot.batch.time_left)
    if snapshot.version >= shared.version:
        shared.version, shared.calls_per_minute = snapshot.version, snapshot.calls_per_minute
    if shared.batch.id:
        batch_seen[shared.batch.id] = (shared.version, shared.batch.total)


# --- what is watched (this process's tabs only: each process serves its own) ------------------

# token → when a tab last linked to it or said it is still open
watched: dict[str, float] = {}
_workspace_of_token: dict[str, str] = {}
_batch_of_token: dict[str, tuple[str, str]] = {}
_wall_of_token: dict[str, str] = {}


def batch_token(batch_id: str) -> str:
    return "batch-" + batch_id.replace("_", "-")  # link tokens cannot contain "_"


def workspace_token(workspace_id: str) -> str:
    return "ws-" + workspace_id.replace("_", "-")


def watch(token: str) -> None:
    """A tab linked to `token` is still open (its link, or its heartbeat). A heartbeat names the
    token from the tab's own state, never by loading the shared state: after any event that
    loaded a shared state, Reflex re-sends its last changes (a batch's first page, ~17 kB) to
    every other tab linked to it, so n tabs' heartbeats made n² frames (bench/console.py)."""
    watched[token] = time.monotonic()


async def link_workspace(state: rx.State, workspace_id: str) -> WorkspaceLive:
    """Link the tab to its workspace's shared batch list, and have it polled."""
    token = workspace_token(workspace_id)
    shared = await (await state.get_state(WorkspaceLive))._link_to(token)
    _workspace_of_token[token] = workspace_id
    watch(token)
    return shared


async def link_batch(state: rx.State, workspace_id: str, batch_id: str) -> BatchLive:
    token = batch_token(batch_id)
    shared = await (await state.get_state(BatchLive))._link_to(token)
    _batch_of_token[token] = (workspace_id, batch_id)
    watch(token)
    return shared


async def link_wall(state: rx.State, workspace_id: str) -> WallLive:
    token = wall_live.wall_token(workspace_id)
    shared = await (await state.get_state(WallLive))._link_to(token)
    _wall_of_token[token] = workspace_id
    watch(token)
    return shared


def heartbeat(event: Any) -> rx.Component:
    """An invisible timer that sends `event` every HEARTBEAT_MS while the page is open."""
    return rx.moment(interval=HEARTBEAT_MS, on_change=event, display="none")


# --- the poller --------------------------------------------------------------------------------


async def live_updates(app: rx.App) -> None:
    """The one poller of this process (a lifespan task)."""
    known: dict[str, Any] = {}
    tick = 0
    unreachable = False  # said once per outage, not once a second
    while True:
        await asyncio.sleep(POLL_SECONDS)
        tick += 1
        now = time.monotonic()
        for token in [t for t, seen in watched.items() if now - seen > FORGET_AFTER_SECONDS]:
            watched.pop(token, None)
            known.pop(token, None)
            if token in _batch_of_token:
                batch_seen.pop(_batch_of_token[token][1], None)
        try:
            await _push_workspaces(app, known)
            await _push_batches(app, known)
            if tick % 2 == 0:
                await wall_live.push_walls(app, _watched(_wall_of_token))
        except Exception as error:  # keep the loop alive through a database hiccup
            if not is_unreachable(error):
                log.exception("live updates failed; retrying")
                continue
            if not unreachable:
                log.warning("live updates paused: database unreachable")
            unreachable = True
        else:
            unreachable = False


def _watched(tokens: dict[str, Any]) -> dict[str, Any]:
    return {token: tokens[token] for token in watched if token in tokens}


def _workspace_markers(tokens: dict[str, str]) -> dict[str, str]:
    with session_scope() as session:
        return {
            token: batches.workspace_marker(session, workspace_id=workspace_id)
            for token, workspace_id in tokens.items()
        }


def _list_rows(workspace_id: str) -> list[BatchRow]:
    with session_scope() as session:
        return rows.list_rows(session, workspace_id=workspace_id, status=None)


def _batch_versions(batch_ids: list[str]) -> dict[str, int]:
    with session_scope() as session:
        return batches.versions(session, batch_ids=batch_ids)


def _batch_snapshot(workspace_id: str, batch_id: str) -> Snapshot:
    with session_scope() as session:
        return rows.batch_snapshot(session, workspace_id=workspace_id, batch_id=batch_id)


async def _push_workspaces(app: rx.App, known: dict[str, Any]) -> None:
    workspaces = _watched(_workspace_of_token)
    if not workspaces:
        return
    markers = await asyncio.to_thread(_workspace_markers, workspaces)
    for token, marker in markers.items():
        if known.get(token) == marker:
            continue
        listed = await asyncio.to_thread(_list_rows, workspaces[token])
        async with app.modify_state(rx.BaseStateToken(ident=token, cls=WorkspaceLive)) as root:
            live = await root.get_state(WorkspaceLive)
            live.marker, live.rows, live.loaded = marker, listed, True
        known[token] = marker
        workspace_seen[workspaces[token]] = marker


async def _push_batches(app: rx.App, known: dict[str, Any]) -> None:
    batch_tokens = _watched(_batch_of_token)
    if not batch_tokens:
        return
    versions = await asyncio.to_thread(_batch_versions, [b for _, b in batch_tokens.values()])
    for token, (workspace_id, batch_id) in batch_tokens.items():
        version = versions.get(batch_id)
        previous = known.get(token)
        running = isinstance(previous, tuple) and previous[1] == "running"
        # Calls per minute slides with time, so a running batch is refreshed every tick.
        if version is None or (previous and previous[0] == version and not running):
            continue
        snapshot = await asyncio.to_thread(_batch_snapshot, workspace_id, batch_id)
        state = (
            snapshot.version,
            snapshot.batch.status,
            snapshot.calls_per_minute,
            snapshot.batch.time_left,
        )
        if previous == state:
            continue
        async with app.modify_state(rx.BaseStateToken(ident=token, cls=BatchLive)) as root:
            apply_snapshot(await root.get_state(BatchLive), snapshot)
        known[token] = state
