"""Every console handler that touches workspace data needs a live session: a tab that never
signed in, or whose session ended (expired, signed out in another tab), is sent to the sign-in
page before any service function runs. Every other handler touches no workspace data.

The handlers are found by walking the console's states, so a handler added later is checked
too. Service functions that touch workspace data (those taking a session or a workspace) are
replaced by tripwires; only the session lookup itself is left to run.
"""

from __future__ import annotations

import importlib
import inspect
import io
import pkgutil
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import reflex as rx
from reflex.event import EventHandler
from reflex_components_core.core._upload import UploadFile

import batch_dashboard.services
import batch_dashboard.ui.states
from batch_dashboard.db import session_scope
from batch_dashboard.services import auth
from batch_dashboard.ui.states.base import AuthState, requires_session
from batch_dashboard.ui.states.wall import WallState
from tests.conftest import Tenant, make_tenant
from tests.ui.test_admin_states import run, signed_in

# Their own credential: a password, a session cookie being ended, a wall screen's link.
SESSIONLESS = (AuthState, WallState)
# The session lookup every check makes.
LOOKUP = {"auth.viewer_for"}
# What a handler needs to reach its data: arguments, and what the tab holds beforehand.
ARGUMENTS: dict[str, tuple[Any, ...]] = {
    "BatchesState.set_filter": ("pending",),
    "BatchDetailState.open_recipient": ({"conversation_id": "conv_x"},),
    "NewBatchState.set_mode": ("manual",),
}
HELD: dict[str, dict[str, Any]] = {
    "AgentsState.rotate": {"rotate_id": "agent_x"},
    "SettingsState.revoke": {"revoke_id": "key_x"},
    "ConnectionsState.delete": {"delete_id": "conn_x"},
    "NewBatchState.submit": {
        "name": "Reminders",
        "agent_id": "agent_x",
        "mode": "manual",
        "manual_rows": [{"phone": "+14155552671"}],
    },
}


class Reached(Exception):
    pass


def _modules(package: Any) -> Iterator[Any]:
    for info in pkgutil.iter_modules(package.__path__):
        yield importlib.import_module(f"{package.__name__}.{info.name}")


def _console_handlers() -> list[tuple[str, type[rx.State], EventHandler]]:
    """Every event handler written for the console, as ("State.handler", state, handler)."""
    found = []
    for module in _modules(batch_dashboard.ui.states):
        for state in vars(module).values():
            if not (
                inspect.isclass(state)
                and issubclass(state, rx.State)
                and state.__module__ == module.__name__
            ):
                continue
            for name, handler in state.event_handlers.items():
                if handler.fn.__module__.startswith("batch_dashboard."):
                    found.append((f"{state.__name__}.{name}", state, handler))
    return found


HANDLERS = [h for h in _console_handlers() if not issubclass(h[1], SESSIONLESS)]


def _touches_workspace(function: Callable[..., Any]) -> bool:
    parameters = inspect.signature(function).parameters
    return "session" in parameters or "workspace_id" in parameters


def _lay_tripwires(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Replace every service function that takes a session or a workspace; what was reached."""
    reached: list[str] = []
    for module in _modules(batch_dashboard.services):
        short = module.__name__.rsplit(".", 1)[-1]
        for name, function in list(vars(module).items()):
            if not (inspect.isfunction(function) and function.__module__ == module.__name__):
                continue
            if f"{short}.{name}" in LOOKUP or not _touches_workspace(function):
                continue

            def tripwire(*_args: Any, _name: str = f"{short}.{name}", **_kwargs: Any) -> Any:
                reached.append(_name)
                raise Reached(_name)

            monkeypatch.setattr(module, name, tripwire)
    return reached


def _upload() -> list[UploadFile]:
    data = b"phone\n+14155552671\n"
    return [UploadFile(file=io.BytesIO(data), size=len(data), path=Path("people.csv"))]


def _arguments(label: str, handler: EventHandler) -> tuple[Any, ...]:
    if label in ARGUMENTS:
        return ARGUMENTS[label]
    hints = typing.get_type_hints(handler.fn)
    values = []
    for name, parameter in list(inspect.signature(handler.fn).parameters.items())[1:]:
        if parameter.default is not inspect.Parameter.empty:
            break
        hint = hints.get(name)
        if hint is bool:
            values.append(True)
        elif hint is int:
            values.append(1)
        elif typing.get_origin(hint) is list:  # the only list argument is an upload
            values.append(_upload())
        elif hint is dict or typing.get_origin(hint) is dict:
            values.append({})
        else:
            values.append("x")
    return tuple(values)


def _call(label: str, state_class: type[rx.State], handler: EventHandler, token: str) -> list[Any]:
    root = rx.State(_reflex_internal_init=True)
    root.get_substate(AuthState.get_full_name().split(".")).session_token = token
    state = root.get_substate(state_class.get_full_name().split("."))
    for name, value in HELD.get(label, {}).items():
        setattr(state, name, value)
    return run(handler.fn(state, *_arguments(label, handler)))


@pytest.fixture
def ended_token(sqlite_url: str) -> str:
    """The cookie of a tab whose session was ended in another tab."""
    tenant: Tenant = make_tenant()
    state = signed_in(AuthState, tenant.workspace_id)
    with session_scope(write=True) as session:
        auth.sign_out(session, token=state.session_token)
    return state.session_token


def test_the_console_handlers_are_found() -> None:
    marked = {label for label, _state, handler in HANDLERS if requires_session(handler.fn)}
    assert {
        "AgentsState.open",
        "AgentsState.save",
        "NumbersState.save",
        "SettingsState.create",
        "BatchesState.heartbeat",
        "BatchDetailState.cancel",
        "BatchDetailState.export",
        "DoNotCallState.import_csv",
        "NewBatchState.submit",
        "WallTokensState.revoke",
        "ConnectionsState.open",
        "ConnectionsState.add",
        "ConnectionsState.test",
        "ConnectionsState.import_numbers",
        "ConnectionsState.import_agents",
        "ConnectionsState.delete",
    } <= marked
    assert len(HANDLERS) > len(marked) > 25


@pytest.mark.parametrize("session", ["never signed in", "ended elsewhere"])
def test_a_tab_without_a_live_session_is_sent_to_sign_in_before_any_service_runs(
    session: str, ended_token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = "" if session == "never signed in" else ended_token
    reached = _lay_tripwires(monkeypatch)
    not_refused = []
    for label, state_class, handler in HANDLERS:
        if not requires_session(handler.fn):
            continue
        if handler.is_background:
            # Runs only under a real state manager: tests/e2e/test_signed_out_websocket.py
            # sends it (and every other handler) over a websocket, and sees it refused.
            continue
        events = _call(label, state_class, handler, token)
        if not events or "/login" not in str(events[-1]):
            not_refused.append(f"{label} ended with {events[-1:]}")
    assert reached == []
    assert not_refused == []


def test_the_other_handlers_touch_no_workspace_data(
    ended_token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a handler not marked `@signed_in` does (a field, a dialog, parsing an upload in
    memory) needs no session: run without one, it reaches no service that touches data."""
    reached = _lay_tripwires(monkeypatch)
    others = [h for h in HANDLERS if not requires_session(h[2].fn)]
    for label, state_class, handler in others:
        assert not handler.is_background, f"{label} runs on its own: mark it @signed_in"
        _call(label, state_class, handler, ended_token)
    assert reached == []
