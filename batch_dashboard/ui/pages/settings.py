"""/settings: telephony connections, API keys (created and shown once, listed by prefix and
when last used, revoked), members, your password, the workspace's time zone and wall
screens."""

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
    section_header,
    shown_on,
    shown_once,
)
from batch_dashboard.ui.layout import frame
from batch_dashboard.ui.pages.members import members_section, password_section, workspace_section
from batch_dashboard.ui.states.admin import KeyRow, SettingsState
from batch_dashboard.ui.states.connections import (
    ADDABLE,
    CREDENTIAL_FIELDS,
    PROVIDER_NAMES,
    ConnectionRow,
    ConnectionsState,
    CredentialField,
)
from batch_dashboard.ui.states.wall_tokens import WallTokenRow, WallTokensState


def _key_line(row: KeyRow) -> rx.Component:
    revoked = row.revoked_at.bool()
    return rx.table.row(
        rx.table.cell(rx.code(row.prefix + "…", size="2", variant="ghost")),
        rx.table.cell(
            rx.cond(row.label, rx.text(row.label, size="2"), rx.text("—", color_scheme="gray"))
        ),
        rx.table.cell(local_time(row.created_at), white_space="nowrap"),
        rx.table.cell(local_time(row.last_used_at, empty="Never"), white_space="nowrap"),
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
    return data_table(
        ("Key", "Label", "Created", "Last used", "Status", ""), SettingsState.keys, _key_line
    )


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


# --- telephony ----------------------------------------------------------------------------

NUMERIC = {"font_variant_numeric": "tabular-nums"}
ADD_DESCRIPTIONS = {
    "twilio": "Your Account SID and Auth token are on the Twilio Console's home page, under "
    "Account Info. They are stored sealed and never shown again, not even here.",
    "simulator": "Made-up calls with made-up outcomes, for trying batches out: no account, "
    "nothing to set up.",
}


def _connection_note(row: ConnectionRow) -> rx.Component:
    return rx.cond(
        row.note,
        rx.hstack(
            rx.cond(
                row.note_ok,
                rx.icon("circle-check", size=14, color=rx.color("green", 10), flex_shrink="0"),
                rx.icon("circle-alert", size=14, color=rx.color("red", 10), flex_shrink="0"),
            ),
            rx.text(row.note, size="1", color_scheme=rx.cond(row.note_ok, "green", "red")),
            spacing="1",
            align="start",
            max_width="280px",
            role="status",
        ),
    )


def _events_url(row: ConnectionRow) -> rx.Component:
    return rx.vstack(
        rx.cond(row.events_url != "", _events_url_line(row)),
        rx.text(row.setup, size="1", color_scheme="gray"),
        spacing="1",
        width="100%",
        max_width="380px",
    )


def _events_url_line(row: ConnectionRow) -> rx.Component:
    return rx.hstack(
        # Whole, to be read and checked (its last part names the connection), broken
        # only after a "/" when there is no room.
        rx.code(
            rx.foreach(
                row.events_url_parts,
                lambda part: rx.fragment(
                    rx.el.span(part, style={"white_space": "nowrap"}), rx.el.wbr()
                ),
            ),
            size="1",
            variant="ghost",
            flex="1",
        ),
        rx.button(
            rx.icon("copy", size=14),
            "Copy",
            size="1",
            variant="soft",
            color_scheme="gray",
            flex_shrink="0",
            aria_label="Copy the events URL of " + row.name,
            on_click=[rx.set_clipboard(row.events_url), rx.toast.success("Events URL copied")],
        ),
        align="start",
        spacing="2",
        width="100%",
    )


def _platform_badge(row: ConnectionRow) -> rx.Component:
    """Its platform unless it is named just that, and what a batch may ask of it when a
    machine answers (the New batch page's "When a machine answers")."""
    return rx.fragment(
        rx.cond(
            row.name != row.provider_name,
            rx.badge(row.provider_name, variant="soft", color_scheme="gray", radius="full"),
        ),
        rx.text(row.voicemail, size="1", color_scheme="gray"),
    )


def _credentials(row: ConnectionRow) -> rx.Component:
    return rx.cond(
        row.credentials.length() > 0,
        rx.vstack(
            rx.foreach(row.credentials, lambda hint: rx.text(hint, size="1", white_space="nowrap")),
            spacing="1",
        ),
        rx.text("None needed", size="1", color_scheme="gray"),
    )


def _actions(row: ConnectionRow, *, in_table: bool) -> rx.Component:
    """Test, Import numbers (where the platform has numbers to import) and Delete: on one line
    at the end of a table row, wrapping in a phone's card."""
    busy = ConnectionsState.busy_id == row.id
    return rx.hstack(
        row_action(
            "plug-zap",
            "Test",
            ConnectionsState.test(row.id),
            "Test " + row.name,
            color_scheme=None,
            busy=busy,
        ),
        rx.cond(
            row.can_import,
            row_action(
                "download",
                "Import numbers",
                ConnectionsState.import_numbers(row.id),
                "Import the numbers of " + row.name,
                busy=busy,
            ),
        ),
        rx.cond(
            row.can_import_agents,
            row_action(
                "bot",
                "Import agents",
                ConnectionsState.import_agents(row.id),
                "Import the agents of " + row.name,
                busy=busy,
            ),
        ),
        row_action(
            "trash-2",
            "Delete",
            ConnectionsState.ask_delete(row.id, row.name),
            "Delete " + row.name,
            color_scheme="red",
        ),
        spacing="2",
        # In the table they wrap inside their cell (four actions on a Retell row) rather than
        # spill over the events URL; on a phone's card they wrap under the details.
        flex_wrap="wrap",
        **({"justify": "end"} if in_table else {}),
    )


def _connection_line(row: ConnectionRow) -> rx.Component:
    return rx.table.row(
        rx.table.cell(
            rx.vstack(
                rx.text(row.name, weight="medium", size="2"), _platform_badge(row), spacing="1"
            )
        ),
        rx.table.cell(_credentials(row)),
        rx.table.cell(rx.text(row.calls_per_second, size="2", style=NUMERIC)),
        rx.table.cell(_events_url(row), min_width="260px"),
        rx.table.cell(
            rx.vstack(
                _actions(row, in_table=True),
                _connection_note(row),
                align="end",
                spacing="2",
            )
        ),
        _hover={"background": rx.color("gray", 2)},
        align="center",
    )


def _connection_card(row: ConnectionRow) -> rx.Component:
    """One connection on a phone, where the table's five columns do not fit."""
    return rx.card(
        rx.vstack(
            rx.hstack(
                rx.text(row.name, weight="medium", size="2"),
                _platform_badge(row),
                align="center",
                spacing="2",
                flex_wrap="wrap",
            ),
            rx.hstack(
                _credentials(row),
                rx.spacer(),
                rx.text("Calls per second: ", row.calls_per_second, size="1", color_scheme="gray"),
                width="100%",
                align="start",
            ),
            _events_url(row),
            _actions(row, in_table=False),
            _connection_note(row),
            spacing="3",
            width="100%",
        ),
        width="100%",
    )


def _connection_list() -> rx.Component:
    return rx.fragment(
        shown_on(
            data_table(
                ("Connection", "Credentials", "Calls per second", "Events URL", ""),
                ConnectionsState.rows,
                _connection_line,
            ),
            phones=False,
            width="100%",
        ),
        shown_on(
            rx.vstack(rx.foreach(ConnectionsState.rows, _connection_card), spacing="3"),
            phones=True,
            width="100%",
        ),
    )


def _credential_input(provider: str, item: CredentialField) -> rx.Component:
    control_id = f"conn-{item.key.replace('_', '-')}"
    return field(
        item.label,
        rx.input(
            id=control_id,
            name=item.key,
            type="password" if item.secret else "text",
            placeholder=item.placeholder,
            auto_complete="new-password" if item.secret else "off",
            spell_check=False,
        ),
        error=ConnectionsState.form_errors.get(item.key, ""),
        html_for=control_id,
    )


def _provider_fields(provider: str) -> rx.Component:
    """Everything the dialog asks for one platform, remounted when the platform changes (so no
    typed credential carries over to another platform's inputs)."""
    twilio = provider == "twilio"
    parts = [
        field(
            "Name",
            rx.input(
                id="conn-name",
                name="name",
                default_value=PROVIDER_NAMES[provider],
                max_length=200,
            ),
            hint="How numbers and agents name this account, e.g. Twilio – production.",
            error=ConnectionsState.form_errors.get("name", ""),
            html_for="conn-name",
        ),
        *[_credential_input(provider, item) for item in CREDENTIAL_FIELDS[provider]],
    ]
    if twilio:
        parts.append(
            field(
                "Base URL",
                rx.input(
                    id="conn-base-url",
                    name="base_url",
                    type="url",
                    placeholder="https://api.twilio.com",
                ),
                hint="Optional: a Twilio edge, e.g. https://api.dublin.ie1.twilio.com.",
                error=ConnectionsState.form_errors.get("base_url", ""),
                html_for="conn-base-url",
            )
        )
    parts.append(
        field(
            "Calls per second",
            rx.input(
                id="conn-rate",
                name="calls_per_second",
                type="number",
                min="0",
                step="any",
                default_value="1" if twilio else "",
                placeholder="No limit",
                style=NUMERIC,
            ),
            hint="Your account's limit for new calls (Twilio's default is 1); the dialer never "
            "goes faster."
            if twilio
            else "Optional. Empty: no limit.",
            error=ConnectionsState.form_errors.get("calls_per_second", ""),
            html_for="conn-rate",
        )
    )
    return rx.vstack(*parts, spacing="4", width="100%", key=f"conn-fields-{provider}")


def _add_dialog() -> rx.Component:
    return form_dialog(
        field(
            "Platform",
            rx.select.root(
                rx.select.trigger(id="conn-provider", width="100%"),
                rx.select.content(
                    *[rx.select.item(PROVIDER_NAMES[p], value=p) for p in ADDABLE],
                ),
                value=ConnectionsState.form_provider,
                on_change=ConnectionsState.set_form_provider,
            ),
            html_for="conn-provider",
        ),
        rx.match(
            ConnectionsState.form_provider,
            *[(provider, _provider_fields(provider)) for provider in ADDABLE],
            _provider_fields(ADDABLE[0]),
        ),
        title="Add connection",
        description=rx.match(
            ConnectionsState.form_provider,
            *ADD_DESCRIPTIONS.items(),
            ADD_DESCRIPTIONS[ADDABLE[0]],
        ),
        submit="Add connection",
        on_submit=ConnectionsState.add,
        submitting=ConnectionsState.adding,
        error=ConnectionsState.form_error,
        open=ConnectionsState.add_open,
        on_open_change=ConnectionsState.set_add_open,
        max_width="520px",
    )


def _delete_dialog() -> rx.Component:
    return confirm_dialog(
        title=("Delete ", ConnectionsState.delete_name, "?"),
        description="Batch calls forgets this account and its credentials. Numbers and agents "
        "still on it must be moved or deleted first.",
        keep="Keep it",
        on_keep=ConnectionsState.cancel_delete(False),
        confirm="Delete connection",
        on_confirm=ConnectionsState.delete,
        busy=ConnectionsState.deleting,
        open=ConnectionsState.confirm_delete,
        on_open_change=ConnectionsState.cancel_delete,
    )


def _telephony_section() -> rx.Component:
    add_button = rx.button(
        rx.icon("plus", size=16), "Add connection", on_click=ConnectionsState.start_add
    )
    return rx.vstack(
        section_header(
            "Telephony",
            "Your accounts at telephony platforms: each number and agent calls through one "
            "of them.",
            add_button,
        ),
        rx.cond(
            ConnectionsState.loaded,
            rx.cond(
                ConnectionsState.rows.length() > 0,
                _connection_list(),
                empty_state(
                    "phone",
                    "No telephony connections yet",
                    "Add your Twilio account to call real phones; the simulator needs no setup.",
                    add_button,
                ),
            ),
            rx.vstack(*[rx.skeleton(height="44px", width="100%") for _ in range(2)], width="100%"),
        ),
        _add_dialog(),
        _delete_dialog(),
        spacing="4",
        width="100%",
        align="start",
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
        section_header(
            "Wall screens",
            "A read-only link for an office TV: live batches, today's totals and calls per "
            "minute. No login needed, so treat the link like a key.",
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
        _telephony_section(),
        rx.vstack(
            section_header(
                "API keys",
                "For your own systems calling /v1. A key is shown once, when it is created.",
                create_button,
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
            margin_top="32px",
        ),
        members_section(),
        password_section(),
        workspace_section(),
        _wall_section(),
        _create_dialog(),
        _revoke_dialog(),
    )
