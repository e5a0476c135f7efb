"""The Resume of a batch its circuit breaker paused: asked once more, with what tripped it."""

from __future__ import annotations

import reflex as rx

from batch_dashboard.ui.states.batches import BatchDetailState


class ResumeDialogState(rx.State):
    open: bool = False

    @rx.event
    def ask(self, value: bool):
        self.open = value

    @rx.event
    def confirm(self):
        self.open = False
        # The one resume path (signed in, the viewer's workspace): the page's own event.
        return BatchDetailState.set_paused(False)
