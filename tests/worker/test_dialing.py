"""Claims, outcomes, leases and batch transitions (services.dialing), with a frozen clock,
on SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest

from batch_dashboard.db import session_scope
from batch_dashboard.providers.base import CallResult, CallStatus
from batch_dashboard.services import agents, batches, dialing, transitions
from batch_dashboard.services.errors import BatchNotCancellable
from tests.worker.helpers import (
    START,
    assert_counts_consistent,
    batch_row,
    claim,
    make_batch,
    recipient_statuses,
)


def completed(**extra: object) -> CallResult:
    return CallResult(
        status=CallStatus.completed,
        started_at=START,
        ended_at=START + timedelta(seconds=20),
        duration_seconds=20.0,
        transcript=[{"role": "agent", "message": "Hi", "time_in_call_secs": 0}],
        evaluations={},
        data_collection={},
        **extra,  # type: ignore[arg-type]
    )


def record(outcomes: list[tuple[str, CallResult]], now=START) -> list[str]:
    with session_scope(write=True) as session:
        return dialing.record_outcomes(session, outcomes=outcomes, now=now)


def test_a_claim_starts_the_batch_and_leases_recipients(tenant):
    batch = make_batch(tenant, 5)
    claims = claim(limit=3)
    assert len(claims) == 3
    assert len({c.attempt_id for c in claims}) == 3
    assert [c.phone for c in claims] == ["+14155552000", "+14155552001", "+14155552002"]
    assert claims[0].variables == {"first_name": "P0"}
    assert claims[0].from_number == "+14155550100"
    assert claims[0].attempt_number == 1
    assert claims[0].agent.id == tenant.agent_id
    row = batch_row(batch["id"])
    assert row.status == "running" and row.started_at is not None
    assert (row.pending_count, row.dialing_count) == (2, 3)
    assert_counts_consistent(batch["id"])


def test_the_workspace_cap_holds_and_is_shared_fairly(tenant):
    first = make_batch(tenant, 10)
    second = make_batch(tenant, 10)
    claims = claim(cap=4)
    assert len(claims) == 4
    assert {c.batch_id for c in claims} == {first["id"], second["id"]}
    assert sum(c.batch_id == first["id"] for c in claims) == 2
    assert claim(cap=4) == []
    record([(claims[0].attempt_id, completed())])
    assert len(claim(cap=4)) == 1


def test_workspaces_have_their_own_caps(tenant, other_tenant):
    make_batch(tenant, 5)
    make_batch(other_tenant, 5)
    claims = claim(cap=2)
    assert sorted(c.workspace_id for c in claims) == sorted(
        [tenant.workspace_id] * 2 + [other_tenant.workspace_id] * 2
    )


def test_pacing_per_caller_number(tenant):
    make_batch(tenant, 10)
    assert len(claim(cps=4)) == 1  # 4/s: one dial per quarter second
    assert claim(cps=4) == []
    assert len(claim(cps=4, now=START + timedelta(seconds=0.25))) == 1
    # At 40/s one claim may take 40 × 0.25 s = 10 dials; 8 recipients are left.
    assert len(claim(cps=40, now=START + timedelta(seconds=1))) == 8


def test_outcomes_are_recorded_once_and_complete_the_batch(tenant):
    batch = make_batch(tenant, 3)
    claims = claim()
    busy = CallResult(status=CallStatus.busy, failure_reason="busy", ended_at=START)
    recorded = record([(claims[0].attempt_id, completed()), (claims[1].attempt_id, busy)])
    assert sorted(recorded) == sorted([claims[0].attempt_id, claims[1].attempt_id])
    assert record([(claims[0].attempt_id, completed())]) == []  # already settled
    in_progress = CallResult(status=CallStatus.in_progress)
    assert record([(claims[2].attempt_id, in_progress)]) == []
    assert batch_row(batch["id"]).status == "running"
    assert_counts_consistent(batch["id"])
    record([(claims[2].attempt_id, completed())])
    row = batch_row(batch["id"])
    assert row.status == "completed" and row.finished_at is not None
    assert (row.completed_count, row.failed_count) == (2, 1)
    assert_counts_consistent(batch["id"])
    with session_scope() as session:
        detail = batches.batch_detail(
            session, workspace_id=tenant.workspace_id, batch_id=batch["id"]
        )
    first = detail["recipients"][0]
    assert first["status"] == "completed" and first["conversation_id"].startswith("conv_")
    assert first["duration_seconds"] == 20.0
    assert detail["recipients"][1]["failure_reason"] == "busy"


def test_cancel_and_claim_have_one_winner(tenant):
    dialed = make_batch(tenant, 2)
    claim(limit=1)
    with session_scope(write=True) as session, pytest.raises(BatchNotCancellable):
        batches.cancel_batch(session, workspace_id=tenant.workspace_id, batch_id=dialed["id"])
    assert batch_row(dialed["id"]).status == "running"

    cancelled = make_batch(tenant, 2)
    with session_scope(write=True) as session:
        batches.cancel_batch(session, workspace_id=tenant.workspace_id, batch_id=cancelled["id"])
    assert all(c.batch_id != cancelled["id"] for c in claim())
    assert recipient_statuses(cancelled["id"]) == {"cancelled": 2}
    assert_counts_consistent(cancelled["id"])


@pytest.mark.parametrize("breakage", ["agent deleted", "number deleted", "number inbound only"])
def test_a_batch_that_cannot_be_dialed_fails(tenant, breakage):
    batch = make_batch(tenant, 3)
    with session_scope(write=True) as session:
        if breakage == "agent deleted":
            agents.delete_agent(session, workspace_id=tenant.workspace_id, agent_id=tenant.agent_id)
        elif breakage == "number deleted":
            agents.delete_phone_number(
                session, workspace_id=tenant.workspace_id, phone_number_id=tenant.number_id
            )
        else:
            agents.update_phone_number(
                session,
                workspace_id=tenant.workspace_id,
                phone_number_id=tenant.number_id,
                outbound_enabled=False,
            )
    assert claim() == []
    row = batch_row(batch["id"])
    assert row.status == "failed" and row.finished_at is not None
    assert recipient_statuses(batch["id"]) == {"failed": 3}
    with session_scope() as session:
        detail = batches.batch_detail(
            session, workspace_id=tenant.workspace_id, batch_id=batch["id"]
        )
    assert {r["failure_reason"] for r in detail["recipients"]} == {"batch_failed"}
    assert_counts_consistent(batch["id"])


def test_calls_in_flight_finish_in_a_failed_batch(tenant):
    batch = make_batch(tenant, 3)
    claims = claim(limit=1)
    with session_scope(write=True) as session:
        agents.delete_agent(session, workspace_id=tenant.workspace_id, agent_id=tenant.agent_id)
    claim()
    record([(claims[0].attempt_id, completed())])
    row = batch_row(batch["id"])
    assert row.status == "failed"
    assert (row.completed_count, row.failed_count, row.dialing_count) == (1, 2, 0)
    assert_counts_consistent(batch["id"])


def test_scheduled_batches_are_promoted_when_due(tenant):
    soon = make_batch(tenant, 2, scheduled_at="2026-12-01T12:00:30Z")
    later = make_batch(tenant, 2, scheduled_at="2026-12-31T11:00:00Z")  # 30 days minus an hour
    assert claim() == []  # nothing is due yet
    with session_scope(write=True) as session:
        assert transitions.promote_due(session, now=START + timedelta(seconds=29)) == 0
    with session_scope(write=True) as session:
        assert transitions.promote_due(session, now=START + timedelta(seconds=30)) == 1
    assert batch_row(soon["id"]).status == "pending"
    assert batch_row(later["id"]).status == "scheduled"
    assert {c.batch_id for c in claim(now=START + timedelta(seconds=30))} == {soon["id"]}
    # A restart in between changes nothing: the database holds the schedule.
    with session_scope(write=True) as session:
        assert transitions.promote_due(session, now=START + timedelta(days=30)) == 1
    assert batch_row(later["id"]).status == "pending"


def test_expired_leases_are_found_adopted_once_or_released(tenant):
    batch = make_batch(tenant, 2)
    claims = claim(lease=30)
    later = START + timedelta(seconds=31)
    with session_scope() as session:
        assert dialing.expired_attempts(session, now=START, limit=10, default_provider="x") == []
        expired = dialing.expired_attempts(session, now=later, limit=10, default_provider="x")
    assert {a.attempt_id for a in expired} == {c.attempt_id for c in claims}
    assert expired[0].provider == "simulator"
    with session_scope(write=True) as session:
        assert dialing.adopt(
            session, attempt_id=claims[0].attempt_id, now=later, until=later + timedelta(seconds=30)
        )
    with session_scope(write=True) as session:
        assert not dialing.adopt(session, attempt_id=claims[0].attempt_id, now=later, until=later)
    with session_scope(write=True) as session:
        assert transitions.release_unplaced(session, attempt_id=claims[1].attempt_id, now=later)
    assert recipient_statuses(batch["id"]) == {"dialing": 1, "pending": 1}
    assert_counts_consistent(batch["id"])
    again = claim(now=later)
    assert len(again) == 1 and again[0].attempt_number == 1
    assert again[0].attempt_id != claims[1].attempt_id


def test_renewed_leases_do_not_expire(tenant):
    make_batch(tenant, 1)
    claims = claim(lease=10)
    with session_scope(write=True) as session:
        dialing.renew_leases(
            session, attempt_ids=[claims[0].attempt_id], until=START + timedelta(seconds=60)
        )
    with session_scope() as session:
        found = dialing.expired_attempts(
            session, now=START + timedelta(seconds=30), limit=10, default_provider="simulator"
        )
    assert found == []


def test_a_paused_batch_places_no_new_calls_until_resumed(tenant):
    batch = make_batch(tenant, 6)
    first = claim(limit=2)
    with session_scope(write=True) as session:
        paused = batches.pause_batch(
            session, workspace_id=tenant.workspace_id, batch_id=batch["id"]
        )
    assert paused["paused"] is True and paused["status"] == "running"
    assert claim() == []
    # Calls already live finish and are recorded.
    done = CallResult(status=CallStatus.busy, failure_reason="busy", ended_at=START)
    assert len(record([(c.attempt_id, done) for c in first])) == 2
    with session_scope(write=True) as session:
        again = batches.pause_batch(session, workspace_id=tenant.workspace_id, batch_id=batch["id"])
    assert again["paused"] is True
    with session_scope(write=True) as session:
        resumed = batches.resume_batch(
            session, workspace_id=tenant.workspace_id, batch_id=batch["id"]
        )
    assert resumed["paused"] is False
    assert len(claim()) == 4
    assert_counts_consistent(batch["id"])


def test_only_running_batches_pause(tenant):
    from batch_dashboard.services.errors import Conflict

    pending = make_batch(tenant, 1)
    with session_scope(write=True) as session, pytest.raises(Conflict):
        batches.pause_batch(session, workspace_id=tenant.workspace_id, batch_id=pending["id"])
    with session_scope(write=True) as session, pytest.raises(Conflict):
        batches.resume_batch(session, workspace_id=tenant.workspace_id, batch_id=pending["id"])


def test_a_batch_never_exceeds_its_own_concurrency(tenant):
    capped = make_batch(tenant, 10, max_concurrency=2)
    other = make_batch(tenant, 10)
    claims = claim(cap=10)
    assert sum(c.batch_id == capped["id"] for c in claims) == 2
    assert sum(c.batch_id == other["id"] for c in claims) >= 3
    assert all(c.batch_id != capped["id"] for c in claim(cap=10))


def test_a_slot_freed_by_a_big_batch_goes_to_the_one_waiting(tenant):
    big = make_batch(tenant, 10)
    first = claim(cap=3)
    assert {c.batch_id for c in first} == {big["id"]}
    waiting = make_batch(tenant, 10)
    record([(first[0].attempt_id, completed())])
    [freed] = claim(cap=3)
    assert freed.batch_id == waiting["id"]
