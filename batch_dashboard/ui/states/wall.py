"""/wall?token=…: a wall screen links to its workspace's shared WallLive state."""

from __future__ import annotations

import reflex as rx

from batch_dashboard.db import session_scope
from batch_dashboard.services import wall
from batch_dashboard.ui.states import live
from batch_dashboard.ui.states.base import in_thread
from batch_dashboard.ui.states.live import WallLive


class WallState(rx.State):
    checked: bool = False
    refused: bool = False
    workspace_name: str = ""

    @rx.event
    async def open(self):
        token = self.router.url.query_parameters.get("token", "")

        def check() -> tuple[str, str] | None:
            with session_scope() as session:
                return wall.workspace_for_token(session, token=token)

        found = await in_thread(check)
        self.checked = True
        if found is None:
            self.refused = True
            return
        workspace_id, self.workspace_name = found
        self.refused = False
        shared = await self.get_state(WallLive)
        link = live.wall_token(workspace_id)
        shared = await shared._link_to(link)
        live.remember_wall(link, workspace_id)
        if not shared.loaded:
            live.apply_wall(shared, await in_thread(live.wall_snapshot, workspace_id))
