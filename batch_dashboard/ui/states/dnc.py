"""/do-not-call: the list, a number added by hand, a CSV imported, a number removed."""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any, BinaryIO

import reflex as rx
from sqlmodel import Session

from batch_dashboard.services import dnc, phones, recipients
from batch_dashboard.services.errors import DomainError
from batch_dashboard.services.recipients import RecipientRows
from batch_dashboard.settings import get_settings
from batch_dashboard.ui.states.base import error_text, in_thread, read, signed_in, write

SHOWN = 500


@dataclasses.dataclass
class DoNotCallRow:
    phone: str = ""
    shown: str = ""
    reason: str = ""
    source: str = ""
    created_at: str = ""


def load_entries(session: Session, *, workspace_id: str) -> list[DoNotCallRow]:
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


def read_csv(file: BinaryIO) -> RecipientRows:
    """An uploaded list, read and checked like a batch's recipients (no workspace data)."""
    settings = get_settings()
    return recipients.checked_csv(
        file,
        max_recipients=settings.max_recipients_per_batch,
        max_bytes=settings.max_upload_bytes,
        parallel_from=settings.parallel_validation_threshold,
    )


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'s' if count != 1 else ''}"


def _in_words(error: DomainError) -> str:
    """The form has one number field: its message without the API's field path."""
    details = getattr(error, "details", None) or []
    if details:
        return "; ".join(
            ("Reason " if d["loc"][-1:] == ["reason"] else "This number ") + d["message"]
            for d in details[:3]
        )
    return error_text(error)


class DoNotCallState(rx.State):
    rows: list[DoNotCallRow] = []
    loaded: bool = False
    error: str = ""
    importing: bool = False
    # The add form's fields, kept through an error, and its error (next to the number).
    add_error: str = ""
    phone_typed: str = ""
    reason_typed: str = ""

    @rx.event
    def set_phone_typed(self, value: str) -> None:
        self.phone_typed = value[:100]

    @rx.event
    def set_reason_typed(self, value: str) -> None:
        self.reason_typed = value[:500]

    @rx.event
    @signed_in
    async def open(self):
        self.rows, self.loaded, self.error = await read(self, load_entries), True, ""
        self.add_error = ""

    @rx.event
    @signed_in
    async def add(self, form: dict[str, Any]):
        phone, reason = str(form.get("dnc_phone", "")), str(form.get("dnc_reason", ""))
        try:
            await write(self, partial(dnc.add, phone=phone, reason=reason, source="console"))
        except DomainError as error:
            self.phone_typed, self.reason_typed = phone, reason
            self.add_error = _in_words(error)
            return
        self.add_error, self.phone_typed, self.reason_typed = "", "", ""
        self.rows = await read(self, load_entries)
        yield rx.toast.success("Added to the do-not-call list")

    @rx.event
    @signed_in
    async def import_csv(self, files: list[rx.UploadFile]):
        if not files:
            return
        self.importing = True
        yield
        try:
            rows = await in_thread(read_csv, files[0].file)
            added = await write(self, partial(dnc.import_rows, rows=rows, reason="Imported"))
        except DomainError as error:
            self.error = error_text(error)
            return
        finally:
            self.importing = False
        self.error = ""
        self.rows = await read(self, load_entries)
        skipped = len(rows.invalid_rows)
        note = f"; {_plural(skipped, 'invalid row')} skipped" if skipped else ""
        yield rx.toast.success(f"Added {_plural(added, 'number')}{note}")

    @rx.event
    @signed_in
    async def remove(self, phone: str):
        try:
            await write(self, partial(dnc.remove, phone=phone))
        except DomainError as error:
            yield rx.toast.error(error_text(error))
            return
        self.rows = await read(self, load_entries)
