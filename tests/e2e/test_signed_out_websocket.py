"""Every console event handler, sent over a raw websocket (and the upload route, for the
handlers that take files) by a client that never signed in, to a real backend: each handler
that reads or writes workspace data answers with the sign-in page and nothing else, the
others change nothing either, and not a row of the database moves.

The handlers are found by walking the console's states (tests/ui/test_session_required.py),
so a handler added later is sent too; background handlers included, which must not start for
a client without a session. Both databases.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import socketio
from sqlalchemy import func, select
from sqlmodel import SQLModel

from batch_dashboard.db import session_scope
from batch_dashboard.ui.states.base import requires_session
from tests.e2e.conftest import Server, seed_demo, server_env, start_server, stop_server
from tests.ui.test_session_required import HANDLERS, _arguments

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("processes")]

NAMESPACE = "/_event"
ANSWER_SECONDS = 10


def _row_counts() -> dict[str, int]:
    with session_scope() as session:
        return {
            name: session.execute(select(func.count()).select_from(table)).scalar_one()
            for name, table in SQLModel.metadata.tables.items()
        }


def _payload(label: str, handler: Any) -> tuple[dict[str, Any], list[str]]:
    """The handler's arguments by name, and the names of those that are uploads."""
    names = list(inspect.signature(handler.fn).parameters)[1:]
    payload, uploads = {}, []
    for name, value in zip(names, _arguments(label, handler), strict=False):
        if isinstance(value, list):
            uploads.append(name)
        else:
            payload[name] = value
    return payload, uploads


def _redirects_to_sign_in(updates: list[Any]) -> bool:
    return any(
        event.get("name") == "_redirect"
        and event.get("payload", {}).get("path", "").startswith("/login")
        for update in updates
        for event in (update.get("events") or [])
    )


async def _send_everything(server: Server) -> dict[str, list[Any]]:
    """Each handler's answers, one handler at a time on one never-signed-in connection."""
    token = str(uuid.uuid4())
    client = socketio.AsyncClient()
    answers: list[Any] = []
    client.on("event", answers.append, namespace=NAMESPACE)
    await client.connect(
        f"{server.url}?token={token}",
        socketio_path=NAMESPACE,
        transports=["websocket"],
        namespaces=[NAMESPACE],
    )
    seen: dict[str, list[Any]] = {}
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=ANSWER_SECONDS) as http:
            for label, state, handler in HANDLERS:
                name = f"{state.get_full_name()}.{handler.fn.__name__}"
                payload, uploads = _payload(label, handler)
                answers.clear()
                if uploads:
                    response = await http.post(
                        "/_upload",
                        headers={"reflex-client-token": token, "reflex-event-handler": name},
                        data={"__reflex_event_args": json.dumps(payload)},
                        files=[("files", ("people.csv", b"phone\n+14155552671\n", "text/csv"))],
                    )
                    answers.extend(json.loads(line) for line in response.text.splitlines() if line)
                else:
                    route = state.__module__.rsplit(".", 1)[-1].replace("_", "-")
                    await client.emit(
                        "event",
                        {
                            "name": name,
                            "payload": payload,
                            "router_data": {"pathname": f"/{route}", "query": {}},
                        },
                        namespace=NAMESPACE,
                    )
                wait_until = asyncio.get_running_loop().time() + (
                    ANSWER_SECONDS if requires_session(handler.fn) else 0.3
                )
                while asyncio.get_running_loop().time() < wait_until:
                    if _redirects_to_sign_in(answers):
                        break
                    await asyncio.sleep(0.02)
                seen[label] = list(answers)
    finally:
        await client.disconnect()
    return seen


def test_a_client_that_never_signed_in_is_refused_every_handler(
    database: str, tmp_path: Path
) -> None:
    demo = seed_demo(server_env(database), cwd=tmp_path)
    server = start_server(
        tmp_path,
        backend_only=True,
        database_url=database,
        demo=demo,
        extra_env={"BATCH_DIALER": "off"},
    )
    try:
        before = _row_counts()
        seen = asyncio.run(_send_everything(server))
        after = _row_counts()
    finally:
        stop_server(server.process)
    marked = [label for label, _s, handler in HANDLERS if requires_session(handler.fn)]
    assert len(marked) > 25 and any("follow" in label for label in marked)
    not_refused = [label for label in marked if not _redirects_to_sign_in(seen[label])]
    assert not not_refused, f"answered without the sign-in page: {not_refused}"
    assert after == before
    log = server.log.read_text()
    assert "Traceback" not in log, log[-4000:]
