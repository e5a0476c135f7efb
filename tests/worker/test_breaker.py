"""The circuit breaker (services.breaker): claims and outcomes through the real dialing service
with a frozen clock, on SQLite and on PostgreSQL; two real workers on PostgreSQL."""

from __future__ import annotations

import json
import os
import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import func, select, update

from batch_dashboard.db import session_scope
from batch_dashboard.models import Agent, BreakerTrip, Recipient, WebhookDelivery
from batch_dashboard.providers.base import CallResult, CallStatus
from batch_dashboard.services import batches, dialing, metrics
from tests.conftest import Tenant, make_tenant
from tests.worker.helpers import (
    START,
    assert_counts_consistent,
    batch_row,
    claim,
    make_batch,
    recipient_statuses,
)
from tests.worker.processes import start_worker, stop, wait_for

HOOK = "https://hooks.example.com/batch-calls"
PLATFORM_SAYS = "Twilio refused creating a call: 500 20500 Internal Server Error"


def failed(reason: str, message: str | None = PLATFORM_SAYS) -> CallResult:
    status = {"busy": CallStatus.busy, "no_answer": CallStatus.no_answer}.get(
        reason, CallStatus.failed
    )
    return CallResult(status=status, failure_reason=reason, message=message)


def completed() -> CallResult:
    return CallResult(
        status=CallStatus.completed,
        started_at=START,
        duration_seconds=20.0,
        transcript=[],
        evaluations={},
        data_collection={},
    )


def record(claims: list[dialing.Claim], result: CallResult, now: datetime = START) -> None:
    with session_scope(write=True) as session:
        dialing.record_outcomes(session, outcomes=[(c.attempt_id, result) for c in claims], now=now)


def with_webhook(tenant: Tenant) -> None:
    with session_scope(write=True) as session:
        session.execute(update(Agent).where(Agent.id == tenant.agent_id).values(webhook_url=HOOK))


def events(batch_id: str, event_type: str) -> list[dict[str, Any]]:
    with session_scope() as session:
        payloads = session.execute(
            select(WebhookDelivery.payload).where(
                WebhookDelivery.batch_id == batch_id, WebhookDelivery.event_type == event_type
            )
        ).scalars()
        return [orjson.loads(payload) for payload in payloads]


def trips(batch_id: str) -> int:
    with session_scope() as session:
        return session.execute(
            select(func.count()).where(BreakerTrip.batch_id == batch_id)
        ).scalar_one()


def public(tenant: Tenant, batch_id: str) -> dict[str, Any]:
    with session_scope() as session:
        return batches.batch_detail(session, workspace_id=tenant.workspace_id, batch_id=batch_id)


def attempts_of(batch_id: str) -> list[int]:
    with session_scope() as session:
        return list(
            session.execute(
                select(Recipient.attempts)
                .where(Recipient.batch_id == batch_id)
                .order_by(Recipient.position)
            ).scalars()
        )


def test_a_burst_of_provider_errors_pauses_the_batch_and_spends_no_attempt(tenant):
    with_webhook(tenant)
    batch = make_batch(tenant, 20)
    claims = claim(cap=10)
    assert len(claims) == 10
    # Nine failures are not enough attempts to judge (min_attempts 10).
    record(claims[:9], failed("provider_error"), now=START + timedelta(seconds=5))
    assert batch_row(batch["id"]).paused_at is None
    record(claims[9:], failed("provider_error"), now=START + timedelta(seconds=6))

    row = batch_row(batch["id"])
    assert row.status == "running" and row.paused_at is not None
    detail = public(tenant, batch["id"])["batch_call"]
    assert detail["paused"] is True and detail["paused_reason"] == "failure_rate"
    trip = detail["circuit_breaker_trip"]
    assert trip["attempts"] == 10 and trip["failures"] == 10
    assert trip["failure_rate"] == 1.0 and trip["by_outcome"] == {"provider_error": 10}
    assert trip["last_error"] == PLATFORM_SAYS and trip["given_back"] == 10
    assert trip["window_seconds"] == 120 and trip["tripped_at"] == "2026-12-01T12:00:06Z"
    # Every recipient is back in line, none of them charged an attempt.
    assert recipient_statuses(batch["id"]) == {"pending": 20}
    assert attempts_of(batch["id"]) == [0] * 20
    assert_counts_consistent(batch["id"])
    # No new dials while paused.
    assert claim(cap=10, now=START + timedelta(seconds=7)) == []
    # Signalled once: the event (and no call.failed for calls that did not end anyone), the
    # trip counted for /metrics.
    [event] = events(batch["id"], "batch.paused")
    assert event["type"] == "batch.paused"
    assert event["data"]["batch_id"] == batch["id"]
    assert event["data"]["paused_reason"] == "failure_rate"
    assert event["data"]["circuit_breaker_trip"] == trip
    assert events(batch["id"], "call.failed") == []
    assert trips(batch["id"]) == 1
    with session_scope() as session:
        assert metrics.snapshot(session)["breaker_trips"]["failure_rate"] == 1


def test_busy_and_no_answer_storms_never_trip_it(tenant):
    batch = make_batch(tenant, 40)
    claims = claim(cap=40)
    record(claims[:20], failed("busy", None))
    record(claims[20:], failed("no_answer", None))
    row = batch_row(batch["id"])
    assert row.paused_at is None and row.status == "completed"
    assert recipient_statuses(batch["id"]) == {"failed": 40}
    assert trips(batch["id"]) == 0


def test_failures_below_the_rate_do_not_trip_it(tenant):
    batch = make_batch(tenant, 20)
    claims = claim(cap=20)
    record(claims[:9], failed("provider_error"))
    record(claims[9:], completed())
    assert batch_row(batch["id"]).status == "completed"
    assert trips(batch["id"]) == 0


def test_the_callees_failures_trip_it_but_stay_spent(tenant):
    batch = make_batch(tenant, 20)
    claims = claim(cap=10)
    record(claims[:4], completed())
    record(claims[4:7], failed("invalid_number", "'To' phone number cannot be reached"))
    record(claims[7:10], failed("outcome_unknown", None))
    detail = public(tenant, batch["id"])["batch_call"]
    trip = detail["circuit_breaker_trip"]
    assert detail["paused_reason"] == "failure_rate"
    assert (trip["attempts"], trip["failures"]) == (10, 6)
    assert trip["by_outcome"] == {"invalid_number": 3, "outcome_unknown": 3}
    # The platform's (outcome unknown) go back unspent; a number that is invalid stays failed.
    assert trip["given_back"] == 3
    assert trip["last_error"] == "Outcome unknown"
    assert recipient_statuses(batch["id"]) == {"completed": 4, "failed": 3, "pending": 13}
    assert_counts_consistent(batch["id"])


def test_a_batch_whose_breaker_is_off_keeps_dialing(tenant):
    batch = make_batch(tenant, 20, circuit_breaker=False)
    assert batch["circuit_breaker"] is False
    claims = claim(cap=10)
    record(claims, failed("provider_error"))
    assert batch_row(batch["id"]).paused_at is None
    assert len(claim(cap=10)) == 10


def test_its_own_settings_decide(tenant):
    batch = make_batch(
        tenant, 10, circuit_breaker={"failure_rate": 0.8, "min_attempts": 5, "window_seconds": 30}
    )
    assert batch["circuit_breaker"] == {
        "failure_rate": 0.8,
        "min_attempts": 5,
        "window_seconds": 30,
    }
    claims = claim(cap=10)
    # Failures older than the window do not count.
    record(claims[:4], failed("provider_error"), now=START)
    record(claims[4:5], completed(), now=START + timedelta(seconds=40))
    record(claims[5:8], failed("provider_error"), now=START + timedelta(seconds=41))
    assert batch_row(batch["id"]).paused_at is None  # 4 attempts in the window, not 5
    record(claims[8:9], failed("declined", "Declined"), now=START + timedelta(seconds=42))
    trip = public(tenant, batch["id"])["batch_call"]["circuit_breaker_trip"]
    assert (trip["attempts"], trip["failures"], trip["window_seconds"]) == (5, 4, 30)
    assert trip["by_outcome"] == {"declined": 1, "provider_error": 3}
    assert trip["last_error"] == "Declined"


def test_calls_live_at_the_trip_that_fail_go_back_too(tenant):
    batch = make_batch(tenant, 12)
    claims = claim(cap=12)
    record(claims[:10], failed("provider_error"))
    assert batch_row(batch["id"]).paused_at is not None
    record(claims[10:11], failed("provider_error"), now=START + timedelta(seconds=1))
    record(claims[11:], completed(), now=START + timedelta(seconds=2))
    assert recipient_statuses(batch["id"]) == {"pending": 11, "completed": 1}
    assert attempts_of(batch["id"]) == [0] * 11 + [1]
    assert trips(batch["id"]) == 1
    assert_counts_consistent(batch["id"])


def test_the_last_attempts_of_a_batch_still_trip_it(tenant):
    """A batch whose every recipient failed would complete: the trip comes first."""
    batch = make_batch(tenant, 10)
    record(claim(cap=10), failed("provider_error"))
    row = batch_row(batch["id"])
    assert (row.status, row.pending_count) == ("running", 10)
    assert row.paused_reason == "failure_rate"


def test_resume_continues_where_it_stopped(tenant):
    batch = make_batch(tenant, 30)
    first = claim(cap=10)
    record(first[:5], completed())
    record(first[5:], failed("provider_error"))  # 5 of 10: trips at 50 %
    assert batch_row(batch["id"]).paused_reason == "failure_rate"
    assert recipient_statuses(batch["id"]) == {"completed": 5, "pending": 25}

    resumed_at = START + timedelta(minutes=5)
    with session_scope(write=True) as session:
        answer = batches.resume_batch(
            session, workspace_id=tenant.workspace_id, batch_id=batch["id"]
        )
    assert answer["paused"] is False and answer["paused_reason"] is None
    assert answer["circuit_breaker_trip"] is None
    again = claim(cap=10, now=resumed_at)
    # The ones put back first (input order), on their first attempt again.
    assert [c.phone for c in again[:5]] == [c.phone for c in first[5:]]
    assert {c.attempt_number for c in again} == {1}
    record(again, completed(), now=resumed_at + timedelta(seconds=1))
    rest = claim(cap=20, now=resumed_at + timedelta(seconds=2))
    record(rest, completed(), now=resumed_at + timedelta(seconds=3))
    row = batch_row(batch["id"])
    assert row.status == "completed" and row.completed_count == 30
    assert trips(batch["id"]) == 1


def test_after_a_resume_only_new_failures_count(tenant):
    batch = make_batch(tenant, 40)
    record(claim(cap=10), failed("invalid_number"))  # trips; these stay failed
    assert trips(batch["id"]) == 1
    resumed_at = START + timedelta(seconds=10)
    with session_scope(write=True) as session:
        batches.resume_batch(session, workspace_id=tenant.workspace_id, batch_id=batch["id"])
    claims = claim(cap=10, now=resumed_at)
    record(claims[:1], failed("provider_error"), now=resumed_at + timedelta(seconds=1))
    assert batch_row(batch["id"]).paused_at is None  # the ten before the resume are forgotten
    record(claims[1:], failed("provider_error"), now=resumed_at + timedelta(seconds=2))
    assert batch_row(batch["id"]).paused_reason == "failure_rate"
    assert trips(batch["id"]) == 2
    assert len(events(batch["id"], "batch.paused")) == 0  # no webhook URL: no event


@pytest.mark.postgres
def test_two_workers_recording_at_once_trip_it_once(postgres_url):
    tenant = make_tenant()
    with_webhook(tenant)
    batch = make_batch(tenant, 40)
    claims = claim(cap=40)
    halves = [claims[i::2] for i in range(2)]
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def worker(mine: list[dialing.Claim]) -> None:
        try:
            barrier.wait()
            for start in range(0, len(mine), 4):
                record(mine[start : start + 4], failed("provider_error"))
        except BaseException as error:  # reported below, in the test's thread
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(half,)) for half in halves]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert trips(batch["id"]) == 1
    assert len(events(batch["id"], "batch.paused")) == 1
    assert recipient_statuses(batch["id"]) == {"pending": 40}
    assert_counts_consistent(batch["id"])


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.xdist_group("processes")
def test_two_worker_processes_trip_it_once_and_log_it(postgres_url, tmp_path: Path):
    tenant = make_tenant()
    with_webhook(tenant)
    batch = make_batch(tenant, 60, now=datetime.now(START.tzinfo))
    logs = [tmp_path / f"worker{i}.log" for i in range(2)]
    env = {
        "BATCH_SIM_OUTCOMES": "failed=1",
        "BATCH_SIM_CALL_SECONDS": "0",
        "BATCH_CALLS_PER_SECOND": "0",
        "BATCH_MAX_CONCURRENT_CALLS": "10",
        "BATCH_LOG_FORMAT": "json",
        "BATCH_SECRET_KEY": os.environ["BATCH_SECRET_KEY"],
    }
    workers = [start_worker(postgres_url, log, **env) for log in logs]
    try:
        wait_for(
            lambda: batch_row(batch["id"]).paused_at is not None,
            timeout=60,
            what="the breaker to trip",
            log=logs[0],
        )
    finally:
        for process in workers:
            stop(process)
    row = batch_row(batch["id"])
    assert row.paused_reason == "failure_rate" and row.status == "running"
    assert row.dialing_count == 0 and row.failed_count == 0
    assert trips(batch["id"]) == 1
    assert len(events(batch["id"], "batch.paused")) == 1
    assert all(attempts == 0 for attempts in attempts_of(batch["id"]))
    assert_counts_consistent(batch["id"])
    lines = [
        json.loads(line)
        for log in logs
        for line in log.read_text().splitlines()
        if line.startswith("{") and "breaker_tripped" in line
    ]
    assert len(lines) == 1
    [line] = lines
    assert line["level"] == "WARNING" and line["batch_id"] == batch["id"]
    assert line["paused_reason"] == "failure_rate" and line["failures"] >= 10


def test_a_trip_in_words():
    from batch_dashboard.services import breaker

    trip = {
        "reason": "failure_rate",
        "window_seconds": 120,
        "attempts": 10,
        "failures": 7,
        "by_outcome": {"invalid_number": 2, "provider_error": 5},
        "last_error": "Carrier down",
        "given_back": 5,
    }
    words = breaker.describe("failure_rate", trip)
    assert words["title"] == "Too many calls failed"
    assert words["detail"] == (
        "7 of the last 10 calls failed within 2 minutes (telephony error 5, invalid number 2)."
        " 5 recipients went back in line without spending an attempt."
    )
    assert words["last_error"] == "Carrier down"
    refused = breaker.describe("account_suspended", {**trip, "given_back": 0})
    assert refused["title"] == "The platform account is suspended"
    assert breaker.describe("manual", None)["title"] == ""


def test_the_paused_event_is_signed_and_delivered_like_the_others(tenant, monkeypatch):
    from standardwebhooks import Webhook

    from batch_dashboard.clock import FrozenClock
    from batch_dashboard.settings import reload_settings
    from tests.worker.receiver import Receiver
    from tests.worker.test_webhooks import hook_agent, send_due

    monkeypatch.setenv("BATCH_WEBHOOK_ALLOW_PRIVATE_TARGETS", "true")
    reload_settings()
    now = datetime.now(START.tzinfo).replace(microsecond=0)
    with Receiver() as receiver:
        secret = hook_agent(tenant, f"{receiver.url}/hooks")
        batch = make_batch(tenant, 12, now=now)
        record(claim(cap=10, now=now), failed("provider_error"), now=now)
        assert send_due(FrozenClock(now)) == ["delivered"]  # the trip's event, no call.failed
        [request] = receiver.received("/hooks")
        event = Webhook(secret).verify(request.body, request.headers)
    assert request.headers["webhook-id"].startswith("msg_")
    assert event["type"] == "batch.paused" and event["data"]["batch_id"] == batch["id"]
    assert event["data"]["circuit_breaker_trip"]["given_back"] == 10
