"""The batch and recipient state machine, in one place.

This is the only code that moves a recipient between statuses, changes a batch's status, adjusts
a batch's counters or bumps its `version`. Every caches and live page relies on two invariants
kept here: the counters equal the recipients grouped by status (they change in the transaction
that moves the recipients), and `version` grows whenever anything a reader sees changes (and
only then). Every move is a compare-and-set on the status it expects, so any number of workers
and API calls can race and each row has exactly one winner.

Recipients
    pending ──claim──▶ dialing ──end──▶ completed | failed
    dialing ──retry due, never placed, outside its window──▶ pending (the attempt not spent
        when it was never placed)
    dialing ──screened out at dialing time (do-not-call, no time zone)──▶ failed
    pending ──cancel, stop──▶ cancelled
    pending ──batch failed──▶ failed (batch_failed)
    failed ──POST …/retry──▶ pending
    completed and cancelled are final; failed is final but for POST …/retry.

Batches
    scheduled ──due──▶ pending ──first dial──▶ running ──every recipient ended──▶ completed
    scheduled | pending ──cancel──▶ cancelled
    running ──stop──▶ running, stopping ──last live call ended──▶ cancelled
    scheduled | pending | running ──agent or number gone──▶ failed
    completed ──POST …/retry──▶ running
    paused is a flag on a running batch: no new dials, live calls finish. Its breaker pauses
    it too (`trip_batch`), putting the recipients whose attempts failed by the platform's fault
    back in line, their attempts not spent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    String,
    bindparam,
    case,
    cast,
    exists,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlmodel import Session

from batch_dashboard.ids import new_id
from batch_dashboard.models import Batch, BatchStatus, Recipient, RecipientStatus
from batch_dashboard.services.outcomes import Outcome

recipients_t = Recipient.__table__
batches_t = Batch.__table__

LIVE_BATCH = (BatchStatus.pending.value, BatchStatus.running.value)
CANCELLABLE = (BatchStatus.scheduled.value, BatchStatus.pending.value)
FAILABLE = (BatchStatus.scheduled.value, *LIVE_BATCH)
_PENDING = RecipientStatus.pending.value
_DIALING = RecipientStatus.dialing.value


def _is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _changed(**values: Any) -> dict[str, Any]:
    """The values of a batch update that readers can see: the one place `version` is bumped."""
    return {**values, "version": batches_t.c.version + 1}


def _counts(**deltas: int | ColumnElement[Any]) -> dict[str, Any]:
    """`pending=-3, dialing=+3` → the counter columns moved by those amounts."""
    return {
        f"{status}_count": batches_t.c[f"{status}_count"] + delta
        for status, delta in deltas.items()
        if not isinstance(delta, int) or delta != 0
    }


def _workspace_batch(batch_id: str, workspace_id: str) -> tuple[ColumnElement[bool], ...]:
    """The batch asked for by a user: found only in their workspace."""
    return batches_t.c.id == batch_id, batches_t.c.workspace_id == workspace_id


def _move_batch(session: Session, batch_id: str, **deltas: int | ColumnElement[Any]) -> None:
    session.execute(
        update(batches_t).where(batches_t.c.id == batch_id).values(**_changed(**_counts(**deltas)))
    )


# --- batches --------------------------------------------------------------------------------


def promote_due(session: Session, *, now: datetime) -> int:
    """`scheduled → pending` for every batch whose time has come."""
    result = session.execute(
        update(batches_t)
        .where(batches_t.c.status == BatchStatus.scheduled.value, batches_t.c.scheduled_at <= now)
        .values(**_changed(status=BatchStatus.pending.value))
    )
    return result.rowcount or 0


def start_batch(session: Session, *, batch_id: str, now: datetime) -> bool:
    """Lock the batch row and mark it running (its first dial); False if it takes no dials.

    Taken before any recipient, so a cancel racing this claim waits for it and then finds
    the batch running (409), or wins first and this finds it cancelled.
    """
    row = session.execute(
        update(batches_t)
        .where(
            batches_t.c.id == batch_id,
            batches_t.c.status.in_(LIVE_BATCH),
            batches_t.c.paused_at.is_(None),
            batches_t.c.stopped_at.is_(None),
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


def fail_batch(session: Session, *, batch_id: str, now: datetime) -> bool:
    """A batch that cannot be dialed at all: it and its undialed recipients end `failed`.
    Calls already in flight finish and are recorded as usual."""
    result = session.execute(
        update(batches_t)
        .where(batches_t.c.id == batch_id, batches_t.c.status.in_(FAILABLE))
        .values(
            **_changed(
                status=BatchStatus.failed.value,
                finished_at=now,
                paused_at=None,
                **_counts(failed=batches_t.c.pending_count, pending=-batches_t.c.pending_count),
            )
        )
    )
    if result.rowcount != 1:
        return False
    _end_pending(session, batch_id, RecipientStatus.failed, now, reason=Outcome.batch_failed)
    return True


def cancel_batch(session: Session, *, workspace_id: str, batch_id: str, now: datetime) -> bool:
    """`scheduled | pending → cancelled` with every recipient: only while nothing was dialed.

    The dialer moves a batch to `running` in the same transaction as its first claim, so
    exactly one of the two wins."""
    result = session.execute(
        update(batches_t)
        .where(
            *_workspace_batch(batch_id, workspace_id),
            batches_t.c.status.in_(CANCELLABLE),
        )
        .values(**_cancel_pending_values(now, finished=True))
    )
    if result.rowcount != 1:
        return False
    _end_pending(session, batch_id, RecipientStatus.cancelled, now)
    return True


def stop_batch(
    session: Session, *, workspace_id: str, batch_id: str, now: datetime, hang_up: bool = False
) -> bool:
    """A running batch places no new call: its pending recipients end `cancelled` at once, and
    the batch ends `cancelled` when its last live call has ended (`complete_finished`)."""
    result = session.execute(
        update(batches_t)
        .where(
            *_workspace_batch(batch_id, workspace_id),
            batches_t.c.status == BatchStatus.running.value,
            batches_t.c.stopped_at.is_(None),
        )
        .values(
            stopped_at=now, hang_up_on_stop=hang_up, **_cancel_pending_values(now, finished=False)
        )
    )
    if result.rowcount != 1:
        return False
    _end_pending(session, batch_id, RecipientStatus.cancelled, now)
    complete_finished(session, batch_ids=[batch_id], now=now)
    return True


def _cancel_pending_values(now: datetime, *, finished: bool) -> dict[str, Any]:
    values = _counts(cancelled=batches_t.c.pending_count, pending=-batches_t.c.pending_count)
    if finished:
        values |= {"status": BatchStatus.cancelled.value, "finished_at": now}
    return _changed(**values)


def _end_pending(
    session: Session,
    batch_id: str,
    status: RecipientStatus,
    now: datetime,
    *,
    reason: Outcome | None = None,
) -> None:
    session.execute(
        update(recipients_t)
        .where(recipients_t.c.batch_id == batch_id, recipients_t.c.status == _PENDING)
        .values(
            status=status.value,
            failure_reason=reason.value if reason else None,
            next_attempt_at=None,
            ended_at=now,
        )
    )


MANUAL_PAUSE = "manual"


def set_paused(
    session: Session,
    *,
    workspace_id: str,
    batch_id: str,
    paused_at: datetime | None,
) -> None:
    """Pause (a time) or resume (None) a running batch; nothing happens in any other state.
    A compare-and-set on the batch row: a claim already holding it finishes first, every claim
    after it sees the pause. A resume forgets why it was paused, and empties its breaker's
    window: what tripped it must not trip it again."""
    values: dict[str, Any] = (
        {"paused_at": paused_at, "paused_reason": MANUAL_PAUSE}
        if paused_at is not None
        else {
            "paused_at": None,
            "paused_reason": None,
            "breaker_trip": None,
            "breaker_buckets": None,
        }
    )
    session.execute(
        update(batches_t)
        .where(
            *_workspace_batch(batch_id, workspace_id),
            batches_t.c.status == BatchStatus.running.value,
            batches_t.c.stopped_at.is_(None),
            batches_t.c.paused_at.is_(None)
            if paused_at is not None
            else batches_t.c.paused_at.is_not(None),
        )
        .values(**_changed(**values))
    )


def trip_batch(
    session: Session,
    *,
    batch_id: str,
    now: datetime,
    reason: str,
    trip: dict[str, Any],
    give_back: Sequence[str],
    since: datetime,
) -> list[str] | None:
    """A running, unpaused batch paused by its breaker, and its recipients whose attempts
    ended since `since` with a reason in `give_back` back to `pending`, their attempts not
    spent. A compare-and-set: of any number of workers tripping it at once, one wins; the
    others (and a batch already paused, stopped or ended) get None. Returns the recipients
    put back."""
    won = session.execute(
        update(batches_t)
        .where(
            batches_t.c.id == batch_id,
            batches_t.c.status == BatchStatus.running.value,
            batches_t.c.stopped_at.is_(None),
            batches_t.c.paused_at.is_(None),
        )
        .values(**_changed(paused_at=now, paused_reason=reason, breaker_buckets=None))
    ).rowcount
    if won != 1:
        return None
    back = give_back_attempts(session, batch_id=batch_id, reasons=give_back, since=since)
    session.execute(
        update(batches_t)
        .where(batches_t.c.id == batch_id)
        .values(breaker_trip={**trip, "given_back": len(back)})
    )
    return back


def give_back_attempts(
    session: Session,
    *,
    batch_id: str,
    reasons: Sequence[str],
    since: datetime | None = None,
    recipient_ids: Sequence[str] | None = None,
) -> list[str]:
    """`failed → pending` (and a pending retry made due at once) for the batch's recipients
    whose last attempt ended with one of `reasons` (since `since`, or among `recipient_ids`):
    the platform failed them, not the callee, so their attempt is not spent."""
    chosen = (recipients_t.c.batch_id == batch_id) & recipients_t.c.failure_reason.in_(
        list(reasons)
    )
    if since is not None:
        chosen &= recipients_t.c.ended_at >= since
    if recipient_ids is not None:
        chosen &= recipients_t.c.id.in_(list(recipient_ids))
    unspent = {
        "status": _PENDING,
        "failure_reason": None,
        "attempts": recipients_t.c.attempts - 1,
        "attempt_id": None,
        "next_attempt_at": None,
        "started_at": None,
        "ended_at": None,
        "duration_seconds": None,
    }
    failed = list(
        session.execute(
            update(recipients_t)
            .where(chosen, recipients_t.c.status == RecipientStatus.failed.value)
            .values(**unspent)
            .returning(recipients_t.c.id)
        ).scalars()
    )
    if failed:
        _move_batch(session, batch_id, failed=-len(failed), pending=len(failed))
    # Already back in line for a retry: only the attempt is given back, and the wait.
    waiting = list(
        session.execute(
            update(recipients_t)
            .where(chosen, recipients_t.c.status == _PENDING)
            .values(**unspent)
            .returning(recipients_t.c.id)
        ).scalars()
    )
    return failed + waiting


def reopen_for_retry(
    session: Session, *, workspace_id: str, batch_id: str, reasons: Sequence[str]
) -> bool:
    """`completed → running` with its failed recipients whose reason is in `reasons` back to
    `pending` as new attempts. False, and nothing changes, when the batch is not completed or
    has no such recipient."""
    retriable = (
        (recipients_t.c.batch_id == batch_id)
        & (recipients_t.c.status == RecipientStatus.failed.value)
        & recipients_t.c.failure_reason.in_(list(reasons))
    )
    reopened = session.execute(
        update(batches_t)
        .where(
            *_workspace_batch(batch_id, workspace_id),
            batches_t.c.status == BatchStatus.completed.value,
            exists().where(retriable),
        )
        .values(status=BatchStatus.running.value, finished_at=None)
    ).rowcount
    if reopened != 1:
        return False
    # A completed batch's recipients move only through this compare-and-set, so `again` is
    # exactly the rows the check above saw.
    again = session.execute(
        update(recipients_t)
        .where(retriable)
        .values(status=_PENDING, next_attempt_at=None, attempt_id=None)
    ).rowcount
    _move_batch(session, batch_id, pending=again, failed=-again)
    return True


def complete_finished(session: Session, *, batch_ids: Iterable[str], now: datetime) -> int:
    """`running → completed` (or `cancelled`, when stopped) for batches whose every recipient
    has ended."""
    result = session.execute(
        update(batches_t)
        .where(
            batches_t.c.id.in_(list(batch_ids)),
            batches_t.c.status == BatchStatus.running.value,
            batches_t.c.pending_count == 0,
            batches_t.c.dialing_count == 0,
        )
        .values(
            **_changed(
                status=case(
                    (batches_t.c.stopped_at.is_not(None), BatchStatus.cancelled.value),
                    else_=BatchStatus.completed.value,
                ),
                finished_at=now,
                # A pause ends with the batch: a retry reopens it dialing.
                paused_at=None,
            )
        )
    )
    return result.rowcount or 0


# --- recipients -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Screened:
    """What the dialer decided about claimed rows at the moment of dialing: rows that must not
    be called (failed with a reason), and rows whose calling window opens later."""

    failed: Mapping[str, Outcome]
    later: Mapping[str, datetime]


def claim_recipients(
    session: Session,
    *,
    batch_id: str,
    count: int,
    now: datetime,
    lease_until: datetime,
    screen: Callable[[list[Any]], Screened],
) -> list[Any]:
    """`pending → dialing` for up to `count` due recipients in input order, each with a lease
    and a fresh attempt id; `screen` then settles the rows that must not be dialed now, in the
    same transaction. Returns the rows to dial (id, attempt_id, attempts, phone, dynamic_vars,
    position)."""
    candidates = (
        select(recipients_t.c.id)
        .where(
            recipients_t.c.batch_id == batch_id,
            recipients_t.c.status == _PENDING,
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
                status=_DIALING,
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
    if not rows:
        return []
    # RETURNING has no order on PostgreSQL; calls go out in the order the recipients were given.
    rows.sort(key=lambda row: row.position)
    screened = screen(rows)
    _unclaim_screened(session, batch_id, screened, now)
    dialed = [row for row in rows if row.id not in screened.failed and row.id not in screened.later]
    _move_batch(
        session,
        batch_id,
        pending=len(screened.later) - len(rows),
        dialing=len(dialed),
        failed=len(screened.failed),
    )
    if screened.failed:
        complete_finished(session, batch_ids=[batch_id], now=now)
    return dialed


def _unclaim_screened(session: Session, batch_id: str, screened: Screened, now: datetime) -> None:
    # Neither was placed: the attempt is given back.
    if screened.failed:
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
            [{"rid": rid, "reason": reason.value} for rid, reason in screened.failed.items()],
        )
    if screened.later:
        session.execute(
            update(recipients_t)
            .where(recipients_t.c.id == bindparam("rid"))
            .values(
                status=_PENDING,
                next_attempt_at=bindparam("opening"),
                attempt_id=None,
                attempts=recipients_t.c.attempts - 1,
                lease_expires_at=None,
                started_at=None,
            ),
            [{"rid": rid, "opening": opening} for rid, opening in screened.later.items()],
        )
        first = min(screened.later.values())
        session.execute(
            update(batches_t)
            .where(
                batches_t.c.id == batch_id,
                or_(
                    batches_t.c.next_window_at.is_(None),
                    batches_t.c.next_window_at <= now,
                    batches_t.c.next_window_at > first,
                ),
            )
            .values(next_window_at=first)
        )


@dataclass(frozen=True)
class Ending:
    """The end of one attempt: the recipient's new status (`completed`, `failed`, or `pending`
    when a retry is due at `retry_at`)."""

    recipient_id: str
    batch_id: str
    attempt_id: str
    status: RecipientStatus
    reason: Outcome | None
    ended_at: datetime
    duration_seconds: float | None = None
    conversation_id: str | None = None
    retry_at: datetime | None = None
    # The platform's own words when it failed the call (what a tripped breaker shows).
    message: str | None = None


Observer = Callable[[Session, Sequence[Ending], datetime], None]


def end_attempts(
    session: Session,
    *,
    endings: Sequence[Ending],
    now: datetime,
    observe: Observer | None = None,
) -> None:
    """`dialing → completed | failed | pending` for attempts the caller found in flight (and
    locked, on PostgreSQL), then the counters of their batches, and the batches that ended.

    `observe` (the breaker) sees the endings after the batch rows were updated (so locked,
    one worker at a time) and before a batch whose every recipient ended completes: a breaker
    tripped by a batch's last attempts still pauses it and puts them back in line."""
    if not endings:
        return
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
            # A retried recipient gets a fresh attempt id at its next claim.
            attempt_id=bindparam("attempt"),
            lease_expires_at=None,
        ),
        [
            {
                "rid": ending.recipient_id,
                "new_status": ending.status.value,
                "reason": ending.reason.value if ending.reason else None,
                "ended": ending.ended_at,
                "duration": ending.duration_seconds,
                "conversation": ending.conversation_id,
                "next_at": ending.retry_at,
                "attempt": None if ending.status == RecipientStatus.pending else ending.attempt_id,
            }
            for ending in endings
        ],
    )
    tally: dict[str, dict[RecipientStatus, int]] = {}
    for ending in endings:
        per_batch = tally.setdefault(ending.batch_id, dict.fromkeys(RecipientStatus, 0))
        per_batch[ending.status] += 1
    # Batch rows in id order: two workers recording for the same batches never deadlock.
    for batch_id in sorted(tally):
        moved = tally[batch_id]
        _move_batch(
            session,
            batch_id,
            dialing=-sum(moved.values()),
            completed=moved[RecipientStatus.completed],
            failed=moved[RecipientStatus.failed],
            pending=moved[RecipientStatus.pending],
        )
    if observe is not None:
        observe(session, endings, now)
    if any(ending.status == RecipientStatus.pending for ending in endings):
        _close_leftovers(session, sorted(tally), now)
    complete_finished(session, batch_ids=sorted(tally), now=now)


def release_unplaced(session: Session, *, attempt_id: str, now: datetime) -> bool:
    """`dialing → pending` for an attempt the provider never received: nothing was dialed, so
    it may be claimed again, its attempt not spent. In a batch that failed or was stopped
    meanwhile it ends with the batch instead, never dialed."""
    row = session.execute(
        update(recipients_t)
        .where(recipients_t.c.attempt_id == attempt_id, recipients_t.c.status == _DIALING)
        .values(
            status=_PENDING,
            attempt_id=None,
            attempts=recipients_t.c.attempts - 1,
            lease_expires_at=None,
            started_at=None,
        )
        .returning(recipients_t.c.batch_id)
    ).first()
    if row is None:
        return False
    _move_batch(session, row.batch_id, dialing=-1, pending=1)
    _close_leftovers(session, [row.batch_id], now)
    return True


def _close_leftovers(session: Session, batch_ids: Sequence[str], now: datetime) -> None:
    """Recipients put back in line (a retry due, an attempt never placed) in a batch that
    failed or was stopped meanwhile end with the batch instead, never dialed. Runs after the
    batch rows were updated (so locked) in this transaction: a stop or a failure committed
    before is seen here, one committed after ends these recipients itself."""
    closed = session.execute(
        select(batches_t.c.id, batches_t.c.status)
        .where(
            batches_t.c.id.in_(list(batch_ids)),
            batches_t.c.pending_count > 0,
            or_(
                batches_t.c.status == BatchStatus.failed.value,
                batches_t.c.stopped_at.is_not(None),
            ),
        )
        .order_by(batches_t.c.id)
    ).all()
    for batch_id, status in closed:
        if status == BatchStatus.failed.value:
            _move_batch(
                session,
                batch_id,
                pending=-batches_t.c.pending_count,
                failed=batches_t.c.pending_count,
            )
            _end_pending(
                session, batch_id, RecipientStatus.failed, now, reason=Outcome.batch_failed
            )
        else:
            _move_batch(
                session,
                batch_id,
                pending=-batches_t.c.pending_count,
                cancelled=batches_t.c.pending_count,
            )
            _end_pending(session, batch_id, RecipientStatus.cancelled, now)
    if closed:
        complete_finished(session, batch_ids=[batch_id for batch_id, _ in closed], now=now)
