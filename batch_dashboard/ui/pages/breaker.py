"""What a batch paused by its circuit breaker shows: a banner saying why (batch page), a line on
its wall card, and a Resume that says what tripped it and asks to confirm."""

from __future__ import annotations

import reflex as rx

from batch_dashboard.ui.states.batches import BatchDetailState
from batch_dashboard.ui.states.breaker import ResumeDialogState
from batch_dashboard.ui.states.rows import BatchRow


def _platform_said(batch: BatchRow) -> rx.Component:
    return rx.cond(
        batch.breaker_error != "",
        rx.hstack(
            rx.text("Platform said", size="2", weight="medium", white_space="nowrap"),
            rx.code(batch.breaker_error, size="2", variant="ghost", word_break="break-word"),
            spacing="2",
            align="baseline",
            wrap="wrap",
        ),
    )


def breaker_banner(batch: BatchRow) -> rx.Component:
    """Shown while the batch is paused by its breaker: why, and what to do."""
    return rx.cond(
        batch.paused & (batch.breaker_title != ""),
        rx.callout.root(
            rx.callout.icon(rx.icon("shield-alert")),
            rx.vstack(
                rx.text(
                    "Paused by its circuit breaker: ",
                    batch.breaker_title,
                    weight="bold",
                    size="3",
                ),
                rx.text(batch.breaker_detail, size="2"),
                _platform_said(batch),
                rx.text(
                    "No new calls are placed; calls in progress finish. Fix the cause, then "
                    "resume: dialing continues where it stopped.",
                    size="2",
                    color=rx.color("gray", 11),
                ),
                spacing="1",
                align="start",
            ),
            color_scheme="red",
            variant="surface",
            width="100%",
            id="breaker-banner",
        ),
    )


def resume_button(batch: BatchRow) -> rx.Component:
    """Resume: at once after a user's pause; after a trip, once what tripped it was read."""
    plain = rx.button(
        rx.icon("play", size=16), "Resume", on_click=BatchDetailState.set_paused(False)
    )
    asked = rx.alert_dialog.root(
        rx.alert_dialog.trigger(rx.button(rx.icon("play", size=16), "Resume")),
        rx.alert_dialog.content(
            rx.alert_dialog.title("Resume after the circuit breaker tripped?"),
            rx.alert_dialog.description(
                rx.vstack(
                    rx.text(batch.breaker_title, weight="medium", size="2"),
                    rx.text(batch.breaker_detail, size="2"),
                    _platform_said(batch),
                    rx.text(
                        "If the cause is not fixed, the next calls fail the same way and the "
                        "breaker trips again.",
                        size="2",
                        color=rx.color("gray", 11),
                    ),
                    spacing="2",
                    align="start",
                ),
            ),
            rx.hstack(
                rx.alert_dialog.cancel(
                    rx.button("Keep paused", variant="soft", color_scheme="gray")
                ),
                rx.alert_dialog.action(
                    rx.button("Resume dialing", on_click=ResumeDialogState.confirm)
                ),
                justify="end",
                spacing="3",
                margin_top="16px",
            ),
            max_width="520px",
        ),
        open=ResumeDialogState.open,
        on_open_change=ResumeDialogState.ask,
    )
    return rx.cond(batch.breaker_title != "", asked, plain)


def wall_breaker_line(reason: rx.Var, font_size: str) -> rx.Component:
    """On a wall card: the batch paused itself, and why, readable across the room."""
    return rx.cond(
        reason != "",
        rx.hstack(
            rx.icon("shield-alert", size=18, color=rx.color("red", 11)),
            rx.text("Paused: ", reason, font_size=font_size, weight="bold"),
            color=rx.color("red", 11),
            background=rx.color("red", 3),
            border_radius="6px",
            padding_x="10px",
            padding_y="4px",
            align="center",
            spacing="2",
            width="100%",
        ),
    )
