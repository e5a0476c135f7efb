"""The worker in-process: a batch goes pending → running → completed, scheduled batches start
on time, and /v1/health reports the dialer while it runs."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from sqlmodel import select

from batch_dashboard.db import session_scope
from batch_dashboard.models import Conversation
from batch_dashboard.services import batches
from batch_dashboard.settings import reload_settings
from batch_dashboard.telemetry import dialer_state
from batch_dashboard.worker.main import run_worker
from tests.worker.helpers import assert_counts_consistent, batch_row, make_batch


@pytest.fixture
def fast_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "BATCH_SIM_CALL_SECONDS": "0.05",
        "BATCH_SIM_OUTCOMES": "completed=0.7,busy=0.2,voicemail=0.1",
        "BATCH_CALLS_PER_SECOND": "0",
        "BATCH_MAX_CONCURRENT_CALLS": "5",
    }.items():
        monkeypatch.setenv(name, value)
    reload_settings()


async def _run_until(condition, *, timeout: float = 30) -> list[str]:
    stop = asyncio.Event()
    states: list[str] = []
    task = asyncio.create_task(run_worker(stop))
    deadline = time.monotonic() + timeout
    try:
        while not await asyncio.to_thread(condition):
            states.append(dialer_state())
            assert time.monotonic() < deadline, "timed out"
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await task
    states.append(dialer_state())
    return states


def test_a_batch_is_dialed_to_completion(tenant, fast_calls):
    batch = make_batch(tenant, 12)
    seen: set[str] = set()

    def finished() -> bool:
        status = batch_row(batch["id"]).status  # read once: a second read may see it finish
        seen.add(status)
        return status == "completed"

    states = asyncio.run(_run_until(finished))
    assert "running" in states and states[-1] == "off"
    assert {"pending", "running", "completed"} >= seen and "completed" in seen
    assert_counts_consistent(batch["id"])
    row = batch_row(batch["id"])
    assert row.completed_count + row.failed_count == 12
    with session_scope() as session:
        detail = orjson.loads(
            orjson.dumps(
                batches.batch_detail(
                    session, workspace_id=tenant.workspace_id, batch_id=batch["id"]
                )
            )
        )
        conversations = {c.recipient_id: c for c in session.exec(select(Conversation)).all()}
    for recipient in detail["recipients"]:
        assert recipient["attempts"] == 1
        assert recipient["started_at"] and recipient["ended_at"]
        if recipient["status"] == "completed":
            conversation = conversations[recipient["id"]]
            assert conversation.id == recipient["conversation_id"]
            name = recipient["dynamic_vars"]["first_name"]
            assert conversation.transcript[0]["message"] == f"Hi {name}!"
        else:
            assert recipient["failure_reason"] in ("busy", "voicemail")


def test_a_scheduled_batch_starts_within_a_second(tenant, fast_calls):
    due = datetime.now(UTC) + timedelta(seconds=2)
    batch = make_batch(tenant, 2, now=datetime.now(UTC), scheduled_at=due.isoformat())
    started: list[datetime] = []

    def dialing_started() -> bool:
        row = batch_row(batch["id"])
        if row.started_at is not None:
            started.append(row.started_at)
        return row.status == "completed"

    asyncio.run(_run_until(dialing_started))
    assert due <= started[0] <= due + timedelta(seconds=1.5)
