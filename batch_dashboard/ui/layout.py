"""The console's frame: a sidebar with the sections, the workspace and the signed-in user."""

from __future__ import annotations

import reflex as rx

from batch_dashboard.ui.components import brand_mark, shown_on
from batch_dashboard.ui.states.base import AuthState
from batch_dashboard.ui.styles import CONTENT_MAX_WIDTH, SIDEBAR_WIDTH

SECTIONS = (
    ("Batch calls", "/batches", "phone-outgoing"),
    ("Agents", "/agents", "bot"),
    ("Phone numbers", "/phone-numbers", "hash"),
    ("Do not call", "/do-not-call", "phone-off"),
    ("Settings", "/settings", "settings"),
)


def _nav_item(label: str, href: str, icon: str) -> rx.Component:
    active = rx.State.router.url.path.startswith(href)
    return rx.link(
        rx.hstack(
            rx.icon(icon, size=16),
            rx.text(label, size="2", weight=rx.cond(active, "medium", "regular")),
            align="center",
            spacing="3",
            padding="8px 12px",
            border_radius="8px",
            background=rx.cond(active, rx.color("accent", 4), "transparent"),
            color=rx.cond(active, rx.color("accent", 12), rx.color("gray", 11)),
            _hover={"background": rx.color("accent", 3)},
            width="100%",
        ),
        href=href,
        underline="none",
        width="100%",
    )


def _brand(**props) -> rx.Component:
    return rx.hstack(
        brand_mark(),
        rx.text("Batch calls", weight="bold", size="3"),
        align="center",
        spacing="2",
        **props,
    )


def top_bar() -> rx.Component:
    """Below 768 px (phones), the sidebar's sections in a menu above the page."""
    bar = rx.hstack(
        _brand(),
        rx.spacer(),
        rx.menu.root(
            rx.menu.trigger(
                rx.icon_button(
                    rx.icon("menu", size=18),
                    variant="ghost",
                    color_scheme="gray",
                    aria_label="Menu",
                )
            ),
            rx.menu.content(
                rx.box(
                    rx.text(AuthState.workspace_name, weight="medium", size="2"),
                    rx.text(AuthState.email, size="1", color_scheme="gray"),
                    padding="4px 12px 8px",
                ),
                rx.menu.separator(),
                *[
                    rx.menu.item(
                        rx.hstack(rx.icon(icon, size=14), label, align="center", spacing="2"),
                        on_click=rx.redirect(href),
                    )
                    for label, href, icon in SECTIONS
                ],
                rx.menu.separator(),
                rx.menu.item(
                    rx.hstack(rx.icon("log-out", size=14), "Sign out", align="center", spacing="2"),
                    on_click=AuthState.sign_out,
                ),
                align="end",
            ),
        ),
        width="100%",
        align="center",
        padding="10px 16px",
        background=rx.color("gray", 2),
        border_bottom=f"1px solid {rx.color('gray', 4)}",
    )
    return shown_on(bar, phones=True, position="sticky", top="0", z_index="10")


def sidebar() -> rx.Component:
    side = rx.vstack(
        _brand(padding="4px 8px 16px"),
        rx.el.nav(
            rx.vstack(*[_nav_item(*section) for section in SECTIONS], spacing="1", width="100%"),
            aria_label="Sections",
            style={"width": "100%"},
        ),
        rx.spacer(),
        rx.separator(),
        rx.vstack(
            rx.text(AuthState.workspace_name, weight="medium", size="2"),
            rx.text(AuthState.email, size="1", color_scheme="gray"),
            rx.button(
                rx.icon("log-out", size=14),
                "Sign out",
                variant="ghost",
                size="1",
                color_scheme="gray",
                on_click=AuthState.sign_out,
                margin_left="-6px",
            ),
            spacing="1",
            padding="8px",
            width="100%",
            align="start",
        ),
        width=SIDEBAR_WIDTH,
        min_width=SIDEBAR_WIDTH,
        height="100%",
        padding="16px 12px",
        background=rx.color("gray", 2),
        border_right=f"1px solid {rx.color('gray', 4)}",
    )
    return shown_on(side, phones=False, height="100vh", position="sticky", top="0")


def frame(*content: rx.Component) -> rx.Component:
    """The sidebar beside the page; on phones, a menu bar above it."""
    return rx.flex(
        sidebar(),
        top_bar(),
        rx.box(
            rx.box(*content, max_width=CONTENT_MAX_WIDTH, margin="0 auto"),
            flex="1",
            min_width="0",
            padding=rx.breakpoints(initial="20px 16px", md="28px 36px"),
            min_height="100vh",
            overflow_x="auto",
        ),
        direction=rx.breakpoints(initial="column", md="row"),
        align=rx.breakpoints(initial="stretch", md="start"),
        width="100%",
        background=rx.color("gray", 1),
    )
