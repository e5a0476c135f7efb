"""/wall?token=…: a wall screen links to its workspace's shared WallLive state.

A wall screen has no signed-in viewer: its link's token is its credential, checked on open and
by every heartbeat, so it runs its units of work through `anonymous`.
"""

from __future__ import annotations

from functools import partial

import reflex as rx

from batch_dashboard.services import wall
from batch_dashboard.ui.states import live
from batch_dashboard.ui.states.base import anonymous, in_thread
from batch_dashboard.ui.states.wall_live import apply_wall, wall_snapshot, wall_token


class WallState(rx.State):
    checked: bool = False
    refused: bool = False
    workspace_name: str = ""

    async def _check(self) -> tuple[str, str] | None:
        """The link's workspace (id, name), or None once the link is unknown or revoked."""
        token = self.router.url.query_parameters.get("token", "")
        return await anonymous(partial(wall.workspace_for_token, token=token))

    @rx.event
    async def heartbeat(self, _now: str = ""):
        """The screen is still open: keep it polled, and blank it once its link is revoked."""
        if self.refused:
            return
        found = await self._check()
        if found is None:
            self.refused = True
            return
        workspace_id, _name = found
        live.watch(wall_token(workspace_id))

    @rx.event
    async def open(self):
        found = await self._check()
        self.checked = True
        if found is None:
            self.refused = True
            return
        workspace_id, self.workspace_name = found
        self.refused = False
        shared = await live.link_wall(self, workspace_id)
        if not shared.loaded:
            apply_wall(shared, await in_thread(wall_snapshot, workspace_id))
