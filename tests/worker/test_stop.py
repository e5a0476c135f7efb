"""Stopping a running batch: no new calls, live calls finish (or are hung up), the batch ends
cancelled with its last call (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from batch_dashboard.db import session_scope
from batch_dashboard.providers.base import CallResult, CallStatus
from batch_dashboard.services import batches, dialing, transitions
from batch_dashboard.services.errors import BatchNotStoppable, Conflict
from tests.worker.helpers import START, assert_counts_consistent, batch_row, claim, make_batch

DONE = CallResult(status=CallStatus.completed, ended_at=START, duration_seconds=3)
BUSY = CallResult(status=CallStatus.busy, failure_reason="busy", ended_at=START)


def stop(tenant, batch_id: str, *, hang_up: bool = False) -> dict:
    with session_scope(write=True) as session:
        return batches.stop_batch(
            session, workspace_id=tenant.workspace_id, batch_id=batch_id, hang_up=hang_up, now=START
        )


def end(claims, result: CallResult) -> None:
    with session_scope(write=True) as session:
        dialing.record_outcomes(
            session, outcomes=[(c.attempt_id, result) for c in claims], now=START
        )


def test_a_running_batch_stops_dialing_and_ends_cancelled_with_its_last_call(tenant):
    batch = make_batch(tenant, 6)
    live = claim(cap=2)
    stopped = stop(tenant, batch["id"])
    assert stopped["status"] == "running" and stopped["stopping"] is True
    assert stopped["counts"] == {
        "pending": 0,
        "dialing": 2,
        "completed": 0,
        "failed": 0,
        "cancelled": 4,
    }
    assert claim(cap=10) == []  # nothing more is dialed
    assert stop(tenant, batch["id"]) == stopped  # asking again changes nothing
    with session_scope(write=True) as session, pytest.raises(Conflict):
        batches.pause_batch(session, workspace_id=tenant.workspace_id, batch_id=batch["id"])
    end(live[:1], DONE)
    assert batch_row(batch["id"]).status == "running"
    end(live[1:], DONE)
    row = batch_row(batch["id"])
    assert (row.status, row.completed_count, row.cancelled_count) == ("cancelled", 2, 4)
    assert row.finished_at is not None
    assert_counts_consistent(batch["id"])
    with pytest.raises(BatchNotStoppable):
        stop(tenant, batch["id"])


def test_stopping_before_any_dial_cancels(tenant):
    batch = make_batch(tenant, 3)
    assert stop(tenant, batch["id"])["status"] == "cancelled"
    assert_counts_consistent(batch["id"])


def test_a_retry_due_in_a_stopped_batch_is_cancelled_not_dialed(tenant):
    policy = {"max_attempts": 3, "retry_on": ["busy"], "delay_seconds": 60}
    batch = make_batch(tenant, 2, retry_policy=policy)
    live = claim(cap=2)
    stop(tenant, batch["id"])
    end(live, BUSY)
    row = batch_row(batch["id"])
    assert (row.status, row.failed_count, row.pending_count) == ("cancelled", 2, 0)
    assert claim(cap=10, now=START + timedelta(minutes=5)) == []
    assert_counts_consistent(batch["id"])


def test_an_unplaced_attempt_of_a_stopped_batch_is_cancelled(tenant):
    batch = make_batch(tenant, 2)
    live = claim(cap=2)
    stop(tenant, batch["id"])
    with session_scope(write=True) as session:
        assert transitions.release_unplaced(session, attempt_id=live[0].attempt_id, now=START)
    end(live[1:], DONE)
    row = batch_row(batch["id"])
    assert (row.status, row.cancelled_count, row.completed_count) == ("cancelled", 1, 1)
    assert_counts_consistent(batch["id"])


def test_hang_up_marks_the_live_attempts_for_the_workers(tenant):
    batch = make_batch(tenant, 3)
    live = claim(cap=2)
    ids = [c.attempt_id for c in live]
    with session_scope() as session:
        assert dialing.attempts_to_hang_up(session, attempt_ids=ids) == []
    stop(tenant, batch["id"], hang_up=True)
    with session_scope() as session:
        assert sorted(dialing.attempts_to_hang_up(session, attempt_ids=ids)) == sorted(ids)
