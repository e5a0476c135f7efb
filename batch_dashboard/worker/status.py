"""What this process's dialer is doing, for /v1/health."""

from __future__ import annotations

_running = False


def set_dialer_running(running: bool) -> None:
    global _running
    _running = running


def dialer_state() -> str:
    return "running" if _running else "off"
