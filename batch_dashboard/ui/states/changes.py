"""Assigning to a shared state, which every linked tab or wall screen receives."""

from __future__ import annotations

from typing import Any

import reflex as rx


def assign_changed(state: rx.State, **values: Any) -> None:
    """Set only the vars whose value differs. Reflex sends every assigned var to every client
    linked to a shared state, equal or not: a batch's first page (~17 kB) or a wall's chart
    re-assigned at every poll went to every tab or screen every second."""
    for name, value in values.items():
        if getattr(state, name) != value:
            setattr(state, name, value)
