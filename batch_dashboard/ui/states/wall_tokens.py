"""Settings → Wall screens: create (the link is shown once), list, revoke."""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any

import reflex as rx
from sqlmodel import Session

from batch_dashboard.clock import to_rfc3339
from batch_dashboard.services import wall
from batch_dashboard.services.errors import DomainError
from batch_dashboard.ui.states.base import error_text, read, signed_in, write


@dataclasses.dataclass
class WallTokenRow:
    id: str = ""
    prefix: str = ""
    label: str = ""
    created_at: str = ""
    revoked: bool = False


def load_wall_tokens(session: Session, *, workspace_id: str) -> list[WallTokenRow]:
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
    @signed_in
    async def open(self):
        self.new_link, self.error = "", ""
        self.tokens = await read(self, load_wall_tokens)

    @rx.event
    @signed_in
    async def create(self, form: dict[str, Any]):
        label = str(form.get("wall_label", ""))
        try:
            issued = await write(self, partial(wall.create_wall_token, label=label))
        except DomainError as error:
            self.error = error_text(error)
            return
        origin = self.router.url.origin or ""
        self.new_link, self.error = f"{origin}/wall?token={issued.token}", ""
        self.tokens = await read(self, load_wall_tokens)

    @rx.event
    @signed_in
    async def revoke(self, token_id: str):
        try:
            await write(self, partial(wall.revoke_wall_token, token_id=token_id))
        except DomainError as error:
            yield rx.toast.error(error_text(error))
            return
        self.tokens = await read(self, load_wall_tokens)
        yield rx.toast.success("Wall screen link revoked")

    @rx.event
    def dismiss_link(self) -> None:
        self.new_link = ""
