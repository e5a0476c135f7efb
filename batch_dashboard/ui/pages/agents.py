"""/agents: the workspace's agents, their caller numbers, webhooks and signing secrets."""

from __future__ import annotations

import reflex as rx

from batch_dashboard.ui.components import (
    confirm_dialog,
    data_table,
    empty_state,
    field,
    form_dialog,
    local_time,
    page_header,
    row_action,
    shown_once,
)
from batch_dashboard.ui.layout import frame
from batch_dashboard.ui.states.admin import (
    NO_NUMBER,
    AgentRow,
    AgentsState,
    AttemptRow,
    DeliveryRow,
    NumberRow,
)
from batch_dashboard.ui.styles import STATUS_COLORS

NUMERIC = {"font_variant_numeric": "tabular-nums"}
DELIVERY_COLORS = {
    "delivered": STATUS_COLORS["completed"],
    "pending": STATUS_COLORS["pending"],
    "failed": STATUS_COLORS["failed"],
}


# --- the list ------------------------------------------------------------------------------


def _caller(row: AgentRow) -> rx.Component:
    return rx.cond(
        row.caller_number,
        rx.vstack(
            rx.text(row.caller_number, size="2", style=NUMERIC, white_space="nowrap"),
            rx.cond(
                row.caller_outbound,
                rx.fragment(),
                rx.badge("Inbound only", color_scheme="amber", variant="soft", size="1"),
            ),
            spacing="1",
        ),
        rx.vstack(
            rx.text("No caller number", size="2", color_scheme="gray"),
            rx.link("Add a number", href="/phone-numbers", size="1"),
            spacing="0",
        ),
    )


def _webhook(row: AgentRow) -> rx.Component:
    return rx.vstack(
        rx.cond(
            row.webhook_url,
            rx.text(
                row.webhook_url,
                size="1",
                max_width="240px",
                overflow="hidden",
                text_overflow="ellipsis",
                white_space="nowrap",
                title=row.webhook_url,
            ),
            rx.text("—", color_scheme="gray"),
        ),
        rx.cond(
            row.webhook_disabled_reason,
            rx.vstack(
                rx.badge("Webhook disabled", color_scheme="red", variant="soft", radius="full"),
                rx.text(
                    row.webhook_disabled_reason, size="1", color_scheme="red", max_width="240px"
                ),
                spacing="1",
            ),
        ),
        spacing="1",
    )


def _runs_on(row: AgentRow) -> rx.Component:
    """Its connection and platform; for Twilio, the bot's media stream it hands each call."""
    return rx.vstack(
        rx.text(row.connection, size="2", white_space="nowrap"),
        rx.cond(row.platform, rx.text(row.platform, size="1", color_scheme="gray")),
        rx.cond(
            row.external_agent_id,
            rx.hstack(
                rx.code(row.external_agent_id, size="1", variant="ghost", title="Its id there"),
                rx.link(
                    "Open",
                    rx.icon("external-link", size=12),
                    href=row.platform_console,
                    is_external=True,
                    size="1",
                    aria_label="Open the platform's console to find agent " + row.external_agent_id,
                ),
                spacing="2",
                align="center",
            ),
        ),
        rx.cond(
            row.on_twilio,
            rx.cond(
                row.stream_url,
                rx.code(
                    row.stream_url,
                    size="1",
                    variant="ghost",
                    title=row.stream_url,
                    max_width="220px",
                    overflow="hidden",
                    text_overflow="ellipsis",
                    white_space="nowrap",
                ),
                rx.badge("No media stream URL", color_scheme="amber", variant="soft", size="1"),
            ),
        ),
        spacing="1",
    )


def _agent_line(row: AgentRow) -> rx.Component:
    return rx.table.row(
        rx.table.cell(rx.text(row.name, weight="medium", size="2")),
        rx.table.cell(_caller(row)),
        rx.table.cell(_runs_on(row)),
        rx.table.cell(
            rx.cond(
                row.placeholders.length() > 0,
                rx.flex(
                    rx.foreach(
                        row.placeholders,
                        lambda name: rx.badge(
                            name, variant="surface", color_scheme="gray", size="1"
                        ),
                    ),
                    gap="4px",
                    wrap="wrap",
                    max_width="240px",
                ),
                rx.text("None", size="1", color_scheme="gray"),
            )
        ),
        rx.table.cell(_webhook(row)),
        rx.table.cell(
            rx.hstack(
                row_action(
                    "pencil",
                    "Edit",
                    AgentsState.edit_agent(row),
                    f"Edit {row.name}",
                    color_scheme=None,
                ),
                row_action(
                    "key-round",
                    "Rotate secret",
                    AgentsState.ask_rotate(row.id, row.name),
                    f"Rotate secret of {row.name}",
                ),
                row_action(
                    "send",
                    "Deliveries",
                    AgentsState.show_deliveries(row.id, row.name),
                    f"Deliveries of {row.name}",
                ),
                spacing="2",
                justify="end",
            )
        ),
        _hover={"background": rx.color("gray", 2)},
        align="center",
    )


def _agent_table() -> rx.Component:
    return data_table(
        ("Name", "Caller number", "Runs on", "Placeholders", "Webhook", ""),
        AgentsState.rows,
        _agent_line,
    )


# --- create / edit -------------------------------------------------------------------------


def _number_item(number: NumberRow) -> rx.Component:
    return rx.select.item(
        rx.cond(
            number.label,
            f"{number.phone} · {number.label}",
            number.phone,
        )
        + rx.cond(number.outbound_enabled, "", " (inbound only)"),
        value=number.id,
    )


def _editor() -> rx.Component:
    return form_dialog(
        field(
            "Name",
            rx.input(
                id="agent-name",
                name="name",
                default_value=AgentsState.form_name,
                placeholder="Appointment reminders",
                max_length=200,
                auto_focus=True,
            ),
            html_for="agent-name",
        ),
        field(
            "Prompt",
            rx.text_area(
                id="agent-prompt",
                name="prompt",
                default_value=AgentsState.form_prompt,
                placeholder="Remind {{first_name}} of the appointment at {{appointment_time}}.",
                rows="6",
            ),
            html_for="agent-prompt",
        ),
        field(
            "First message",
            rx.text_area(
                id="agent-first-message",
                name="first_message",
                default_value=AgentsState.form_first_message,
                placeholder="Hi {{first_name}}!",
                rows="2",
            ),
            html_for="agent-first-message",
        ),
        field(
            "Caller number",
            rx.select.root(
                rx.select.trigger(id="agent-number", width="100%"),
                rx.select.content(
                    rx.select.item("None", value=NO_NUMBER),
                    rx.foreach(AgentsState.numbers, _number_item),
                ),
                value=AgentsState.form_number,
                on_change=AgentsState.set_form_number,
            ),
            hint=rx.fragment(
                "Only outbound-enabled numbers can place calls. ",
                rx.link("Manage numbers", href="/phone-numbers"),
            ),
            html_for="agent-number",
        ),
        field(
            "Media stream URL (Twilio)",
            rx.input(
                id="agent-stream-url",
                name="stream_url",
                type="url",
                default_value=AgentsState.form_stream_url,
                placeholder="wss://bot.example.com/stream",
                spell_check=False,
            ),
            hint="For agents whose caller number is on a Twilio connection: your voice bot's "
            "websocket. Twilio streams each answered call there, with the prompt and the "
            "recipient's variables.",
            html_for="agent-stream-url",
        ),
        field(
            "Webhook URL",
            rx.input(
                id="agent-webhook-url",
                name="webhook_url",
                type="url",
                default_value=AgentsState.form_webhook_url,
                placeholder="https://example.com/hooks/calls",
            ),
            hint="Optional. Every finished call is POSTed here, signed.",
            html_for="agent-webhook-url",
        ),
        field(
            "Opt-out field",
            rx.input(
                id="agent-opt-out",
                name="opt_out_field",
                default_value=AgentsState.form_opt_out_field,
                placeholder="opted_out",
            ),
            hint="Optional. A data-collection field; when a call says yes, the number "
            "goes on the do-not-call list.",
            html_for="agent-opt-out",
        ),
        title=rx.cond(AgentsState.editing_id, "Edit agent", "New agent"),
        description="Use {{placeholders}} in the prompt and first message: each becomes a "
        "column of the batch's recipients.",
        submit=rx.cond(AgentsState.editing_id, "Save", "Create agent"),
        on_submit=AgentsState.save,
        submitting=AgentsState.saving,
        error=AgentsState.form_error,
        open=AgentsState.editor_open,
        on_open_change=AgentsState.set_editor_open,
        max_width="560px",
    )


# --- secrets -------------------------------------------------------------------------------


def _secret_dialog() -> rx.Component:
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title(AgentsState.secret_title),
            rx.vstack(
                rx.callout(
                    "Copy it now: it will not be shown again. Receivers check each webhook's "
                    "signature with it.",
                    icon="triangle-alert",
                    color_scheme="amber",
                    size="1",
                    width="100%",
                ),
                shown_once("Signing secret", "signing-secret", AgentsState.secret, "Secret copied"),
                rx.hstack(
                    rx.button("Done", on_click=AgentsState.close_secret(False)),
                    justify="end",
                    width="100%",
                ),
                spacing="4",
                width="100%",
                margin_top="8px",
            ),
            max_width="560px",
        ),
        open=AgentsState.secret_open,
        on_open_change=AgentsState.close_secret,
    )


def _rotate_dialog() -> rx.Component:
    return confirm_dialog(
        title=("Rotate the signing secret of ", AgentsState.rotate_name, "?"),
        description=(
            "A new secret starts signing every webhook at once. For the next 24 hours each "
            "webhook is signed with both the new and the old secret, so your receiver keeps "
            "working while you switch it over; then the old secret stops."
        ),
        keep="Keep the current secret",
        on_keep=AgentsState.cancel_rotate(False),
        confirm="Rotate secret",
        on_confirm=AgentsState.rotate,
        busy=AgentsState.rotating,
        open=AgentsState.confirm_rotate,
        on_open_change=AgentsState.cancel_rotate,
    )


# --- deliveries ----------------------------------------------------------------------------


def _delivery_badge(status: rx.Var) -> rx.Component:
    return rx.badge(
        status.to(str).capitalize(),
        color_scheme=rx.match(status, *DELIVERY_COLORS.items(), "gray"),
        variant="soft",
        radius="full",
    )


def _attempt_line(attempt: AttemptRow) -> rx.Component:
    return rx.hstack(
        rx.box(local_time(attempt.at), min_width="110px"),
        rx.cond(
            attempt.status_code,
            rx.code(attempt.status_code, size="1"),
            rx.text("no answer", size="1", color_scheme="gray"),
        ),
        rx.text(attempt.error, size="1", color_scheme="red"),
        spacing="3",
        align="center",
        style={"font_size": "12px"},
    )


def _delivery_line(delivery: DeliveryRow) -> rx.Component:
    return rx.box(
        rx.hstack(
            rx.code(delivery.event_type, size="2", variant="ghost"),
            _delivery_badge(delivery.status),
            rx.spacer(),
            rx.text(
                delivery.attempt_count,
                rx.cond(delivery.attempt_count == 1, " attempt", " attempts"),
                size="1",
                color_scheme="gray",
                style=NUMERIC,
            ),
            rx.text("·", color_scheme="gray", size="1"),
            rx.text(local_time(delivery.created_at), size="1"),
            align="center",
            spacing="2",
            width="100%",
        ),
        rx.cond(
            delivery.attempts.length() > 0,
            rx.vstack(
                rx.foreach(delivery.attempts, _attempt_line),
                spacing="1",
                padding_left="12px",
                margin_top="6px",
                border_left=f"2px solid {rx.color('gray', 5)}",
            ),
        ),
        padding="10px 12px",
        border_radius="8px",
        border=f"1px solid {rx.color('gray', 4)}",
        width="100%",
    )


def _deliveries_dialog() -> rx.Component:
    return rx.dialog.root(
        rx.dialog.content(
            rx.hstack(
                rx.dialog.title("Webhook deliveries · ", AgentsState.deliveries_agent, margin="0"),
                rx.spacer(),
                rx.dialog.close(rx.icon_button(rx.icon("x"), variant="ghost", aria_label="Close")),
                width="100%",
                align="center",
            ),
            rx.text("The latest 50, newest first.", size="2", color_scheme="gray"),
            rx.box(
                rx.cond(
                    AgentsState.deliveries_loading,
                    rx.vstack(
                        *[rx.skeleton(height="48px", width="100%") for _ in range(3)],
                        width="100%",
                    ),
                    rx.cond(
                        AgentsState.deliveries.length() > 0,
                        rx.vstack(
                            rx.foreach(AgentsState.deliveries, _delivery_line),
                            spacing="2",
                            width="100%",
                        ),
                        empty_state(
                            "send",
                            "No deliveries yet",
                            "A webhook is sent when a call of this agent ends and the agent has "
                            "a webhook URL.",
                        ),
                    ),
                ),
                margin_top="16px",
                max_height="60vh",
                overflow_y="auto",
                width="100%",
            ),
            max_width="720px",
        ),
        open=AgentsState.deliveries_open,
        on_open_change=AgentsState.set_deliveries_open,
    )


def agents_page() -> rx.Component:
    new_button = rx.button(rx.icon("plus", size=16), "New agent", on_click=AgentsState.new_agent)
    return frame(
        page_header(
            "Agents",
            new_button,
            subtitle=rx.text(
                "What each batch's calls say, from which number, and where the results go.",
                size="2",
                color_scheme="gray",
            ),
        ),
        rx.cond(
            AgentsState.loaded,
            rx.cond(
                AgentsState.rows.length() > 0,
                _agent_table(),
                empty_state(
                    "bot",
                    "No agents yet",
                    "Create an agent: a prompt with {{placeholders}}, a caller number, and "
                    "optionally a webhook URL for the results.",
                    new_button,
                ),
            ),
            rx.vstack(*[rx.skeleton(height="52px", width="100%") for _ in range(3)], width="100%"),
        ),
        _editor(),
        _secret_dialog(),
        _rotate_dialog(),
        _deliveries_dialog(),
    )
