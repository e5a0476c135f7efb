"""What the console's batch operations rest on: retry by outcome, the estimate of time left
(with an injected clock), the calling rules in words, and results that upload again."""

from __future__ import annotations

from datetime import timedelta

import pytest

from batch_dashboard.db import session_scope
from batch_dashboard.providers.base import CallResult, CallStatus
from batch_dashboard.services import batches, dialing, recipients
from batch_dashboard.services.errors import ValidationFailed
from tests.worker.helpers import START, assert_counts_consistent, batch_row, claim, make_batch


def end(claims, result: CallResult, *, at=START) -> None:
    with session_scope(write=True) as session:
        dialing.record_outcomes(session, outcomes=[(c.attempt_id, result) for c in claims], now=at)


def failed(reason: str, at=START) -> CallResult:
    return CallResult(status=CallStatus.failed, failure_reason=reason, ended_at=at)


def connected(at=START, **conversation) -> CallResult:
    return CallResult(
        status=CallStatus.completed,
        started_at=at - timedelta(seconds=20),
        ended_at=at,
        duration_seconds=20,
        transcript=[{"role": "agent", "message": "Hello", "time_in_call_secs": 0}],
        **conversation,
    )


def test_retry_calls_only_the_chosen_outcomes_and_says_how_many(tenant):
    batch = make_batch(tenant, 6)
    calls = claim(cap=10)
    end(calls[:2], failed("no_answer"))
    end(calls[2:3], failed("busy"))
    end(calls[3:4], failed("do_not_call"))  # never redialled: not offered
    end(calls[4:], connected())
    with session_scope() as session:
        choices = batches.retry_choices(
            session, workspace_id=tenant.workspace_id, batch_id=batch["id"]
        )
    assert choices == {"no_answer": 2, "busy": 1}
    with session_scope(write=True) as session, pytest.raises(ValidationFailed) as refused:
        batches.retry_batch(
            session,
            workspace_id=tenant.workspace_id,
            batch_id=batch["id"],
            failure_reasons=["busy", "do_not_call"],
        )
    assert refused.value.details[0]["loc"] == ["failure_reasons", 1]
    assert batch_row(batch["id"]).status == "completed"  # the refusal changed nothing
    with session_scope(write=True) as session:
        again = batches.retry_batch(
            session,
            workspace_id=tenant.workspace_id,
            batch_id=batch["id"],
            failure_reasons=["busy"],
        )
    assert again["status"] == "running" and again["counts"]["pending"] == 1
    assert again["counts"]["failed"] == 3
    assert_counts_consistent(batch["id"])


def test_time_left_follows_the_recent_rate_of_ended_calls(tenant):
    """Ten calls left; four ended in the two minutes since the start: 10 at 2 a minute."""
    batch = make_batch(tenant, 14, now=START)
    calls = claim(cap=4, now=START)
    with session_scope() as session:
        running = batches.get_batch(session, workspace_id=tenant.workspace_id, batch_id=batch["id"])
        # Nothing ended yet: no rate, no estimate (never a per-call guess).
        assert (
            batches.seconds_left(session, batch=running, now=START + timedelta(minutes=1)) is None
        )
    for minute, call in enumerate(calls, start=1):
        end([call], connected(at=START + timedelta(seconds=30 * minute)))
    with session_scope() as session:
        running = batches.get_batch(session, workspace_id=tenant.workspace_id, batch_id=batch["id"])
        assert running.pending_count + running.dialing_count == 10
        assert batches.seconds_left(session, batch=running, now=START + timedelta(minutes=2)) == 300
        # Ten minutes later nothing has ended in the last five: the rate says nothing.
        later = START + timedelta(minutes=12)
        assert batches.seconds_left(session, batch=running, now=later) is None
    with session_scope(write=True) as session:
        batches.pause_batch(session, workspace_id=tenant.workspace_id, batch_id=batch["id"])
    with session_scope() as session:
        paused = batches.get_batch(session, workspace_id=tenant.workspace_id, batch_id=batch["id"])
        assert batches.seconds_left(session, batch=paused, now=START + timedelta(minutes=2)) is None


def test_the_rules_in_force_in_words(tenant):
    batch = make_batch(
        tenant,
        1,
        max_concurrency=3,
        retry_policy={"max_attempts": 3, "retry_on": ["no_answer", "busy"], "delay_seconds": 600},
        calling_window={
            "start": "09:00",
            "end": "20:00",
            "days": ["mon", "tue", "wed", "thu", "fri"],
        },
    )
    assert batches.rules_in_force(batch, workspace_limit=10) == [
        "Up to 3 calls at once",
        "Rings 30 s",
        "Calls 09:00–20:00, Mon–Fri, in the recipient's time zone",
        "Numbers without a known time zone are not called",
        "Up to 3 attempts on no answer, busy, 10 min apart",
    ]
    plain = make_batch(tenant, 1)
    assert batches.rules_in_force(plain, workspace_limit=10) == [
        "Up to 10 calls at once",
        "Rings 30 s",
        "Calls at any time of day",
        "One attempt per number",
    ]


def test_the_export_has_evaluations_and_collected_data_and_uploads_again_unchanged(tenant):
    rows = recipients.from_json(
        [
            {"phone": "+14155552671", "first_name": "=HYPERLINK(1)", "note": "-5"},
            {"phone": "+14155552672", "first_name": "Bob", "note": "'plain"},
            {"phone": "+14155552673", "first_name": "Cy", "note": "@x"},
        ],
        max_recipients=10,
    )
    batch, _ = batches.create_batch(
        workspace_id=tenant.workspace_id,
        fields={"name": "Export", "agent_id": tenant.agent_id},
        rows=rows,
        now=START,
    )
    calls = claim(cap=10)
    end(
        calls[:1],
        connected(
            evaluations={
                "Appointment confirmed": {"result": "success", "rationale": "Said yes"},
                "polite": {"result": "failure", "rationale": "=rude"},
            },
            data_collection={"wants_callback": {"value": True, "rationale": ""}},
        ),
    )
    end(calls[1:2], connected())
    end(calls[2:], failed("busy"))
    with session_scope() as session:
        text = batches.export_results_csv(
            session, workspace_id=tenant.workspace_id, batch_id=batch["id"]
        )
    lines = text.split("\r\n")
    assert lines[0] == (
        "phone,first_name,note,status,failure_reason,outcome,attempts,started_at,ended_at,"
        "duration_seconds,conversation_id,evaluation_appointment_confirmed,"
        "evaluation_appointment_confirmed_rationale,evaluation_polite,"
        "evaluation_polite_rationale,collected_wants_callback"
    )
    first, second, third = (line.split(",") for line in lines[1:4])
    assert first[:3] == ["'+14155552671", "'=HYPERLINK(1)", "'-5"]
    assert first[5] == "Appointment confirmed: success"  # the main evaluation
    assert first[11:] == ["success", "Said yes", "failure", "'=rude", "Yes"]
    assert second[5] == "Connected" and second[2] == "'plain"
    assert third[5] == "Busy"
    again = recipients.validate(
        recipients.from_csv(text.encode(), max_recipients=10, max_bytes=1_000_000)
    )
    assert not again.problems
    assert again.phones == ["+14155552671", "+14155552672", "+14155552673"]
    assert [v["first_name"] for v in again.variables] == ["=HYPERLINK(1)", "Bob", "Cy"]
    assert [v["note"] for v in again.variables] == ["-5", "'plain", "@x"]
    assert again.variables[0]["evaluation_polite_rationale"] == "=rude"
    copy, _ = batches.create_batch(
        workspace_id=tenant.workspace_id,
        fields={"name": "Export again", "agent_id": tenant.agent_id},
        rows=again,
        now=START,
    )
    assert copy["total_recipients"] == 3
