"""Retries, do-not-call and opt-outs, with a frozen clock (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from batch_dashboard.db import session_scope
from batch_dashboard.models import Agent
from batch_dashboard.providers.base import CallResult, CallStatus
from batch_dashboard.services import batches, dialing, dnc
from batch_dashboard.services.errors import Conflict
from tests.worker.helpers import START, assert_counts_consistent, batch_row, claim, make_batch


def end(claims, result: CallResult, now=START) -> None:
    with session_scope(write=True) as session:
        dialing.record_outcomes(session, outcomes=[(c.attempt_id, result) for c in claims], now=now)


BUSY = CallResult(status=CallStatus.busy, failure_reason="busy", ended_at=START)


def test_retries_are_counted_spaced_and_end_failed_after_the_last(tenant):
    policy = {"max_attempts": 3, "retry_on": ["busy"], "delay_seconds": 300}
    batch = make_batch(tenant, 1, retry_policy=policy)
    assert batch["retry_policy"] == policy
    now = START
    for attempt in (1, 2, 3):
        [call] = claim(now=now)
        assert call.attempt_number == attempt
        end([call], CallResult(status=CallStatus.busy, failure_reason="busy", ended_at=now), now)
        if attempt < 3:
            assert batch_row(batch["id"]).status == "running"
            assert claim(now=now + timedelta(seconds=299)) == []  # spaced by the delay
            now += timedelta(seconds=300)
        assert_counts_consistent(batch["id"])
    row = batch_row(batch["id"])
    assert row.status == "completed" and row.failed_count == 1


def test_only_the_listed_reasons_are_retried(tenant):
    make_batch(
        tenant, 1, retry_policy={"max_attempts": 3, "retry_on": ["no_answer"], "delay_seconds": 60}
    )
    end(claim(), BUSY)
    assert claim(now=START + timedelta(hours=1)) == []


def test_a_number_added_mid_batch_is_never_dialed(tenant):
    batch = make_batch(tenant, 4)
    first = claim(limit=1)
    with session_scope(write=True) as session:
        dnc.add(session, workspace_id=tenant.workspace_id, phone="+1 415 555 2002", reason="asked")
    rest = claim()
    assert "+14155552002" not in [c.phone for c in first + rest]
    end(first + rest, BUSY)
    with session_scope() as session:
        detail = batches.batch_detail(
            session, workspace_id=tenant.workspace_id, batch_id=batch["id"]
        )
    listed = next(r for r in detail["recipients"] if r["phone"] == "+14155552002")
    assert (listed["status"], listed["failure_reason"], listed["attempts"]) == (
        "failed",
        "do_not_call",
        0,
    )
    assert batch_row(batch["id"]).status == "completed"
    assert_counts_consistent(batch["id"])


def test_an_opt_out_in_the_conversation_lists_the_number(tenant):
    with session_scope(write=True) as session:
        agent = session.get(Agent, tenant.agent_id)
        agent.opt_out_field = "opted_out"
        session.add(agent)
    make_batch(tenant, 2)
    yes, no = claim(limit=2)

    def said(value: object) -> CallResult:
        return CallResult(
            status=CallStatus.completed,
            started_at=START,
            ended_at=START,
            duration_seconds=9,
            transcript=[],
            evaluations={},
            data_collection={"opted_out": {"value": value}},
        )

    end([yes], said(True))
    end([no], said(False))
    with session_scope() as session:
        entries = dnc.list_entries(session, workspace_id=tenant.workspace_id)["do_not_call"]
    assert [(e["phone"], e["source"]) for e in entries] == [(yes.phone, "opt_out")]


def test_a_completed_batch_can_be_retried_once_more(tenant):
    batch = make_batch(tenant, 3)
    calls = claim()
    ok = CallResult(
        status=CallStatus.completed,
        started_at=START,
        ended_at=START,
        duration_seconds=5,
        transcript=[],
        evaluations={},
        data_collection={},
    )
    end(calls[:1], ok)
    end(calls[1:], BUSY)
    with session_scope(write=True) as session:
        again = batches.retry_batch(session, workspace_id=tenant.workspace_id, batch_id=batch["id"])
    assert again["status"] == "running" and again["counts"]["pending"] == 2
    retried = claim()
    assert sorted(c.attempt_number for c in retried) == [2, 2]
    with session_scope(write=True) as session, pytest.raises(Conflict):
        batches.retry_batch(session, workspace_id=tenant.workspace_id, batch_id=batch["id"])
    assert_counts_consistent(batch["id"])
