"""The circuit breaker: a platform outage, a suspended account or a flagged caller number
must not burn a calling list.

Per batch, over its recent attempts: when at least `failure_rate` of at least `min_attempts`
attempts recorded within `window_seconds` ended with a reason in `TRIPPING`, the batch pauses
itself (`transitions.trip_batch`): no new dials, live calls finish, and the recipients whose
attempts the platform failed (`GIVEN_BACK`) go back in line without spending an attempt. An
account the platform refuses (authentication, suspension) pauses every running batch on its
connection at once. Each trip writes one `breaker_trip` row (what /metrics counts), one
`batch.paused` webhook event and one log line, in the transaction that pauses the batch: of
any number of workers seeing the same failures, the one whose compare-and-set wins does all
three, and only it.

The window is counted as attempts end (a few slices of counts on the batch row, written with
the counters in the same locked row), never by counting recipients: a batch recording a thousand
calls a second pays a row's read and write per group of endings, not a scan of its window.

Busy, no answer and voicemail are the callee's answer, never a fault of the platform: they
count as attempts and never trip it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlmodel import Session

from batch_dashboard.clock import to_rfc3339
from batch_dashboard.ids import new_id
from batch_dashboard.models import Agent, Batch, BatchStatus, BreakerTrip
from batch_dashboard.services import transitions, webhooks
from batch_dashboard.services.batches.rules import breaker_settings, calling_through
from batch_dashboard.services.outcomes import Outcome
from batch_dashboard.services.transitions import Ending

log = logging.getLogger(__name__)
batches_t = Batch.__table__

# What trips it. `call_failed` is the simulator's and the HTTP runtime's word for a failure
# they cannot name, which the vocabulary treats as a provider error.
TRIPPING = frozenset(
    {
        Outcome.provider_error,
        Outcome.call_failed,
        Outcome.outcome_unknown,
        Outcome.invalid_number,
        Outcome.declined,
    }
)
# The platform's fault, not the callee's: put back in line at a trip, the attempt not spent.
GIVEN_BACK = (
    Outcome.provider_error.value,
    Outcome.call_failed.value,
    Outcome.outcome_unknown.value,
)


class TripReason(StrEnum):
    """A batch's `paused_reason` when its breaker paused it."""

    failure_rate = "failure_rate"
    authentication_refused = "authentication_refused"
    account_suspended = "account_suspended"


TRIP_REASONS = tuple(reason.value for reason in TripReason)
REASON_WORDS = {
    transitions.MANUAL_PAUSE: "Paused by a user",
    TripReason.failure_rate: "Too many calls failed",
    TripReason.authentication_refused: "The platform refused the connection's credentials",
    TripReason.account_suspended: "The platform account is suspended",
}


# --- a batch's own breaker ------------------------------------------------------------------


def observe(session: Session, endings: Sequence[Ending], now: datetime) -> None:
    """The breaker's look at attempts that just ended (`transitions.end_attempts` calls it
    with their batch rows locked, so one worker at a time reads and writes a batch's window):
    each running batch's window takes them, and trips when it holds too many failures."""
    ended: dict[str, list[Ending]] = {}
    for ending in endings:
        ended.setdefault(ending.batch_id, []).append(ending)
    rows = session.execute(
        select(
            batches_t.c.id,
            batches_t.c.workspace_id,
            batches_t.c.agent_id,
            batches_t.c.name,
            batches_t.c.status,
            batches_t.c.paused_at,
            batches_t.c.paused_reason,
            batches_t.c.stopped_at,
            batches_t.c.circuit_breaker,
            batches_t.c.breaker_buckets,
        )
        .where(batches_t.c.id.in_(sorted(ended)))
        .order_by(batches_t.c.id)
    ).all()
    for batch in rows:
        if batch.status != BatchStatus.running.value or batch.stopped_at is not None:
            continue
        mine = ended[batch.id]
        if batch.paused_reason in TRIP_REASONS:
            # Calls live at the trip that the same outage fails: back in line with the others.
            back = transitions.give_back_attempts(
                session,
                batch_id=batch.id,
                reasons=GIVEN_BACK,
                recipient_ids=[e.recipient_id for e in mine if e.reason in GIVEN_BACK],
            )
            webhooks.withdraw_unsent(session, recipient_ids=back)
            continue
        settings = breaker_settings(batch.circuit_breaker)
        if batch.paused_at is not None or not settings["enabled"]:
            continue  # a resume empties the window anyway
        window = _Window(batch.breaker_buckets, settings["window_seconds"], now)
        window.add(mine, now)
        attempts, failures = window.totals()
        failed = sum(failures.values())
        if attempts < settings["min_attempts"] or failed < settings["failure_rate"] * attempts:
            # Not a status change nor anything a reader sees: `version` stays.
            session.execute(
                update(batches_t)
                .where(batches_t.c.id == batch.id)
                .values(breaker_buckets=window.stored())
            )
            continue
        trip = {
            "reason": TripReason.failure_rate.value,
            "tripped_at": to_rfc3339(now),
            "window_seconds": settings["window_seconds"],
            "attempts": attempts,
            "failures": failed,
            "failure_rate": round(failed / attempts, 4),
            "by_outcome": dict(sorted(failures.items())),
            "last_error": window.last_error,
            "connection_id": None,
        }
        _trip(session, batch, trip, now - timedelta(seconds=settings["window_seconds"]), now)


# The window is kept in this many slices at most, whatever its length: reading and writing it
# costs the same for 10 s or a day, and it slides by a slice at a time (5 s for 2 minutes).
_SLICES = 24


class _Window:
    """A batch's recent attempts: per slice of time (its start, in Unix seconds), how many
    attempts were recorded and how many of them failed by each tripping reason. Kept on the
    batch row as {"slice": seconds, "counts": {"<start>": {"attempts": n, "<reason>": n}},
    "last_error": "…"}: the platform's last words about a failure (else the reason in words)."""

    def __init__(self, stored: dict[str, Any] | None, window_seconds: int, now: datetime) -> None:
        self.slice = max(1, window_seconds // _SLICES)
        oldest = now.timestamp() - window_seconds
        counts = (stored or {}).get("counts", {})
        if (stored or {}).get("slice") != self.slice:
            counts = {}  # another window length: nothing comparable
        self.last_error: str | None = (stored or {}).get("last_error")
        self.counts: dict[str, dict[str, int]] = {
            start: dict(tally)
            for start, tally in counts.items()
            if int(start) + self.slice > oldest
        }

    def add(self, endings: Sequence[Ending], now: datetime) -> None:
        start = str(int(now.timestamp()) // self.slice * self.slice)
        tally = self.counts.setdefault(start, {"attempts": 0})
        tally["attempts"] += len(endings)
        for ending in endings:
            if ending.reason in TRIPPING:
                reason = ending.reason.value  # type: ignore[union-attr]
                tally[reason] = tally.get(reason, 0) + 1
                self.last_error = ending.message or ending.reason.words  # type: ignore[union-attr]

    def totals(self) -> tuple[int, dict[str, int]]:
        attempts, failures = 0, dict[str, int]()
        for tally in self.counts.values():
            for key, count in tally.items():
                if key == "attempts":
                    attempts += count
                else:
                    failures[key] = failures.get(key, 0) + count
        return attempts, failures

    def stored(self) -> dict[str, Any]:
        return {"slice": self.slice, "counts": self.counts, "last_error": self.last_error}


def _trip(
    session: Session, batch: Any, trip: dict[str, Any], since: datetime, now: datetime
) -> bool:
    """Pause the batch if no one did before, and say so: the trip's row, event and log line."""
    back = transitions.trip_batch(
        session,
        batch_id=batch.id,
        now=now,
        reason=trip["reason"],
        trip=trip,
        give_back=GIVEN_BACK,
        since=since,
    )
    if back is None:
        return False
    trip = {**trip, "given_back": len(back)}
    webhooks.withdraw_unsent(session, recipient_ids=back)
    session.execute(
        insert(BreakerTrip.__table__).values(
            id=new_id("trip"),
            workspace_id=batch.workspace_id,
            batch_id=batch.id,
            connection_id=trip["connection_id"],
            reason=trip["reason"],
            tripped_at=now,
            details=trip,
        )
    )
    agent = session.get(Agent, batch.agent_id)
    if agent is not None and agent.webhook_url and not agent.webhook_disabled_reason:
        webhooks.enqueue_batch_event(
            session,
            workspace_id=batch.workspace_id,
            agent_id=agent.id,
            batch_id=batch.id,
            url=agent.webhook_url,
            event_type=webhooks.BATCH_PAUSED,
            data={
                "batch_id": batch.id,
                "name": batch.name,
                "agent_id": batch.agent_id,
                "paused_at": to_rfc3339(now),
                "paused_reason": trip["reason"],
                "circuit_breaker_trip": trip,
            },
            now=now,
        )
    # The platform's message is not logged: it may quote the number it refused.
    log.warning(
        "batch %s paused by its circuit breaker: %s",
        batch.id,
        trip["reason"],
        extra={
            "event": "breaker_tripped",
            "batch_id": batch.id,
            "workspace_id": batch.workspace_id,
            "connection_id": trip["connection_id"],
            "paused_reason": trip["reason"],
            "attempts": trip.get("attempts"),
            "failures": trip.get("failures"),
            "given_back": len(back),
        },
    )
    return True


# --- an account the platform refuses -------------------------------------------------------


def refused_account(
    session: Session,
    *,
    connection_id: str,
    reason: TripReason,
    message: str,
    attempts: Sequence[tuple[str, str]],
    now: datetime,
) -> list[str]:
    """The platform refused the account itself while placing `attempts` ((attempt id, batch
    id); nothing was created): every running batch calling through this connection pauses at
    once, each with its own trip, and those attempts go back in line unspent. Returns the
    attempts of batches whose breaker is off: they fail as before (`provider_error`), since
    putting them back would only dial them into the same refusal again."""
    query = calling_through(
        select(
            batches_t.c.id,
            batches_t.c.workspace_id,
            batches_t.c.agent_id,
            batches_t.c.name,
            batches_t.c.circuit_breaker,
            batches_t.c.paused_at,
            batches_t.c.stopped_at,
        ).where(batches_t.c.status == BatchStatus.running.value),
        connection_id,
    ).order_by(batches_t.c.id)
    enabled: set[str] = set()
    for batch in session.execute(query).all():
        settings = breaker_settings(batch.circuit_breaker)
        if not settings["enabled"]:
            continue
        enabled.add(batch.id)
        if batch.paused_at is not None or batch.stopped_at is not None:
            continue
        trip = {
            "reason": reason.value,
            "tripped_at": to_rfc3339(now),
            "window_seconds": settings["window_seconds"],
            "attempts": None,
            "failures": None,
            "failure_rate": None,
            "by_outcome": {},
            "last_error": message,
            "connection_id": connection_id,
        }
        _trip(session, batch, trip, now - timedelta(seconds=settings["window_seconds"]), now)
    failed: list[str] = []
    for attempt_id, batch_id in attempts:
        if batch_id in enabled:
            transitions.release_unplaced(session, attempt_id=attempt_id, now=now)
        else:
            failed.append(attempt_id)
    return failed


# --- reading ---------------------------------------------------------------------------------


def trips_by_reason(session: Session) -> dict[str, int]:
    """Every trip so far, by reason (what /metrics counts)."""
    counts = dict.fromkeys(TRIP_REASONS, 0)
    for reason, count in session.execute(
        select(BreakerTrip.__table__.c.reason, func.count()).group_by(
            BreakerTrip.__table__.c.reason
        )
    ).all():
        counts[reason] = count
    return counts


def describe(paused_reason: str | None, trip: dict[str, Any] | None) -> dict[str, str]:
    """A breaker's pause in words for people (the batch page, its Resume, the wall): empty
    when the batch is not paused by its breaker."""
    if paused_reason not in TRIP_REASONS or not trip:
        return {"title": "", "detail": "", "last_error": ""}
    if paused_reason == TripReason.failure_rate:
        by_outcome = ", ".join(
            f"{Outcome(reason).words.lower()} {count}"
            for reason, count in sorted(trip["by_outcome"].items(), key=lambda item: -item[1])
        )
        minutes = trip["window_seconds"] / 60
        window = f"{minutes:g} minute{'s' if minutes != 1 else ''}"
        detail = (
            f"{trip['failures']} of the last {trip['attempts']} calls failed within {window}"
            f" ({by_outcome})."
        )
    else:
        detail = "The platform refused the connection's account: every batch on it is paused."
    given_back = trip.get("given_back") or 0
    if given_back:
        detail += (
            f" {given_back} recipient{'s' if given_back != 1 else ''} went back in line"
            " without spending an attempt."
        )
    return {
        "title": REASON_WORDS[TripReason(paused_reason)],
        "detail": detail,
        "last_error": trip.get("last_error") or "",
    }
