"""The signed-in viewer, shared by every console page."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

import reflex as rx

from batch_dashboard.db import session_scope
from batch_dashboard.services import auth
from batch_dashboard.services.errors import DomainError

T = TypeVar("T")
SESSION_MAX_AGE = int(auth.SESSION_LIFETIME.total_seconds())


async def in_thread(work: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Database work off the event loop that also serves every websocket."""
    return await asyncio.to_thread(work, *args, **kwargs)


def error_text(error: DomainError) -> str:
    """A domain error for people: its message, plus the first details."""
    details = error.details or []
    if not details:
        return error.message
    lines = [f"{'.'.join(str(p) for p in d['loc'])}: {d['message']}" for d in details[:3]]
    more = f" (and {len(details) - 3} more)" if len(details) > 3 else ""
    return "; ".join(lines) + more


class AuthState(rx.State):
    """Who is signed in. The session token is a cookie; only its hash is stored."""

    session_token: str = rx.Cookie("", name="bc_session", max_age=SESSION_MAX_AGE, same_site="lax")
    # Shown in the sidebar.
    email: str = ""
    workspace_name: str = ""
    # The browser's IANA time zone, so times can be named and schedules converted.
    timezone: str = ""
    login_error: str = ""
    signing_in: bool = False

    def _viewer(self) -> auth.Viewer | None:
        with session_scope() as session:
            return auth.viewer_for(session, token=self.session_token)

    @rx.event
    async def require_login(self):
        """on_load of every page but /login: signed-out visitors go to the sign-in page."""
        viewer = await in_thread(self._viewer)
        if viewer is None:
            self.email, self.workspace_name = "", ""
            return rx.redirect("/login")
        self.email, self.workspace_name = viewer.email, viewer.workspace_name
        return rx.call_script(
            "Intl.DateTimeFormat().resolvedOptions().timeZone", callback=AuthState.set_timezone
        )

    @rx.event
    def set_timezone(self, zone: str) -> None:
        self.timezone = zone if isinstance(zone, str) and len(zone) < 64 else ""

    @rx.event
    async def redirect_if_signed_in(self):
        if await in_thread(self._viewer) is not None:
            return rx.redirect("/batches")
        return None

    @rx.event
    async def sign_in(self, form: dict[str, Any]):
        self.signing_in, self.login_error = True, ""
        yield
        email, password = str(form.get("email", "")), str(form.get("password", ""))

        def check() -> str:
            with session_scope(write=True) as session:
                return auth.sign_in(session, email=email, password=password)

        try:
            self.session_token = await in_thread(check)
        except DomainError:
            self.login_error = "Wrong email or password."
            self.signing_in = False
            return
        self.signing_in = False
        yield rx.redirect("/batches")

    @rx.event
    async def sign_out(self):
        token = self.session_token

        def forget() -> None:
            with session_scope(write=True) as session:
                auth.sign_out(session, token=token)

        await in_thread(forget)
        self.session_token, self.email, self.workspace_name = "", "", ""
        return rx.redirect("/login")

    async def workspace_id(self) -> str:
        """For other states' handlers. Checked against the session every time (one indexed
        read): a tab left open after its session expired or signed out elsewhere can do
        nothing more, not even see new data."""
        viewer = await in_thread(self._viewer)
        return viewer.workspace_id if viewer else ""


async def current_workspace(state: rx.State) -> str:
    auth_state = await state.get_state(AuthState)
    return await auth_state.workspace_id()
