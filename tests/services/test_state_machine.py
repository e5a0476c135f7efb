"""Invariants of the batch/recipient state machine under random sequences of operations.

A hypothesis rule-based state machine drives the real service layer (batches.*, dialing.*,
transitions.*)
on a real database (SQLite file and PostgreSQL, through the `database` fixture) with an
injected clock, and after every write it reads every batch of the example and checks:

1. the counters on the batch row equal its recipients grouped by status and add up to
   `total_recipients`;
2. the batch's `version` grew when what a reader sees changed (the public batch and its
   public recipients) and only then;
3. recipients move only along the allowed edges; `completed` and `cancelled` recipients never
   change again, and a `failed` one only goes back to `pending` through a retry;
4. batches move only along the allowed edges, and an ended batch has no live recipients
   (a `failed` batch keeps only the calls that were in flight when it failed, to finish).

Each operation's own answer is checked too (which error, which attempts were recorded, …).
All examples share the test's database: every example makes its own batches and its teardown
ends whatever it left live, so the next example's claims and lease scans only see its own.

`stop`: a scheduled or pending batch is cancelled at once, a running one cancels its pending
recipients at once, its live calls finish and are recorded (none goes back in line), and it
ends `cancelled` with its last live call; an ended batch refuses (`BatchNotStoppable`).

The run is derandomized (the same sequences every time) and does not shrink a failure (that
alone can take hypothesis five minutes here): the failing sequence is printed as generated.
On a local run, STATE_MACHINE_EXAMPLES=500 explores that many random sequences and shrinks
what fails to a minimal one.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import update

from batch_dashboard.clock import to_rfc3339
from batch_dashboard.db import session_scope
from batch_dashboard.models import Batch, Recipient
from batch_dashboard.providers.base import CallResult, CallStatus
from batch_dashboard.services import batches, dialing, errors, transitions
from batch_dashboard.services.outcomes import REDIALLED_BY_RETRY
from tests.conftest import Tenant, make_tenant
from tests.worker.helpers import START, claim, make_batch

EXPLORING = "STATE_MACHINE_EXAMPLES" in os.environ
EXAMPLES = int(os.environ.get("STATE_MACHINE_EXAMPLES", "40"))
STEPS = 25
MAX_BATCHES = 3
LEASE = timedelta(seconds=30)
# Cancelling a cancelled batch again answers like the first time (idempotent).
CANCELLABLE = ("scheduled", "pending", "cancelled")

TERMINAL_RECIPIENT = ("completed", "failed", "cancelled")
TERMINAL_BATCH = ("completed", "failed", "cancelled")
RECIPIENT_EDGES = {
    ("pending", "dialing"),  # claimed
    ("pending", "cancelled"),  # cancel, stop
    ("pending", "failed"),  # fail_batch, screened out at the claim
    ("dialing", "completed"),
    ("dialing", "failed"),
    ("dialing", "pending"),  # retry policy, release_unplaced
}
BATCH_EDGES = {
    ("scheduled", "pending"),
    ("scheduled", "cancelled"),
    ("scheduled", "failed"),
    ("pending", "running"),
    ("pending", "cancelled"),
    ("pending", "failed"),
    ("running", "completed"),
    ("running", "failed"),
    ("running", "cancelled"),  # only a stopped batch
    ("completed", "running"),  # only by a retry
}

# name → CallResult; `in_progress` is not an end and must not be recorded.
OUTCOMES: dict[str, CallResult] = {
    "completed": CallResult(
        status=CallStatus.completed,
        duration_seconds=20.0,
        transcript=[{"role": "agent", "message": "Hi", "time_in_call_secs": 0}],
        evaluations={},
        data_collection={},
    ),
    "no_answer": CallResult(status=CallStatus.no_answer),
    "busy": CallResult(status=CallStatus.failed, failure_reason="busy"),
    "voicemail": CallResult(status=CallStatus.voicemail),
    "provider_error": CallResult(status=CallStatus.failed, failure_reason="provider_error"),
    "outcome_unknown": CallResult(status=CallStatus.failed, failure_reason="outcome_unknown"),
    "in_progress": CallResult(status=CallStatus.in_progress),
}
counts = st.integers(1, 3)
schedules = st.none() | st.sampled_from([60, 600])
ACTIONS = ("retry", "pause", "resume", "cancel", "fail", "stop")
outcome_names = st.sampled_from(sorted(OUTCOMES))
retry_policies = st.builds(
    lambda attempts, retry_on: {
        "max_attempts": attempts,
        "retry_on": retry_on,
        "delay_seconds": 60,
    },
    st.integers(2, 3),
    st.lists(
        st.sampled_from(["no_answer", "busy", "voicemail", "provider_error"]),
        min_size=1,
        unique=True,
    ),
)
policies = st.none() | retry_policies


@dataclass
class View:
    """One batch as a reader sees it, with what the checks need beside."""

    version: int
    public: dict[str, Any]  # batch_detail, as JSON: the batch and its recipients
    counters: dict[str, int]

    @property
    def status(self) -> str:
        return self.public["batch_call"]["status"]

    @property
    def recipients(self) -> dict[str, dict[str, Any]]:
        return {r["id"]: r for r in self.public["recipients"]}

    def with_status(self, *statuses: str) -> set[str]:
        return {r["id"] for r in self.public["recipients"] if r["status"] in statuses}

    def ready(self, now: datetime) -> list[str]:
        """Pending recipients a claim may take now, in input order."""
        return [
            r["id"]
            for r in self.public["recipients"]
            if r["status"] == "pending"
            and (r["next_attempt_at"] is None or _instant(r["next_attempt_at"]) <= now)
        ]


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass
class Live:
    """An attempt claimed by this example and not settled yet."""

    recipient_id: str
    batch_id: str
    lease_until: datetime


class BatchLifecycle(RuleBasedStateMachine):
    tenant: Tenant  # set by the test before it runs the machine

    batch_ids = Bundle("batch_ids")
    attempt_ids = Bundle("attempt_ids")

    def __init__(self) -> None:
        super().__init__()
        self.now = START
        self.made: list[str] = []
        self.views: dict[str, View] = {}
        self.live: dict[str, Live] = {}
        self.stopped: set[str] = set()
        # The recipients dialing when the batch failed: the only ones that may still be.
        self.dialing_at_failure: dict[str, set[str]] = {}

    # --- observation and the invariants ------------------------------------------------------

    def read(self) -> dict[str, View]:
        views = {}
        with session_scope() as session:
            for batch_id in self.made:
                detail = batches.batch_detail(
                    session, workspace_id=self.tenant.workspace_id, batch_id=batch_id
                )
                row = session.get(Batch, batch_id)
                assert row is not None
                views[batch_id] = View(
                    version=row.version,
                    public=orjson.loads(orjson.dumps(detail)),
                    counters={
                        "pending": row.pending_count,
                        "dialing": row.dialing_count,
                        "completed": row.completed_count,
                        "failed": row.failed_count,
                        "cancelled": row.cancelled_count,
                    },
                )
        return views

    def observe(self, step: str, *, retried: str | None = None) -> None:
        """Check every batch against its view before `step`, then remember the new views."""
        views = self.read()
        for batch_id, new in views.items():
            old = self.views.get(batch_id)
            where = f"after {step}, batch {batch_id}"
            self.check_counts(where, new)
            self.check_batch(where, new)
            if old is not None:
                self.check_version(where, old, new)
                self.check_recipient_moves(where, batch_id, old, new, retried=retried)
                self.check_batch_move(where, batch_id, old, new, retried=retried)
            self.check_ended(where, batch_id, new)
        self.views = views

    def check_counts(self, where: str, new: View) -> None:
        actual = Counter(r["status"] for r in new.public["recipients"])
        assert new.counters == {status: actual.get(status, 0) for status in new.counters}, (
            f"{where}: counters {new.counters} but recipients {dict(actual)}"
        )
        assert new.public["batch_call"]["counts"] == new.counters
        total = new.public["batch_call"]["total_recipients"]
        assert sum(new.counters.values()) == total == len(new.public["recipients"]), (
            f"{where}: counters {new.counters} do not add up to {total}"
        )

    def check_batch(self, where: str, new: View) -> None:
        public = new.public["batch_call"]
        ended = new.status in TERMINAL_BATCH
        assert (public["finished_at"] is not None) == ended, (
            f"{where}: {new.status} with finished_at {public['finished_at']}"
        )
        if new.status == "running":
            assert public["started_at"] is not None, f"{where}: running, never started"

    def check_version(self, where: str, old: View, new: View) -> None:
        if new.public != old.public:
            assert new.version > old.version, (
                f"{where}: what a reader sees changed but version stayed {old.version}: "
                f"{_difference(old.public, new.public)}"
            )
        else:
            assert new.version == old.version, (
                f"{where}: version {old.version} -> {new.version} with no visible change"
            )

    def check_recipient_moves(
        self, where: str, batch_id: str, old: View, new: View, *, retried: str | None
    ) -> None:
        before = old.recipients
        for rid, after in new.recipients.items():
            was, now = before[rid]["status"], after["status"]
            if was == now:
                if was in TERMINAL_RECIPIENT:
                    assert after == before[rid], (
                        f"{where}: {was} recipient {rid} changed: {_difference(before[rid], after)}"
                    )
                continue
            allowed = (
                (was, now) in RECIPIENT_EDGES
                or ((was, now) == ("failed", "pending") and retried == batch_id)
                or ((was, now) == ("dialing", "cancelled") and batch_id in self.stopped)
            )
            assert allowed, f"{where}: recipient {rid} went {was} -> {now}"

    def check_batch_move(
        self, where: str, batch_id: str, old: View, new: View, *, retried: str | None
    ) -> None:
        move = (old.status, new.status)
        if move[0] == move[1]:
            return
        assert move in BATCH_EDGES, f"{where}: batch went {move[0]} -> {move[1]}"
        if move == ("running", "cancelled"):
            assert batch_id in self.stopped, f"{where}: running -> cancelled, never stopped"
        if move == ("completed", "running"):
            assert retried == batch_id, f"{where}: completed -> running without a retry"
        if new.status == "failed":
            self.dialing_at_failure[batch_id] = new.with_status("dialing")

    def check_ended(self, where: str, batch_id: str, new: View) -> None:
        live = new.with_status("pending", "dialing")
        if new.status in ("completed", "cancelled"):
            assert not live, f"{where}: {new.status} batch has live recipients {sorted(live)}"
        if new.status == "failed":
            pending = new.with_status("pending")
            assert not pending, f"{where}: failed batch has pending recipients {sorted(pending)}"
            late = new.with_status("dialing") - self.dialing_at_failure.get(batch_id, set())
            assert not late, f"{where}: failed batch dialed {sorted(late)} after it failed"
        if batch_id in self.stopped:
            pending = new.with_status("pending")
            assert not pending, f"{where}: stopped batch has pending recipients {sorted(pending)}"
            assert new.status in ("running", "cancelled", "failed"), (
                f"{where}: stopped batch is {new.status}"
            )
            if new.status == "running":
                assert new.with_status("dialing"), (
                    f"{where}: stopped batch still running with no live call"
                )

    # --- operations ----------------------------------------------------------------------------

    def status(self, batch_id: str) -> str:
        return self.views[batch_id].status

    def make(self, count: int, policy: dict[str, Any] | None, scheduled_in: int | None) -> str:
        fields: dict[str, Any] = {}
        if policy is not None:
            fields["retry_policy"] = policy
        if scheduled_in is not None:
            fields["scheduled_at"] = to_rfc3339(self.now + timedelta(seconds=scheduled_in))
        batch = make_batch(self.tenant, count, now=self.now, **fields)
        assert batch["status"] == ("scheduled" if scheduled_in else "pending")
        self.made.append(batch["id"])
        self.observe("create")
        return batch["id"]

    @initialize(target=batch_ids, count=counts, policy=policies, scheduled_in=schedules)
    def first_batch(self, count: int, policy: dict[str, Any] | None, scheduled_in: int | None):
        return self.make(count, policy, scheduled_in)

    @precondition(lambda self: len(self.made) < MAX_BATCHES)
    @rule(target=batch_ids, count=counts, policy=policies, scheduled_in=schedules)
    def create(self, count: int, policy: dict[str, Any] | None, scheduled_in: int | None) -> str:
        return self.make(count, policy, scheduled_in)

    @rule(seconds=st.sampled_from([0, 1, 31, 61, 600]))
    def tick(self, seconds: int) -> None:
        """The clock moves on, and due scheduled batches are promoted."""
        self.now += timedelta(seconds=seconds)
        due = [
            batch_id
            for batch_id, view in self.views.items()
            if view.status == "scheduled"
            and _instant(view.public["batch_call"]["scheduled_at"]) <= self.now
        ]
        with session_scope(write=True) as session:
            promoted = transitions.promote_due(session, now=self.now)
        assert promoted == len(due)
        self.observe("promote_due")
        for batch_id in due:
            assert self.status(batch_id) == "pending"

    @rule(target=attempt_ids, limit=st.integers(1, 6), cap=st.integers(1, 6))
    def claim(self, limit: int, cap: int) -> multiple[str]:
        eligible = {
            batch_id: view.ready(self.now)
            for batch_id, view in self.views.items()
            if view.status in ("pending", "running") and not view.public["batch_call"]["paused"]
        }
        in_progress = sum(view.counters["dialing"] for view in self.views.values())
        available = max(0, min(limit, cap - in_progress))
        ready = sum(len(rids) for rids in eligible.values())
        claims = claim(now=self.now, limit=limit, cap=cap, lease=LEASE.total_seconds())
        self.observe(f"claim(limit={limit}, cap={cap})")
        assert len(claims) <= min(available, ready)
        if available and ready:
            assert claims, f"nothing claimed with {available} free slots and {ready} ready"
        per_batch: dict[str, list[str]] = {}
        for taken in claims:
            assert taken.batch_id in eligible, f"claimed from a batch that may not dial: {taken}"
            per_batch.setdefault(taken.batch_id, []).append(taken.recipient_id)
            self.live[taken.attempt_id] = Live(taken.recipient_id, taken.batch_id, self.now + LEASE)
        for batch_id, rids in per_batch.items():
            # The first ready recipients, in input order.
            assert rids == eligible[batch_id][: len(rids)]
            assert self.status(batch_id) == "running"
        return multiple(*(taken.attempt_id for taken in claims))

    def record(self, outcomes: list[tuple[str, str]], step: str) -> None:
        # Results that are not an end (in_progress) are left out, even beside an end given
        # for the same attempt.
        expected = {
            attempt_id
            for attempt_id, name in outcomes
            if attempt_id in self.live and OUTCOMES[name].terminal
        }
        with session_scope(write=True) as session:
            recorded = dialing.record_outcomes(
                session,
                outcomes=[(attempt_id, OUTCOMES[name]) for attempt_id, name in outcomes],
                now=self.now,
            )
        assert sorted(recorded) == sorted(expected), f"{step}: recorded {recorded}"
        for attempt_id in recorded:
            del self.live[attempt_id]
        self.observe(step)

    @precondition(lambda self: self.live)
    @rule(data=st.data(), outcome=outcome_names)
    def end_call(self, data: st.DataObject, outcome: str) -> None:
        """A call in flight ends."""
        attempt_id = data.draw(st.sampled_from(sorted(self.live)), label="attempt_id")
        self.record([(attempt_id, outcome)], f"record({outcome})")

    @precondition(lambda self: self.live)
    @rule(outcome=outcome_names)
    def end_calls(self, outcome: str) -> None:
        """Every call in flight ends the same way, in one recording (a busy worker's flush)."""
        self.record(
            [(attempt_id, outcome) for attempt_id in sorted(self.live)], f"record({outcome})"
        )

    @rule(attempt_id=attempt_ids, outcome=outcome_names)
    def record_outcome(self, attempt_id: str, outcome: str) -> None:
        """Any attempt claimed earlier ends (again, if it was recorded before: a no-op)."""
        self.record([(attempt_id, outcome)], f"record({outcome})")

    @rule(first=attempt_ids, second=attempt_ids, one=outcome_names, other=outcome_names)
    def record_two(self, first: str, second: str, one: str, other: str) -> None:
        self.record([(first, one), (second, other)], f"record({one}, {other})")

    @rule(data=st.data())
    def expire_leases(self, data: st.DataObject) -> None:
        """The worker died: past the lease, recovery releases or settles each attempt."""
        self.now += LEASE + timedelta(seconds=1)
        with session_scope() as session:
            expired = dialing.expired_attempts(
                session, now=self.now, limit=200, default_provider="simulator"
            )
        expected = {a for a, live in self.live.items() if live.lease_until < self.now}
        assert {attempt.attempt_id for attempt in expired} == expected
        for attempt in expired:
            if data.draw(st.booleans(), label=f"release {attempt.attempt_id}"):
                with session_scope(write=True) as session:
                    released = transitions.release_unplaced(
                        session, attempt_id=attempt.attempt_id, now=self.now
                    )
                assert released
                del self.live[attempt.attempt_id]
                self.observe("release_unplaced")
            else:
                self.record([(attempt.attempt_id, "outcome_unknown")], "settle(outcome_unknown)")

    @rule(batch_id=batch_ids, action=st.sampled_from(ACTIONS))
    def act(self, batch_id: str, action: str) -> None:
        """What a user (or the dialer, for `fail`) does to a whole batch."""
        getattr(self, action)(batch_id)

    def in_status(self, *statuses: str, dialing: bool = False) -> list[str]:
        return [
            batch_id
            for batch_id, view in self.views.items()
            if view.status in statuses and (view.with_status("dialing") or not dialing)
        ]

    @precondition(lambda self: self.in_status("completed"))
    @rule(data=st.data())
    def retry_completed(self, data: st.DataObject) -> None:
        """`act` reaches ended batches rarely: retry one on purpose."""
        self.retry(data.draw(st.sampled_from(self.in_status("completed")), label="batch_id"))

    @precondition(lambda self: self.in_status("running", dialing=True))
    @rule(data=st.data(), action=st.sampled_from(tuple(a for a in ACTIONS if a != "retry")))
    def act_while_dialing(self, data: st.DataObject, action: str) -> None:
        """Pause, cancel, fail or stop a batch with calls in flight."""
        batch_id = data.draw(
            st.sampled_from(self.in_status("running", dialing=True)), label="batch_id"
        )
        getattr(self, action)(batch_id)

    def retry(self, batch_id: str) -> None:
        before = self.views[batch_id]
        try:
            with session_scope(write=True) as session:
                batches.retry_batch(
                    session, workspace_id=self.tenant.workspace_id, batch_id=batch_id, now=self.now
                )
        except errors.Conflict:
            assert before.status != "completed", "a completed batch refused a retry"
            self.observe("retry_batch (refused)")
            return
        assert before.status == "completed", f"a {before.status} batch was retried"
        self.observe("retry_batch", retried=batch_id)
        again = {
            r["id"]
            for r in before.public["recipients"]
            if r["status"] == "failed" and r["failure_reason"] in REDIALLED_BY_RETRY
        }
        after = self.views[batch_id]
        assert after.with_status("pending") == again
        assert after.status == ("running" if again else "completed")

    def pause(self, batch_id: str) -> None:
        self.pause_or_resume(batch_id, pause=True)

    def resume(self, batch_id: str) -> None:
        self.pause_or_resume(batch_id, pause=False)

    def pause_or_resume(self, batch_id: str, *, pause: bool) -> None:
        was = self.status(batch_id)
        # A stopped batch still running its last calls can be neither paused nor resumed.
        stopping = self.views[batch_id].public["batch_call"]["stopping"]
        try:
            with session_scope(write=True) as session:
                if pause:
                    batches.pause_batch(
                        session,
                        workspace_id=self.tenant.workspace_id,
                        batch_id=batch_id,
                        now=self.now,
                    )
                else:
                    batches.resume_batch(
                        session, workspace_id=self.tenant.workspace_id, batch_id=batch_id
                    )
        except errors.Conflict:
            assert was != "running" or stopping, "a running batch refused a pause or resume"
            self.observe("pause_batch (refused)" if pause else "resume_batch (refused)")
            return
        assert was == "running", f"a {was} batch was paused or resumed"
        self.observe("pause_batch" if pause else "resume_batch")
        assert self.views[batch_id].public["batch_call"]["paused"] is pause

    def cancel(self, batch_id: str) -> None:
        was = self.status(batch_id)
        try:
            with session_scope(write=True) as session:
                batches.cancel_batch(
                    session, workspace_id=self.tenant.workspace_id, batch_id=batch_id, now=self.now
                )
        except errors.BatchNotCancellable:
            assert was not in CANCELLABLE, f"a {was} batch refused to cancel"
            self.observe("cancel_batch (refused)")
            return
        assert was in CANCELLABLE, f"a {was} batch was cancelled"
        self.observe("cancel_batch")
        assert self.status(batch_id) == "cancelled"

    def fail(self, batch_id: str) -> None:
        was = self.status(batch_id)
        with session_scope(write=True) as session:
            failed = dialing.fail_batch(session, batch_id=batch_id, now=self.now, why="test")
        assert failed == (was in ("scheduled", "pending", "running"))
        self.observe("fail_batch")
        if failed:
            assert self.status(batch_id) == "failed"

    def stop(self, batch_id: str) -> None:
        was = self.status(batch_id)
        not_stoppable = errors.BatchNotStoppable
        try:
            with session_scope(write=True) as session:
                batches.stop_batch(  # type: ignore[attr-defined]
                    session,
                    workspace_id=self.tenant.workspace_id,
                    batch_id=batch_id,
                    hang_up=False,
                    now=self.now,
                )
        except not_stoppable:
            assert was in TERMINAL_BATCH, f"a {was} batch refused to stop"
            self.observe("stop_batch (refused)")
            return
        assert was not in TERMINAL_BATCH, f"a {was} batch was stopped"
        self.stopped.add(batch_id)
        self.observe("stop_batch")
        view = self.views[batch_id]
        if was in ("scheduled", "pending") or not view.with_status("dialing"):
            assert view.status == "cancelled"

    def teardown(self) -> None:
        """End whatever this example left live, so that the next one's claims, lease scans and
        promotions see only its own batches (not a service operation: nothing is checked)."""
        if not self.made:
            return
        with session_scope(write=True) as session:
            session.execute(
                update(Recipient.__table__)
                .where(
                    Recipient.__table__.c.batch_id.in_(self.made),
                    Recipient.__table__.c.status.in_(("pending", "dialing")),
                )
                .values(status="failed", lease_expires_at=None)
            )
            session.execute(
                update(Batch.__table__)
                .where(Batch.__table__.c.id.in_(self.made))
                .values(status="failed", pending_count=0, dialing_count=0, paused_at=None)
            )


def _difference(before: Any, after: Any, path: str = "") -> str:
    """The first place two JSON values differ, for messages."""
    if isinstance(before, dict) and isinstance(after, dict):
        for key in sorted(set(before) | set(after)):
            if before.get(key) != after.get(key):
                return _difference(before.get(key), after.get(key), f"{path}.{key}")
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        for index, (one, other) in enumerate(zip(before, after, strict=True)):
            if one != other:
                return _difference(one, other, f"{path}[{index}]")
    return f"{path or '.'}: {before!r} -> {after!r}"


def test_batch_state_machine_invariants(database: str) -> None:
    BatchLifecycle.tenant = make_tenant()
    run_state_machine_as_test(
        BatchLifecycle,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            database=None,
            derandomize=not EXPLORING,
            phases=tuple(Phase) if EXPLORING else (Phase.explicit, Phase.generate),
            suppress_health_check=[
                HealthCheck.function_scoped_fixture,
                HealthCheck.too_slow,
                HealthCheck.filter_too_much,
            ],
        ),
    )


# --- regressions: what the state machine found (both fixed by services/transitions.py) ---------


def _public(tenant: Tenant, batch_id: str) -> tuple[int, dict[str, Any]]:
    with session_scope() as session:
        detail = batches.batch_detail(session, workspace_id=tenant.workspace_id, batch_id=batch_id)
        row = session.get(Batch, batch_id)
        assert row is not None
        return row.version, orjson.loads(orjson.dumps(detail))


def test_a_call_ending_after_its_batch_failed_is_not_put_back_in_line(tenant: Tenant) -> None:
    policy = {"max_attempts": 2, "retry_on": ["no_answer"], "delay_seconds": 60}
    batch = make_batch(tenant, 1, retry_policy=policy)
    (taken,) = claim(now=START)
    with session_scope(write=True) as session:
        assert dialing.fail_batch(session, batch_id=batch["id"], now=START, why="agent deleted")
    with session_scope(write=True) as session:
        recorded = dialing.record_outcomes(
            session, outcomes=[(taken.attempt_id, OUTCOMES["no_answer"])], now=START
        )
    assert recorded == [taken.attempt_id]
    _version, detail = _public(tenant, batch["id"])
    assert detail["batch_call"]["status"] == "failed"
    assert [r["status"] for r in detail["recipients"]] == ["failed"]
    assert detail["batch_call"]["counts"]["pending"] == 0


def test_retrying_a_batch_with_nothing_to_retry_changes_nothing(tenant: Tenant) -> None:
    batch = make_batch(tenant, 1)
    (taken,) = claim(now=START)
    with session_scope(write=True) as session:
        dialing.record_outcomes(
            session, outcomes=[(taken.attempt_id, OUTCOMES["completed"])], now=START
        )
    version, before = _public(tenant, batch["id"])
    assert before["batch_call"]["status"] == "completed"
    try:
        with session_scope(write=True) as session:
            batches.retry_batch(
                session, workspace_id=tenant.workspace_id, batch_id=batch["id"], now=START
            )
    except errors.Conflict:
        pass  # refusing is as good: nothing changes either way
    assert _public(tenant, batch["id"]) == (version, before)
