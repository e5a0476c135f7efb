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

from batch_dashboard.clock import system_clock
from batch_dashboard.db import session_scope
from batch_dashboard.services import agents, batches, phones
from batch_dashboard.ui.styles import failure_words

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5
FORGET_AFTER_SECONDS = 600  # a token nobody opened for ten minutes is no longer polled
FIRST_PAGE = 50

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


@dataclasses.dataclass
class BatchRow:
    id: str = ""
    name: str = ""
    agent_name: str = ""
    status: str = ""
    total: int = 0
    pending: int = 0
    dialing: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    done: int = 0
    created_at: str = ""
    scheduled_at: str = ""
    started_at: str = ""
    finished_at: str = ""
    caller_number: str = ""
    ringing_timeout_s: int = 0
    paused: bool = False
    max_concurrency: int = 0


@dataclasses.dataclass
class RecipientRow:
    id: str = ""
    phone: str = ""
    phone_e164: str = ""
    status: str = ""
    failure: str = ""
    attempts: int = 0
    started_at: str = ""
    ended_at: str = ""
    duration: str = ""
    conversation_id: str = ""
    variables: str = ""


def batch_row(public: dict[str, Any], agent_name: str = "", caller: str = "") -> BatchRow:
    counts = public["counts"]
    return BatchRow(
        id=public["id"],
        name=public["name"],
        agent_name=agent_name,
        status=public["status"],
        total=public["total_recipients"],
        pending=counts["pending"],
        dialing=counts["dialing"],
        completed=counts["completed"],
        failed=counts["failed"],
        cancelled=counts["cancelled"],
        done=counts["completed"] + counts["failed"],
        created_at=public["created_at"] or "",
        scheduled_at=public["scheduled_at"] or "",
        started_at=public["started_at"] or "",
        finished_at=public["finished_at"] or "",
        caller_number=caller,
        ringing_timeout_s=public["ringing_timeout_ms"] // 1000,
        paused=public["paused"],
        max_concurrency=public["max_concurrency"] or 0,
    )


def recipient_row(item: dict[str, Any]) -> RecipientRow:
    variables = item["dynamic_vars"]
    return RecipientRow(
        id=item["id"],
        phone=phones.for_people(item["phone"]),
        phone_e164=item["phone"],
        status=item["status"],
        failure=failure_words(item["failure_reason"]),
        attempts=item["attempts"],
        started_at=item["started_at"] or "",
        ended_at=item["ended_at"] or "",
        duration="" if item["duration_seconds"] is None else f"{item['duration_seconds']:.0f} s",
        conversation_id=item["conversation_id"] or "",
        variables=", ".join(f"{k}: {v}" for k, v in variables.items()),
    )


def list_rows(workspace_id: str, *, status: str | None, limit: int = 50) -> list[BatchRow]:
    with session_scope() as session:
        page = batches.list_batches(session, workspace_id=workspace_id, limit=limit, status=status)
        names = {a.id: a.name for a in agents.list_agents(session, workspace_id=workspace_id)}
    return [
        batch_row(item, names.get(item["agent_id"], "Deleted agent"))
        for item in page["batch_calls"]
    ]


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


def batch_snapshot(
    workspace_id: str, batch_id: str
) -> tuple[BatchRow, list[RecipientRow], int, int]:
    """The batch, its first page of recipients, its calls per minute and its version."""
    with session_scope() as session:
        batch = batches.get_batch(session, workspace_id=workspace_id, batch_id=batch_id)
        public = batches.batch_public(batch)
        agent = session.get(agents.Agent, batch.agent_id)
        number = batches.caller_number(session, batch=batch)
        page, _total = batches.recipients_page(
            session, workspace_id=workspace_id, batch_id=batch_id, limit=FIRST_PAGE
        )
        per_minute = batches.calls_per_minute(session, batch_id=batch_id, now=system_clock.now())
        version = batch.version
    row = batch_row(
        public,
        agent.name if agent else "Deleted agent",
        phones.for_people(number.phone_number) if number else "—",
    )
    return row, [recipient_row(item) for item in page], per_minute, version


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
                await _push_walls(app)
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


# --- the wall screen ---------------------------------------------------------------------------


@dataclasses.dataclass
class WallBatch:
    id: str = ""
    name: str = ""
    agent_name: str = ""
    status: str = ""
    total: int = 0
    done: int = 0
    percent: int = 0
    dialing: int = 0
    eta: str = ""
    scheduled_at: str = ""


def _eta_words(seconds: int | None) -> str:
    if seconds is None:
        return ""
    if seconds < 90:
        return "under 2 min left"
    if seconds < 3600:
        return f"~{round(seconds / 60)} min left"
    return f"~{seconds // 3600} h {round(seconds % 3600 / 60)} min left"


class WallLive(rx.SharedState):
    """One workspace's calling, as every wall screen of it shows it."""

    batches: list[WallBatch] = []
    more_batches: int = 0
    placed: int = 0
    connected: int = 0
    failed: int = 0
    connect_rate: int = 0
    chart: list[dict[str, Any]] = []
    updated_at: str = ""
    loaded: bool = False


def wall_token(workspace_id: str) -> str:
    return "wall-" + workspace_id.replace("_", "-")


def wall_snapshot(workspace_id: str) -> dict[str, Any]:
    from batch_dashboard.services import wall

    with session_scope() as session:
        return wall.snapshot(session, workspace_id=workspace_id, now=system_clock.now())


def apply_wall(live: WallLive, data: dict[str, Any]) -> None:
    live.batches = [
        WallBatch(
            id=b["id"],
            name=b["name"],
            agent_name=b["agent_name"],
            status=b["status"],
            total=b["total"],
            done=b["done"],
            percent=b["percent"],
            dialing=b["dialing"],
            eta=_eta_words(b["eta_seconds"]),
            scheduled_at=b["scheduled_at"] or "",
        )
        for b in data["batches"]
    ]
    live.more_batches = data["more_batches"]
    live.placed, live.connected, live.failed = data["placed"], data["connected"], data["failed"]
    live.connect_rate = data["connect_rate"]
    live.chart = data["chart"]
    live.updated_at = data["updated_at"]
    live.loaded = True


_wall_of_token: dict[str, str] = {}


def remember_wall(token: str, workspace_id: str) -> None:
    _wall_of_token[token] = workspace_id
    watch(token)


async def _push_walls(app: rx.App) -> None:
    # Walls refresh every tick whatever changed: the clock and the chart move on their own, and
    # a snapshot costs the same for 10 batches or 10,000 recipients.
    for token in [t for t in watched if t in _wall_of_token]:
        data = await asyncio.to_thread(wall_snapshot, _wall_of_token[token])
        async with app.modify_state(rx.BaseStateToken(ident=token, cls=WallLive)) as root:
            apply_wall(await root.get_state(WallLive), data)
