"""Platform calls: what the dialer and the platforms' events know about a call by the
platform's own id (Twilio's CallSid, a Vapi call id…), kept with its attempt; events verified by
the routes are matched to their attempts here and recorded through `dialing.record_outcomes`, so
each call's end is recorded once whoever reports it first; a platform's request to wait slows
its account down for every worker.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, or_, select, update
from sqlmodel import Session

from batch_dashboard.models import Agent, Connection, Conversation, RecipientStatus
from batch_dashboard.providers.base import CallResult, PlatformEvent
from batch_dashboard.services import dnc, webhooks
from batch_dashboard.services.batches import calling_through
from batch_dashboard.services.dialing import batches_t, recipients_t, record_outcomes, said_yes


def store_call_ids(session: Session, *, call_ids: Sequence[tuple[str, str]]) -> None:
    """The platform's id of each `(attempt_id, call_id)`, kept before anything else happens to
    the call: events, settlement after a crash and hang-up find the call by it."""
    if call_ids:
        session.execute(
            update(recipients_t)
            .where(
                recipients_t.c.attempt_id == bindparam("attempt"),
                recipients_t.c.provider_call_id.is_(None),
            )
            .values(provider_call_id=bindparam("call")),
            [{"attempt": attempt_id, "call": call_id} for attempt_id, call_id in call_ids],
        )


def _attempt_on_connection(
    columns: Sequence[Any],
    *,
    attempt_id: str | None,
    connection_id: str,
    status: RecipientStatus | None,
) -> Any:
    """The attempt's row when its batch calls through this connection (a platform's event
    names the attempt; only its own account may touch it)."""
    query = calling_through(
        select(*columns)
        .select_from(recipients_t)
        .join(batches_t, batches_t.c.id == recipients_t.c.batch_id),
        connection_id,
    )
    if attempt_id is not None:
        query = query.where(recipients_t.c.attempt_id == attempt_id)
    if status is not None:
        query = query.where(recipients_t.c.status == status.value)
    return query


def attempt_of_call(session: Session, *, call_id: str, connection_id: str) -> str | None:
    """The attempt on this connection whose platform call id is `call_id` (for events that
    name only the platform's call)."""
    row = session.execute(
        _attempt_on_connection(
            [recipients_t.c.attempt_id],
            attempt_id=None,
            connection_id=connection_id,
            status=None,
        ).where(recipients_t.c.provider_call_id == call_id)
    ).first()
    return row[0] if row else None


def live_call_id(
    session: Session, *, attempt_id: str, connection_id: str
) -> tuple[bool, str | None]:
    """Whether the attempt is in flight on this connection, and the platform's call id stored
    for it."""
    row = session.execute(
        _attempt_on_connection(
            [recipients_t.c.provider_call_id],
            attempt_id=attempt_id,
            connection_id=connection_id,
            status=RecipientStatus.dialing,
        )
    ).first()
    return (row is not None, row[0] if row else None)


def attach_result(
    session: Session, *, attempt_id: str, connection_id: str, result: CallResult, now: datetime
) -> bool:
    """What arrives after a connected call's end was recorded (a Twilio bot's own result,
    Retell's `call_analyzed`, Vapi's end-of-call report): the transcript, evaluations and
    collected data the conversation still lacks are kept, the opt-out applied, and the
    `conversation.completed` event still waiting to be sent rewritten. False when the attempt
    is not a connected call of this connection, or nothing was missing."""
    found = session.execute(
        _attempt_on_connection(
            [
                recipients_t.c.id,
                recipients_t.c.conversation_id,
                recipients_t.c.phone,
                batches_t.c.workspace_id,
                Agent.__table__.c.opt_out_field,
            ],
            attempt_id=attempt_id,
            connection_id=connection_id,
            status=RecipientStatus.completed,
        )
    ).first()
    if found is None or found.conversation_id is None:
        return False
    conversation = session.get(Conversation, found.conversation_id)
    if conversation is None:
        return False
    missing = False
    for field in ("transcript", "evaluations", "data_collection"):
        arrived = getattr(result, field)
        if arrived and not getattr(conversation, field):
            setattr(conversation, field, arrived)
            missing = True
    if not missing:
        return False
    session.add(conversation)
    if found.opt_out_field and said_yes(conversation.data_collection.get(found.opt_out_field)):
        dnc.add_numbers(
            session,
            workspace_id=found.workspace_id,
            numbers=[found.phone],
            source="opt_out",
            reason="Opted out during a call",
            now=now,
        )
    webhooks.rewrite_waiting(
        session,
        recipient_id=found.id,
        conversation={
            "transcript": conversation.transcript,
            "evaluations": conversation.evaluations,
            "data_collection": conversation.data_collection,
        },
    )
    return True


def record_platform_events(
    session: Session,
    *,
    connection_id: str,
    events: Sequence[PlatformEvent],
    now: datetime,
    webhook_delay: timedelta | None = None,
) -> tuple[int, list[PlatformEvent]]:
    """A platform's events about its calls (`PlatformEvent`s, already verified): each names
    its attempt (our metadata) or only the platform's call id; the call id is kept, and an end
    is recorded once. Events for calls of other connections, or already ended, change nothing.

    Returns how many ends were recorded, and the ends that named only a call id nobody here
    knows yet: a platform may report a call before its answer to our placement was stored."""
    recorded, unknown = 0, []
    for event in events:
        attempt_id = event.attempt_id
        if attempt_id is None and event.call_id:
            attempt_id = attempt_of_call(
                session, call_id=event.call_id, connection_id=connection_id
            )
            if attempt_id is None and event.result.terminal:
                unknown.append(event)
        if not attempt_id:
            continue
        live, stored = live_call_id(session, attempt_id=attempt_id, connection_id=connection_id)
        if not live:
            # Ended already: what a later event adds (the analysis) goes to its conversation.
            if event.result.connected:
                recorded += attach_result(
                    session,
                    attempt_id=attempt_id,
                    connection_id=connection_id,
                    result=event.result,
                    now=now,
                )
            continue
        if stored and event.call_id and stored != event.call_id:
            continue
        if stored is None and event.call_id:
            store_call_ids(session, call_ids=[(attempt_id, event.call_id)])
        if event.result.terminal:
            recorded += len(
                record_outcomes(
                    session,
                    outcomes=[(attempt_id, event.result)],
                    now=now,
                    webhook_delay=webhook_delay,
                )
            )
    return recorded, unknown


def slow_down(session: Session, *, connection_id: str, until: datetime) -> None:
    """The platform asked us to wait (429): no worker starts a call on it before `until`."""
    table = Connection.__table__
    session.execute(
        update(table)
        .where(
            table.c.id == connection_id,
            or_(table.c.next_call_at.is_(None), table.c.next_call_at < until),
        )
        .values(next_call_at=until)
    )
