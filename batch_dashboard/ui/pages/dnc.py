"""/do-not-call."""

from __future__ import annotations

import reflex as rx

from batch_dashboard.ui.components import data_table, empty_state, field, local_time, page_header
from batch_dashboard.ui.layout import frame
from batch_dashboard.ui.states.dnc import DoNotCallRow, DoNotCallState

UPLOAD_ID = "dnc-csv"
SOURCES = {"api": "API", "console": "Console", "import": "Import", "opt_out": "Opted out in a call"}


def _row(row: DoNotCallRow) -> rx.Component:
    return rx.table.row(
        rx.table.cell(rx.text(row.shown, style={"font_variant_numeric": "tabular-nums"})),
        rx.table.cell(rx.text(row.reason, size="2")),
        rx.table.cell(
            rx.badge(
                rx.match(row.source, *SOURCES.items(), row.source),
                variant="soft",
                color_scheme="gray",
            )
        ),
        rx.table.cell(local_time(row.created_at)),
        rx.table.cell(
            rx.button(
                "Remove",
                size="1",
                variant="soft",
                color_scheme="gray",
                on_click=DoNotCallState.remove(row.phone),
                aria_label="Remove " + row.shown,
            ),
            text_align="right",
        ),
    )


def dnc_page() -> rx.Component:
    return frame(
        page_header(
            "Do not call",
            subtitle=rx.text(
                "Numbers no batch of this workspace will ever dial, checked at the moment of dialing.",
                size="2",
                color_scheme="gray",
            ),
        ),
        rx.hstack(
            rx.card(
                rx.form(
                    rx.vstack(
                        rx.heading("Add a number", size="3", as_="h2"),
                        field(
                            "Number",
                            rx.input(
                                id="dnc-phone",
                                name="dnc_phone",
                                placeholder="+14155552671",
                                required=True,
                                value=DoNotCallState.phone_typed,
                                on_change=DoNotCallState.set_phone_typed,
                                color_scheme=rx.cond(DoNotCallState.add_error, "red", "gray"),
                            ),
                            html_for="dnc-phone",
                            error=DoNotCallState.add_error,
                        ),
                        field(
                            "Reason",
                            rx.input(
                                id="dnc-reason",
                                name="dnc_reason",
                                placeholder="Asked not to be called",
                                value=DoNotCallState.reason_typed,
                                on_change=DoNotCallState.set_reason_typed,
                            ),
                            html_for="dnc-reason",
                        ),
                        rx.button("Add to list", type="submit"),
                        spacing="3",
                        width="100%",
                    ),
                    on_submit=DoNotCallState.add,
                    # Cleared by the state once the number is on the list: after an error,
                    # what was typed stays to be corrected.
                    reset_on_submit=False,
                ),
                flex="1",
            ),
            rx.card(
                rx.vstack(
                    rx.heading("Import a CSV", size="3", as_="h2"),
                    rx.text(
                        "A phone column in international format (+…); the same format as batch uploads.",
                        size="2",
                        color_scheme="gray",
                    ),
                    rx.upload.root(
                        rx.center(
                            rx.text("Drop a CSV file here, or click to choose one", size="2"),
                            padding="20px",
                        ),
                        id=UPLOAD_ID,
                        accept={"text/csv": [".csv"]},
                        max_files=1,
                        on_drop=DoNotCallState.import_csv(rx.upload_files(upload_id=UPLOAD_ID)),
                        border=f"2px dashed {rx.color('accent', 7)}",
                        border_radius="10px",
                        width="100%",
                        cursor="pointer",
                        aria_label="Do-not-call CSV file",
                    ),
                    rx.cond(
                        DoNotCallState.importing,
                        rx.hstack(rx.spinner(), rx.text("Importing…", size="2")),
                    ),
                    spacing="3",
                    width="100%",
                ),
                flex="1",
            ),
            spacing="4",
            width="100%",
            align="stretch",
        ),
        rx.cond(
            DoNotCallState.error,
            rx.callout(
                DoNotCallState.error, icon="triangle-alert", color_scheme="red", margin_top="12px"
            ),
        ),
        rx.box(
            rx.cond(
                DoNotCallState.rows.length() > 0,
                data_table(
                    ("Number", "Reason", "Added by", "Added", ""), DoNotCallState.rows, _row
                ),
                rx.cond(
                    DoNotCallState.loaded,
                    empty_state(
                        "phone-off",
                        "Nobody on the list",
                        "Add a number above, import a CSV, or POST /v1/do-not-call.",
                    ),
                ),
            ),
            margin_top="20px",
            width="100%",
        ),
    )
