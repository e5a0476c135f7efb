"""Claims, outcomes, leases and batch transitions: the dialer's side of the domain core.

Every write here is a compare-and-set, so any number of workers (and the API's cancel) can run
at once: a recipient moves `pending → dialing` only in a claim that also takes its lease and a
fresh attempt id, and every later change is conditional on that attempt id still being the one
in flight. Batch counters change in the same transaction as the recipients they count.
"""

from __future__ import annotations

import logging
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import String, bindparam, case, cast, func, insert, literal, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session

from batch_dashboard.ids import new_id
from batch_dashboard.models import (
    Agent,
    Batch,
    BatchStatus,
    CallMinute,
    Conversation,
    PhoneNumber,
    Recipient,
    RecipientStatus,
    Workspace,
)
from batch_dashboard.providers.base import AgentSnapshot, CallRequest, CallResult, CallStatus
from batch_dashboard.services import dnc, webhooks, windows
from batch_dashboard.services.batches import RETRYABLE, caller_number

log = logging.getLogger(__name__)
recipients_t = Recipient.__table__
batches_t = Batch.__table__
conversations_t = Conversation.__table__

LIVE_BATCH = (BatchStatus.pending.value, BatchStatus.running.value)
# With pacing on, one claim takes at most this many seconds' worth of a number's dials.
PACING_SLICE_SECONDS = 0.25
CANDIDATE_BATCHES = 50


@dataclass(frozen=True)
class Claim:
    """One claimed recipient: one attempt, in flight until its outcome is recorded."""

    recipient_id: str
    attempt_id: str
    attempt_number: int
    batch_id: str
    workspace_id: str
    phone: str
    variables: dict[str, Any]
    from_number: str
    provider: str
    agent: AgentSnapshot
    ringing_timeout_ms: int

    def request(self) -> CallRequest:
        return CallRequest(
            attempt_id=self.attempt_id,
            attempt_number=self.attempt_number,
            workspace_id=self.workspace_id,
            batch_id=self.batch_id,
            recipient_id=self.recipient_id,
            to=self.phone,
            from_=self.from_number,
            agent=self.agent,
            variables=self.variables,
            ringing_timeout_ms=self.ringing_timeout_ms,
        )


@dataclass(frozen=True)
class Attempt:
    """An attempt found in the database (an expired lease), enough to settle it."""

    recipient_id: str
    attempt_id: str
    batch_id: str
    provider: str


def _is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _snapshot(agent: Agent) -> AgentSnapshot:
    return AgentSnapshot(
        id=agent.id,
        name=agent.name,
        prompt=agent.prompt,
        first_message=agent.first_message,
        evaluation_criteria=list(agent.evaluation_criteria or []),
        data_collection=list(agent.data_collection or []),
    )


# --- scheduling -----------------------------------------------------------------------------


def promote_due(session: Session, *, now: datetime) -> int:
    """`scheduled → pending` for every batch whose time has come."""
    result = session.execute(
        update(batches_t)
        .where(batches_t.c.status == BatchStatus.scheduled.value, batches_t.c.scheduled_at <= now)
        .values(status=BatchStatus.pending.value, version=batches_t.c.version + 1)
    )
    return result.rowcount or 0


def fail_batch(session: Session, *, batch_id: str, now: datetime, why: str) -> bool:
    """A batch that cannot be dialed at all: it and its undialed recipients end `failed`.

    Calls already in flight finish and are recorded as usual.
    """
    result = session.execute(
        update(batches_t)
        .where(
            batches_t.c.id == batch_id,
            batches_t.c.status.in_((BatchStatus.scheduled.value, *LIVE_BATCH)),
        )
        .values(
            status=BatchStatus.failed.value,
            finished_at=now,
            failed_count=batches_t.c.failed_count + batches_t.c.pending_count,
            pending_count=0,
            version=batches_t.c.version + 1,
        )
    )
    if result.rowcount != 1:
        return False
    session.execute(
        update(recipients_t)
        .where(
            recipients_t.c.batch_id == batch_id,
            recipients_t.c.status == RecipientStatus.pending.value,
        )
        .values(status=RecipientStatus.failed.value, failure_reason="batch_failed", ended_at=now)
    )
    log.warning("batch %s failed: %s", batch_id, why, extra={"batch_id": batch_id})
    return True


# --- claiming -------------------------------------------------------------------------------


def _caller_problem(agent: Agent | None, number: PhoneNumber | None) -> str | None:
    if agent is None or agent.deleted_at is not None:
        return "its agent was deleted"
    if number is None or number.deleted_at is not None:
        return "its caller number was deleted"
    if not number.outbound_enabled:
        return "its caller number is not enabled for outbound calls"
    return None


def _lock_workspace(session: Session, workspace_id: str) -> None:
    # Serialises the claims of one workspace across workers so the concurrency cap holds.
    # SQLite needs nothing: BEGIN IMMEDIATE already made this the only writer. FOR NO KEY
    # UPDATE, like the batch locks below: a plain FOR UPDATE would also block the foreign-key
    # checks of every conversation and delivery being inserted meanwhile, and deadlock them.
    if _is_postgres(session):
        session.execute(
            select(Workspace.__table__.c.id)
            .where(Workspace.__table__.c.id == workspace_id)
            .with_for_update(key_share=True)
        )


def _lock_batches(session: Session, batch_ids: Iterable[str]) -> None:
    # Batch rows in id order, the order recording outcomes updates them: the claim below
    # visits batches fewest-live-calls first, and locking as it goes would let a claim and a
    # recording each hold one batch the other waits for (PostgreSQL then kills one of them).
    if _is_postgres(session):
        session.execute(
            select(batches_t.c.id)
            .where(batches_t.c.id.in_(sorted(batch_ids)))
            .order_by(batches_t.c.id)
            .with_for_update(key_share=True)
        )


def _calls_in_progress(session: Session, workspace_id: str) -> int:
    return session.execute(
        select(func.coalesce(func.sum(batches_t.c.dialing_count), 0)).where(
            batches_t.c.workspace_id == workspace_id, batches_t.c.dialing_count > 0
        )
    ).scalar_one()


def _start_batch(session: Session, batch_id: str, now: datetime) -> bool:
    """Lock the batch row and mark it running (its first dial); False if it is no longer live.

    Taken before any recipient, so a cancel racing this claim waits for it and then finds
    the batch running (409), or wins first and this finds it cancelled.
    """
    row = session.execute(
        update(batches_t)
        .where(
            batches_t.c.id == batch_id,
            batches_t.c.status.in_(LIVE_BATCH),
            batches_t.c.paused_at.is_(None),
        )
        .values(
            status=BatchStatus.running.value,
            started_at=func.coalesce(batches_t.c.started_at, now),
            # Only the first dial changes what a reader sees; a batch waiting for retries or its
            # window passes here on every claim and must not look changed (caches, live pages).
            version=case(
                (batches_t.c.status != BatchStatus.running.value, batches_t.c.version + 1),
                else_=batches_t.c.version,
            ),
        )
        .returning(batches_t.c.id)
    ).first()
    return row is not None


def _claim_recipients(
    session: Session, batch_id: str, count: int, now: datetime, lease_until: datetime
) -> list[Any]:
    candidates = (
        select(recipients_t.c.id)
        .where(
            recipients_t.c.batch_id == batch_id,
            recipients_t.c.status == RecipientStatus.pending.value,
            or_(recipients_t.c.next_attempt_at.is_(None), recipients_t.c.next_attempt_at <= now),
        )
        .order_by(recipients_t.c.position)
        .limit(count)
    )
    if _is_postgres(session):
        candidates = candidates.with_for_update(skip_locked=True)
    claim_id = new_id("att")
    rows = list(
        session.execute(
            update(recipients_t)
            .where(recipients_t.c.id.in_(candidates.scalar_subquery()))
            .values(
                status=RecipientStatus.dialing.value,
                attempt_id=literal(claim_id) + "-" + cast(recipients_t.c.position, String),
                attempts=recipients_t.c.attempts + 1,
                lease_expires_at=lease_until,
                started_at=now,
            )
            .returning(
                recipients_t.c.id,
                recipients_t.c.attempt_id,
                recipients_t.c.attempts,
                recipients_t.c.phone,
                recipients_t.c.dynamic_vars,
                recipients_t.c.position,
            )
        )
    )
    # RETURNING has no order on PostgreSQL; calls go out in the order the recipients were given.
    return sorted(rows, key=lambda row: row.position)


def _screen_claimed(session: Session, batch: Any, rows: list[Any], now: datetime) -> list[Any]:
    """The claimed rows that may be dialed now. Checked at the moment of dialing: a number put
    on the do-not-call list mid-batch is never called, and nobody is called outside the window.
    The others are settled here in the claim's transaction, never placed."""
    blocked = dnc.listed(session, workspace_id=batch.workspace_id, numbers=[r.phone for r in rows])
    failed: dict[str, str] = {row.id: "do_not_call" for row in rows if row.phone in blocked}
    later: dict[str, datetime] = {}
    window = batch.calling_window
    if window:
        for row in rows:
            if row.id in failed:
                continue
            zones = windows.zones_for(row.phone, orjson.loads(row.dynamic_vars), window)
            if zones is None:
                if window.get("unknown_timezone", "fail") != "call":
                    failed[row.id] = "timezone_unknown"
            elif not windows.allowed(now, zones, window):
                opening = windows.next_open(now, zones, window)
                if opening is None:
                    failed[row.id] = "no_calling_window"
                else:
                    later[row.id] = opening
    if failed:
        session.execute(
            update(recipients_t)
            .where(recipients_t.c.id == bindparam("rid"))
            .values(
                status=RecipientStatus.failed.value,
                failure_reason=bindparam("reason"),
                attempt_id=None,
                attempts=recipients_t.c.attempts - 1,
                lease_expires_at=None,
                ended_at=now,
            ),
            [{"rid": rid, "reason": reason} for rid, reason in failed.items()],
        )
    if later:
        session.execute(
            update(recipients_t)
            .where(recipients_t.c.id == bindparam("rid"))
            .values(
                status=RecipientStatus.pending.value,
                next_attempt_at=bindparam("opening"),
                attempt_id=None,
                attempts=recipients_t.c.attempts - 1,
                lease_expires_at=None,
                started_at=None,
            ),
            [{"rid": rid, "opening": opening} for rid, opening in later.items()],
        )
        first = min(later.values())
        session.execute(
            update(batches_t)
            .where(
                batches_t.c.id == batch.id,
                or_(
                    batches_t.c.next_window_at.is_(None),
                    batches_t.c.next_window_at <= now,
                    batches_t.c.next_window_at > first,
                ),
            )
            .values(next_window_at=first)
        )
    dialed = [row for row in rows if row.id not in failed and row.id not in later]
    session.execute(
        update(batches_t)
        .where(batches_t.c.id == batch.id)
        .values(
            pending_count=batches_t.c.pending_count - len(rows) + len(later),
            dialing_count=batches_t.c.dialing_count + len(dialed),
            failed_count=batches_t.c.failed_count + len(failed),
            version=batches_t.c.version + 1,
        )
    )
    if failed:
        complete_finished(session, batch_ids=[batch.id], now=now)
    return dialed


def _pacing_allowance(number: PhoneNumber, calls_per_second: float, now: datetime) -> int:
    if calls_per_second <= 0:
        return 1 << 30
    if number.next_dial_at is not None and number.next_dial_at > now:
        return 0
    return max(1, math.floor(calls_per_second * PACING_SLICE_SECONDS))


def claim_calls(
    session: Session,
    *,
    limit: int,
    now: datetime,
    lease: timedelta,
    max_concurrent_calls: int,
    calls_per_second: float,
    default_provider: str,
) -> list[Claim]:
    """Claim up to `limit` recipients to dial now, within every workspace's cap and pacing."""
    if limit <= 0:
        return []
    candidates = session.execute(
        select(
            batches_t.c.id,
            batches_t.c.workspace_id,
            batches_t.c.agent_id,
            batches_t.c.phone_number_id,
            batches_t.c.ringing_timeout_ms,
            batches_t.c.max_concurrency,
            batches_t.c.dialing_count,
            batches_t.c.calling_window,
        )
        .where(
            batches_t.c.status.in_(LIVE_BATCH),
            batches_t.c.pending_count > 0,
            batches_t.c.paused_at.is_(None),
        )
        .order_by(batches_t.c.created_at, batches_t.c.id)
        .limit(CANDIDATE_BATCHES)
    ).all()
    by_workspace: dict[str, list[Any]] = defaultdict(list)
    for batch in candidates:
        by_workspace[batch.workspace_id].append(batch)
    claims: list[Claim] = []
    lease_until = now + lease
    for workspace_id, batches in by_workspace.items():
        if len(claims) >= limit:
            break
        _lock_workspace(session, workspace_id)
        _lock_batches(session, (batch.id for batch in batches))
        available = min(
            limit - len(claims), max_concurrent_calls - _calls_in_progress(session, workspace_id)
        )
        claims += _claim_in_workspace(
            session, batches, available, now, lease_until, calls_per_second, default_provider
        )
    return claims


def _load_callers(session: Session, batches: list[Any]) -> list[Agent | PhoneNumber]:
    """The batches' agents and numbers in two queries, into the session's identity map, so the
    per-batch lookups of the claim below cost no query each. The identity map holds objects
    weakly: the caller keeps the returned list for as long as the lookups run."""
    agents = list(
        session.execute(select(Agent).where(Agent.id.in_({b.agent_id for b in batches})))
        .scalars()
        .all()
    )
    number_ids = {b.phone_number_id for b in batches} | {a.phone_number_id for a in agents}
    number_ids.discard(None)
    numbers = (
        session.execute(select(PhoneNumber).where(PhoneNumber.id.in_(number_ids))).scalars().all()
        if number_ids
        else []
    )
    return [*agents, *numbers]


def _claim_in_workspace(
    session: Session,
    batches: list[Any],
    available: int,
    now: datetime,
    lease_until: datetime,
    calls_per_second: float,
    default_provider: str,
) -> list[Claim]:
    claims: list[Claim] = []
    # Fair shares: every live batch of the workspace gets a slice of the free capacity, the
    # batches with the fewest calls live first, so one big batch cannot starve the others even
    # when it already holds every slot and they free up one at a time.
    batches = sorted(batches, key=lambda batch: batch.dialing_count)
    callers = _load_callers(session, batches)  # noqa: F841 - kept alive for the loop
    for position, batch in enumerate(batches):
        if available <= 0:
            break
        share = math.ceil(available / (len(batches) - position))
        agent = session.get(Agent, batch.agent_id)
        number = caller_number(session, batch=batch)
        problem = _caller_problem(agent, number)
        if problem is not None:
            fail_batch(session, batch_id=batch.id, now=now, why=problem)
            continue
        assert agent is not None and number is not None
        count = min(share, _pacing_allowance(number, calls_per_second, now))
        if batch.max_concurrency is not None:
            count = min(count, batch.max_concurrency - batch.dialing_count)
        if count <= 0 or not _start_batch(session, batch.id, now):
            continue
        rows = _claim_recipients(session, batch.id, count, now, lease_until)
        if not rows:
            continue
        rows = _screen_claimed(session, batch, rows, now)
        if not rows:
            continue
        if calls_per_second > 0:
            number.next_dial_at = now + timedelta(seconds=len(rows) / calls_per_second)
            session.add(number)
            session.flush()
        available -= len(rows)
        snapshot = _snapshot(agent)
        provider = number.provider or default_provider
        claims += [
            Claim(
                recipient_id=row.id,
                attempt_id=row.attempt_id,
                attempt_number=row.attempts,
                batch_id=batch.id,
                workspace_id=batch.workspace_id,
                phone=row.phone,
                variables=orjson.loads(row.dynamic_vars),
                from_number=number.phone_number,
                provider=provider,
                agent=snapshot,
                ringing_timeout_ms=batch.ringing_timeout_ms,
            )
            for row in rows
        ]
    return claims


# --- outcomes -------------------------------------------------------------------------------


def _recipient_outcome(result: CallResult) -> tuple[str, str | None]:
    if result.status == CallStatus.completed:
        return RecipientStatus.completed.value, None
    return RecipientStatus.failed.value, result.failure_reason or result.status.value


def record_outcomes(
    session: Session, *, outcomes: Sequence[tuple[str, CallResult]], now: datetime
) -> list[str]:
    """Store the end of each `(attempt_id, result)` whose attempt is still in flight.

    Returns the attempt ids recorded now; an attempt settled before (by another worker, a
    provider event, or recovery) is skipped, so each call is recorded exactly once.
    """
    results = {attempt_id: result for attempt_id, result in outcomes if result.terminal}
    if not results:
        return []
    live = (
        select(
            recipients_t.c.id,
            recipients_t.c.attempt_id,
            recipients_t.c.batch_id,
            recipients_t.c.started_at,
            recipients_t.c.phone,
            recipients_t.c.dynamic_vars,
            recipients_t.c.attempts,
        )
        .where(
            recipients_t.c.attempt_id.in_(list(results)),
            recipients_t.c.status == RecipientStatus.dialing.value,
        )
        .order_by(recipients_t.c.id)
    )
    if _is_postgres(session):
        live = live.with_for_update()
    rows = session.execute(live).all()
    if not rows:
        return []
    batch_ids = {row.batch_id for row in rows}
    agents_t = Agent.__table__
    batch_info = {
        row.id: row
        for row in session.execute(
            select(
                batches_t.c.id,
                batches_t.c.workspace_id,
                batches_t.c.agent_id,
                agents_t.c.webhook_url,
                agents_t.c.webhook_disabled_reason,
                agents_t.c.opt_out_field,
                batches_t.c.retry_policy,
            )
            .join(agents_t, agents_t.c.id == batches_t.c.agent_id)
            .where(batches_t.c.id.in_(batch_ids))
        )
    }
    updates: list[dict[str, Any]] = []
    conversations: list[dict[str, Any]] = []
    events: list[tuple[dict[str, Any], dict[str, Any]]] = []
    tally: dict[str, Counter[str]] = defaultdict(Counter)
    opted_out: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        result = results[row.attempt_id]
        status, reason = _recipient_outcome(result)
        info = batch_info[row.batch_id]
        ended = result.ended_at or now
        retry_at = _retry_at(info.retry_policy, row.attempts, reason, ended)
        if retry_at is not None:
            # Not the end of this recipient: back in line for another attempt, no event yet.
            updates.append(
                {
                    "rid": row.id,
                    "new_status": RecipientStatus.pending.value,
                    "reason": reason,
                    "ended": ended,
                    "duration": None,
                    "conversation": None,
                    "next_at": retry_at,
                    "attempt": None,
                }
            )
            tally[row.batch_id]["retry"] += 1
            continue
        conversation = None
        if result.connected:
            conversation = {
                "id": new_id("conv"),
                "workspace_id": info.workspace_id,
                "batch_id": row.batch_id,
                "recipient_id": row.id,
                "agent_id": info.agent_id,
                "transcript": result.transcript or [],
                "evaluations": result.evaluations or {},
                "data_collection": result.data_collection or {},
                "warnings": result.warnings or [],
                "started_at": result.started_at or row.started_at or ended,
                "ended_at": ended,
                "duration_seconds": result.duration_seconds or 0.0,
            }
            conversations.append(conversation)
        duration = result.duration_seconds if result.connected else None
        updates.append(
            {
                "rid": row.id,
                "new_status": status,
                "reason": reason,
                "ended": ended,
                "duration": duration,
                "conversation": conversation["id"] if conversation else None,
                "next_at": None,
                "attempt": row.attempt_id,
            }
        )
        tally[row.batch_id][status] += 1
        if (
            conversation
            and info.opt_out_field
            and _said_yes(conversation["data_collection"].get(info.opt_out_field))
        ):
            opted_out[info.workspace_id].append(row.phone)
        if info.webhook_url and not info.webhook_disabled_reason:
            recipient = {
                "id": row.id,
                "workspace_id": info.workspace_id,
                "agent_id": info.agent_id,
                "batch_id": row.batch_id,
                "phone": row.phone,
                "dynamic_vars": row.dynamic_vars,
                "started_at": row.started_at,
                "ended_at": ended,
                "duration_seconds": duration,
                "failure_reason": reason,
                "webhook_url": info.webhook_url,
            }
            event_type = webhooks.CONVERSATION_COMPLETED if conversation else webhooks.CALL_FAILED
            events.append(
                (
                    recipient,
                    webhooks.event_payload(
                        event_type=event_type,
                        now=now,
                        recipient=recipient,
                        conversation=conversation,
                    ),
                )
            )
    session.execute(
        update(recipients_t)
        .where(recipients_t.c.id == bindparam("rid"))
        .values(
            status=bindparam("new_status"),
            failure_reason=bindparam("reason"),
            ended_at=bindparam("ended"),
            duration_seconds=bindparam("duration"),
            conversation_id=bindparam("conversation"),
            next_attempt_at=bindparam("next_at"),
            attempt_id=bindparam("attempt"),
            lease_expires_at=None,
        ),
        updates,
    )
    for workspace_id, numbers in opted_out.items():
        dnc.add_numbers(
            session,
            workspace_id=workspace_id,
            numbers=numbers,
            source="opt_out",
            reason="Opted out during a call",
            now=now,
        )
    if conversations:
        session.execute(insert(conversations_t), conversations)
    # The outbox: each ended call's event commits with the call's end, or not at all.
    webhooks.enqueue(session, events=events, now=now)
    _count_ended(session, tally, now)
    per_workspace: dict[str, Counter[str]] = defaultdict(Counter)
    for batch_id, counts in tally.items():
        per_workspace[batch_info[batch_id].workspace_id].update(counts)
    count_minute(session, per_workspace=per_workspace, now=now)
    return [row.attempt_id for row in rows]


def _retry_at(
    policy: dict[str, Any] | None, attempts: int, reason: str | None, ended: datetime
) -> datetime | None:
    """When a failed attempt is tried again under the batch's retry policy, or None."""
    # The policy was filled in and checked by batches._parse_retry_policy.
    if not policy or reason is None or attempts >= policy["max_attempts"]:
        return None
    if RETRYABLE.get(reason) not in policy["retry_on"]:
        return None
    return ended + timedelta(seconds=policy["delay_seconds"])


def _said_yes(item: object) -> bool:
    value = item.get("value") if isinstance(item, dict) else None
    return value is True or (isinstance(value, str) and value.strip().lower() in ("yes", "true"))


def _count_ended(session: Session, tally: dict[str, Counter[str]], now: datetime) -> None:
    # Batch rows in id order: two workers recording for the same batches never deadlock.
    for batch_id in sorted(tally):
        counts = tally[batch_id]
        ended = sum(counts.values())
        session.execute(
            update(batches_t)
            .where(batches_t.c.id == batch_id)
            .values(
                dialing_count=batches_t.c.dialing_count - ended,
                completed_count=batches_t.c.completed_count + counts["completed"],
                failed_count=batches_t.c.failed_count + counts["failed"],
                pending_count=batches_t.c.pending_count + counts["retry"],
                version=batches_t.c.version + 1,
            )
        )
    complete_finished(session, batch_ids=sorted(tally), now=now)


def count_minute(
    session: Session, *, per_workspace: dict[str, Counter[str]], now: datetime
) -> None:
    """Add ended calls to their workspace's minute (the wall screen's counters)."""
    minute = now.replace(second=0, microsecond=0)
    table = CallMinute.__table__
    dialect_insert = postgresql_insert if _is_postgres(session) else sqlite_insert
    for workspace_id in sorted(per_workspace):
        counts = per_workspace[workspace_id]
        values = {
            "placed": sum(counts.values()),
            "connected": counts["completed"],
            "failed": counts["failed"],
        }
        statement = dialect_insert(table).values(workspace_id=workspace_id, minute=minute, **values)
        session.execute(
            statement.on_conflict_do_update(
                index_elements=["workspace_id", "minute"],
                set_={name: table.c[name] + statement.excluded[name] for name in values},
            )
        )


def complete_finished(session: Session, *, batch_ids: Iterable[str], now: datetime) -> int:
    """`running → completed` for batches whose every recipient has ended."""
    result = session.execute(
        update(batches_t)
        .where(
            batches_t.c.id.in_(list(batch_ids)),
            batches_t.c.status == BatchStatus.running.value,
            batches_t.c.pending_count == 0,
            batches_t.c.dialing_count == 0,
        )
        .values(
            status=BatchStatus.completed.value, finished_at=now, version=batches_t.c.version + 1
        )
    )
    return result.rowcount or 0


# --- leases ---------------------------------------------------------------------------------


def renew_leases(session: Session, *, attempt_ids: Sequence[str], until: datetime) -> int:
    renewed = 0
    for start in range(0, len(attempt_ids), 500):
        chunk = list(attempt_ids[start : start + 500])
        rows = (
            select(recipients_t.c.id)
            .where(
                recipients_t.c.attempt_id.in_(chunk),
                recipients_t.c.status == RecipientStatus.dialing.value,
            )
            .order_by(recipients_t.c.id)
        )
        if _is_postgres(session):
            # Row locks in id order, as record_outcomes takes them for the same attempts.
            rows = rows.with_for_update()
        result = session.execute(
            update(recipients_t)
            .where(
                recipients_t.c.id.in_(rows.scalar_subquery()),
                recipients_t.c.status == RecipientStatus.dialing.value,
            )
            .values(lease_expires_at=until)
        )
        renewed += result.rowcount or 0
    return renewed


def expire_leases(session: Session, *, attempt_ids: Sequence[str], now: datetime) -> int:
    """Hand live attempts over to whichever worker looks next (a worker shutting down)."""
    return renew_leases(session, attempt_ids=attempt_ids, until=now)


def expired_attempts(
    session: Session, *, now: datetime, limit: int, default_provider: str
) -> list[Attempt]:
    rows = session.execute(
        select(
            recipients_t.c.id,
            recipients_t.c.attempt_id,
            recipients_t.c.batch_id,
            PhoneNumber.__table__.c.provider,
        )
        .select_from(recipients_t)
        .join(batches_t, batches_t.c.id == recipients_t.c.batch_id)
        .join(Agent.__table__, Agent.__table__.c.id == batches_t.c.agent_id)
        .outerjoin(
            PhoneNumber.__table__,
            PhoneNumber.__table__.c.id
            == func.coalesce(batches_t.c.phone_number_id, Agent.__table__.c.phone_number_id),
        )
        .where(
            recipients_t.c.status == RecipientStatus.dialing.value,
            recipients_t.c.lease_expires_at < now,
        )
        .order_by(recipients_t.c.lease_expires_at)
        .limit(limit)
    ).all()
    return [
        Attempt(
            recipient_id=row.id,
            attempt_id=row.attempt_id,
            batch_id=row.batch_id,
            provider=row.provider or default_provider,
        )
        for row in rows
    ]


def adopt(session: Session, *, attempt_id: str, now: datetime, until: datetime) -> bool:
    """Take over a live call whose worker died (only one worker can win)."""
    result = session.execute(
        update(recipients_t)
        .where(
            recipients_t.c.attempt_id == attempt_id,
            recipients_t.c.status == RecipientStatus.dialing.value,
            recipients_t.c.lease_expires_at < now,
        )
        .values(lease_expires_at=until)
    )
    return result.rowcount == 1


def release_unplaced(session: Session, *, attempt_id: str, now: datetime) -> bool:
    """The provider never received this attempt: nothing was dialed, so it may be claimed again."""
    row = session.execute(
        update(recipients_t)
        .where(
            recipients_t.c.attempt_id == attempt_id,
            recipients_t.c.status == RecipientStatus.dialing.value,
        )
        .values(
            status=RecipientStatus.pending.value,
            attempt_id=None,
            attempts=recipients_t.c.attempts - 1,
            lease_expires_at=None,
            started_at=None,
        )
        .returning(recipients_t.c.batch_id)
    ).first()
    if row is None:
        return False
    session.execute(
        update(batches_t)
        .where(batches_t.c.id == row.batch_id)
        .values(
            dialing_count=batches_t.c.dialing_count - 1,
            pending_count=batches_t.c.pending_count + 1,
            version=batches_t.c.version + 1,
        )
    )
    # A batch that failed meanwhile takes no new dials: its undialed recipient fails with it.
    status = session.execute(
        select(batches_t.c.status).where(batches_t.c.id == row.batch_id)
    ).scalar_one()
    if status == BatchStatus.failed.value:
        session.execute(
            update(batches_t)
            .where(batches_t.c.id == row.batch_id)
            .values(
                pending_count=batches_t.c.pending_count - 1,
                failed_count=batches_t.c.failed_count + 1,
            )
        )
        session.execute(
            update(recipients_t)
            .where(
                recipients_t.c.batch_id == row.batch_id,
                recipients_t.c.status == RecipientStatus.pending.value,
            )
            .values(
                status=RecipientStatus.failed.value, failure_reason="batch_failed", ended_at=now
            )
        )
    return True
