"""/do-not-call: the list, a number added by hand, a CSV imported, a number removed."""

from __future__ import annotations

import dataclasses
from typing import Any

import reflex as rx

from batch_dashboard.db import session_scope
from batch_dashboard.services import dnc, phones, recipients
from batch_dashboard.services.errors import DomainError
from batch_dashboard.settings import get_settings
from batch_dashboard.ui.states.base import current_workspace, error_text, in_thread

SHOWN = 500


@dataclasses.dataclass
class DoNotCallRow:
    phone: str = ""
    shown: str = ""
    reason: str = ""
    source: str = ""
    created_at: str = ""


def load_entries(workspace_id: str) -> list[DoNotCallRow]:
    with session_scope() as session:
        page = dnc.list_entries(session, workspace_id=workspace_id, limit=SHOWN)["do_not_call"]
    return [
        DoNotCallRow(
            e["phone"],
            phones.for_people(e["phone"]),
            e["reason"],
            e["source"],
            e["created_at"] or "",
        )
        for e in page
    ]


class DoNotCallState(rx.State):
    rows: list[DoNotCallRow] = []
    loaded: bool = False
    error: str = ""
    importing: bool = False

    @rx.event
    async def open(self):
        workspace_id = await current_workspace(self)
        if workspace_id:
            self.rows, self.loaded, self.error = (
                await in_thread(load_entries, workspace_id),
                True,
                "",
            )

    @rx.event
    async def add(self, form: dict[str, Any]):
        workspace_id = await current_workspace(self)
        phone, reason = str(form.get("dnc_phone", "")), str(form.get("dnc_reason", ""))

        def add() -> None:
            with session_scope(write=True) as session:
                dnc.add(
                    session, workspace_id=workspace_id, phone=phone, reason=reason, source="console"
                )

        try:
            await in_thread(add)
        except DomainError as error:
            self.error = error_text(error)
            return
        self.error = ""
        self.rows = await in_thread(load_entries, workspace_id)
        yield rx.toast.success("Added to the do-not-call list")

    @rx.event
    async def import_csv(self, files: list[rx.UploadFile]):
        if not files:
            return
        workspace_id = await current_workspace(self)
        upload = files[0]
        self.importing = True
        yield
        settings = get_settings()

        def load() -> tuple[int, int]:
            rows = recipients.validate(
                recipients.from_csv(
                    upload.file,
                    max_recipients=settings.max_recipients_per_batch,
                    max_bytes=settings.max_upload_bytes,
                )
            )
            with session_scope(write=True) as session:
                added = dnc.import_rows(
                    session, workspace_id=workspace_id, rows=rows, reason="Imported"
                )
            return added, len(rows.invalid_rows)

        try:
            added, skipped = await in_thread(load)
        except DomainError as error:
            self.importing, self.error = False, error_text(error)
            return
        self.importing, self.error = False, ""
        self.rows = await in_thread(load_entries, workspace_id)
        note = f"; {skipped} invalid row{'s' if skipped != 1 else ''} skipped" if skipped else ""
        yield rx.toast.success(f"Added {added} number{'s' if added != 1 else ''}{note}")

    @rx.event
    async def remove(self, phone: str):
        workspace_id = await current_workspace(self)

        def remove() -> None:
            with session_scope(write=True) as session:
                dnc.remove(session, workspace_id=workspace_id, phone=phone)

        try:
            await in_thread(remove)
        except DomainError as error:
            yield rx.toast.error(error_text(error))
            return
        self.rows = await in_thread(load_entries, workspace_id)
