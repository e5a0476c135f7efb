"""Claims, outcomes and leases: the dialer's side of the domain core.

A recipient moves `pending → dialing` only in a claim that also takes its lease and a fresh
attempt id, and every later change is conditional on that attempt id still being the one in
flight, so any number of workers (and the API's cancel) can run at once. The moves themselves
and the batch counters they change are `services.transitions`; this module decides which moves
to make (whom to claim, what an outcome means, when to retry) and writes what goes with them
(conversations, webhook events, opt-outs, the wall's per-minute counters).
"""

from __future__ import annotations

import logging
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import func, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session

from batch_dashboard.db import one_of
from batch_dashboard.ids import new_id
from batch_dashboard.models import (
    Agent,
    Batch,
    CallMinute,
    Connection,
    Conversation,
    PhoneNumber,
    Recipient,
    RecipientStatus,
    Workspace,
)
from batch_dashboard.providers.base import AgentSnapshot, CallRequest, CallResult, CallStatus
from batch_dashboard.services import breaker, dnc, outcomes, transitions, webhooks, windows
from batch_dashboard.services.batches import caller_number, caller_problem
from batch_dashboard.services.outcomes import Outcome
from batch_dashboard.services.transitions import Ending, Screened

log = logging.getLogger(__name__)
recipients_t = Recipient.__table__
batches_t = Batch.__table__
conversations_t = Conversation.__table__

LIVE_BATCH = transitions.LIVE_BATCH
# With pacing on, one claim takes at most this many seconds' worth of a number's dials.
PACING_SLICE_SECONDS = 0.25
CANDIDATE_BATCHES = 50
# PostgreSQL's `application_name` of a dialer's connections: the database's own list of who is
# connected is the list of workers sharing each workspace's cap (a dead worker's connections
# close with it, so it drops out without a heartbeat or a table).
DIALER_NAME_PREFIX = "batch-dialer "
_CLAIMERS = text(
    "SELECT set_config('application_name', :me, false),"
    " (SELECT count(DISTINCT application_name) FROM pg_stat_activity"
    "  WHERE datname = current_database() AND application_name LIKE :prefix"
    "  AND application_name <> :me)"
)


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
    # The registry's key of the adapter: the number's connection id, else a provider name.
    provider: str
    agent: AgentSnapshot
    ringing_timeout_ms: int
    connection_id: str | None = None
    from_external_id: str | None = None
    external_agent_id: str | None = None
    stream_url: str | None = None
    voicemail: dict[str, Any] | None = None

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
            connection_id=self.connection_id,
            from_external_id=self.from_external_id,
            external_agent_id=self.external_agent_id,
            stream_url=self.stream_url,
            voicemail=self.voicemail,
        )


@dataclass(frozen=True)
class Attempt:
    """An attempt found in the database (an expired lease), enough to settle it."""

    recipient_id: str
    attempt_id: str
    batch_id: str
    provider: str
    call_id: str | None = None


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


# --- batches that cannot be dialed ----------------------------------------------------------


def fail_batch(session: Session, *, batch_id: str, now: datetime, why: str) -> bool:
    """A batch that cannot be dialed at all (see `transitions.fail_batch`), logged with why."""
    if not transitions.fail_batch(session, batch_id=batch_id, now=now):
        return False
    log.warning("batch %s failed: %s", batch_id, why, extra={"batch_id": batch_id})
    return True


# --- claiming -------------------------------------------------------------------------------


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


def _calls_in_progress(session: Session, workspace_id: str) -> dict[str, int]:
    """The calls in progress per batch of the workspace. Read once the workspace is locked: the
    candidates were read before waiting for the lock, and the claim that held it meanwhile may
    have added calls to the same batches (their own `max_concurrency` counts them too)."""
    return {
        batch_id: count
        for batch_id, count in session.execute(
            select(batches_t.c.id, batches_t.c.dialing_count).where(
                batches_t.c.workspace_id == workspace_id, batches_t.c.dialing_count > 0
            )
        )
    }


def _screen(session: Session, batch: Any, rows: list[Any], now: datetime) -> Screened:
    """Which claimed rows may not be dialed now. Checked at the moment of dialing: a number put
    on the do-not-call list mid-batch is never called, and nobody is called outside the window.
    The claim settles the others in its transaction, never placed."""
    blocked = dnc.listed(session, workspace_id=batch.workspace_id, numbers=[r.phone for r in rows])
    failed = {row.id: Outcome.do_not_call for row in rows if row.phone in blocked}
    later: dict[str, datetime] = {}
    window = batch.calling_window
    if window:
        for row in rows:
            if row.id in failed:
                continue
            zones = windows.zones_for(row.phone, orjson.loads(row.dynamic_vars), window)
            if zones is None:
                if window.get("unknown_timezone", "fail") != "call":
                    failed[row.id] = Outcome.timezone_unknown
            elif not windows.allowed(now, zones, window):
                opening = windows.next_open(now, zones, window)
                if opening is None:
                    failed[row.id] = Outcome.no_calling_window
                else:
                    later[row.id] = opening
    return Screened(failed=failed, later=later)


def _pacing_allowance(next_at: datetime | None, calls_per_second: float, now: datetime) -> int:
    """How many calls a caller number or an account may start now (its rate across every
    worker: the claims of one workspace are serialised, and each account is one workspace's)."""
    if calls_per_second <= 0:
        return 1 << 30
    if next_at is not None and next_at > now:
        return 0
    return max(1, math.floor(calls_per_second * PACING_SLICE_SECONDS))


def _paced_until(now: datetime, calls: int, calls_per_second: float) -> datetime:
    return now + timedelta(seconds=calls / calls_per_second)


def claimers(session: Session, worker_id: str | None) -> int:
    """How many dialers share each workspace's cap, this one included, and mark this session's
    connection as this dialer's. SQLite has one writer at a time, and a caller that is not a
    dialer (a test, the wall's bench) claims alone."""
    if worker_id is None or not _is_postgres(session):
        return 1
    # PostgreSQL keeps 63 bytes of a name; the pid at the end of a worker id is what differs.
    me = DIALER_NAME_PREFIX + worker_id[-(63 - len(DIALER_NAME_PREFIX)) :]
    others = session.execute(_CLAIMERS, {"me": me, "prefix": DIALER_NAME_PREFIX + "%"}).one()[1]
    return 1 + others


def fair_share(max_concurrent_calls: int, dialers: int) -> int:
    """The calls one dialer may hold in a workspace: the cap split evenly, rounded up so that a
    cap smaller than the number of dialers still lets one call out (the cap itself is checked
    separately and always wins)."""
    return math.ceil(max_concurrent_calls / max(1, dialers))


def claim_calls(
    session: Session,
    *,
    limit: int,
    now: datetime,
    lease: timedelta,
    max_concurrent_calls: int,
    calls_per_second: float,
    default_provider: str,
    worker_id: str | None = None,
    held: Mapping[str, int] | None = None,
) -> list[Claim]:
    """Claim up to `limit` recipients to dial now, within every workspace's cap and pacing.

    With several dialers (`worker_id` names this one, `held` is its live calls per workspace)
    each takes at most its fair share of a workspace's cap: a dialer that took the whole cap
    would make the others wait for its calls to end, so they would dial in turns instead of
    together, and one whose calls last longer would end up holding every slot."""
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
            batches_t.c.calling_window,
            batches_t.c.voicemail,
        )
        .where(
            batches_t.c.status.in_(LIVE_BATCH),
            batches_t.c.pending_count > 0,
            batches_t.c.paused_at.is_(None),
        )
        .order_by(batches_t.c.created_at, batches_t.c.id)
        .limit(CANDIDATE_BATCHES)
    ).all()
    if not candidates:
        return []
    held = held or {}
    share = fair_share(max_concurrent_calls, claimers(session, worker_id))
    by_workspace: dict[str, list[Any]] = defaultdict(list)
    for batch in candidates:
        by_workspace[batch.workspace_id].append(batch)
    claims: list[Claim] = []
    lease_until = now + lease
    for workspace_id, batches in by_workspace.items():
        if len(claims) >= limit:
            break
        own_room = share - held.get(workspace_id, 0)
        if own_room <= 0:  # nothing to take here: don't queue for the workspace's lock
            continue
        # Loaded before the lock: while a claim holds it every other dialer of the workspace
        # waits, so it holds it for as few statements (and as little Python) as it can.
        callers = _load_callers(session, batches)
        _lock_workspace(session, workspace_id)
        if len(batches) > 1:  # one batch: start_batch below is its first lock, no order needed
            _lock_batches(session, (batch.id for batch in batches))
        if _paced(callers, calls_per_second):
            # What the pacing reads must be what the previous claim wrote: read again, locked.
            callers = _load_callers(session, batches, fresh=True)
        in_progress = _calls_in_progress(session, workspace_id)
        available = min(
            limit - len(claims), own_room, max_concurrent_calls - sum(in_progress.values())
        )
        claims += _claim_in_workspace(
            session,
            batches,
            in_progress,
            available,
            now,
            lease_until,
            calls_per_second,
            default_provider,
        )
    return claims


def _paced(callers: list[Agent | PhoneNumber | Connection], calls_per_second: float) -> bool:
    return calls_per_second > 0 or any(
        isinstance(caller, Connection) and caller.calls_per_second > 0 for caller in callers
    )


def _load_callers(
    session: Session, batches: list[Any], *, fresh: bool = False
) -> list[Agent | PhoneNumber | Connection]:
    """The batches' agents, numbers and accounts in three queries, into the session's identity map, so the
    per-batch lookups of the claim below cost no query each (`fresh`: overwriting what the map
    already holds). The identity map holds objects weakly: the caller keeps the returned list
    for as long as the lookups run."""
    options = {"populate_existing": True} if fresh else {}
    agents = list(
        session.execute(
            select(Agent).where(Agent.id.in_({b.agent_id for b in batches})),
            execution_options=options,
        )
        .scalars()
        .all()
    )
    number_ids = {b.phone_number_id for b in batches} | {a.phone_number_id for a in agents}
    number_ids.discard(None)
    numbers = (
        session.execute(
            select(PhoneNumber).where(PhoneNumber.id.in_(number_ids)), execution_options=options
        )
        .scalars()
        .all()
        if number_ids
        else []
    )
    connection_ids = {n.connection_id for n in numbers} - {None}
    accounts = (
        session.execute(
            select(Connection).where(Connection.id.in_(connection_ids)), execution_options=options
        )
        .scalars()
        .all()
        if connection_ids
        else []
    )
    return [*agents, *numbers, *accounts]


def _claim_in_workspace(
    session: Session,
    batches: list[Any],
    in_progress: Mapping[str, int],
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
    batches = sorted(batches, key=lambda batch: in_progress.get(batch.id, 0))
    for position, batch in enumerate(batches):
        if available <= 0:
            break
        share = math.ceil(available / (len(batches) - position))
        agent = session.get(Agent, batch.agent_id)
        number = caller_number(session, batch=batch)
        problem = caller_problem(agent, number)
        if problem is not None:
            fail_batch(session, batch_id=batch.id, now=now, why=problem.value)
            continue
        assert agent is not None and number is not None
        account = session.get(Connection, number.connection_id) if number.connection_id else None
        count = min(share, _pacing_allowance(number.next_dial_at, calls_per_second, now))
        if account is not None:
            count = min(
                count, _pacing_allowance(account.next_call_at, account.calls_per_second, now)
            )
        if batch.max_concurrency is not None:
            count = min(count, batch.max_concurrency - in_progress.get(batch.id, 0))
        if count <= 0 or not transitions.start_batch(session, batch_id=batch.id, now=now):
            continue
        rows = transitions.claim_recipients(
            session,
            batch_id=batch.id,
            count=count,
            now=now,
            lease_until=lease_until,
            screen=lambda claimed, batch=batch: _screen(session, batch, claimed, now),
        )
        if not rows:
            continue
        paced = False
        if calls_per_second > 0:
            number.next_dial_at = _paced_until(now, len(rows), calls_per_second)
            paced = True
        if account is not None and account.calls_per_second > 0:
            account.next_call_at = _paced_until(now, len(rows), account.calls_per_second)
            paced = True
        if paced:  # written before the next batch's claim reads them
            session.flush()
        available -= len(rows)
        snapshot = _snapshot(agent)
        provider = number.connection_id or number.provider or default_provider
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
                connection_id=number.connection_id,
                from_external_id=number.external_id,
                external_agent_id=agent.external_agent_id,
                stream_url=agent.stream_url,
                voicemail=batch.voicemail,
            )
            for row in rows
        ]
    return claims


# --- outcomes -------------------------------------------------------------------------------


# What a provider's generic status means when it names no reason of the vocabulary.
_STATUS_OUTCOMES = {
    CallStatus.completed: Outcome.completed,
    CallStatus.no_answer: Outcome.no_answer,
    CallStatus.busy: Outcome.busy,
    CallStatus.voicemail: Outcome.voicemail,
    CallStatus.failed: Outcome.call_failed,
}


def outcome_of(result: CallResult) -> Outcome:
    """The vocabulary's word for a provider's result: its own reason when it is one of ours."""
    if result.status == CallStatus.completed:
        return Outcome.completed
    return outcomes.parse(result.failure_reason) or _STATUS_OUTCOMES[result.status]


@dataclass(frozen=True)
class _Live:
    """An attempt still in flight, read (and locked) before its end is written."""

    recipient_id: str
    attempt_id: str
    batch_id: str
    started_at: datetime | None
    phone: str
    dynamic_vars: str
    attempts: int


@dataclass(frozen=True)
class _BatchInfo:
    workspace_id: str
    agent_id: str
    webhook_url: str | None
    opt_out_field: str | None
    retry_policy: dict[str, Any] | None
    # Stopped, failed or otherwise no longer dialing: nobody goes back in line for a retry.
    closed: bool


@dataclass(frozen=True)
class Decision:
    """Everything the end of one attempt writes."""

    ending: Ending
    conversation: dict[str, Any] | None = None
    webhook: tuple[webhooks.EndedCall, str, dict[str, Any]] | None = None
    opted_out: str | None = None  # the phone number to add to the do-not-call list


def decide(live: _Live, info: _BatchInfo, result: CallResult, now: datetime) -> Decision:
    """What an attempt's result means for its recipient: no database, no clock but `now`."""
    outcome = outcome_of(result)
    reason = None if outcome is Outcome.completed else outcome
    ended = result.ended_at or now
    retry_at = None if info.closed else _retry_at(info.retry_policy, live.attempts, reason, ended)
    if retry_at is not None:
        # Not the end of this recipient: back in line for another attempt, no event yet.
        return Decision(
            Ending(
                recipient_id=live.recipient_id,
                batch_id=live.batch_id,
                attempt_id=live.attempt_id,
                status=RecipientStatus.pending,
                reason=reason,
                ended_at=ended,
                retry_at=retry_at,
                message=result.message,
            )
        )
    conversation = None
    if result.connected:
        conversation = {
            "id": new_id("conv"),
            "workspace_id": info.workspace_id,
            "batch_id": live.batch_id,
            "recipient_id": live.recipient_id,
            "agent_id": info.agent_id,
            "transcript": result.transcript or [],
            "evaluations": result.evaluations or {},
            "data_collection": result.data_collection or {},
            "warnings": result.warnings or [],
            "started_at": result.started_at or live.started_at or ended,
            "ended_at": ended,
            "duration_seconds": result.duration_seconds or 0.0,
        }
    duration = result.duration_seconds if result.connected else None
    ending = Ending(
        recipient_id=live.recipient_id,
        batch_id=live.batch_id,
        attempt_id=live.attempt_id,
        status=RecipientStatus.completed if result.connected else RecipientStatus.failed,
        reason=reason,
        ended_at=ended,
        duration_seconds=duration,
        conversation_id=conversation["id"] if conversation else None,
        message=None if result.connected else result.message,
    )
    webhook = None
    if info.webhook_url:
        call = webhooks.EndedCall(
            recipient_id=live.recipient_id,
            workspace_id=info.workspace_id,
            agent_id=info.agent_id,
            batch_id=live.batch_id,
            phone=live.phone,
            dynamic_vars=live.dynamic_vars,
            started_at=live.started_at,
            ended_at=ended,
            duration_seconds=duration,
            failure_reason=reason.value if reason else None,
        )
        payload = webhooks.event_payload(now=now, call=call, conversation=conversation)
        webhook = (call, info.webhook_url, payload)
    opted_out = (
        live.phone
        if conversation
        and info.opt_out_field
        and said_yes(conversation["data_collection"].get(info.opt_out_field))
        else None
    )
    return Decision(ending, conversation, webhook, opted_out)


def record_outcomes(
    session: Session,
    *,
    outcomes: Sequence[tuple[str, CallResult]],
    now: datetime,
    webhook_delay: timedelta | None = None,
) -> list[str]:
    """Store the end of each `(attempt_id, result)` whose attempt is still in flight.

    Returns the attempt ids recorded now; an attempt settled before (by another worker, a
    provider event, or recovery) is skipped, so each call is recorded exactly once.
    """
    results = {attempt_id: result for attempt_id, result in outcomes if result.terminal}
    live = _in_flight(session, list(results))
    if not live:
        return []
    info = _batch_info(session, {row.batch_id for row in live})
    decisions = [decide(row, info[row.batch_id], results[row.attempt_id], now) for row in live]
    workspaces = {batch_id: i.workspace_id for batch_id, i in info.items()}
    _write(session, decisions, workspaces, now, webhook_delay)
    return [row.attempt_id for row in live]


def _in_flight(session: Session, attempt_ids: list[str]) -> list[_Live]:
    if not attempt_ids:
        return []
    query = (
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
            one_of(session, recipients_t.c.attempt_id, attempt_ids),
            recipients_t.c.status == RecipientStatus.dialing.value,
        )
        .order_by(recipients_t.c.id)
    )
    if _is_postgres(session):
        query = query.with_for_update()
    return [_Live(*row) for row in session.execute(query)]


def _batch_info(session: Session, batch_ids: set[str]) -> dict[str, _BatchInfo]:
    agents_t = Agent.__table__
    rows = session.execute(
        select(
            batches_t.c.id,
            batches_t.c.workspace_id,
            batches_t.c.agent_id,
            agents_t.c.webhook_url,
            agents_t.c.webhook_disabled_reason,
            agents_t.c.opt_out_field,
            batches_t.c.retry_policy,
            batches_t.c.stopped_at,
            batches_t.c.status,
        )
        .join(agents_t, agents_t.c.id == batches_t.c.agent_id)
        .where(batches_t.c.id.in_(batch_ids))
    )
    return {
        row.id: _BatchInfo(
            workspace_id=row.workspace_id,
            agent_id=row.agent_id,
            webhook_url=None if row.webhook_disabled_reason else row.webhook_url,
            opt_out_field=row.opt_out_field,
            retry_policy=row.retry_policy,
            closed=row.stopped_at is not None or row.status not in LIVE_BATCH,
        )
        for row in rows
    }


def _write(
    session: Session,
    decisions: list[Decision],
    workspaces: dict[str, str],
    now: datetime,
    webhook_delay: timedelta | None,
) -> None:
    opted_out: dict[str, list[str]] = defaultdict(list)
    for decision in decisions:
        if decision.opted_out:
            opted_out[workspaces[decision.ending.batch_id]].append(decision.opted_out)
    for workspace_id, numbers in opted_out.items():
        dnc.add_numbers(
            session,
            workspace_id=workspace_id,
            numbers=numbers,
            source="opt_out",
            reason="Opted out during a call",
            now=now,
        )
    if conversations := [d.conversation for d in decisions if d.conversation]:
        session.execute(insert(conversations_t), conversations)
    # The outbox: each ended call's event commits with the call's end, or not at all.
    webhooks.enqueue(
        session,
        events=[d.webhook for d in decisions if d.webhook],
        now=now,
        delay=webhook_delay,
    )
    transitions.end_attempts(
        session, endings=[d.ending for d in decisions], now=now, observe=breaker.observe
    )
    per_workspace: dict[str, Counter[str]] = defaultdict(Counter)
    for decision in decisions:
        per_workspace[workspaces[decision.ending.batch_id]][decision.ending.status.value] += 1
    count_minute(session, per_workspace=per_workspace, now=now)


def _retry_at(
    policy: dict[str, Any] | None, attempts: int, reason: Outcome | None, ended: datetime
) -> datetime | None:
    """When a failed attempt is tried again under the batch's retry policy, or None."""
    # The policy was filled in and checked by batches.rules.
    if not policy or reason is None or attempts >= policy["max_attempts"]:
        return None
    if reason.retry_on not in policy["retry_on"]:
        return None
    return ended + timedelta(seconds=policy["delay_seconds"])


def said_yes(item: object) -> bool:
    """A collected value meaning yes (the opt-out field)."""
    value = item.get("value") if isinstance(item, dict) else None
    return value is True or (isinstance(value, str) and value.strip().lower() in ("yes", "true"))


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


# --- leases ---------------------------------------------------------------------------------


def renew_leases(session: Session, *, attempt_ids: Sequence[str], until: datetime) -> int:
    renewed = 0
    for start in range(0, len(attempt_ids), 500):
        chunk = list(attempt_ids[start : start + 500])
        rows = (
            select(recipients_t.c.id)
            .where(
                one_of(session, recipients_t.c.attempt_id, chunk),
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


def attempts_to_hang_up(session: Session, *, attempt_ids: Sequence[str]) -> list[str]:
    """Those of `attempt_ids` still live in a batch stopped with `hang_up`."""
    found: list[str] = []
    for start in range(0, len(attempt_ids), 500):
        found += (
            session.execute(
                select(recipients_t.c.attempt_id)
                .join(batches_t, batches_t.c.id == recipients_t.c.batch_id)
                .where(
                    one_of(session, recipients_t.c.attempt_id, attempt_ids[start : start + 500]),
                    recipients_t.c.status == RecipientStatus.dialing.value,
                    batches_t.c.hang_up_on_stop.is_(True),
                )
            )
            .scalars()
            .all()
        )
    return found


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
            func.coalesce(PhoneNumber.__table__.c.connection_id, PhoneNumber.__table__.c.provider),
            recipients_t.c.provider_call_id,
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
            provider=row[3] or default_provider,
            call_id=row.provider_call_id,
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
