"""Settings → Wall screens: create (the link is shown once), list, revoke."""

from __future__ import annotations

import dataclasses
from typing import Any

import reflex as rx

from batch_dashboard.clock import to_rfc3339
from batch_dashboard.db import session_scope
from batch_dashboard.services import wall
from batch_dashboard.services.errors import DomainError
from batch_dashboard.ui.states.base import current_workspace, error_text, in_thread


@dataclasses.dataclass
class WallTokenRow:
    id: str = ""
    prefix: str = ""
    label: str = ""
    created_at: str = ""
    revoked: bool = False


def load_wall_tokens(workspace_id: str) -> list[WallTokenRow]:
    with session_scope() as session:
        return [
            WallTokenRow(
                t.id, t.prefix, t.label, to_rfc3339(t.created_at) or "", t.revoked_at is not None
            )
            for t in wall.list_wall_tokens(session, workspace_id=workspace_id)
        ]


class WallTokensState(rx.State):
    tokens: list[WallTokenRow] = []
    # The new wall link, shown once.
    new_link: str = ""
    error: str = ""

    @rx.event
    async def open(self):
        workspace_id = await current_workspace(self)
        self.new_link, self.error = "", ""
        if workspace_id:
            self.tokens = await in_thread(load_wall_tokens, workspace_id)

    @rx.event
    async def create(self, form: dict[str, Any]):
        workspace_id = await current_workspace(self)
        label = str(form.get("wall_label", ""))

        def make() -> str:
            with session_scope(write=True) as session:
                return wall.create_wall_token(session, workspace_id=workspace_id, label=label).token

        try:
            token = await in_thread(make)
        except DomainError as error:
            self.error = error_text(error)
            return
        origin = self.router.url.origin or ""
        self.new_link, self.error = f"{origin}/wall?token={token}", ""
        self.tokens = await in_thread(load_wall_tokens, workspace_id)

    @rx.event
    async def revoke(self, token_id: str):
        workspace_id = await current_workspace(self)

        def revoke() -> None:
            with session_scope(write=True) as session:
                wall.revoke_wall_token(session, workspace_id=workspace_id, token_id=token_id)

        try:
            await in_thread(revoke)
        except DomainError as error:
            yield rx.toast.error(error_text(error))
            return
        self.tokens = await in_thread(load_wall_tokens, workspace_id)
        yield rx.toast.success("Wall screen link revoked")

    @rx.event
    def dismiss_link(self) -> None:
        self.new_link = ""
