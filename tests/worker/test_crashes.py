"""SIGKILL a worker at each dangerous point, restart, and check that every recipient ended
exactly once and the provider placed at most one call per attempt and per number
(on SQLite and on PostgreSQL, with real worker processes)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select

from batch_dashboard.db import session_scope
from batch_dashboard.models import Conversation, Recipient
from batch_dashboard.providers.simulator import ledger_rows
from tests.worker.helpers import assert_counts_consistent, batch_row, make_batch
from tests.worker.processes import kill, start_worker, stop, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("processes")]


def _check_every_recipient_ended_once(batch_id: str) -> None:
    assert batch_row(batch_id).status == "completed"
    assert_counts_consistent(batch_id)
    with session_scope() as session:
        recipients = session.execute(
            select(
                Recipient.phone, Recipient.status, Recipient.attempt_id, Recipient.conversation_id
            ).where(Recipient.batch_id == batch_id)
        ).all()
        conversations = session.execute(
            select(func.count()).select_from(Conversation).where(Conversation.batch_id == batch_id)
        ).scalar_one()
    assert {r.status for r in recipients} <= {"completed", "failed"}
    assert conversations == sum(r.status == "completed" for r in recipients)
    assert all(r.conversation_id for r in recipients if r.status == "completed")
    calls = ledger_rows()
    per_number = Counter(call["to_number"] for call in calls)
    assert max(per_number.values()) == 1, "a number was dialed twice"
    placed = {call["attempt_id"] for call in calls}
    # Every recipient's final attempt is the call the provider placed.
    assert {r.attempt_id for r in recipients} <= placed


@pytest.mark.parametrize("point", ["after_claim", "after_place"])
def test_a_crash_at_a_dangerous_point_loses_and_repeats_nothing(
    tenant, database, tmp_path: Path, point: str
) -> None:
    batch = make_batch(tenant, 20, ringing_timeout_ms=1000)
    log = tmp_path / "worker.log"
    env = {"BATCH_SIM_CALL_SECONDS": "0.2", "BATCH_SIM_SEED": "1", "BATCH_CALLS_PER_SECOND": "0"}
    crashing = start_worker(database, log, BATCH_CRASH_AT=point, **env)
    crashing.wait(timeout=60)
    assert crashing.returncode == -9, log.read_text()[-3000:]
    assert batch_row(batch["id"]).dialing_count > 0  # it died holding claims
    survivor = start_worker(database, log, **env)
    try:
        wait_for(
            lambda: batch_row(batch["id"]).status == "completed",
            timeout=90,
            what="completion",
            log=log,
        )
    finally:
        assert stop(survivor) == 0
    _check_every_recipient_ended_once(batch["id"])


def test_a_crash_mid_batch_resumes_where_it_stopped(tenant, database, tmp_path: Path) -> None:
    batch = make_batch(tenant, 40, ringing_timeout_ms=1000)
    log = tmp_path / "worker.log"
    env = {
        "BATCH_SIM_CALL_SECONDS": "0.4",
        "BATCH_CALLS_PER_SECOND": "0",
        "BATCH_MAX_CONCURRENT_CALLS": "5",
    }
    first = start_worker(database, log, **env)
    try:
        wait_for(
            lambda: (
                batch_row(batch["id"]).completed_count + batch_row(batch["id"]).failed_count >= 8
            ),
            timeout=60,
            what="some calls to end",
            log=log,
        )
    finally:
        kill(first)
    midway = batch_row(batch["id"])
    assert midway.status == "running" and midway.pending_count > 0
    second = start_worker(database, log, **env)
    try:
        wait_for(
            lambda: batch_row(batch["id"]).status == "completed",
            timeout=90,
            what="completion",
            log=log,
        )
    finally:
        assert stop(second) == 0
    _check_every_recipient_ended_once(batch["id"])


def test_sigterm_stops_claiming_and_exits_cleanly(tenant, database, tmp_path: Path) -> None:
    batch = make_batch(tenant, 30, ringing_timeout_ms=1000)
    log = tmp_path / "worker.log"
    env = {
        "BATCH_SIM_CALL_SECONDS": "0.5",
        "BATCH_CALLS_PER_SECOND": "0",
        "BATCH_MAX_CONCURRENT_CALLS": "3",
    }
    worker = start_worker(database, log, **env)
    wait_for(lambda: batch_row(batch["id"]).dialing_count > 0, timeout=60, what="dialing", log=log)
    assert stop(worker) == 0
    stopped = batch_row(batch["id"])
    assert stopped.dialing_count == 0  # live calls finished within the grace period
    assert stopped.pending_count > 0  # and nothing new was claimed
    assert_counts_consistent(batch["id"])
