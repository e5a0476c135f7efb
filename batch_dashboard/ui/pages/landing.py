"""The pages outside the console's frame: the front door (`/`) and the page for a wrong address."""

from __future__ import annotations

import reflex as rx

from batch_dashboard.ui.components import brand_mark, link_button


def _centered(*content: rx.Component) -> rx.Component:
    return rx.center(
        rx.card(
            rx.vstack(*content, spacing="4", align="center", text_align="center"),
            size="4",
            width="100%",
            max_width="440px",
        ),
        min_height="100vh",
        background=rx.color("gray", 2),
        padding="24px",
    )


def front_door() -> rx.Component:
    """What `/` shows for the moment its on_load takes to send the visitor on (to /batches, or
    to sign in): a real way in, should that take a while."""
    return _centered(
        brand_mark(size=40),
        rx.heading("Batch calls", size="6", as_="h1"),
        rx.text(
            "Dial lists of phone numbers through your voice agents, and watch every call live.",
            size="2",
            color_scheme="gray",
        ),
        rx.hstack(
            rx.spinner(size="2"),
            rx.text("Opening the console…", size="2", color_scheme="gray"),
            align="center",
            spacing="2",
            role="status",
        ),
        rx.hstack(
            link_button("Sign in", "/login", icon="log-in"),
            link_button("API docs", "/v1/docs", variant="soft", external=True),
            spacing="3",
        ),
    )


def not_found() -> rx.Component:
    return _centered(
        rx.center(
            rx.icon("map-pin-off", size=28, color=rx.color("accent", 9)),
            width="56px",
            height="56px",
            border_radius="50%",
            background=rx.color("accent", 3),
        ),
        rx.heading("Page not found", size="6", as_="h1"),
        rx.text(
            "There is no page at ",
            rx.code(rx.State.router.url.path),
            ". It may have moved, or the link has a typo.",
            size="2",
            color_scheme="gray",
        ),
        rx.hstack(
            link_button("Batch calls", "/batches", icon="phone-outgoing"),
            link_button("API docs", "/v1/docs", variant="soft", external=True),
            spacing="3",
        ),
    )
