"""The landing page shown until the console arrives: what this is, and where the API lives."""

from __future__ import annotations

import reflex as rx


def _step(number: str, title: str, body: rx.Component) -> rx.Component:
    return rx.hstack(
        rx.badge(number, variant="soft", size="2", radius="full"),
        rx.vstack(rx.text(title, weight="medium"), body, spacing="1", align="start"),
        spacing="3",
        align="start",
    )


def landing() -> rx.Component:
    return rx.center(
        rx.card(
            rx.vstack(
                rx.hstack(
                    rx.icon("phone-outgoing", size=28, color=rx.color("accent", 9)),
                    rx.heading("Batch calls", size="7"),
                    spacing="3",
                    align="center",
                ),
                rx.text(
                    "Dial lists of phone numbers through your voice agents: reminders, renewals "
                    "and surveys, with live progress, signed webhooks and a REST API.",
                    size="3",
                    color_scheme="gray",
                ),
                rx.separator(),
                _step(
                    "1",
                    "Create a batch",
                    rx.text(
                        "POST /v1/batch-calls with JSON recipients or a CSV file.",
                        size="2",
                        color_scheme="gray",
                    ),
                ),
                _step(
                    "2",
                    "Watch it run",
                    rx.text(
                        "GET /v1/batch-calls/{id} shows every recipient's status.",
                        size="2",
                        color_scheme="gray",
                    ),
                ),
                rx.hstack(
                    rx.el.a(rx.button("Open the API docs", size="3"), href="/v1/docs"),
                    rx.el.a(
                        rx.button("OpenAPI schema", size="3", variant="soft"),
                        href="/v1/openapi.json",
                    ),
                    spacing="3",
                ),
                rx.text("The web console is on its way.", size="1", color_scheme="gray"),
                spacing="4",
                align="start",
            ),
            size="4",
            max_width="560px",
        ),
        min_height="100vh",
        background=rx.color("gray", 2),
        padding="24px",
    )
