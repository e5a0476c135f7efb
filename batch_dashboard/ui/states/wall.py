"""/wall?token=…: a wall screen links to its workspace's shared WallLive state."""

from __future__ import annotations

import reflex as rx

from batch_dashboard.db import session_scope
from batch_dashboard.services import wall
from batch_dashboard.ui.states import live, wall_live
from batch_dashboard.ui.states.base import in_thread
from batch_dashboard.ui.states.wall_live import WallLive


class WallState(rx.State):
    checked: bool = False
    refused: bool = False
    workspace_name: str = ""

    async def _check(self) -> tuple[str, str] | None:
        token = self.router.url.query_parameters.get("token", "")

        def check() -> tuple[str, str] | None:
            with session_scope() as session:
                return wall.workspace_for_token(session, token=token)

        return await in_thread(check)

    @rx.event
    async def heartbeat(self, _now: str = ""):
        """The screen is still open: keep it polled, and blank it once its link is revoked."""
        if self.refused:
            return
        if await self._check() is None:
            self.refused = True
            return
        await live.keep_watching(self, WallLive)

    @rx.event
    async def open(self):
        found = await self._check()
        self.checked = True
        if found is None:
            self.refused = True
            return
        workspace_id, self.workspace_name = found
        self.refused = False
        shared = await self.get_state(WallLive)
        link = wall_live.wall_token(workspace_id)
        shared = await shared._link_to(link)
        live.remember_wall(link, workspace_id)
        if not shared.loaded:
            wall_live.apply_wall(shared, await in_thread(wall_live.wall_snapshot, workspace_id))
