"""/batches and /batches/[batch_id]."""

from __future__ import annotations

import reflex as rx

from batch_dashboard.ui.components import (
    confirm_dialog,
    count_tile,
    data_table,
    empty_state,
    link_button,
    local_time,
    page_header,
    pager,
    progress,
    status_badge,
)
from batch_dashboard.ui.layout import frame
from batch_dashboard.ui.pages.breaker import breaker_banner, resume_button
from batch_dashboard.ui.states.base import AuthState
from batch_dashboard.ui.states.batches import (
    RECIPIENT_FILTERS,
    STATUS_FILTERS,
    BatchDetailState,
    BatchesState,
)
from batch_dashboard.ui.states.live import BatchLive, WorkspaceLive, heartbeat
from batch_dashboard.ui.states.rows import BatchRow, RecipientRow

NUMERIC = {"font_variant_numeric": "tabular-nums"}


def _batch_line(row: BatchRow) -> rx.Component:
    return rx.table.row(
        rx.table.cell(
            rx.link(row.name, href=f"/batches/{row.id}", weight="medium"),
        ),
        rx.table.cell(
            rx.hstack(
                status_badge(row.status),
                rx.cond(
                    row.stopping,
                    rx.badge("Stopping", color_scheme="amber", radius="full"),
                    rx.cond(row.paused, rx.badge("Paused", color_scheme="amber", radius="full")),
                ),
                spacing="1",
                wrap="wrap",
            )
        ),
        rx.table.cell(rx.text(row.agent_name, size="2")),
        rx.table.cell(progress(row.done, row.total, row.status), min_width="180px"),
        rx.table.cell(
            rx.hstack(
                rx.tooltip(
                    rx.text(row.completed, color=rx.color("green", 11)), content="Completed"
                ),
                rx.text("·", color_scheme="gray"),
                rx.tooltip(rx.text(row.failed, color=rx.color("red", 11)), content="Failed"),
                rx.text("·", color_scheme="gray"),
                rx.cond(
                    row.status == "cancelled",
                    rx.tooltip(
                        rx.text(row.cancelled, " cancelled", color_scheme="gray"),
                        content="Never called: the batch was cancelled or stopped",
                    ),
                    rx.tooltip(
                        rx.text(row.pending + row.dialing, color_scheme="gray"),
                        content="Waiting or dialing",
                    ),
                ),
                spacing="1",
                style=NUMERIC,
            )
        ),
        rx.table.cell(
            rx.cond(
                row.scheduled_at & (row.status == "scheduled"),
                rx.hstack(
                    rx.icon("clock", size=13),
                    local_time(row.scheduled_at),
                    spacing="1",
                    align="center",
                ),
                local_time(row.created_at),
            ),
            white_space="nowrap",
        ),
        _hover={"background": rx.color("gray", 2)},
    )


def _batch_table(rows: rx.Var) -> rx.Component:
    return data_table(
        ("Name", "Status", "Agent", "Progress", "Done · failed · left", "Created / scheduled"),
        rows,
        _batch_line,
    )


def batches_page() -> rx.Component:
    new_button = link_button("New batch", "/batches/new", icon="plus")
    rows = rx.cond(
        BatchesState.status_filter == "all", WorkspaceLive.rows, BatchesState.filtered_rows
    )
    return frame(
        heartbeat(BatchesState.heartbeat),
        page_header(
            "Batch calls",
            rx.hstack(
                rx.el.label(
                    "Status",
                    html_for="status-filter",
                    style={"font_size": "14px", "color": rx.color("gray", 11)},
                ),
                rx.select(
                    STATUS_FILTERS,
                    value=BatchesState.status_filter,
                    on_change=BatchesState.set_filter,
                    id="status-filter",
                    size="2",
                ),
                align="center",
                spacing="2",
            ),
            new_button,
            subtitle=rx.text(
                "Newest first. Times in ",
                rx.cond(AuthState.timezone, AuthState.timezone, "your time zone"),
                ".",
                size="2",
                color_scheme="gray",
            ),
        ),
        rx.cond(
            ~WorkspaceLive.loaded,
            rx.vstack(*[rx.skeleton(height="44px", width="100%") for _ in range(4)], width="100%"),
            rx.cond(
                rows.length() > 0,
                _batch_table(rows),
                rx.cond(
                    BatchesState.status_filter == "all",
                    empty_state(
                        "phone-outgoing",
                        "No batches yet",
                        rx.fragment(
                            "Start one here, or POST /v1/batch-calls from your own systems."
                        ),
                        new_button,
                        link_button("API docs", "/v1/docs", variant="soft", external=True),
                    ),
                    empty_state(
                        "filter",
                        "No batches with this status",
                        "Choose another status to see more.",
                    ),
                ),
            ),
        ),
    )


# --- detail -------------------------------------------------------------------------------


def _fact(label: str, value: rx.Component) -> rx.Component:
    return rx.vstack(rx.text(label, size="1", color_scheme="gray"), value, spacing="1")


def _recipient_line(row: RecipientRow) -> rx.Component:
    return rx.table.row(
        rx.table.cell(
            rx.button(
                row.phone,
                variant="ghost",
                size="2",
                style=NUMERIC,
                white_space="nowrap",
                on_click=BatchDetailState.open_recipient(row),
                aria_label=f"Open recipient {row.phone}",
            )
        ),
        rx.table.cell(
            rx.hstack(
                status_badge(row.status),
                rx.cond(
                    row.attempts > 1,
                    rx.text("Attempt ", row.attempts, size="1", color_scheme="gray"),
                ),
                spacing="2",
                align="center",
                white_space="nowrap",
            )
        ),
        rx.table.cell(
            rx.text(
                row.outcome,
                size="2",
                color_scheme=row.outcome_tone,
            )
        ),
        rx.table.cell(
            rx.text(row.variables, size="1", color_scheme="gray", max_width="260px", truncate=True)
        ),
        rx.table.cell(rx.text(row.duration, size="2", style=NUMERIC)),
        rx.table.cell(local_time(row.ended_at, empty="")),
        on_click=BatchDetailState.open_recipient(row),
        cursor="pointer",
        _hover={"background": rx.color("gray", 3)},
    )


def _panel() -> rx.Component:
    recipient = BatchDetailState.panel_recipient
    return rx.drawer.root(
        rx.drawer.overlay(z_index="5"),
        rx.drawer.portal(
            rx.drawer.content(
                rx.vstack(
                    rx.hstack(
                        rx.heading(recipient.phone, size="5", as_="h2"),
                        rx.spacer(),
                        rx.drawer.close(
                            rx.icon_button(rx.icon("x"), variant="ghost", aria_label="Close")
                        ),
                        width="100%",
                    ),
                    rx.hstack(
                        status_badge(recipient.status),
                        rx.text(recipient.failure, color_scheme="red", size="2"),
                        spacing="2",
                    ),
                    rx.text(recipient.variables, size="2", color_scheme="gray"),
                    rx.cond(
                        recipient.conversation_id,
                        rx.vstack(
                            rx.foreach(
                                BatchDetailState.panel_warnings,
                                lambda w: rx.callout(
                                    w, icon="info", color_scheme="amber", size="1"
                                ),
                            ),
                            rx.heading("Transcript", size="3", as_="h3"),
                            rx.vstack(
                                rx.foreach(
                                    BatchDetailState.panel_transcript,
                                    lambda turn: rx.box(
                                        rx.text(
                                            rx.cond(turn["role"] == "agent", "Agent", "Callee"),
                                            " · ",
                                            turn["at"],
                                            size="1",
                                            color_scheme="gray",
                                        ),
                                        rx.text(turn["message"], size="2"),
                                        padding="8px 10px",
                                        border_radius="8px",
                                        background=rx.cond(
                                            turn["role"] == "agent",
                                            rx.color("accent", 3),
                                            rx.color("gray", 3),
                                        ),
                                        width="100%",
                                    ),
                                ),
                                spacing="2",
                                width="100%",
                            ),
                            rx.heading("Evaluations", size="3", as_="h3"),
                            rx.foreach(
                                BatchDetailState.panel_evaluations,
                                lambda e: rx.vstack(
                                    rx.hstack(
                                        rx.text(e["name"], weight="medium", size="2"),
                                        rx.badge(
                                            e["result"],
                                            color_scheme=rx.match(
                                                e["result"],
                                                ("success", "green"),
                                                ("failure", "red"),
                                                "gray",
                                            ),
                                        ),
                                    ),
                                    rx.text(e["rationale"], size="1", color_scheme="gray"),
                                    spacing="1",
                                ),
                            ),
                            rx.heading("Collected data", size="3", as_="h3"),
                            rx.foreach(
                                BatchDetailState.panel_collected,
                                lambda c: rx.hstack(
                                    rx.text(c["name"], size="2", color_scheme="gray"),
                                    rx.text(c["value"], size="2", weight="medium"),
                                ),
                            ),
                            spacing="3",
                            width="100%",
                        ),
                        rx.text(
                            "No conversation: the call did not connect.",
                            size="2",
                            color_scheme="gray",
                        ),
                    ),
                    spacing="3",
                    width="100%",
                ),
                height="100%",
                width="440px",
                position="fixed",
                top="0",
                right="0",
                left="auto",
                z_index="10",
                padding="24px",
                background=rx.color("gray", 1),
                overflow_y="auto",
            )
        ),
        open=BatchDetailState.panel_open,
        on_open_change=lambda _open: BatchDetailState.close_panel(),
        direction="right",
    )


def _cancel_dialog() -> rx.Component:
    return confirm_dialog(
        trigger=rx.button(
            rx.icon("circle-x", size=16),
            "Cancel batch",
            color_scheme="red",
            variant="soft",
            on_click=BatchDetailState.ask_cancel(True),
        ),
        title="Cancel this batch?",
        description=(
            "Nothing has been dialed yet. Cancelling stops it for good: every recipient ends "
            "cancelled."
        ),
        keep="Keep it",
        on_keep=BatchDetailState.ask_cancel(False),
        confirm="Cancel batch",
        on_confirm=BatchDetailState.cancel,
        busy=BatchDetailState.cancelling,
        open=BatchDetailState.confirm_cancel,
    )


def _stop_dialog() -> rx.Component:
    batch = BatchLive.batch
    return confirm_dialog(
        trigger=rx.button(
            rx.icon("octagon-x", size=16),
            "Stop batch",
            color_scheme="red",
            variant="soft",
            on_click=BatchDetailState.ask_stop(True),
        ),
        title="Stop this batch?",
        # The shared counts, so the numbers stay true while the dialog is open.
        description=[
            rx.text.strong(batch.dialing),
            rx.cond(batch.dialing == 1, " call is live; ", " calls are live; "),
            rx.text.strong(batch.pending),
            rx.cond(
                batch.pending == 1,
                " call will not be made. ",
                " calls will not be made. ",
            ),
            "The batch ends cancelled once the live calls have ended.",
        ],
        body=rx.el.label(
            rx.checkbox(
                checked=BatchDetailState.hang_up,
                on_change=BatchDetailState.set_hang_up,
                id="hang-up-live",
            ),
            rx.text("Hang up the live calls now", size="2"),
            html_for="hang-up-live",
            style={"display": "flex", "gap": "8px", "align_items": "center", "margin_top": "12px"},
        ),
        keep="Keep calling",
        on_keep=BatchDetailState.ask_stop(False),
        confirm="Stop batch",
        on_confirm=BatchDetailState.stop,
        busy=BatchDetailState.stopping_now,
        open=BatchDetailState.confirm_stop,
    )


def _retry_dialog() -> rx.Component:
    count = BatchDetailState.retry_count
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title("Retry failed calls"),
            rx.dialog.description(
                "Choose which outcomes to call again. The recipients are dialed as new "
                "attempts of this batch.",
                size="2",
                color_scheme="gray",
            ),
            rx.cond(
                BatchDetailState.retry_options.length() > 0,
                rx.vstack(
                    rx.foreach(
                        BatchDetailState.retry_options,
                        lambda option: rx.el.label(
                            rx.checkbox(
                                checked=BatchDetailState.retry_chosen.contains(option.reason),
                                on_change=lambda _v: BatchDetailState.toggle_retry(option.reason),
                            ),
                            rx.text(option.words, size="2", weight="medium"),
                            rx.spacer(),
                            rx.text(option.count, size="2", color_scheme="gray", style=NUMERIC),
                            style={
                                "display": "flex",
                                "gap": "8px",
                                "align_items": "center",
                                "width": "100%",
                            },
                        ),
                    ),
                    spacing="2",
                    width="100%",
                    padding="12px",
                    margin_y="12px",
                    border_radius="8px",
                    background=rx.color("gray", 2),
                ),
                rx.callout(
                    "No failed call can be retried: do-not-call, invalid numbers and calls "
                    "never placed are not redialled.",
                    icon="info",
                    color_scheme="gray",
                    margin_y="12px",
                ),
            ),
            rx.text(
                "Will call ",
                rx.text.strong(count, id="retry-count"),
                rx.cond(count == 1, " recipient.", " recipients."),
                size="2",
            ),
            rx.hstack(
                rx.dialog.close(rx.button("Not now", variant="soft", color_scheme="gray")),
                rx.button(
                    rx.icon("rotate-ccw", size=16),
                    "Call them again",
                    on_click=BatchDetailState.retry,
                    loading=BatchDetailState.retrying,
                    disabled=count == 0,
                ),
                justify="end",
                spacing="3",
                margin_top="16px",
            ),
            max_width="460px",
        ),
        open=BatchDetailState.retry_open,
        on_open_change=BatchDetailState.close_retry,
    )


def _rules(batch: rx.Var) -> rx.Component:
    return rx.vstack(
        rx.text("Calling rules", size="1", color_scheme="gray"),
        rx.flex(
            rx.foreach(
                batch.rules,
                lambda rule: rx.badge(rule, variant="surface", color_scheme="gray", size="2"),
            ),
            gap="6px",
            wrap="wrap",
        ),
        spacing="1",
        width="100%",
        id="calling-rules",
    )


def batch_detail_page() -> rx.Component:
    batch = BatchLive.batch
    rows = rx.cond(BatchDetailState.default_view, BatchLive.first_page, BatchDetailState.own_rows)
    cancellable = (batch.status == "scheduled") | (batch.status == "pending")
    return frame(
        heartbeat(BatchDetailState.heartbeat),
        rx.cond(
            BatchDetailState.not_found,
            empty_state(
                "search-x",
                "Batch not found",
                "It does not exist in this workspace.",
                link_button("All batches", "/batches"),
            ),
            rx.cond(
                batch.id == BatchDetailState.viewing_id,
                rx.vstack(
                    rx.link(
                        rx.hstack(
                            rx.icon("arrow-left", size=14),
                            rx.text("Batch calls", size="2"),
                            align="center",
                            spacing="1",
                        ),
                        href="/batches",
                        color_scheme="gray",
                        underline="none",
                    ),
                    page_header(
                        "",
                        rx.cond(cancellable, _cancel_dialog()),
                        rx.cond((batch.status == "running") & ~batch.stopping, _stop_dialog()),
                        rx.cond(
                            (batch.status == "completed") & (batch.failed > 0),
                            rx.button(
                                rx.icon("rotate-ccw", size=16),
                                "Retry failed calls",
                                variant="soft",
                                on_click=BatchDetailState.open_retry,
                            ),
                        ),
                        rx.cond(
                            (batch.status == "running") & ~batch.stopping,
                            rx.cond(
                                batch.paused,
                                resume_button(batch),
                                rx.button(
                                    rx.icon("pause", size=16),
                                    "Pause",
                                    variant="soft",
                                    on_click=BatchDetailState.set_paused(True),
                                ),
                            ),
                        ),
                        rx.button(
                            rx.icon("download", size=16),
                            "Export results",
                            variant="soft",
                            on_click=BatchDetailState.export,
                        ),
                        subtitle=rx.hstack(
                            rx.heading(batch.name, size="6", as_="h1"),
                            status_badge(batch.status),
                            rx.cond(
                                batch.stopping,
                                rx.badge("Stopping", color_scheme="amber", radius="full"),
                                rx.cond(
                                    batch.paused,
                                    rx.badge("Paused", color_scheme="amber", radius="full"),
                                ),
                            ),
                            align="center",
                            spacing="3",
                        ),
                    ),
                    breaker_banner(batch),
                    rx.hstack(
                        _fact("Agent", rx.text(batch.agent_name, size="2", weight="medium")),
                        _fact(
                            "Caller number",
                            rx.text(batch.caller_number, size="2", weight="medium", style=NUMERIC),
                        ),
                        _fact(
                            "Schedule",
                            rx.cond(
                                batch.scheduled_at,
                                local_time(batch.scheduled_at),
                                rx.text("At once", size="2"),
                            ),
                        ),
                        _fact("Started", local_time(batch.started_at)),
                        _fact("Finished", local_time(batch.finished_at)),
                        _fact("Ringing timeout", rx.text(batch.ringing_timeout_s, " s", size="2")),
                        rx.cond(
                            batch.status == "running",
                            _fact(
                                "Time left",
                                rx.text(
                                    rx.cond(
                                        batch.time_left,
                                        batch.time_left,
                                        rx.cond(batch.paused, "Paused", "Estimating…"),
                                    ),
                                    size="2",
                                    weight="medium",
                                    id="time-left",
                                ),
                            ),
                        ),
                        _fact(
                            "Calls per minute",
                            rx.text(
                                BatchLive.calls_per_minute,
                                size="2",
                                weight="medium",
                                id="calls-per-minute",
                                style=NUMERIC,
                            ),
                        ),
                        spacing="6",
                        wrap="wrap",
                        width="100%",
                    ),
                    _rules(batch),
                    rx.box(
                        progress(batch.done, batch.total, batch.status),
                        width="100%",
                        padding_y="8px",
                    ),
                    rx.hstack(
                        count_tile("Pending", batch.pending, "gray"),
                        count_tile("Dialing", batch.dialing, "blue"),
                        count_tile("Completed", batch.completed, "green"),
                        count_tile("Failed", batch.failed, "red"),
                        rx.cond(
                            batch.cancelled > 0, count_tile("Cancelled", batch.cancelled, "gray")
                        ),
                        spacing="3",
                        width="100%",
                        wrap="wrap",
                        id="count-tiles",
                    ),
                    rx.hstack(
                        rx.heading("Recipients", size="4", as_="h2"),
                        rx.spacer(),
                        rx.el.label(
                            "Status", html_for="recipient-filter", style={"font_size": "14px"}
                        ),
                        rx.select(
                            RECIPIENT_FILTERS,
                            value=BatchDetailState.recipient_filter,
                            on_change=BatchDetailState.set_recipient_filter,
                            id="recipient-filter",
                        ),
                        rx.el.label(
                            "Search number",
                            html_for="recipient-search",
                            style={"font_size": "14px"},
                        ),
                        rx.input(
                            id="recipient-search",
                            placeholder="Digits, e.g. 555",
                            value=BatchDetailState.search,
                            on_change=BatchDetailState.set_search.debounce(300),
                            width="180px",
                        ),
                        align="center",
                        spacing="2",
                        width="100%",
                        margin_top="12px",
                    ),
                    rx.cond(
                        rows.length() > 0,
                        data_table(
                            ("Number", "Status", "Outcome", "Variables", "Talk time", "Ended"),
                            rows,
                            _recipient_line,
                        ),
                        empty_state(
                            "users",
                            "No recipients match",
                            "Change the status filter or the number search.",
                        ),
                    ),
                    pager(
                        BatchDetailState.page,
                        BatchDetailState.page_count,
                        BatchDetailState.total_matching,
                        on_turn=BatchDetailState.go_to_page,
                        what="recipients",
                    ),
                    _panel(),
                    _retry_dialog(),
                    spacing="3",
                    width="100%",
                    align="start",
                ),
                rx.vstack(
                    *[rx.skeleton(height="60px", width="100%") for _ in range(4)], width="100%"
                ),
            ),
        ),
    )
