"""The signed-in viewer, and the one way console handlers reach the workspace's data.

A handler hands a service call to `read` or `write` (the console's `Caller.read/write` of
`api/deps.py`): a call awaiting its session and keyword `workspace_id`, e.g.
`partial(batches.cancel_batch, batch_id=...)`. The helper checks the tab's session and runs
the call for its workspace in one unit of work, in a worker thread; a tab without a live
session (never signed in, expired, signed out elsewhere) gets `SignedOut` before the call
runs, and a handler marked `@signed_in` turns that into the sign-in page. `@signed_in` also
refuses at once, before the handler runs, a tab holding no session token at all, and a
background handler whose session is not live (it would otherwise loop on its own).

Signing in, and the wall screen opened by its own token, run without a viewer: they use
`anonymous` and check their own credential.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlencode

import reflex as rx
from reflex.istate.proxy import StateProxy
from sqlmodel import Session

from batch_dashboard import db
from batch_dashboard.services import auth
from batch_dashboard.services.errors import DomainError

T = TypeVar("T")
# A service call awaiting its session and keyword `workspace_id`.
Work = Callable[..., T]
SESSION_MAX_AGE = int(auth.SESSION_LIFETIME.total_seconds())
_SIGNED_IN = "_console_signed_in"


class SignedOut(Exception):
    """The tab has no live session: nothing of any workspace is read or written for it."""


async def in_thread(work: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Work off the event loop that also serves every websocket."""
    return await asyncio.to_thread(work, *args, **kwargs)


async def anonymous(work: Callable[[Session], T], *, write: bool = False) -> T:
    """`work(session)` in a unit of work in a worker thread, with no viewer: only for the
    handlers that check a credential of their own (signing in, the wall screen's token)."""

    def unit() -> T:
        with db.session_scope(write=write) as session:
            return work(session)

    return await in_thread(unit)


async def read(state: rx.State, work: Work[T]) -> T:
    """`work` for the tab's workspace, in a read-only unit of work."""
    return await _as_viewer(state, work, write=False)


async def write(state: rx.State, work: Work[T]) -> T:
    """`work` for the tab's workspace, in a unit of work that holds SQLite's write lock."""
    return await _as_viewer(state, work, write=True)


async def write_as_user(state: rx.State, work: Work[T]) -> T:
    """`write`, with the signed-in user's id as keyword `user_id` too (their own password,
    a member removing another)."""
    return await _as_viewer(state, work, write=True, with_user=True)


async def workspace_of(state: rx.State) -> str:
    """The tab's workspace, checked against its session now (for linking shared states)."""
    return await read(state, lambda _session, *, workspace_id: workspace_id)


async def call(state: rx.State, work: Callable[..., T]) -> T:
    """`work(workspace_id=...)` in a worker thread, for a service that opens its own units of
    work (`batches.create_batch`)."""
    return await in_thread(functools.partial(work, workspace_id=await workspace_of(state)))


async def _as_viewer(state: rx.State, work: Work[T], *, write: bool, with_user: bool = False) -> T:
    token = (await state.get_state(AuthState)).session_token
    if not token:
        raise SignedOut

    def checked(session: Session) -> T:
        # The session is checked in the unit of work that uses it: one trip to a thread.
        viewer = auth.viewer_for(session, token=token)
        if viewer is None:
            raise SignedOut
        if with_user:
            return work(session, workspace_id=viewer.workspace_id, user_id=viewer.user_id)
        return work(session, workspace_id=viewer.workspace_id)

    return await anonymous(checked, write=write)


def signed_in(handler: Callable[..., Any]) -> Callable[..., Any]:
    """For handlers (under `@rx.event`) that read or write workspace data: `SignedOut` from
    `read`/`write` sends the tab to the sign-in page instead of failing the event."""
    if inspect.isasyncgenfunction(handler):

        @functools.wraps(handler)
        async def stream(self: rx.State, *args: Any, **kwargs: Any):
            if await _refused_at_once(self):
                yield rx.redirect("/login")
                return
            try:
                async for event in handler(self, *args, **kwargs):
                    yield event
            except SignedOut:
                yield to_sign_in(self)

        wrapper: Callable[..., Any] = stream
    elif inspect.iscoroutinefunction(handler):

        @functools.wraps(handler)
        async def once(self: rx.State, *args: Any, **kwargs: Any):
            if await _refused_at_once(self):
                return to_sign_in(self)
            try:
                return await handler(self, *args, **kwargs)
            except SignedOut:
                return to_sign_in(self)

        wrapper = once
    else:
        raise TypeError(f"{handler.__qualname__}: a signed-in handler reads data, so it is async")
    setattr(wrapper, _SIGNED_IN, True)
    return wrapper


def to_sign_in(state: rx.State) -> rx.event.EventSpec:
    """To the sign-in page, which sends the visitor back here afterwards (a deep link)."""
    url = state.router.url
    if not url.path or url.path in ("/", "/login"):
        return rx.redirect("/login")  # nothing to come back to
    asked = url.path + (f"?{url.query}" if url.query else "")
    return rx.redirect(f"/login?{urlencode({'next': asked})}")


async def _refused_at_once(state: rx.State) -> bool:
    """Refused before the handler runs at all: a tab that holds no session token (never signed
    in, or signed out), which costs no database trip; and a background task whose session is
    not live, since such a task runs until it stops itself and reads through `read`/`write`
    only now and then. Any other handler meets its session check in `read`/`write`."""
    if not isinstance(state, StateProxy):
        return not (await state.get_state(AuthState)).session_token
    async with state:  # a background task reads its tab's states only while holding them
        token = (await state.get_state(AuthState)).session_token
    if not token:
        return True
    return await anonymous(functools.partial(auth.viewer_for, token=token)) is None


def requires_session(handler: Callable[..., Any]) -> bool:
    return getattr(handler, _SIGNED_IN, False)


def error_text(error: DomainError) -> str:
    """A domain error for people: its message, plus the first details."""
    details = error.details or []
    if not details:
        return error.message
    lines = [f"{'.'.join(str(p) for p in d['loc'])}: {d['message']}" for d in details[:3]]
    # Details stop at the reporting cap; a validation error knows how many there were.
    total = max(getattr(error, "total", 0), len(details))
    more = f" (and {total - 3:,} more)" if total > 3 else ""
    return "; ".join(lines) + more


def return_path(path: str) -> str:
    """Where to go after signing in: a page of this console asked for by `?next=`, else the
    batch list (an address of another site, or the sign-in page itself, is not followed)."""
    # Browsers read "\\" as "/" and drop tabs and newlines: "/\\x" or "/\t/x" is another host.
    odd = "\\" in path or any(ord(char) < 32 for char in path)
    if odd or not path.startswith("/") or path.startswith(("//", "/login")):
        return "/batches"
    return path


class AuthState(rx.State):
    """Who is signed in. The session token is a cookie; only its hash is stored."""

    session_token: str = rx.Cookie("", name="bc_session", max_age=SESSION_MAX_AGE, same_site="lax")
    # Shown in the sidebar.
    email: str = ""
    workspace_name: str = ""
    # The workspace's IANA time zone (set from the first signed-in browser's, changed in
    # Settings): every console time is shown in it, named, and schedules are read in it.
    timezone: str = ""
    # Whose tab this is: Settings marks "you" among the members.
    user_id: str = ""
    login_error: str = ""
    signing_in: bool = False

    async def _viewer(self) -> auth.Viewer | None:
        return await anonymous(functools.partial(auth.viewer_for, token=self.session_token))

    @rx.event
    async def require_login(self):
        """on_load of every page but /login: signed-out visitors go to the sign-in page."""
        viewer = await self._viewer()
        if viewer is None:
            self.email, self.workspace_name, self.user_id = "", "", ""
            return to_sign_in(self)
        self.email, self.workspace_name = viewer.email, viewer.workspace_name
        self.user_id = viewer.user_id
        if viewer.time_zone:
            self.timezone = viewer.time_zone
            return None
        # The workspace has no zone yet: the first signed-in browser's becomes its default.
        return rx.call_script(
            "Intl.DateTimeFormat().resolvedOptions().timeZone", callback=AuthState.set_timezone
        )

    @rx.event
    async def set_timezone(self, zone: str) -> None:
        """The browser's zone, adopted by the workspace if it has none yet."""
        if not isinstance(zone, str) or len(zone) > 64:
            return
        try:
            adopted = await write(
                self,
                functools.partial(auth.set_time_zone, zone=zone, only_if_unset=True),
            )
        except (SignedOut, DomainError):
            return
        self.timezone = adopted or ""

    def _next(self) -> str:
        return return_path(self.router.url.query_parameters.get("next", ""))

    @rx.event
    async def redirect_if_signed_in(self):
        """on_load of /login: a visitor who is signed in already goes where they were headed."""
        if await self._viewer() is not None:
            return rx.redirect(self._next())
        return None

    @rx.event
    async def open_front_door(self):
        """on_load of /: the batch list when signed in, else the sign-in page."""
        return rx.redirect("/batches" if await self._viewer() is not None else "/login")

    @rx.event
    async def sign_in(self, form: dict[str, Any]):
        self.signing_in, self.login_error = True, ""
        yield
        email, password = str(form.get("email", "")), str(form.get("password", ""))
        signing_in = functools.partial(
            auth.sign_in,
            email=email,
            password=password,
            client_address=self.router.session.client_ip,
        )
        try:
            self.session_token = await anonymous(signing_in, write=True)
        except auth.TooManySignIns as error:
            self.login_error = error.message  # says how long to wait
            return
        except DomainError:
            self.login_error = "Wrong email or password."
            return
        finally:
            self.signing_in = False
        yield rx.redirect(self._next())

    @rx.event
    async def sign_out(self):
        await anonymous(functools.partial(auth.sign_out, token=self.session_token), write=True)
        self.session_token, self.email, self.workspace_name = "", "", ""
        return rx.redirect("/login")
