"""/wall: a dark, read-only screen for an office TV. Sizes are in viewport units so the same
layout reads across a room at 1920×1080 and at 3840×2160, with no scrolling."""

from __future__ import annotations

import reflex as rx
from reflex_components_core.core.banner import has_connection_errors

from batch_dashboard.ui.pages.breaker import wall_breaker_line
from batch_dashboard.ui.states.live import heartbeat
from batch_dashboard.ui.states.wall import WallState
from batch_dashboard.ui.states.wall_live import WallBatch, WallLive
from batch_dashboard.ui.styles import STATUS_COLORS

NUMERIC = {"font_variant_numeric": "tabular-nums"}
# When a scheduled batch is due, in the workspace's time zone: "today 21:18", "tomorrow 09:00",
# "Tue 09:00" within the week, else the date.
DUE = {
    "sameDay": "[today] HH:mm",
    "nextDay": "[tomorrow] HH:mm",
    "nextWeek": "ddd HH:mm",
    "lastDay": "[yesterday] HH:mm",
    "lastWeek": "ddd HH:mm",
    "sameElse": "MMM D, HH:mm",
}


def _vw(size: float) -> str:
    # Sized for the TV it is made for (1vw is 19.2 px at 1920 wide), never below what a phone
    # or a small laptop can read: under 1,200 px wide the floor takes over.
    return f"max({size}vw, {round(size * 12, 2)}px)"


def _by_width(**sizes: tuple[str, str]) -> dict[str, rx.Breakpoints]:
    """CSS for a wall opened on a phone or a tablet (a link sent to a manager), which stacks
    its two halves and scrolls, and for a wider screen. Always as style, never as a Radix prop:
    Radix's own breakpoints differ from the style's, and one layout needs one switch point."""
    return {name: rx.breakpoints(initial=narrow, md=wide) for name, (narrow, wide) in sizes.items()}


def _batch(row: WallBatch) -> rx.Component:
    color = rx.match(row.status, *STATUS_COLORS.items(), "gray")
    return rx.vstack(
        rx.hstack(
            rx.text(row.name, font_size=_vw(1.5), weight="bold", truncate=True, flex="1"),
            rx.text(
                rx.cond(row.status == "scheduled", "Scheduled", row.percent.to_string() + "%"),
                font_size=_vw(1.5),
                weight="bold",
                color=rx.color(color, 11),
                style=NUMERIC,
            ),
            width="100%",
            align="baseline",
        ),
        rx.box(
            rx.box(
                height="100%",
                width=row.percent.to_string() + "%",
                background=rx.color(color, 9),
                border_radius="999px",
                transition="width 0.8s ease",
            ),
            height=_vw(0.7),
            width="100%",
            background=rx.color("gray", 5),
            border_radius="999px",
        ),
        rx.hstack(
            rx.text(row.agent_name, font_size=_vw(0.95), color=rx.color("gray", 11)),
            rx.text("·", color=rx.color("gray", 9)),
            rx.text(
                row.done,
                " of ",
                row.total,
                font_size=_vw(0.95),
                color=rx.color("gray", 11),
                style=NUMERIC,
                white_space="nowrap",
            ),
            rx.cond(
                row.dialing > 0,
                rx.text(
                    "· ",
                    row.dialing,
                    " on the phone",
                    font_size=_vw(0.95),
                    color=rx.color("blue", 11),
                    white_space="nowrap",
                ),
            ),
            rx.spacer(),
            rx.cond(
                row.status == "scheduled",
                rx.moment(
                    row.scheduled_at,
                    calendar=DUE,
                    tz=WallLive.time_zone,
                    font_size=_vw(0.95),
                    color=rx.color("violet", 11),
                ),
                rx.text(
                    row.eta, font_size=_vw(0.95), color=rx.color("gray", 11), white_space="nowrap"
                ),
            ),
            width="100%",
            spacing="2",
            wrap="wrap",
        ),
        wall_breaker_line(row.breaker, _vw(0.95)),
        spacing="2",
        width="100%",
        padding=_vw(1.1),
        background=rx.color("gray", 2),
        border_radius=_vw(0.6),
    )


def _total(label: str, value: rx.Var, color: str, suffix: str = "") -> rx.Component:
    return rx.vstack(
        rx.text(label, font_size=_vw(1.0), color=rx.color("gray", 11)),
        rx.text(
            value,
            suffix,
            font_size=_vw(3.4),
            weight="bold",
            color=rx.color(color, 11),
            style=NUMERIC,
            line_height="1",
        ),
        spacing="1",
        padding=_vw(1.1),
        background=rx.color("gray", 2),
        border_radius=_vw(0.6),
        flex="1",
    )


def _screen() -> rx.Component:
    return rx.vstack(
        rx.hstack(
            rx.hstack(
                rx.box(
                    width=_vw(0.8),
                    height=_vw(0.8),
                    border_radius="50%",
                    background=rx.cond(
                        has_connection_errors, rx.color("red", 9), rx.color("green", 9)
                    ),
                ),
                rx.text(WallState.workspace_name, font_size=_vw(1.8), weight="bold"),
                rx.text(
                    rx.cond(WallLive.live_calls > 0, "· calling now", "· no calls right now"),
                    font_size=_vw(1.8),
                    color=rx.color("gray", 11),
                    id="wall-activity",
                ),
                align="center",
                spacing="3",
            ),
            rx.spacer(),
            rx.text(
                "Updated ",
                rx.moment(WallLive.updated_at, format="HH:mm:ss z", tz=WallLive.time_zone),
                font_size=_vw(1.0),
                color=rx.color("gray", 11),
                id="wall-updated",
            ),
            width="100%",
            align="center",
            wrap="wrap",
        ),
        rx.flex(  # not an hstack: its Radix direction prop would fight the style's
            rx.vstack(
                rx.cond(
                    WallLive.batches.length() > 0,
                    rx.vstack(rx.foreach(WallLive.batches, _batch), spacing="3", width="100%"),
                    rx.center(
                        rx.text(
                            "Nothing is being called right now.",
                            font_size=_vw(1.6),
                            color=rx.color("gray", 11),
                        ),
                        height="100%",
                        width="100%",
                    ),
                ),
                rx.cond(
                    WallLive.more_batches > 0,
                    rx.text(
                        "+ ",
                        WallLive.more_batches,
                        " more batches",
                        font_size=_vw(1.0),
                        color=rx.color("gray", 11),
                        id="wall-more",
                    ),
                ),
                spacing="3",
                overflow="hidden",
                style=_by_width(width=("100%", "55%"), height=("auto", "100%")),
            ),
            rx.vstack(
                rx.hstack(
                    _total("Calls today", WallLive.placed, "gray"),
                    _total("Connected", WallLive.connected, "green"),
                    width="100%",
                    spacing="3",
                ),
                rx.hstack(
                    _total("Failed", WallLive.failed, "red"),
                    _total("Connect rate", WallLive.connect_rate, "blue", "%"),
                    width="100%",
                    spacing="3",
                ),
                rx.vstack(
                    rx.text(
                        "Calls per minute, last hour · " + WallLive.time_zone,
                        font_size=_vw(1.0),
                        color=rx.color("gray", 11),
                    ),
                    rx.recharts.bar_chart(
                        rx.recharts.bar(
                            data_key="calls", fill=rx.color("blue", 9), is_animation_active=False
                        ),
                        rx.recharts.x_axis(
                            data_key="minute",
                            interval=9,
                            tick={"fill": "#aaa", "fontSize": _vw(0.8)},
                        ),
                        rx.recharts.y_axis(
                            tick={"fill": "#aaa", "fontSize": _vw(0.8)}, allow_decimals=False
                        ),
                        data=WallLive.chart,
                        width="100%",
                        height="100%",
                    ),
                    width="100%",
                    min_height="0",
                    padding=_vw(1.1),
                    background=rx.color("gray", 2),
                    border_radius=_vw(0.6),
                    # Stacked, nothing above gives the chart a height to fill.
                    style=_by_width(flex=("0 0 300px", "1")),
                ),
                spacing="3",
                style=_by_width(width=("100%", "45%"), height=("auto", "100%")),
            ),
            width="100%",
            flex="1",
            spacing="4",
            align="start",
            min_height="0",
            style=_by_width(flex_direction=("column", "row")),
        ),
        width="100vw",
        min_height="100vh",
        padding=_vw(1.6),
        spacing="4",
        style=_by_width(height=("auto", "100vh"), overflow=("visible", "hidden")),
    )


def _refused() -> rx.Component:
    return rx.center(
        rx.vstack(
            rx.icon("monitor-off", size=64, color=rx.color("gray", 10)),
            rx.text("This wall screen link is not valid", font_size=_vw(2.2), weight="bold"),
            rx.text(
                "The token is wrong or was revoked. Create a new one in Settings → Wall screens.",
                font_size=_vw(1.2),
                color=rx.color("gray", 11),
            ),
            align="center",
            spacing="4",
        ),
        width="100vw",
        height="100vh",
    )


def _connection_lost() -> rx.Component:
    return rx.cond(
        has_connection_errors & WallState.checked,
        rx.center(
            rx.hstack(
                rx.icon("wifi-off", size=40),
                rx.text("Connection lost — reconnecting…", font_size=_vw(2.0), weight="bold"),
                spacing="4",
                align="center",
                padding=_vw(1.6),
                background=rx.color("red", 9),
                color="white",
                border_radius=_vw(0.8),
            ),
            id="wall-connection-lost",
            position="fixed",
            inset="0",
            background="rgba(0, 0, 0, 0.55)",
            z_index="20",
        ),
    )


def wall_page() -> rx.Component:
    return rx.theme(
        rx.box(
            rx.cond(
                WallState.refused,
                _refused(),
                rx.cond(
                    WallLive.loaded,
                    _screen(),
                    rx.center(rx.spinner(size="3"), width="100vw", height="100vh"),
                ),
            ),
            _connection_lost(),
            heartbeat(WallState.heartbeat),
            # Radix's dark palette for this subtree: every rx.color below resolves to it.
            class_name="dark dark-theme radix-themes",
            background=rx.color("gray", 1),
            color=rx.color("gray", 12),
            overflow="hidden",
        ),
        appearance="dark",
        accent_color="blue",
    )
