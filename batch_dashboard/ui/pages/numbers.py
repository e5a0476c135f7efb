"""/phone-numbers: the caller numbers agents dial from."""

from __future__ import annotations

import reflex as rx

from batch_dashboard.ui.components import (
    data_table,
    empty_state,
    field,
    form_dialog,
    page_header,
    row_action,
)
from batch_dashboard.ui.layout import frame
from batch_dashboard.ui.states.admin import NumberRow, NumbersState

NUMERIC = {"font_variant_numeric": "tabular-nums"}


def _outbound_badge(enabled: rx.Var) -> rx.Component:
    return rx.cond(
        enabled,
        rx.badge("Outbound enabled", color_scheme="green", variant="soft", radius="full"),
        rx.badge("Inbound only", color_scheme="gray", variant="outline", radius="full"),
    )


def _number_line(row: NumberRow) -> rx.Component:
    return rx.table.row(
        rx.table.cell(
            rx.text(row.phone, weight="medium", size="2", style=NUMERIC, white_space="nowrap")
        ),
        rx.table.cell(
            rx.cond(row.label, rx.text(row.label, size="2"), rx.text("—", color_scheme="gray"))
        ),
        rx.table.cell(
            rx.vstack(
                rx.text(row.connection, size="2", white_space="nowrap"),
                rx.cond(row.platform, rx.text(row.platform, size="1", color_scheme="gray")),
                spacing="0",
            )
        ),
        rx.table.cell(_outbound_badge(row.outbound_enabled)),
        rx.table.cell(
            row_action(
                "pencil",
                "Edit",
                NumbersState.edit_number(row),
                f"Edit {row.phone}",
                color_scheme=None,
            ),
            text_align="right",
        ),
        _hover={"background": rx.color("gray", 2)},
        align="center",
    )


def _number_table() -> rx.Component:
    return data_table(
        ("Number", "Label", "Connection", "Outbound", ""), NumbersState.rows, _number_line
    )


def _outbound_switch() -> rx.Component:
    return rx.vstack(
        rx.hstack(
            rx.switch(
                id="number-outbound",
                name="outbound_enabled",
                checked=NumbersState.form_outbound,
                on_change=NumbersState.set_form_outbound,
            ),
            rx.el.label(
                "Outbound enabled",
                html_for="number-outbound",
                style={"font_weight": "500", "font_size": "14px"},
            ),
            align="center",
            spacing="2",
        ),
        rx.text("Only outbound-enabled numbers can place calls.", size="1", color_scheme="gray"),
        spacing="1",
    )


def _editor() -> rx.Component:
    adding = ~NumbersState.editing_id.bool()
    return form_dialog(
        rx.cond(
            adding,
            field(
                "Number",
                rx.input(
                    id="number-phone",
                    name="phone_number",
                    type="tel",
                    placeholder="+14155552671",
                    auto_complete="off",
                    auto_focus=True,
                ),
                html_for="number-phone",
            ),
        ),
        field(
            "Label",
            rx.input(
                id="number-label",
                name="label",
                default_value=NumbersState.form_label,
                placeholder="Main line",
                max_length=200,
            ),
            hint="Optional. Shown next to the number in agent pickers.",
            html_for="number-label",
        ),
        _outbound_switch(),
        title=rx.cond(adding, "Add number", "Edit number"),
        description=rx.cond(
            adding,
            "A caller number in international format, e.g. +1 415 555 2671.",
            NumbersState.editing_phone,
        ),
        submit=rx.cond(adding, "Add number", "Save"),
        on_submit=NumbersState.save,
        submitting=NumbersState.saving,
        error=NumbersState.form_error,
        open=NumbersState.editor_open,
        on_open_change=NumbersState.set_editor_open,
        max_width="480px",
    )


def numbers_page() -> rx.Component:
    add_button = rx.button(rx.icon("plus", size=16), "Add number", on_click=NumbersState.new_number)
    return frame(
        page_header(
            "Phone numbers",
            add_button,
            subtitle=rx.text(
                "Caller numbers your agents dial from.", size="2", color_scheme="gray"
            ),
        ),
        rx.cond(
            NumbersState.loaded,
            rx.cond(
                NumbersState.rows.length() > 0,
                _number_table(),
                empty_state(
                    "hash",
                    "No phone numbers yet",
                    "Add a caller number, then pick it for an agent: an agent needs an "
                    "outbound-enabled number before its batches can dial.",
                    add_button,
                ),
            ),
            rx.vstack(*[rx.skeleton(height="44px", width="100%") for _ in range(3)], width="100%"),
        ),
        _editor(),
    )
