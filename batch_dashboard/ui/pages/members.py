"""Settings → Workspace (its time zone), Members and Your password."""

from __future__ import annotations

from zoneinfo import available_timezones

import reflex as rx

from batch_dashboard.ui.components import (
    confirm_dialog,
    data_table,
    field,
    form_dialog,
    local_time,
    row_action,
    section_header,
    shown_once,
)
from batch_dashboard.ui.states.base import AuthState
from batch_dashboard.ui.states.members import MemberRow, MembersState

# Zones people pick by city; the legacy aliases (US/…, Etc/GMT+3 …) only make the list longer.
_LEGACY = ("Etc/", "SystemV/", "US/", "posix/", "right/")
ZONES = [
    "UTC",
    *sorted(z for z in available_timezones() if "/" in z and not z.startswith(_LEGACY)),
]


def workspace_section() -> rx.Component:
    # Until the form is touched it shows the zone in force (which the first sign-in may have
    # set after the page loaded).
    chosen = rx.cond(MembersState.zone_choice, MembersState.zone_choice, AuthState.timezone)
    return rx.vstack(
        section_header(
            "Workspace",
            "Every time in the console, and the wall screen's today, are in this time zone.",
        ),
        rx.hstack(
            rx.box(
                field(
                    "Time zone",
                    rx.el.select(
                        *[rx.el.option(zone, value=zone) for zone in ZONES],
                        id="workspace-zone",
                        value=chosen,
                        on_change=MembersState.set_zone_choice,
                        style={
                            "height": "32px",
                            "padding": "0 8px",
                            "border_radius": "6px",
                            "border": f"1px solid {rx.color('gray', 7)}",
                            "background": rx.color("gray", 1),
                            "font_size": "14px",
                            "width": "100%",
                        },
                    ),
                    hint=rx.text(
                        "Now showing times in ",
                        rx.text.strong(rx.cond(AuthState.timezone, AuthState.timezone, "UTC")),
                        ". Set from the first browser that signed in.",
                    ),
                    html_for="workspace-zone",
                ),
                width="320px",
                max_width="100%",
            ),
            rx.button(
                "Save time zone",
                on_click=MembersState.save_zone,
                loading=MembersState.saving_zone,
                disabled=chosen == AuthState.timezone,
                margin_top="22px",
            ),
            align="start",
            spacing="3",
            wrap="wrap",
        ),
        spacing="4",
        width="100%",
        align="start",
        margin_top="32px",
    )


def _member_line(row: MemberRow) -> rx.Component:
    you = row.id == AuthState.user_id
    return rx.table.row(
        rx.table.cell(
            rx.hstack(
                rx.text(row.email, size="2", weight="medium"),
                rx.cond(you, rx.badge("You", color_scheme="gray", radius="full")),
                spacing="2",
                align="center",
            )
        ),
        rx.table.cell(local_time(row.created_at), white_space="nowrap"),
        rx.table.cell(
            rx.cond(
                you,
                rx.fragment(),
                row_action(
                    "user-x",
                    "Remove",
                    MembersState.ask_remove(row.id, row.email),
                    "Remove " + row.email,
                    color_scheme="red",
                ),
            ),
            text_align="right",
        ),
        align="center",
    )


def _add_dialog() -> rx.Component:
    shown = rx.vstack(
        rx.callout(
            rx.text(
                "Give ",
                rx.text.strong(MembersState.new_email),
                " this password to sign in. Copy it now: it will not be shown again; they "
                "can change it under Settings → Your password.",
            ),
            icon="triangle-alert",
            color_scheme="amber",
            size="1",
            width="100%",
        ),
        shown_once("Initial password", "new-member-password", MembersState.new_password, "Copied"),
        rx.hstack(
            rx.button("Done", on_click=MembersState.set_add_open(False)),
            justify="end",
            width="100%",
        ),
        spacing="4",
        width="100%",
    )
    return form_dialog(
        field(
            "Email",
            rx.input(
                id="member-email",
                name="email",
                type="email",
                placeholder="colleague@example.com",
                required=True,
                auto_focus=True,
            ),
            hint="They sign in with this email and an initial password made for them.",
            html_for="member-email",
        ),
        title=rx.cond(MembersState.new_password, "Member added", "Add a member"),
        description="Members see and change everything in this workspace.",
        submit="Add member",
        on_submit=MembersState.add,
        submitting=MembersState.adding,
        error=MembersState.add_error,
        open=MembersState.add_open,
        on_open_change=MembersState.set_add_open,
        shown_instead=(MembersState.new_password, shown),
    )


def _remove_dialog() -> rx.Component:
    return confirm_dialog(
        title=("Remove ", MembersState.remove_email, "?"),
        description="They are signed out at once and can no longer sign in to this workspace.",
        keep="Keep them",
        on_keep=MembersState.cancel_remove(False),
        confirm="Remove member",
        on_confirm=MembersState.remove,
        busy=MembersState.removing,
        open=MembersState.confirm_remove,
        on_open_change=MembersState.cancel_remove,
    )


def members_section() -> rx.Component:
    return rx.vstack(
        section_header(
            "Members",
            "The people who can sign in to this workspace.",
            rx.button(rx.icon("user-plus", size=16), "Add member", on_click=MembersState.start_add),
        ),
        rx.cond(
            MembersState.loaded,
            data_table(("Email", "Added", ""), MembersState.members, _member_line),
            rx.skeleton(height="88px", width="100%"),
        ),
        _add_dialog(),
        _remove_dialog(),
        spacing="4",
        width="100%",
        align="start",
        margin_top="32px",
    )


def _password_input(label: str, control_id: str, name: str) -> rx.Component:
    return field(
        label,
        rx.input(
            id=control_id,
            name=name,
            type="password",
            required=True,
            auto_complete="current-password" if name == "current_password" else "new-password",
        ),
        error=MembersState.password_errors.get(name, ""),
        html_for=control_id,
    )


def password_section() -> rx.Component:
    return rx.vstack(
        section_header(
            "Your password",
            "At least 8 characters. Changing it signs you out everywhere else.",
        ),
        rx.form(
            rx.vstack(
                rx.grid(
                    _password_input("Current password", "current-password", "current_password"),
                    _password_input("New password", "new-password", "new_password"),
                    _password_input("Repeat new password", "repeat-password", "repeat_password"),
                    columns=rx.breakpoints(initial="1", md="3"),
                    spacing="3",
                    width="100%",
                ),
                rx.button("Change password", type="submit", loading=MembersState.saving_password),
                spacing="3",
                align="start",
                width="100%",
            ),
            on_submit=MembersState.change_password,
            reset_on_submit=False,
            width="100%",
        ),
        spacing="4",
        width="100%",
        align="start",
        margin_top="32px",
    )
