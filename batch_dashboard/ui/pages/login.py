"""/login: the only page without a signed-in user."""

from __future__ import annotations

import reflex as rx

from batch_dashboard.ui.components import field
from batch_dashboard.ui.states.base import AuthState


def login() -> rx.Component:
    return rx.center(
        rx.card(
            rx.form(
                rx.vstack(
                    rx.hstack(
                        rx.center(
                            rx.icon("phone-outgoing", size=18, color="white"),
                            width="34px",
                            height="34px",
                            border_radius="9px",
                            background=rx.color("accent", 9),
                        ),
                        rx.heading("Batch calls", size="6", as_="h1"),
                        align="center",
                        spacing="3",
                    ),
                    rx.text("Sign in to your workspace.", color_scheme="gray", size="2"),
                    field(
                        "Email",
                        rx.input(
                            id="email",
                            name="email",
                            type="email",
                            placeholder="you@company.com",
                            auto_complete="username",
                            required=True,
                            size="3",
                            auto_focus=True,
                        ),
                        html_for="email",
                    ),
                    field(
                        "Password",
                        rx.input(
                            id="password",
                            name="password",
                            type="password",
                            auto_complete="current-password",
                            required=True,
                            size="3",
                        ),
                        html_for="password",
                    ),
                    rx.cond(
                        AuthState.login_error,
                        rx.callout(
                            AuthState.login_error,
                            icon="triangle-alert",
                            color_scheme="red",
                            size="1",
                            role="alert",
                            width="100%",
                        ),
                    ),
                    rx.button(
                        "Sign in",
                        type="submit",
                        size="3",
                        width="100%",
                        loading=AuthState.signing_in,
                    ),
                    spacing="4",
                    width="100%",
                ),
                on_submit=AuthState.sign_in,
                reset_on_submit=False,
            ),
            size="4",
            width="100%",
            max_width="380px",
        ),
        min_height="100vh",
        background=rx.color("gray", 2),
        padding="16px",
    )
