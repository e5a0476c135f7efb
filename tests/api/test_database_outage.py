"""While the database cannot be reached, /v1/health says so (503, `database: unreachable`) and
every API request answers 503 with the error envelope — never a 500. On both databases, in
process; tests/e2e/test_database_outage.py does the same against a real backend whose embedded
dialer waits for the database."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from batch_dashboard import db
from batch_dashboard.settings import reload_settings
from tests.conftest import Tenant


def _unreachable(url: str, tmp_path: Path) -> str:
    if make_url(url).get_backend_name() == "sqlite":
        (tmp_path / "gone").write_text("")
        return f"sqlite:///{tmp_path / 'gone' / 'test.db'}"
    with socket.socket() as sock:  # a port nothing listens on once released
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return make_url(url).set(port=port).render_as_string(hide_password=False)


def test_requests_answer_503_while_the_database_is_unreachable(
    client: TestClient,
    tenant: Tenant,
    database: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert client.get("/v1/health").json()["database"] == "ok"
    monkeypatch.setenv("DATABASE_URL", _unreachable(database, tmp_path))
    db.dispose_engines()
    reload_settings()

    health = client.get("/v1/health")
    assert health.status_code == 503
    assert health.json() == {"status": "unavailable", "database": "unreachable", "dialer": "off"}
    for method, path in [
        ("GET", "/v1/batch-calls"),
        ("GET", "/v1/agents"),
        ("POST", "/v1/do-not-call"),
    ]:
        response = client.request(method, path, headers=tenant.headers, json={"phone": "+1415"})
        assert response.status_code == 503, (path, response.text)
        assert response.headers["retry-after"] == "5"
        error = response.json()["error"]
        assert error["code"] == "database_unreachable" and error["details"] is None
        assert "cannot be reached" in error["message"]


def test_live_updates_say_once_that_the_database_is_unreachable(
    tenant: Tenant,
    database: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The console's poller, with a tab watching, keeps polling through the outage with one
    warning instead of a traceback every half second."""
    import asyncio
    import contextlib
    import time

    from batch_dashboard.ui.states import live

    monkeypatch.setitem(live.watched, "tab-1", time.monotonic())
    monkeypatch.setitem(live._workspace_of_token, "tab-1", tenant.workspace_id)
    monkeypatch.setenv("DATABASE_URL", _unreachable(database, tmp_path))
    db.dispose_engines()
    reload_settings()

    async def poll_a_while() -> None:
        task = asyncio.create_task(live.live_updates(None))  # type: ignore[arg-type]
        await asyncio.sleep(live.POLL_SECONDS * 6)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    with caplog.at_level("INFO", logger=live.__name__):
        asyncio.run(poll_a_while())
    said = [r.getMessage() for r in caplog.records if r.name == live.__name__]
    assert said == ["live updates paused: database unreachable"]
    assert not any(r.exc_info for r in caplog.records)
