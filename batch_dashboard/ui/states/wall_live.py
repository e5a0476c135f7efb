"""The wall screen's data: one shared state per workspace, which the poller (`live.py`)
refreshes for every wall screen of it at once."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import reflex as rx

from batch_dashboard.clock import system_clock
from batch_dashboard.db import session_scope
from batch_dashboard.services import wall
from batch_dashboard.ui.states.changes import assign_changed


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
    # Paused by its circuit breaker: why, in words.
    breaker: str = ""


class WallLive(rx.SharedState):
    """One workspace's calling, as every wall screen of it shows it."""

    batches: list[WallBatch] = []
    more_batches: int = 0
    # Calls on the phone now: the header says "calling now" only while there are some.
    live_calls: int = 0
    placed: int = 0
    connected: int = 0
    failed: int = 0
    connect_rate: int = 0
    chart: list[dict[str, Any]] = []
    updated_at: str = ""
    # The workspace's time zone: "today", the chart and the clock are in it, and say so.
    time_zone: str = "UTC"
    loaded: bool = False


def wall_token(workspace_id: str) -> str:
    return "wall-" + workspace_id.replace("_", "-")  # link tokens cannot contain "_"


def _eta_words(seconds: int | None) -> str:
    if seconds is None:
        return ""
    if seconds < 90:
        return "under 2 min left"
    if seconds < 3600:
        return f"~{round(seconds / 60)} min left"
    return f"~{seconds // 3600} h {round(seconds % 3600 / 60)} min left"


def wall_snapshot(workspace_id: str) -> dict[str, Any]:
    """Wall screens have no viewer (their link is the credential): a unit of work of its own."""
    with session_scope() as session:
        return wall.snapshot(session, workspace_id=workspace_id, now=system_clock.now())


# The wall's vars that take the snapshot's value as it is.
_SNAPSHOT_VARS = (
    "more_batches",
    "live_calls",
    "placed",
    "connected",
    "failed",
    "connect_rate",
    "chart",
    "updated_at",
    "time_zone",
)


def apply_wall(live: WallLive, data: dict[str, Any]) -> None:
    """A wall snapshot into the workspace's shared state, which polls every second: while no
    call ends only its clock moves, and the batches, totals and chart go out only when they
    change."""
    assign_changed(
        live,
        batches=[
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
                breaker=b["breaker"],
            )
            for b in data["batches"]
        ],
        loaded=True,
        **{name: data[name] for name in _SNAPSHOT_VARS},
    )


async def push_walls(app: rx.App, walls: dict[str, str]) -> None:
    """Refresh the watched walls (token → workspace) every time, whatever changed: the clock
    and the chart move on their own, and a snapshot costs the same for 10 batches or 10,000
    recipients."""
    for token, workspace_id in walls.items():
        data = await asyncio.to_thread(wall_snapshot, workspace_id)
        async with app.modify_state(rx.BaseStateToken(ident=token, cls=WallLive)) as root:
            apply_wall(await root.get_state(WallLive), data)
