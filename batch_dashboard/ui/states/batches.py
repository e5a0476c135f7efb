"""/batches and /batches/[batch_id]: what one tab shows beyond the shared live data."""

from __future__ import annotations

import asyncio

import reflex as rx

from batch_dashboard.db import session_scope
from batch_dashboard.services import batches
from batch_dashboard.services.errors import DomainError, NotFound
from batch_dashboard.ui.states import live, rows
from batch_dashboard.ui.states.base import current_workspace, error_text, in_thread
from batch_dashboard.ui.states.live import BatchLive, WorkspaceLive
from batch_dashboard.ui.states.rows import BatchRow, RecipientRow

STATUS_FILTERS = ["all", *batches.BATCH_STATUSES]
RECIPIENT_FILTERS = ["all", "pending", "dialing", "completed", "failed", "cancelled"]
PAGE_SIZE = 50
FOLLOW_SECONDS = 0.5


def _shown(value: object) -> str:
    if isinstance(value, bool):
        return "Yes" if value else "No"
    return "" if value is None else str(value)


def _path(state: rx.State) -> str:
    return state.router.url.path.rstrip("/")


class BatchesState(rx.State):
    """The batch list: the shared newest batches, or this tab's filtered page."""

    status_filter: str = "all"
    # Only used while a filter is on; the unfiltered list comes from WorkspaceLive.
    filtered_rows: list[BatchRow] = []
    loading: bool = False
    _loaded_marker: str = ""
    _follower: int = 0  # the newest follow loop; older ones stop

    @rx.event
    async def open(self):
        workspace_id = await current_workspace(self)
        if not workspace_id:
            return
        shared = await self.get_state(WorkspaceLive)
        token = live.workspace_token(workspace_id)
        shared = await shared._link_to(token)
        live.remember_workspace(token, workspace_id)
        if not shared.loaded:
            shared.rows = await in_thread(rows.list_rows, workspace_id, status=None)
            shared.loaded = True
        if self.status_filter != "all":
            await self._reload(workspace_id)
        return BatchesState.follow

    async def _reload(self, workspace_id: str) -> None:
        self.filtered_rows = await in_thread(
            rows.list_rows, workspace_id, status=self.status_filter
        )

    @rx.event
    async def set_filter(self, value: str):
        self.status_filter = value if value in STATUS_FILTERS else "all"
        if self.status_filter != "all":
            if not (workspace_id := await current_workspace(self)):
                yield rx.redirect("/login")
                return
            self.loading = True
            yield
            await self._reload(workspace_id)
            self.loading = False

    @rx.event
    async def heartbeat(self, _now: str = ""):
        if not await current_workspace(self):  # the session ended: stop feeding this tab
            return rx.redirect("/login")
        await live.keep_watching(self, WorkspaceLive)

    @rx.event(background=True)
    async def follow(self):
        """While this tab shows a filtered list, reload it when the shared marker moves."""
        async with self:
            self._follower += 1
            generation = self._follower
        while True:
            await asyncio.sleep(FOLLOW_SECONDS)
            async with self:
                if _path(self) != "/batches" or self._follower != generation:
                    return
                shared = await self.get_state(WorkspaceLive)
                if self.status_filter == "all" or shared.marker == self._loaded_marker:
                    continue
                self._loaded_marker = shared.marker
                if not (workspace_id := await current_workspace(self)):
                    return  # the session ended; the heartbeat sends the tab to sign in
                await self._reload(workspace_id)


class BatchDetailState(rx.State):
    """One tab's view of a batch: its page, filter and search, the open recipient."""

    recipient_filter: str = "all"
    search: str = ""
    page: int = 0
    total_matching: int = 0
    own_rows: list[RecipientRow] = []
    not_found: bool = False
    confirm_cancel: bool = False
    cancelling: bool = False
    # The recipient in the side panel.
    panel_open: bool = False
    panel_recipient: RecipientRow = RecipientRow()
    panel_transcript: list[dict[str, str]] = []
    panel_evaluations: list[dict[str, str]] = []
    panel_collected: list[dict[str, str]] = []
    panel_warnings: list[str] = []
    _loaded_version: int = -2
    _follower: int = 0

    @rx.var
    def viewing_id(self) -> str:
        """The batch id in the URL (/batches/<id>)."""
        path = self.router.url.path.rstrip("/")
        return path.rsplit("/", 1)[-1] if path.startswith("/batches/") else ""

    @rx.var
    def default_view(self) -> bool:
        return self.recipient_filter == "all" and not self.search and self.page == 0

    @rx.var
    def page_count(self) -> int:
        return max(1, -(-self.total_matching // PAGE_SIZE))

    @rx.event
    async def open(self):
        workspace_id = await current_workspace(self)
        if not workspace_id:
            return
        self.recipient_filter, self.search, self.page, self.panel_open = "all", "", 0, False
        self.confirm_cancel = False
        batch_id = self.viewing_id
        try:
            snapshot = await in_thread(rows.batch_snapshot, workspace_id, batch_id)
        except NotFound:
            # Another workspace's batch looks exactly like one that does not exist.
            self.not_found = True
            return
        self.not_found = False
        shared = await self.get_state(BatchLive)
        token = live.batch_token(batch_id)
        shared = await shared._link_to(token)
        live.remember_batch(token, workspace_id, batch_id)
        live.apply_snapshot(shared, snapshot)
        await self._reload(workspace_id)
        return BatchDetailState.follow

    async def _reload(self, workspace_id: str) -> None:
        status = None if self.recipient_filter == "all" else self.recipient_filter
        batch_id, search, offset = self.viewing_id, self.search.strip(), self.page * PAGE_SIZE

        def load() -> tuple[list[RecipientRow], int]:
            with session_scope() as session:
                items, total = batches.recipients_page(
                    session,
                    workspace_id=workspace_id,
                    batch_id=batch_id,
                    status=status,
                    search=search or None,
                    offset=offset,
                    limit=PAGE_SIZE,
                )
            return [rows.recipient_row(item) for item in items], total

        self.own_rows, self.total_matching = await in_thread(load)

    @rx.event
    async def heartbeat(self, _now: str = ""):
        if not await current_workspace(self):  # the session ended: stop feeding this tab
            return rx.redirect("/login")
        await live.keep_watching(self, BatchLive)

    @rx.event(background=True)
    async def follow(self):
        """Keep the count of matches and a non-default page current (the shared state carries
        the rest); reads only this process's memory until the batch actually changed."""
        async with self:
            self._follower += 1
            generation, following = self._follower, self.viewing_id
        while True:
            await asyncio.sleep(FOLLOW_SECONDS)
            async with self:
                if self.viewing_id != following or self._follower != generation or self.not_found:
                    return
                shared = await self.get_state(BatchLive)
                if shared.version == self._loaded_version:
                    continue
                self._loaded_version = shared.version
                if self.default_view:
                    self.total_matching = shared.batch.total
                    continue
                if not (workspace_id := await current_workspace(self)):
                    return  # the session ended; the heartbeat sends the tab to sign in
                await self._reload(workspace_id)

    @rx.event
    async def set_recipient_filter(self, value: str):
        self.recipient_filter = value if value in RECIPIENT_FILTERS else "all"
        self.page = 0
        return await self._reload_signed_in()

    @rx.event
    async def set_search(self, value: str):
        self.search = value[:32]
        self.page = 0
        return await self._reload_signed_in()

    @rx.event
    async def go_to_page(self, delta: int):
        self.page = min(max(0, self.page + delta), self.page_count - 1)
        return await self._reload_signed_in()

    async def _reload_signed_in(self):
        """`_reload` for this tab's session, or to the sign-in page once it has ended."""
        if not (workspace_id := await current_workspace(self)):
            return rx.redirect("/login")
        await self._reload(workspace_id)
        return None

    @rx.event
    async def open_recipient(self, row: dict):
        self.panel_recipient = RecipientRow(**row)
        self.panel_transcript, self.panel_evaluations, self.panel_collected, self.panel_warnings = (
            [],
            [],
            [],
            [],
        )
        self.panel_open = True
        if not self.panel_recipient.conversation_id:
            return
        workspace_id = await current_workspace(self)
        conversation_id = self.panel_recipient.conversation_id

        def load() -> dict:
            with session_scope() as session:
                return batches.get_conversation(
                    session, workspace_id=workspace_id, conversation_id=conversation_id
                )

        try:
            conversation = await in_thread(load)
        except DomainError as error:
            yield rx.toast.error(error_text(error))
            return
        self.panel_transcript = [
            {
                "role": turn["role"],
                "message": turn["message"],
                "at": f"{turn.get('time_in_call_secs', 0)} s",
            }
            for turn in conversation["transcript"]
        ]
        self.panel_evaluations = [
            {
                "name": name,
                "result": value.get("result", ""),
                "rationale": value.get("rationale", ""),
            }
            for name, value in conversation["evaluations"].items()
        ]
        self.panel_collected = [
            {
                "name": name,
                "value": _shown(value.get("value")),
                "rationale": value.get("rationale", ""),
            }
            for name, value in conversation["data_collection"].items()
        ]
        self.panel_warnings = list(conversation["warnings"])

    @rx.event
    def close_panel(self) -> None:
        self.panel_open = False

    @rx.event
    def ask_cancel(self, value: bool = True) -> None:
        self.confirm_cancel = value

    @rx.event
    async def cancel(self):
        workspace_id, batch_id = await current_workspace(self), self.viewing_id
        self.cancelling = True
        yield

        def cancel() -> dict:
            with session_scope(write=True) as session:
                return batches.cancel_batch(session, workspace_id=workspace_id, batch_id=batch_id)

        try:
            await in_thread(cancel)
        except DomainError as error:
            self.cancelling, self.confirm_cancel = False, False
            yield rx.toast.error(error_text(error))
            return
        self.cancelling, self.confirm_cancel = False, False
        await self._show_now(workspace_id, batch_id)
        yield rx.toast.success("Batch cancelled")

    @rx.event
    async def set_paused(self, paused: bool):
        workspace_id, batch_id = await current_workspace(self), self.viewing_id

        def change() -> dict:
            with session_scope(write=True) as session:
                if paused:
                    return batches.pause_batch(
                        session, workspace_id=workspace_id, batch_id=batch_id
                    )
                return batches.resume_batch(session, workspace_id=workspace_id, batch_id=batch_id)

        try:
            await in_thread(change)
        except DomainError as error:
            yield rx.toast.error(error_text(error))
            return
        await self._show_now(workspace_id, batch_id)
        yield rx.toast.success("Batch paused: no new calls" if paused else "Batch resumed")

    async def _show_now(self, workspace_id: str, batch_id: str) -> None:
        """This tab's change on every tab at once, without waiting for the poller."""
        snapshot = await in_thread(rows.batch_snapshot, workspace_id, batch_id)
        live.apply_snapshot(await self.get_state(BatchLive), snapshot)

    @rx.event
    async def export(self):
        workspace_id, batch_id = await current_workspace(self), self.viewing_id

        def build() -> str:
            with session_scope() as session:
                return batches.export_results_csv(
                    session, workspace_id=workspace_id, batch_id=batch_id
                )

        try:
            text = await in_thread(build)
        except DomainError as error:
            yield rx.toast.error(error_text(error))
            return
        yield rx.download(data=text, filename=f"{batch_id}-results.csv")
