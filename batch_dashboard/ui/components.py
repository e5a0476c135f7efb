"""Small pieces every console page uses."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import reflex as rx
from reflex_components_core.react_router.dom import ReactRouterLink

from batch_dashboard.ui.states.base import AuthState
from batch_dashboard.ui.styles import PHONE_MAX, STATUS_COLORS


def _stacked_rows(headers: Sequence[str]) -> dict[str, Any]:
    """Below the phone breakpoint a table's rows become cards: one line per cell, named by its
    column's header (an empty header, over the row actions, names nothing)."""
    labels = {
        f"& td:nth-child({index})::before, & th[scope=row]:nth-child({index})::before": {
            "content": f'"{header}"',
            "color": "var(--gray-11)",
            "font_size": "12px",
            "min_width": "96px",
            "flex_shrink": "0",
        }
        for index, header in enumerate(headers, start=1)
        if header
    }
    return {
        f"@media screen and (max-width: {PHONE_MAX})": {
            # Radix gives the table height 0 (a table's minimum); as a block that is its height.
            "& table, & tbody": {"display": "block", "width": "100%", "height": "auto"},
            "& thead": {"display": "none"},
            "& tr": {
                "display": "block",
                "padding": "10px 0",
                "border_bottom": "1px solid var(--gray-a5)",
            },
            "& td, & th[scope=row]": {
                "display": "flex",
                "align_items": "center",
                "gap": "12px",
                "box_shadow": "none",
                "padding": "4px 12px",
                "height": "auto",
                "min_height": "0",
                "white_space": "normal",
                "overflow_wrap": "anywhere",
            },
            "& td:empty": {"display": "none"},
            **labels,
        }
    }


def data_table(
    headers: Sequence[str], rows: rx.Var, render_row: Callable[[Any], rx.Component]
) -> rx.Component:
    """The console's tables: a header cell per column (an empty one over the row actions); on
    phones, stacked rows instead of a table wider than the screen."""
    return rx.table.root(
        rx.table.header(rx.table.row(*[rx.table.column_header_cell(h) for h in headers])),
        rx.table.body(rx.foreach(rows, render_row)),
        variant="surface",
        width="100%",
        style=_stacked_rows(headers),
    )


def brand_mark(size: int = 28) -> rx.Component:
    """The product's mark: the outgoing-call icon on the accent colour (the favicon draws it too)."""
    return rx.center(
        rx.icon("phone-outgoing", size=round(size * 0.57), color="white"),
        width=f"{size}px",
        height=f"{size}px",
        min_width=f"{size}px",
        border_radius=f"{round(size * 0.28)}px",
        background=rx.color("accent", 9),
        aria_hidden="true",
    )


def link_button(
    text: str,
    href: str,
    *,
    icon: str | None = None,
    variant: str = "solid",
    size: str = "2",
    external: bool = False,
    **props: Any,
) -> rx.Component:
    """A link that looks like a button: one element, so one tab stop and a link to assistive
    technology (a button inside a link is two of each). Console pages open in the app;
    `external` ones (the API docs) load as documents."""
    content = [rx.icon(icon, size=16), text] if icon else [text]
    anchor = rx.el.a(*content, href=href) if external else ReactRouterLink.create(*content, to=href)
    return rx.button(anchor, as_child=True, variant=variant, size=size, **props)


def row_action(
    icon: str,
    text: str,
    on_click: Any,
    label: rx.Var | str,
    color_scheme: str | None = "gray",
    busy: rx.Var | bool = False,
) -> rx.Component:
    """A small button in a table row; `label` names it with its row for screen readers.
    `color_scheme=None` keeps the accent colour (the row's main action); `busy` shows a
    spinner in it (and disables it) while its work runs."""
    colour = {} if color_scheme is None else {"color_scheme": color_scheme}
    return rx.button(
        rx.icon(icon, size=14),
        text,
        size="1",
        variant="soft",
        on_click=on_click,
        aria_label=label,
        loading=busy,
        **colour,
    )


def shown_on(*content: rx.Component, phones: bool, **props: Any) -> rx.Component:
    """Shown only on phones (narrower than the `md` breakpoint, 768 px), or only on wider screens.
    A plain div carries the switch: on a Radix Flex it would tie with `.rt-Flex`'s own
    `display`, which a page that loads the global stylesheet again (/batches/new) lets win."""
    shown, hidden = ("block", "none") if phones else ("none", "block")
    return rx.el.div(*content, display=rx.breakpoints(initial=shown, md=hidden), **props)


def status_badge(status: rx.Var | str) -> rx.Component:
    return rx.match(
        status,
        *[
            (
                name,
                rx.badge(
                    name.capitalize(),
                    color_scheme=color,
                    variant="outline" if name == "cancelled" else "soft",
                    radius="full",
                ),
            )
            for name, color in STATUS_COLORS.items()
        ],
        rx.badge(status, variant="soft", radius="full"),
    )


def progress(done: rx.Var | int, total: rx.Var | int, status: rx.Var | str) -> rx.Component:
    """Completed + failed of total, in the status colour."""
    percent = rx.cond(total > 0, done * 100 / total, 0)
    return rx.hstack(
        rx.progress(
            value=percent.to(int),
            max=100,
            color_scheme=rx.match(status, *STATUS_COLORS.items(), "gray"),
            size="2",
            width="100%",
        ),
        rx.text(
            f"{done}/{total}",
            size="1",
            color_scheme="gray",
            white_space="nowrap",
            style={"font_variant_numeric": "tabular-nums"},
        ),
        width="100%",
        align="center",
        spacing="2",
    )


def page_header(
    title: str, *actions: rx.Component, subtitle: rx.Component | None = None
) -> rx.Component:
    return rx.hstack(
        rx.vstack(
            # A page whose title is live (a batch's name) brings its own h1 in `subtitle`.
            rx.heading(title, size="6", as_="h1") if title else rx.fragment(),
            subtitle or rx.fragment(),
            spacing="1",
        ),
        rx.spacer(),
        *actions,
        width="100%",
        align="center",
        margin_bottom="20px",
        # On a phone the actions go under the title instead of squeezing it.
        flex_wrap="wrap",
    )


def section_header(title: str, description: str, *actions: rx.Component) -> rx.Component:
    """A section of a page: its heading, one line on what it is for, and its actions."""
    return rx.hstack(
        rx.vstack(
            rx.heading(title, size="4", as_="h2"),
            rx.text(description, size="2", color_scheme="gray"),
            spacing="1",
        ),
        rx.spacer(),
        *actions,
        width="100%",
        align="center",
        flex_wrap="wrap",
    )


def empty_state(
    icon: str, title: str, body: rx.Component | str, *actions: rx.Component
) -> rx.Component:
    return rx.center(
        rx.vstack(
            rx.center(
                rx.icon(icon, size=28, color=rx.color("accent", 9)),
                width="56px",
                height="56px",
                border_radius="50%",
                background=rx.color("accent", 3),
            ),
            rx.heading(title, size="4", as_="h2"),
            rx.text(body, color_scheme="gray", size="2", text_align="center", max_width="420px"),
            rx.hstack(*actions, spacing="3"),
            align="center",
            spacing="3",
        ),
        padding="56px 24px",
        width="100%",
        border=f"1px dashed {rx.color('gray', 6)}",
        border_radius="12px",
    )


def count_tile(label: str, value: rx.Var | int, color: str) -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.hstack(
                rx.box(
                    width="8px", height="8px", border_radius="50%", background=rx.color(color, 9)
                ),
                rx.text(label, size="2", color_scheme="gray"),
                align="center",
                spacing="2",
            ),
            rx.text(
                value,
                size="7",
                weight="bold",
                id=f"count-{label.lower()}",
                style={"font_variant_numeric": "tabular-nums"},
            ),
            spacing="1",
        ),
        flex="1",
        min_width="140px",
    )


def field(
    label: str,
    control: rx.Component,
    hint: str | rx.Component | None = None,
    error: rx.Var | str | None = None,
    html_for: str | None = None,
) -> rx.Component:
    """A labelled form control (tests and screen readers find controls by these labels)."""
    return rx.vstack(
        rx.el.label(label, html_for=html_for, style={"font_weight": "500", "font_size": "14px"}),
        control,
        rx.cond(error, rx.text(error, color_scheme="red", size="1"), rx.fragment())
        if error is not None
        else rx.fragment(),
        # A div: a hint that is itself a paragraph must not sit in a <p> (the browser would split
        # them, and React's hydration would then fail and re-render the page, typing and all).
        rx.text(hint, size="1", color_scheme="gray", as_="div")
        if hint is not None
        else rx.fragment(),
        spacing="1",
        width="100%",
        align="stretch",
    )


def error_callout(error: rx.Var) -> rx.Component:
    """A form's error, read out by screen readers when it appears; nothing while it is ""."""
    return rx.cond(
        error,
        rx.callout(
            error, icon="triangle-alert", color_scheme="red", size="1", role="alert", width="100%"
        ),
    )


def form_dialog(
    *fields: rx.Component,
    title: rx.Var | str,
    description: rx.Var | rx.Component | str,
    submit: rx.Var | str,
    on_submit: Any,
    submitting: rx.Var,
    error: rx.Var,
    open: rx.Var,
    on_open_change: Any,
    max_width: str = "520px",
    shown_instead: tuple[rx.Var, rx.Component] | None = None,
) -> rx.Component:
    """A create or edit dialog: labelled `fields` (see `field`), the error, Cancel and the
    submit button (busy while `submitting`); Escape and Cancel close it. `shown_instead` is
    what the dialog shows in place of the form while its condition holds (a key shown once)."""
    form = rx.form(
        rx.vstack(
            *fields,
            error_callout(error),
            rx.hstack(
                rx.dialog.close(
                    rx.button("Cancel", type="button", variant="soft", color_scheme="gray")
                ),
                rx.button(submit, type="submit", loading=submitting),
                justify="end",
                spacing="3",
                width="100%",
            ),
            spacing="4",
            width="100%",
        ),
        on_submit=on_submit,
        reset_on_submit=False,
    )
    if shown_instead is not None:
        condition, other = shown_instead
        form = rx.cond(condition, other, form)
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title(title),
            rx.dialog.description(
                description, color=rx.color("gray", 11), font_size="14px", margin_bottom="16px"
            ),
            form,
            max_width=max_width,
        ),
        open=open,
        on_open_change=on_open_change,
    )


def pager(
    page: rx.Var,
    pages: rx.Var,
    total: rx.Var,
    *,
    on_turn: Callable[[int], Any],
    what: str,
    caption: str = "Page ",
    size: str = "2",
) -> rx.Component:
    """Previous / Next buttons after e.g. "Page 2 of 7 · 340 rows" (`caption`, `what`);
    `page` counts from 0, and the buttons send `on_turn(-1)` / `on_turn(1)`."""
    return rx.hstack(
        rx.text(
            caption,
            page + 1,
            " of ",
            pages,
            " · ",
            total,
            f" {what}",
            size=size,
            color_scheme="gray",
        ),
        rx.spacer(),
        rx.button("Previous", size=size, variant="soft", on_click=on_turn(-1), disabled=page == 0),
        rx.button(
            "Next", size=size, variant="soft", on_click=on_turn(1), disabled=page + 1 >= pages
        ),
        width="100%",
        align="center",
    )


def local_time(value: rx.Var, *, empty: str = "—") -> rx.Component:
    """An RFC 3339 time in the workspace's time zone, the zone named ("Dec 2, 09:15 CET"); in
    the browser's own zone until the workspace has one."""
    zone = AuthState.timezone
    return rx.cond(
        value,
        rx.text(
            rx.cond(
                zone,
                rx.moment(value, format="MMM D, HH:mm z", tz=zone),
                rx.moment(value, format="MMM D, HH:mm", local=True),
            ),
            as_="span",
            size="2",
            white_space="nowrap",
        ),
        rx.text(empty, as_="span", color_scheme="gray"),
    )


def shown_once(label: str, control_id: str, value: rx.Var, copied: str) -> rx.Component:
    """A secret shown this once (API key, webhook secret), read-only with a copy button."""
    return field(
        label,
        rx.hstack(
            rx.input(
                id=control_id,
                value=value,
                read_only=True,
                flex="1",
                style={"font_family": "var(--code-font-family)"},
            ),
            rx.button(
                rx.icon("copy", size=14),
                "Copy",
                variant="soft",
                on_click=[rx.set_clipboard(value), rx.toast.success(copied)],
            ),
            width="100%",
            spacing="2",
        ),
        html_for=control_id,
    )


def confirm_dialog(
    *,
    title: str | Sequence[rx.Var | str],
    description: str | Sequence[rx.Var | str],
    keep: str,
    on_keep: Any,
    confirm: str,
    on_confirm: Any,
    busy: rx.Var,
    open: rx.Var,
    on_open_change: Any = None,
    trigger: rx.Component | None = None,
    body: rx.Component | None = None,
) -> rx.Component:
    """A destructive action asked once more: keep it as it is, or confirm in red. `title` and
    `description` are text, or parts of it (strings and state vars); `body` (an option to
    choose, say) goes between the description and the buttons."""
    buttons = rx.hstack(
        rx.alert_dialog.cancel(
            rx.button(keep, variant="soft", color_scheme="gray", on_click=on_keep)
        ),
        rx.button(confirm, color_scheme="red", on_click=on_confirm, loading=busy),
        justify="end",
        spacing="3",
        margin_top="16px",
    )
    content = rx.alert_dialog.content(
        rx.alert_dialog.title(*([title] if isinstance(title, str) else title)),
        rx.alert_dialog.description(
            *([description] if isinstance(description, str) else description)
        ),
        *([] if body is None else [body]),
        buttons,
    )
    parts = [content] if trigger is None else [rx.alert_dialog.trigger(trigger), content]
    events = {} if on_open_change is None else {"on_open_change": on_open_change}
    return rx.alert_dialog.root(*parts, open=open, **events)
