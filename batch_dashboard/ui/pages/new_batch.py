"""/batches/new."""

from __future__ import annotations

import reflex as rx

from batch_dashboard.services.outcomes import RETRY_ON_WORDS
from batch_dashboard.ui.components import field, link_button, page_header, pager
from batch_dashboard.ui.layout import frame
from batch_dashboard.ui.states.base import AuthState
from batch_dashboard.ui.states.new_batch import (
    NO_VOICEMAIL,
    RINGING_SECONDS,
    SCHEDULE_DAYS_AHEAD,
    WEEKDAYS,
    AgentOption,
    NewBatchState,
    PreviewRow,
    ProblemRow,
)

UPLOAD_ID = "recipients-csv"


def _agent_item(option: AgentOption) -> rx.Component:
    return rx.select.item(
        rx.cond(option.usable, option.name, option.name + " — " + option.why_not),
        value=option.id,
        disabled=~option.usable,
    )


def _details_card() -> rx.Component:
    unusable = NewBatchState.agent_options.length() > 0
    return rx.card(
        rx.vstack(
            rx.heading("Details", size="4", as_="h2"),
            field(
                "Name",
                rx.input(
                    id="batch-name",
                    value=NewBatchState.name,
                    on_change=NewBatchState.set_name,
                    placeholder="December appointment reminders",
                    max_length=200,
                ),
                error=NewBatchState.field_errors.get("name", ""),
                html_for="batch-name",
            ),
            field(
                "Agent",
                rx.select.root(
                    rx.select.trigger(placeholder="Choose an agent", id="agent", width="100%"),
                    rx.select.content(rx.foreach(NewBatchState.agent_options, _agent_item)),
                    value=NewBatchState.agent_id,
                    on_change=NewBatchState.set_agent,
                ),
                hint=rx.cond(
                    unusable,
                    rx.text(
                        "Agents without a caller number that can call out are greyed out. ",
                        rx.link("Add a number", href="/phone-numbers"),
                        ".",
                    ),
                    rx.text("No agents yet. ", rx.link("Create one", href="/agents"), "."),
                ),
                error=NewBatchState.field_errors.get("agent_id", ""),
                html_for="agent",
            ),
            rx.hstack(
                field(
                    "Caller ID",
                    rx.select.root(
                        rx.select.trigger(id="caller-id", width="100%"),
                        rx.select.content(
                            rx.select.item("The agent's number", value="agent"),
                            rx.foreach(
                                NewBatchState.number_options,
                                lambda n: rx.select.item(n.label, value=n.id),
                            ),
                        ),
                        value=NewBatchState.caller_id,
                        on_change=NewBatchState.set_caller_id,
                    ),
                    error=NewBatchState.field_errors.get("phone_number_id", ""),
                    html_for="caller-id",
                ),
                field(
                    "Max concurrent calls",
                    rx.input(
                        id="max-concurrency",
                        type="number",
                        min=1,
                        placeholder="No limit",
                        value=NewBatchState.max_concurrency,
                        on_change=NewBatchState.set_max_concurrency,
                    ),
                    error=NewBatchState.field_errors.get("max_concurrency", ""),
                    html_for="max-concurrency",
                ),
                field(
                    "Ringing timeout (seconds)",
                    rx.input(
                        id="ringing",
                        type="number",
                        min=RINGING_SECONDS[0],
                        max=RINGING_SECONDS[1],
                        value=NewBatchState.ringing_seconds,
                        on_change=NewBatchState.set_ringing_seconds,
                    ),
                    error=NewBatchState.field_errors.get("ringing_timeout_ms", ""),
                    html_for="ringing",
                ),
                spacing="4",
                width="100%",
                # Three fields do not fit side by side on a phone: one under the other there.
                direction=rx.breakpoints(initial="column", sm="row"),
            ),
            field(
                "Schedule",
                rx.input(
                    id="schedule",
                    type="datetime-local",
                    value=NewBatchState.schedule_local,
                    on_change=NewBatchState.set_schedule_local,
                ),
                hint=rx.text(
                    "Leave empty to start at once. In the workspace's time zone, ",
                    rx.cond(AuthState.timezone, AuthState.timezone, "UTC"),
                    f" (Settings); at most {SCHEDULE_DAYS_AHEAD} days ahead.",
                ),
                error=NewBatchState.field_errors.get("scheduled_at", ""),
                html_for="schedule",
            ),
            spacing="4",
            width="100%",
        ),
        width="100%",
    )


def _preview_row(row: PreviewRow) -> rx.Component:
    invalid = row.problem != ""
    return rx.table.row(
        rx.table.cell(rx.text(row.row, size="1", color_scheme="gray", white_space="nowrap")),
        rx.table.cell(rx.text(row.phone, size="2", white_space="nowrap")),
        rx.table.cell(rx.text(row.variables, size="1", color_scheme="gray")),
        rx.table.cell(
            rx.cond(
                invalid,
                rx.hstack(
                    rx.icon("circle-alert", size=14, color=rx.color("red", 10)),
                    rx.text(row.problem, size="1", color_scheme="red"),
                    spacing="1",
                ),
                rx.icon("check", size=14, color=rx.color("green", 10)),
            )
        ),
        background=rx.cond(invalid, rx.color("red", 2), "transparent"),
    )


def _problem_line(problem: ProblemRow) -> rx.Component:
    return rx.table.row(
        rx.table.cell(problem.row),
        rx.table.cell(rx.code(problem.column)),
        rx.table.cell(problem.reason),
    )


def _csv_recipients() -> rx.Component:
    return rx.vstack(
        rx.upload.root(
            rx.vstack(
                rx.icon("file-up", size=28, color=rx.color("accent", 9)),
                rx.text(
                    rx.cond(
                        NewBatchState.file_name,
                        NewBatchState.file_name,
                        "Drop a CSV file here, or click to choose one",
                    ),
                    weight="medium",
                ),
                rx.text(
                    "A phone column (international format, +…) and one column per variable. UTF-8; comma, "
                    "semicolon or tab separated.",
                    size="1",
                    color_scheme="gray",
                    text_align="center",
                ),
                align="center",
                spacing="2",
                padding="28px",
            ),
            id=UPLOAD_ID,
            accept={"text/csv": [".csv"], "text/plain": [".txt", ".tsv"]},
            max_files=1,
            multiple=False,
            on_drop=NewBatchState.handle_upload(rx.upload_files(upload_id=UPLOAD_ID)),
            border=f"2px dashed {rx.color('accent', 7)}",
            border_radius="12px",
            width="100%",
            cursor="pointer",
            background=rx.color("accent", 2),
            aria_label="Recipients CSV file",
        ),
        rx.cond(
            NewBatchState.parsing,
            rx.hstack(rx.spinner(), rx.text("Reading and checking every number…", size="2")),
        ),
        rx.cond(
            NewBatchState.total_rows > 0,
            rx.vstack(
                rx.hstack(
                    rx.badge(NewBatchState.valid_count, " valid", color_scheme="green", size="2"),
                    rx.cond(
                        NewBatchState.invalid_count > 0,
                        rx.badge(
                            NewBatchState.invalid_count, " invalid", color_scheme="red", size="2"
                        ),
                    ),
                    rx.spacer(),
                    rx.cond(
                        NewBatchState.invalid_count > 0,
                        rx.button(
                            rx.icon("trash-2", size=14),
                            "Drop invalid rows",
                            color_scheme="red",
                            variant="soft",
                            on_click=NewBatchState.drop_invalid_rows,
                        ),
                    ),
                    rx.button(
                        "Remove file",
                        variant="ghost",
                        color_scheme="gray",
                        on_click=NewBatchState.clear_file,
                    ),
                    width="100%",
                    align="center",
                ),
                rx.cond(
                    NewBatchState.problems.length() > 0,
                    rx.box(
                        rx.table.root(
                            rx.table.header(
                                rx.table.row(
                                    rx.table.column_header_cell("Row"),
                                    rx.table.column_header_cell("Column"),
                                    rx.table.column_header_cell("Problem"),
                                )
                            ),
                            rx.table.body(rx.foreach(NewBatchState.problems, _problem_line)),
                            size="1",
                            variant="surface",
                        ),
                        rx.cond(
                            NewBatchState.more_problems > 0,
                            rx.text(
                                "…and ",
                                NewBatchState.more_problems,
                                " more.",
                                size="1",
                                color_scheme="gray",
                            ),
                        ),
                        max_height="220px",
                        overflow_y="auto",
                        width="100%",
                        id="problems",
                    ),
                ),
                rx.table.root(
                    rx.table.header(
                        rx.table.row(
                            *[
                                rx.table.column_header_cell(h)
                                for h in ("Row", "Phone", "Variables", "")
                            ]
                        )
                    ),
                    rx.table.body(rx.foreach(NewBatchState.preview, _preview_row)),
                    size="1",
                    variant="surface",
                    width="100%",
                ),
                pager(
                    NewBatchState.preview_page,
                    NewBatchState.preview_pages,
                    NewBatchState.total_rows,
                    on_turn=NewBatchState.turn_preview_page,
                    what="rows",
                    caption="Preview page ",
                    size="1",
                ),
                width="100%",
                spacing="3",
            ),
        ),
        width="100%",
        spacing="3",
    )


def _manual_row(row: rx.Var, i: rx.Var, columns: rx.Var) -> rx.Component:
    problem = NewBatchState.manual_errors[i]
    return rx.fragment(
        rx.table.row(
            rx.table.cell(
                rx.text((i + 1).to_string(), size="1", color_scheme="gray"),
                vertical_align="middle",
            ),
            rx.foreach(
                columns,
                lambda column: rx.table.cell(
                    rx.input(
                        value=row[column],
                        on_change=lambda v: NewBatchState.set_cell(i, column, v),
                        placeholder=rx.cond(column == "phone", "+14155552671", column),
                        aria_label=column + " of row " + (i + 1).to_string(),
                        aria_invalid=rx.cond(
                            NewBatchState.manual_bad_cells.contains(i.to_string() + ":" + column),
                            "true",
                            "false",
                        ),
                        color_scheme=rx.cond(
                            NewBatchState.manual_bad_cells.contains(i.to_string() + ":" + column),
                            "red",
                            "gray",
                        ),
                        variant=rx.cond(
                            NewBatchState.manual_bad_cells.contains(i.to_string() + ":" + column),
                            "soft",
                            "surface",
                        ),
                        size="1",
                    ),
                ),
            ),
            rx.table.cell(
                rx.icon_button(
                    rx.icon("x", size=14),
                    variant="ghost",
                    color_scheme="gray",
                    on_click=NewBatchState.remove_row(i),
                    aria_label="Remove row " + (i + 1).to_string(),
                )
            ),
            background=rx.cond(problem, rx.color("red", 2), "transparent"),
        ),
        rx.cond(
            problem,
            rx.table.row(
                rx.table.cell(
                    rx.hstack(
                        rx.icon("circle-alert", size=14, color=rx.color("red", 10)),
                        rx.text("Row ", (i + 1).to_string(), ": ", problem, size="1"),
                        spacing="1",
                        align="center",
                    ),
                    col_span=columns.length() + 2,
                    color=rx.color("red", 11),
                    padding_top="0",
                ),
                background=rx.color("red", 2),
            ),
        ),
    )


def _manual_recipients() -> rx.Component:
    columns = rx.Var.create(["phone"]).to(list[str]) + NewBatchState.placeholders
    return rx.vstack(
        rx.table.root(
            rx.table.header(
                rx.table.row(
                    rx.table.column_header_cell("#", width="32px"),
                    rx.foreach(columns, lambda c: rx.table.column_header_cell(c)),
                    rx.table.column_header_cell(""),
                )
            ),
            rx.table.body(
                rx.foreach(
                    NewBatchState.manual_rows,
                    lambda row, i: _manual_row(row, i, columns),
                )
            ),
            size="1",
            variant="surface",
            width="100%",
        ),
        rx.button(
            rx.icon("plus", size=14),
            "Add row",
            variant="soft",
            size="1",
            on_click=NewBatchState.add_row,
        ),
        width="100%",
        spacing="2",
    )


DAY_NAMES = tuple((day, day.capitalize()) for day in WEEKDAYS)
VOICEMAIL_CHOICES = (
    (NO_VOICEMAIL, "Nothing special"),
    ("hang_up", "Hang up"),
    ("leave_message", "Leave a message"),
)


def _voicemail_rule() -> rx.Component:
    return rx.vstack(
        field(
            "When a machine answers",
            rx.select.root(
                rx.select.trigger(id="voicemail-action", width="100%"),
                rx.select.content(
                    *[rx.select.item(label, value=value) for value, label in VOICEMAIL_CHOICES]
                ),
                value=NewBatchState.voicemail_action,
                on_change=NewBatchState.set_voicemail_action,
            ),
            hint="Hang up or leave a message: on Twilio, each call then listens for an "
            "answering machine first. Nothing special: the agent talks as it would to a person.",
            error=rx.cond(
                NewBatchState.voicemail_action == "leave_message",
                "",
                NewBatchState.field_errors.get("voicemail", ""),
            ),
            html_for="voicemail-action",
        ),
        rx.cond(
            NewBatchState.voicemail_action == "leave_message",
            field(
                "Message",
                rx.text_area(
                    id="voicemail-message",
                    value=NewBatchState.voicemail_message,
                    on_change=NewBatchState.set_voicemail_message,
                    placeholder="Hi {{first_name}}, this is Acme Dental about your appointment "
                    "at {{appointment_time}}. Please call us back.",
                    rows="3",
                ),
                hint="What the agent says after the beep; {{placeholders}} are filled in "
                "per recipient.",
                error=NewBatchState.field_errors.get("voicemail", ""),
                html_for="voicemail-message",
            ),
        ),
        spacing="3",
        width="100%",
        max_width="520px",
    )


def _rules_card() -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.heading("Calling rules", size="4", as_="h2"),
            rx.hstack(
                field(
                    "Attempts per recipient",
                    rx.input(
                        id="retry-attempts",
                        type="number",
                        min=1,
                        max=10,
                        value=NewBatchState.retry_attempts,
                        on_change=NewBatchState.set_retry_attempts,
                    ),
                    html_for="retry-attempts",
                ),
                field(
                    "Try again after (minutes)",
                    rx.input(
                        id="retry-delay",
                        type="number",
                        min=1,
                        value=NewBatchState.retry_delay_minutes,
                        on_change=NewBatchState.set_retry_delay_minutes,
                    ),
                    html_for="retry-delay",
                ),
                spacing="4",
                width="100%",
            ),
            rx.hstack(
                rx.text("Try again on:", size="2"),
                *[
                    rx.el.label(
                        rx.checkbox(
                            checked=NewBatchState.retry_on.contains(value),
                            on_change=lambda _v, value=value: NewBatchState.toggle_retry_on(value),
                        ),
                        rx.text(label, size="2"),
                        style={"display": "flex", "gap": "6px", "align_items": "center"},
                    )
                    for value, label in RETRY_ON_WORDS.items()
                ],
                spacing="4",
                wrap="wrap",
            ),
            rx.cond(
                NewBatchState.field_errors.get("retry_policy", ""),
                rx.text(
                    NewBatchState.field_errors.get("retry_policy", ""), color_scheme="red", size="1"
                ),
            ),
            rx.separator(),
            rx.el.label(
                rx.switch(checked=NewBatchState.window_on, on_change=NewBatchState.set_window_on),
                rx.text("Call only within hours", size="2", weight="medium"),
                style={"display": "flex", "gap": "8px", "align_items": "center"},
            ),
            rx.cond(
                NewBatchState.window_on,
                rx.vstack(
                    rx.hstack(
                        field(
                            "From",
                            rx.input(
                                id="window-start",
                                type="time",
                                value=NewBatchState.window_start,
                                on_change=NewBatchState.set_window_start,
                            ),
                            html_for="window-start",
                        ),
                        field(
                            "Until",
                            rx.input(
                                id="window-end",
                                type="time",
                                value=NewBatchState.window_end,
                                on_change=NewBatchState.set_window_end,
                            ),
                            html_for="window-end",
                        ),
                        field(
                            "Time zone",
                            rx.input(
                                id="window-zone",
                                value=NewBatchState.window_zone,
                                on_change=NewBatchState.set_window_zone,
                            ),
                            hint="recipient: each number's own local time; or an IANA zone like Europe/Berlin",
                            html_for="window-zone",
                        ),
                        spacing="4",
                        width="100%",
                    ),
                    rx.hstack(
                        *[
                            rx.el.label(
                                rx.checkbox(
                                    checked=NewBatchState.window_days.contains(day),
                                    on_change=lambda _v, day=day: NewBatchState.toggle_window_day(
                                        day
                                    ),
                                ),
                                rx.text(name, size="2"),
                                style={"display": "flex", "gap": "6px", "align_items": "center"},
                            )
                            for day, name in DAY_NAMES
                        ],
                        spacing="4",
                        wrap="wrap",
                    ),
                    rx.cond(
                        NewBatchState.field_errors.get("calling_window", ""),
                        rx.text(
                            NewBatchState.field_errors.get("calling_window", ""),
                            color_scheme="red",
                            size="1",
                        ),
                    ),
                    width="100%",
                    spacing="3",
                ),
            ),
            rx.separator(),
            _voicemail_rule(),
            spacing="4",
            width="100%",
        ),
        width="100%",
    )


def _recipients_card() -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.hstack(
                rx.heading("Recipients", size="4", as_="h2"),
                rx.spacer(),
                rx.button(
                    rx.icon("download", size=14),
                    "Download sample",
                    variant="soft",
                    size="2",
                    on_click=NewBatchState.download_sample,
                ),
                width="100%",
                align="center",
            ),
            rx.segmented_control.root(
                rx.segmented_control.item("CSV file", value="csv"),
                rx.segmented_control.item("Add by hand", value="manual"),
                value=NewBatchState.mode,
                on_change=NewBatchState.set_mode,
                aria_label="How to add recipients",
            ),
            rx.cond(NewBatchState.mode == "csv", _csv_recipients(), _manual_recipients()),
            spacing="4",
            width="100%",
        ),
        width="100%",
    )


def new_batch_page() -> rx.Component:
    return frame(
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
            "New batch",
            subtitle=rx.text(
                "Dial a list of numbers through one of your agents.", size="2", color_scheme="gray"
            ),
        ),
        rx.vstack(
            _details_card(),
            _rules_card(),
            _recipients_card(),
            rx.cond(
                NewBatchState.form_error,
                rx.callout(
                    NewBatchState.form_error,
                    icon="triangle-alert",
                    color_scheme="red",
                    role="alert",
                    width="100%",
                ),
            ),
            rx.hstack(
                rx.spacer(),
                link_button("Cancel", "/batches", variant="soft", color_scheme="gray"),
                rx.button(
                    NewBatchState.submit_label,
                    size="3",
                    on_click=NewBatchState.submit,
                    loading=NewBatchState.submitting,
                ),
                width="100%",
            ),
            spacing="4",
            width="100%",
            max_width="900px",
        ),
    )
