"""/batches and /batches/[batch_id]: what one tab shows beyond the shared live data."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from functools import partial
from typing import Any

import reflex as rx

from batch_dashboard.services import batches, outcomes
from batch_dashboard.services.errors import DomainError, NotFound
from batch_dashboard.ui.states import live
from batch_dashboard.ui.states.base import error_text, read, signed_in, workspace_of, write
from batch_dashboard.ui.states.live import BatchLive
from batch_dashboard.ui.states.rows import (
    BatchRow,
    RecipientRow,
    batch_snapshot,
    list_rows,
    recipient_rows,
)

STATUS_FILTERS = ["all", *batches.BATCH_STATUSES]
RECIPIENT_FILTERS = ["all", "pending", "dialing", "completed", "failed", "cancelled"]
PAGE_SIZE = 50
FOLLOW_SECONDS = 0.5
# A quiet follow loop still looks this often whether its tab moved on (so that it ends). Not
# more: each look is an event, which re-sends the shared state to every other tab on it.
FOLLOW_CHECK_SECONDS = 30.0


@dataclasses.dataclass
class RetryOption:
    reason: str = ""
    words: str = ""
    count: int = 0


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
    @signed_in
    async def open(self):
        shared = await live.link_workspace(self, await workspace_of(self))
        if not shared.loaded:
            shared.rows = await read(self, partial(list_rows, status=None))
            shared.loaded = True
        if self.status_filter != "all":
            await self._reload()
        return BatchesState.follow

    async def _reload(self) -> None:
        self.filtered_rows = await read(self, partial(list_rows, status=self.status_filter))

    @rx.event
    @signed_in
    async def set_filter(self, value: str):
        self.status_filter = value if value in STATUS_FILTERS else "all"
        if self.status_filter != "all":
            self.loading = True
            yield
            try:
                await self._reload()
            finally:
                self.loading = False
        yield BatchesState.follow  # filtered or not: see follow

    @rx.event
    @signed_in
    async def heartbeat(self, _now: str = ""):
        # Once the session has ended, this tab is fed no more (workspace_of refuses).
        live.watch(live.workspace_token(await workspace_of(self)))

    @rx.event(background=True)
    @signed_in
    async def follow(self):
        """While this tab shows a filtered list, reload it when the shared marker moves. It
        enters the state only then, or every FOLLOW_CHECK_SECONDS: each event of a tab makes
        Reflex re-send the shared list to every other tab on it (see BatchDetailState.follow).
        `set_filter` starts a new loop."""
        async with self:
            self._follower += 1
            generation, workspace_id = self._follower, await workspace_of(self)
            filtered, loaded = self.status_filter != "all", self._loaded_marker
        checked = time.monotonic()
        while True:
            await asyncio.sleep(FOLLOW_SECONDS)
            marker = live.workspace_seen.get(workspace_id)
            needed = filtered and marker is not None and marker != loaded
            if not needed and time.monotonic() - checked < FOLLOW_CHECK_SECONDS:
                continue
            checked = time.monotonic()
            async with self:
                if _path(self) != "/batches" or self._follower != generation:
                    return
                filtered = self.status_filter != "all"
                if marker is None or not filtered or marker == self._loaded_marker:
                    continue
                self._loaded_marker = loaded = marker
                await self._reload()


def _conversation_lists(conversation: dict[str, Any]) -> tuple[list[dict[str, str]], ...]:
    """A conversation as the side panel lists it: transcript, evaluations, collected data."""
    transcript = [
        {
            "role": turn["role"],
            "message": turn["message"],
            "at": f"{turn.get('time_in_call_secs', 0)} s",
        }
        for turn in conversation["transcript"]
    ]
    evaluations = [
        {"name": name, "result": value.get("result", ""), "rationale": value.get("rationale", "")}
        for name, value in conversation["evaluations"].items()
    ]
    collected = [
        {
            "name": name,
            "value": batches.shown_value(value.get("value")),
            "rationale": value.get("rationale", ""),
        }
        for name, value in conversation["data_collection"].items()
    ]
    return transcript, evaluations, collected


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
    # Stop batch: the confirmation, whether to hang up the live calls, the request in flight.
    confirm_stop: bool = False
    hang_up: bool = False
    stopping_now: bool = False
    # Retry failed calls: the outcomes a retry can redial with their counts, those chosen.
    retry_open: bool = False
    retry_options: list[RetryOption] = []
    retry_chosen: list[str] = []
    retrying: bool = False
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
    def retry_count(self) -> int:
        """How many recipients the retry as chosen will call."""
        return sum(o.count for o in self.retry_options if o.reason in self.retry_chosen)

    @rx.var
    def page_count(self) -> int:
        return max(1, -(-self.total_matching // PAGE_SIZE))

    @rx.event
    @signed_in
    async def open(self):
        self.recipient_filter, self.search, self.page, self.panel_open = "all", "", 0, False
        self.confirm_cancel, self.confirm_stop, self.retry_open = False, False, False
        batch_id = self.viewing_id
        try:
            snapshot = await read(self, partial(batch_snapshot, batch_id=batch_id))
        except NotFound:
            # Another workspace's batch looks exactly like one that does not exist.
            self.not_found = True
            return
        self.not_found = False
        shared = await live.link_batch(self, await workspace_of(self), batch_id)
        live.apply_snapshot(shared, snapshot)
        await self._reload()
        return BatchDetailState.follow

    async def _reload(self) -> None:
        self.own_rows, self.total_matching = await read(
            self,
            partial(
                recipient_rows,
                batch_id=self.viewing_id,
                status=None if self.recipient_filter == "all" else self.recipient_filter,
                search=self.search.strip() or None,
                offset=self.page * PAGE_SIZE,
                limit=PAGE_SIZE,
            ),
        )

    @rx.event
    @signed_in
    async def heartbeat(self, _now: str = ""):
        await workspace_of(self)  # once the session has ended, this tab is fed no more
        if self.viewing_id and not self.not_found:
            live.watch(live.batch_token(self.viewing_id))

    @rx.event(background=True)
    @signed_in
    async def follow(self):
        """Keep the count of matches and a non-default page current (the shared state carries
        the rest); reads only this process's memory until this tab has something to change.

        Entering the state (`async with self`) is an event of this tab, and Reflex re-sends the
        batch's shared state (its first page, ~17 kB) to every other tab on the batch after
        each event of any of them: a loop that entered it every tick made n tabs receive n
        copies a tick each. So it enters only when its own view must change — a filtered page
        or search after the batch moved, or the count of a default view when the total did —
        and every FOLLOW_CHECK_SECONDS to notice that the tab went elsewhere. The events that
        switch between the default view and its own rows start a new loop."""
        async with self:
            self._follower += 1
            generation, following = self._follower, self.viewing_id
            own_rows = not self.default_view
            shown = (self._loaded_version, self.total_matching)
        checked = time.monotonic()
        while True:
            await asyncio.sleep(FOLLOW_SECONDS)
            seen = live.batch_seen.get(following)
            moved = seen is not None and seen[0] != shown[0]
            needed = moved and (own_rows or seen[1] != shown[1])
            if not needed and time.monotonic() - checked < FOLLOW_CHECK_SECONDS:
                if moved:
                    shown = (seen[0], shown[1])  # nothing of this tab's own depends on it
                continue
            checked = time.monotonic()
            async with self:
                if self.viewing_id != following or self._follower != generation or self.not_found:
                    return
                own_rows = not self.default_view
                if seen is None or seen[0] == self._loaded_version:
                    continue
                self._loaded_version = seen[0]
                if own_rows:
                    await self._reload()
                else:
                    self.total_matching = seen[1]
                shown = (seen[0], self.total_matching)

    @rx.event
    @signed_in
    async def set_recipient_filter(self, value: str):
        self.recipient_filter = value if value in RECIPIENT_FILTERS else "all"
        self.page = 0
        await self._reload()
        return BatchDetailState.follow  # its own rows or the default view: see follow

    @rx.event
    @signed_in
    async def set_search(self, value: str):
        self.search = value[:32]
        self.page = 0
        await self._reload()
        return BatchDetailState.follow  # its own rows or the default view: see follow

    @rx.event
    @signed_in
    async def go_to_page(self, delta: int):
        self.page = min(max(0, self.page + delta), self.page_count - 1)
        await self._reload()
        return BatchDetailState.follow  # its own rows or the default view: see follow

    @rx.event
    @signed_in
    async def open_recipient(self, row: dict):
        self.panel_recipient = RecipientRow(**row)
        self.panel_transcript, self.panel_evaluations, self.panel_collected = [], [], []
        self.panel_warnings, self.panel_open = [], True
        conversation_id = self.panel_recipient.conversation_id
        if not conversation_id:
            return
        try:
            conversation = await read(
                self, partial(batches.get_conversation, conversation_id=conversation_id)
            )
        except DomainError as error:
            yield rx.toast.error(error_text(error))
            return
        self.panel_transcript, self.panel_evaluations, self.panel_collected = _conversation_lists(
            conversation
        )
        self.panel_warnings = list(conversation["warnings"])

    @rx.event
    def close_panel(self) -> None:
        self.panel_open = False

    @rx.event
    def ask_cancel(self, value: bool = True) -> None:
        self.confirm_cancel = value

    @rx.event
    @signed_in
    async def cancel(self):
        self.cancelling = True
        yield
        try:
            await write(self, partial(batches.cancel_batch, batch_id=self.viewing_id))
        except DomainError as error:
            yield rx.toast.error(error_text(error))
            return
        finally:
            self.cancelling, self.confirm_cancel = False, False
        await self._show_now()
        yield rx.toast.success("Batch cancelled")

    @rx.event
    def ask_stop(self, value: bool = True) -> None:
        self.confirm_stop, self.hang_up = value, False

    @rx.event
    def set_hang_up(self, value: bool) -> None:
        self.hang_up = bool(value)

    @rx.event
    @signed_in
    async def stop(self):
        self.stopping_now = True
        yield
        try:
            await write(
                self, partial(batches.stop_batch, batch_id=self.viewing_id, hang_up=self.hang_up)
            )
        except DomainError as error:
            yield rx.toast.error(error_text(error))
            return
        finally:
            self.stopping_now, self.confirm_stop = False, False
        await self._show_now()
        yield rx.toast.success(
            "Batch stopped: live calls are being hung up"
            if self.hang_up
            else "Batch stopped: no new calls; live calls finish"
        )

    @rx.event
    @signed_in
    async def open_retry(self):
        try:
            found = await read(self, partial(batches.retry_choices, batch_id=self.viewing_id))
        except DomainError as error:
            yield rx.toast.error(error_text(error))
            return
        self.retry_options = [
            RetryOption(reason=reason, words=outcomes.words(reason), count=count)
            for reason, count in found.items()
        ]
        self.retry_chosen = list(found)
        self.retry_open = True

    @rx.event
    def close_retry(self, _open: bool = False) -> None:
        self.retry_open = False

    @rx.event
    def toggle_retry(self, reason: str) -> None:
        if reason in self.retry_chosen:
            self.retry_chosen = [r for r in self.retry_chosen if r != reason]
        elif any(o.reason == reason for o in self.retry_options):
            self.retry_chosen = [*self.retry_chosen, reason]

    @rx.event
    @signed_in
    async def retry(self):
        self.retrying = True
        yield
        count = self.retry_count
        try:
            await write(
                self,
                partial(
                    batches.retry_batch,
                    batch_id=self.viewing_id,
                    failure_reasons=list(self.retry_chosen),
                ),
            )
        except DomainError as error:
            yield rx.toast.error(error_text(error))
            return
        finally:
            self.retrying = False
        self.retry_open = False
        await self._show_now()
        yield rx.toast.success(f"Calling {count} recipient{'' if count == 1 else 's'} again")

    @rx.event
    @signed_in
    async def set_paused(self, paused: bool):
        change = batches.pause_batch if paused else batches.resume_batch
        try:
            await write(self, partial(change, batch_id=self.viewing_id))
        except DomainError as error:
            yield rx.toast.error(error_text(error))
            return
        await self._show_now()
        yield rx.toast.success("Batch paused: no new calls" if paused else "Batch resumed")

    async def _show_now(self) -> None:
        """This tab's change on every tab at once, without waiting for the poller."""
        snapshot = await read(self, partial(batch_snapshot, batch_id=self.viewing_id))
        live.apply_snapshot(await self.get_state(BatchLive), snapshot)

    @rx.event
    @signed_in
    async def export(self):
        batch_id = self.viewing_id
        try:
            text = await read(self, partial(batches.export_results_csv, batch_id=batch_id))
        except DomainError as error:
            yield rx.toast.error(error_text(error))
            return
        yield rx.download(data=text, filename=f"{batch_id}-results.csv")
