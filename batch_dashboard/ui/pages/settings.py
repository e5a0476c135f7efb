"""/settings: API keys (created and shown once, listed by prefix, revoked)."""

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
from batch_dashboard.ui.states.admin import KeyRow, SettingsState
from batch_dashboard.ui.states.wall_tokens import WallTokenRow, WallTokensState


def _key_line(row: KeyRow) -> rx.Component:
    revoked = row.revoked_at.bool()
    return rx.table.row(
        rx.table.cell(rx.code(row.prefix + "…", size="2", variant="ghost")),
        rx.table.cell(
            rx.cond(row.label, rx.text(row.label, size="2"), rx.text("—", color_scheme="gray"))
        ),
        rx.table.cell(local_time(row.created_at), white_space="nowrap"),
        rx.table.cell(
            rx.cond(
                revoked,
                rx.hstack(
                    rx.badge("Revoked", color_scheme="gray", variant="outline", radius="full"),
                    rx.text(local_time(row.revoked_at), size="1", color_scheme="gray"),
                    align="center",
                    spacing="2",
                ),
                rx.badge("Active", color_scheme="green", variant="soft", radius="full"),
            )
        ),
        rx.table.cell(
            rx.cond(
                revoked,
                rx.fragment(),
                row_action(
                    "ban",
                    "Revoke",
                    SettingsState.ask_revoke(row.id, row.prefix),
                    f"Revoke {row.prefix}…",
                    color_scheme="red",
                ),
            ),
            text_align="right",
        ),
        _hover={"background": rx.color("gray", 2)},
        align="center",
    )


def _key_table() -> rx.Component:
    return data_table(("Key", "Label", "Created", "Status", ""), SettingsState.keys, _key_line)


def _create_dialog() -> rx.Component:
    key_view = rx.vstack(
        rx.callout(
            "Copy it now: it will not be shown again. Send it as Authorization: Bearer <key>.",
            icon="triangle-alert",
            color_scheme="amber",
            size="1",
            width="100%",
        ),
        shown_once("API key", "new-api-key", SettingsState.new_key, "Key copied"),
        rx.hstack(
            rx.button("Done", on_click=SettingsState.set_create_open(False)),
            justify="end",
            width="100%",
        ),
        spacing="4",
        width="100%",
    )
    return form_dialog(
        field(
            "Label",
            rx.input(
                id="key-label",
                name="label",
                placeholder="CRM integration",
                max_length=200,
                auto_focus=True,
            ),
            hint="Optional. Says what uses the key, so you know what breaks if you revoke it.",
            html_for="key-label",
        ),
        title=rx.cond(SettingsState.new_key, "Your new API key", "Create API key"),
        description="Keys call the /v1 API for this workspace.",
        submit="Create key",
        on_submit=SettingsState.create,
        submitting=SettingsState.creating,
        error=SettingsState.create_error,
        open=SettingsState.create_open,
        on_open_change=SettingsState.set_create_open,
        shown_instead=(SettingsState.new_key, key_view),
    )


def _revoke_dialog() -> rx.Component:
    return confirm_dialog(
        title=("Revoke key ", SettingsState.revoke_prefix, "…?"),
        description="Requests with this key are refused from now on. This cannot be undone.",
        keep="Keep it",
        on_keep=SettingsState.cancel_revoke(False),
        confirm="Revoke key",
        on_confirm=SettingsState.revoke,
        busy=SettingsState.revoking,
        open=SettingsState.confirm_revoke,
        on_open_change=SettingsState.cancel_revoke,
    )


def _wall_row(row: WallTokenRow) -> rx.Component:
    return rx.table.row(
        rx.table.cell(rx.code(row.prefix + "…")),
        rx.table.cell(row.label),
        rx.table.cell(local_time(row.created_at)),
        rx.table.cell(
            rx.cond(
                row.revoked,
                rx.badge("Revoked", color_scheme="gray", variant="outline"),
                rx.badge("Active", color_scheme="green"),
            )
        ),
        rx.table.cell(
            rx.cond(
                row.revoked,
                rx.fragment(),
                row_action(
                    "ban",
                    "Revoke",
                    WallTokensState.revoke(row.id),
                    "Revoke wall link " + row.prefix,
                    color_scheme="red",
                ),
            ),
            text_align="right",
        ),
    )


def _wall_section() -> rx.Component:
    return rx.vstack(
        rx.heading("Wall screens", size="4"),
        rx.text(
            "A read-only link for an office TV: live batches, today's totals and calls per minute. "
            "No login needed, so treat the link like a key.",
            size="2",
            color_scheme="gray",
        ),
        rx.form(
            rx.hstack(
                rx.box(
                    field(
                        "Screen name",
                        rx.input(id="wall-label", name="wall_label", placeholder="Office TV"),
                        html_for="wall-label",
                    ),
                    flex="1",
                ),
                rx.button(rx.icon("monitor", size=16), "Create wall link", type="submit"),
                align="end",
                spacing="3",
                width="100%",
            ),
            on_submit=WallTokensState.create,
            reset_on_submit=True,
            width="100%",
        ),
        rx.cond(
            WallTokensState.error,
            rx.callout(WallTokensState.error, color_scheme="red", icon="triangle-alert"),
        ),
        rx.cond(
            WallTokensState.new_link,
            rx.vstack(
                rx.callout(
                    "Open this link on the screen. It is shown once.",
                    icon="triangle-alert",
                    color_scheme="amber",
                    size="1",
                    width="100%",
                ),
                shown_once(
                    "Wall screen link", "wall-link", WallTokensState.new_link, "Link copied"
                ),
                rx.button("Done", variant="soft", on_click=WallTokensState.dismiss_link),
                width="100%",
            ),
        ),
        rx.cond(
            WallTokensState.tokens.length() > 0,
            data_table(
                ("Link", "Name", "Created", "Status", ""), WallTokensState.tokens, _wall_row
            ),
        ),
        spacing="3",
        width="100%",
        margin_top="32px",
    )


def settings_page() -> rx.Component:
    create_button = rx.button(
        rx.icon("plus", size=16), "Create API key", on_click=SettingsState.start_create
    )
    return frame(
        page_header("Settings"),
        rx.vstack(
            rx.hstack(
                rx.vstack(
                    rx.heading("API keys", size="4"),
                    rx.text(
                        "For your own systems calling /v1. A key is shown once, when it is created.",
                        size="2",
                        color_scheme="gray",
                    ),
                    spacing="1",
                ),
                rx.spacer(),
                create_button,
                width="100%",
                align="center",
            ),
            rx.cond(
                SettingsState.loaded,
                rx.cond(
                    SettingsState.keys.length() > 0,
                    _key_table(),
                    empty_state(
                        "key-round",
                        "No API keys yet",
                        "Create one to call the /v1 API from your own systems.",
                        create_button,
                        rx.link(
                            rx.button("API docs", variant="soft"), href="/v1/docs", is_external=True
                        ),
                    ),
                ),
                rx.vstack(
                    *[rx.skeleton(height="44px", width="100%") for _ in range(3)], width="100%"
                ),
            ),
            spacing="4",
            width="100%",
            align="start",
        ),
        _wall_section(),
        _create_dialog(),
        _revoke_dialog(),
    )
