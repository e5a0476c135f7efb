"""SIGTERM to a backend with the embedded dialer: it stops claiming, hands its live calls over,
exits 0, and the next process finishes the batch without dialing anyone twice."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import start_server, stop_server

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("processes")]


def detail(url: str, headers: dict[str, str], batch_id: str) -> dict:
    return httpx.get(f"{url}/v1/batch-calls/{batch_id}", headers=headers, timeout=10).json()


def test_sigterm_hands_live_calls_over_and_exits_cleanly(tmp_path: Path, monkeypatch) -> None:
    slow = start_server(
        tmp_path,
        backend_only=True,
        extra_env={
            "BATCH_SIM_CALL_SECONDS": "8",  # calls still live when the signal comes
            "BATCH_SIM_OUTCOMES": "completed=1",
            "BATCH_SHUTDOWN_GRACE_SECONDS": "1",
            "BATCH_CALLS_PER_SECOND": "0",
        },
    )
    try:
        agents = httpx.get(f"{slow.url}/v1/agents", headers=slow.headers, timeout=10).json()
        agent = next(a for a in agents["agents"] if a["phone_number_id"])
        phones = [f"+1415555{n:04d}" for n in range(3100, 3106)]
        created = httpx.post(
            f"{slow.url}/v1/batch-calls",
            headers=slow.headers,
            json={
                "name": "Shutdown",
                "agent_id": agent["id"],
                "recipients": [{"phone": phone} for phone in phones],
            },
            timeout=30,
        )
        assert created.status_code == 202, created.text
        batch_id = created.json()["id"]
        deadline = time.monotonic() + 60
        while detail(slow.url, slow.headers, batch_id)["batch_call"]["counts"]["dialing"] == 0:
            assert time.monotonic() < deadline, "nothing was dialed"
            time.sleep(0.2)
        signalled = time.monotonic()
        os.killpg(slow.process.pid, signal.SIGTERM)
        code = slow.process.wait(timeout=45)
        took = time.monotonic() - signalled
    finally:
        stop_server(slow.process)
    log = slow.log.read_text()
    assert code == 0, log[-3000:]
    assert took < 30, took  # the grace period, then out: no hanging on live calls
    assert "handing" in log and "live calls over" in log, log[-3000:]
    assert "stopped" in log

    # The calls handed over are settled by the next process from the provider's own answers
    # (the simulator's ledger): finished, not dialed again.
    (tmp_path / "again").mkdir()
    fast = start_server(
        tmp_path / "again",
        backend_only=True,
        database_url=slow.database_url,
        demo=slow.demo,
        extra_env={"BATCH_SIM_CALL_SECONDS": "0", "BATCH_CALLS_PER_SECOND": "0"},
    )
    try:
        deadline = time.monotonic() + 120
        while (got := detail(fast.url, fast.headers, batch_id))["batch_call"][
            "status"
        ] != "completed":
            assert time.monotonic() < deadline, got["batch_call"]
            time.sleep(0.3)
    finally:
        stop_server(fast.process)
    from batch_dashboard import db
    from batch_dashboard.providers.simulator import ledger_rows
    from batch_dashboard.settings import reload_settings
    from tests.conftest import _use_database

    with monkeypatch.context() as patch:
        _use_database(patch, slow.database_url)
        dialed = [row["to_number"] for row in ledger_rows()]
    db.dispose_engines()  # the context put DATABASE_URL back; forget what it opened
    reload_settings()
    assert sorted(dialed) == sorted(phones)  # everyone once
    assert all(r["status"] == "completed" for r in got["recipients"])
