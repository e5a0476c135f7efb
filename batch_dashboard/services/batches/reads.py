"""Reading batches: the public form, the list (cursor pages), the detail and a page of
recipients, and the change markers that live pages poll.

Answers are remembered by the batch's `version`, which every transition bumps
(`services.transitions`), so a client polling a batch costs one indexed lookup until something
happens.
"""

from __future__ import annotations

import functools
import threading
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Engine, Row, Select, and_, bindparam, or_
from sqlmodel import Session, func, select

from batch_dashboard.clock import to_rfc3339, to_utc
from batch_dashboard.db import fetch_all, fetch_one
from batch_dashboard.models import (
    RECIPIENT_STATUSES,
    Batch,
    BatchStatus,
    Recipient,
    RecipientStatus,
)
from batch_dashboard.services import cursors
from batch_dashboard.services.batches.rules import breaker_public
from batch_dashboard.services.errors import NotFound, Problems, ValidationFailed, is_clean_id
from batch_dashboard.services.versioned import VersionedCache

LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX = 100, 200
BATCH_STATUSES = tuple(status.value for status in BatchStatus)


def batch_public(batch: Batch | Row[Any]) -> dict[str, Any]:
    paused = batch.paused_at is not None
    return {
        "id": batch.id,
        "name": batch.name,
        "agent_id": batch.agent_id,
        "phone_number_id": batch.phone_number_id,
        "status": batch.status,
        "scheduled_at": to_rfc3339(batch.scheduled_at),
        "ringing_timeout_ms": batch.ringing_timeout_ms,
        "created_at": to_rfc3339(batch.created_at),
        "started_at": to_rfc3339(batch.started_at),
        "finished_at": to_rfc3339(batch.finished_at),
        "total_recipients": batch.total_recipients,
        "counts": {
            "pending": batch.pending_count,
            "dialing": batch.dialing_count,
            "completed": batch.completed_count,
            "failed": batch.failed_count,
            "cancelled": batch.cancelled_count,
        },
        "max_concurrency": batch.max_concurrency,
        "paused": paused,
        "stopping": batch.stopped_at is not None and batch.status == BatchStatus.running.value,
        "retry_policy": batch.retry_policy,
        "calling_window": batch.calling_window,
        "voicemail": batch.voicemail,
        "next_window_at": to_rfc3339(batch.next_window_at)
        if batch.status == BatchStatus.running.value
        else None,
        "circuit_breaker": breaker_public(batch.circuit_breaker),
        "paused_reason": batch.paused_reason if paused else None,
        "circuit_breaker_trip": batch.breaker_trip if paused else None,
    }


def get_batch(session: Session, *, workspace_id: str, batch_id: str) -> Batch:
    batch = session.get(Batch, batch_id) if is_clean_id(batch_id) else None
    if batch is None or batch.workspace_id != workspace_id:
        raise NotFound(f"no batch call {batch_id}")
    return batch


def _encode_cursor(created_at: datetime, batch_id: str) -> str:
    return cursors.encode(created_at.isoformat(), batch_id)


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    created, batch_id = cursors.decode(cursor, parts=2) or ("", "")
    try:
        moment = datetime.fromisoformat(created)
    except ValueError:
        raise cursors.refused() from None
    if moment.tzinfo is None or not is_clean_id(batch_id):
        raise cursors.refused()
    return moment, batch_id


@functools.cache
def _list_query(by_status: bool, by_agent: bool, after_cursor: bool) -> Select:
    """The list's page as (id, version), newest first: one constant statement per combination
    of filters, so that `db.fetch_all` compiles each once."""
    table = Batch.__table__
    query = select(table.c.id, table.c.version).where(
        table.c.workspace_id == bindparam("workspace_id")
    )
    if by_status:
        query = query.where(table.c.status == bindparam("status"))
    if by_agent:
        query = query.where(table.c.agent_id == bindparam("agent_id"))
    if after_cursor:
        query = query.where(
            or_(
                table.c.created_at < bindparam("created_at"),
                and_(
                    table.c.created_at == bindparam("created_at"), table.c.id < bindparam("last_id")
                ),
            )
        )
    return query.order_by(table.c.created_at.desc(), table.c.id.desc()).limit(bindparam("limit"))


_CREATED_LOOKUP = select(Batch.__table__.c.created_at).where(
    Batch.__table__.c.id == bindparam("id")
)


def _list_page(
    engine: Engine | None,
    workspace_id: str,
    limit: int,
    cursor: str | None,
    status: str | None,
    agent_id: str | None,
) -> tuple[list[tuple[str, int]], str | None]:
    """The page's (id, version) pairs and the next page's cursor."""
    problems = Problems()
    if not 1 <= limit <= LIST_LIMIT_MAX:
        problems.add(["limit"], f"must be between 1 and {LIST_LIMIT_MAX}")
    if status is not None and status not in BATCH_STATUSES:
        problems.add(["status"], f"must be one of {', '.join(BATCH_STATUSES)}")
    problems.raise_if_any()
    params: dict[str, Any] = {"workspace_id": workspace_id, "limit": limit + 1}
    if status is not None:
        params["status"] = status
    if agent_id is not None:
        params["agent_id"] = agent_id if is_clean_id(agent_id) else ""
    if cursor:
        params["created_at"], params["last_id"] = _decode_cursor(cursor)
    query = _list_query(status is not None, agent_id is not None, bool(cursor))
    page = fetch_all(query, params, engine)
    if len(page) <= limit:
        return page, None
    page = page[:limit]
    (created_at,) = fetch_one(_CREATED_LOOKUP, {"id": page[-1][0]}, engine)
    return page, _encode_cursor(created_at, page[-1][0])


def list_batches_from_memory(
    *,
    workspace_id: str,
    limit: int = LIST_LIMIT_DEFAULT,
    cursor: str | None = None,
    status: str | None = None,
    agent_id: str | None = None,
) -> dict[str, Any] | None:
    """`list_batches` when every batch of the page is remembered at its version, else None."""
    wanted, next_cursor = _list_page(None, workspace_id, limit, cursor, status, agent_id)
    found, missing = _remembered_forms(wanted)
    if missing:
        return None
    return {"batch_calls": [found[batch_id] for batch_id, _ in wanted], "next_cursor": next_cursor}


def list_batches(
    session: Session,
    *,
    workspace_id: str,
    limit: int = LIST_LIMIT_DEFAULT,
    cursor: str | None = None,
    status: str | None = None,
    agent_id: str | None = None,
) -> dict[str, Any]:
    wanted, next_cursor = _list_page(
        session.get_bind(), workspace_id, limit, cursor, status, agent_id
    )
    return {"batch_calls": _public_forms(session, wanted), "next_cursor": next_cursor}


# Each batch's `batch_public` by id: a list page mostly asks for batches that have not changed
# since the last page.
_public_forms_cache: VersionedCache[str, dict[str, Any]] = VersionedCache(budget=20_000)


def _remembered_forms(
    wanted: list[tuple[str, int]],
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """The remembered `batch_public` of each (id, version) still at that version, and the
    ids that are not."""
    found = {}
    for batch_id, version in wanted:
        if (public := _public_forms_cache.get(batch_id, version)) is not None:
            found[batch_id] = public
    return found, [batch_id for batch_id, _ in wanted if batch_id not in found]


def _public_forms(session: Session, wanted: list[tuple[str, int]]) -> list[dict[str, Any]]:
    """`batch_public` of each (id, version), the full row read only for those that changed."""
    found, missing = _remembered_forms(wanted)
    if missing:
        table = Batch.__table__
        rows = session.connection().execute(select(table).where(table.c.id.in_(missing)))
        fresh = {row.id: (row.version, batch_public(row)) for row in rows}
        for batch_id, (version, public) in fresh.items():
            found[batch_id] = public
            _public_forms_cache.put(batch_id, version, public)
    return [found[batch_id] for batch_id, _ in wanted if batch_id in found]


def _recipient_query(batch_id: str, *, status: str | None, search: str | None = None):
    table = Recipient.__table__
    query = select(
        table.c.id,
        table.c.phone,
        table.c.dynamic_vars,
        table.c.status,
        table.c.attempts,
        table.c.conversation_id,
        table.c.failure_reason,
        table.c.started_at,
        table.c.ended_at,
        table.c.duration_seconds,
        table.c.next_attempt_at,
    ).where(table.c.batch_id == batch_id)
    if status is not None:
        query = query.where(table.c.status == status)
    if search:
        digits = "".join(ch for ch in search if ch.isdigit())
        query = query.where(table.c.phone.contains(digits, autoescape=True))
    return query.order_by(table.c.position)


def _check_recipient_status(status: str | None) -> None:
    if status is not None and status not in RECIPIENT_STATUSES:
        raise ValidationFailed.at(
            ["recipient_status"], f"must be one of {', '.join(RECIPIENT_STATUSES)}"
        )


def _recipient_public(row: Any) -> dict[str, Any]:
    return {
        "id": row[0],
        "phone": row[1],
        # Stored as JSON text and passed through untouched (see models.py).
        "dynamic_vars": orjson.Fragment(row[2]),
        "status": row[3],
        "attempts": row[4],
        "conversation_id": row[5],
        "failure_reason": row[6],
        "started_at": to_rfc3339(row[7]),
        "ended_at": to_rfc3339(row[8]),
        "duration_seconds": row[9],
        # A pending recipient waiting for a retry or its calling window.
        "next_attempt_at": to_rfc3339(row[10]) if row[3] == RecipientStatus.pending.value else None,
    }


def batch_detail(
    session: Session, *, workspace_id: str, batch_id: str, recipient_status: str | None = None
) -> dict[str, Any]:
    """The Batch with its recipients in input order, ready for orjson."""
    _check_recipient_status(recipient_status)
    batch = get_batch(session, workspace_id=workspace_id, batch_id=batch_id)
    return _detail(session, batch, recipient_status)


def _detail(session: Session, batch: Batch, recipient_status: str | None) -> dict[str, Any]:
    rows = session.connection().execute(_recipient_query(batch.id, status=recipient_status))
    return {"batch_call": batch_public(batch), "recipients": [_recipient_public(r) for r in rows]}


# Encoded detail bodies by (batch, recipient filter): a client polling a batch costs one
# indexed lookup until something happens.
_detail_cache: VersionedCache[tuple[str, str | None], bytes] = VersionedCache(
    budget=128 * 1024 * 1024, weigh=len
)


_VERSION_LOOKUP = select(Batch.__table__.c.version).where(
    Batch.__table__.c.id == bindparam("id"),
    Batch.__table__.c.workspace_id == bindparam("workspace_id"),
)


def batch_detail_json_from_memory(
    *,
    workspace_id: str,
    batch_id: str,
    recipient_status: str | None = None,
    engine: Engine | None = None,
) -> bytes | None:
    """The remembered `batch_detail_json` while the batch has not changed, else None; one
    indexed lookup and no session (`NotFound` for a batch the workspace does not have)."""
    _check_recipient_status(recipient_status)
    found = (
        fetch_one(_VERSION_LOOKUP, {"id": batch_id, "workspace_id": workspace_id}, engine)
        if is_clean_id(batch_id)
        else None
    )
    if found is None:
        raise NotFound(f"no batch call {batch_id}")
    return _detail_cache.get((batch_id, recipient_status), found[0])


def batch_detail_json(
    session: Session, *, workspace_id: str, batch_id: str, recipient_status: str | None = None
) -> bytes:
    """`batch_detail` encoded as JSON, for a caller that found nothing in memory
    (`batch_detail_json_from_memory`).

    A change reaches every client polling the batch at once; they queue for one render of the
    new version instead of each making their own (the session reads nothing before the lock,
    so the render sees the newest version)."""
    key = (batch_id, recipient_status)
    with _RENDER_LOCKS[hash(key) % len(_RENDER_LOCKS)]:
        body = batch_detail_json_from_memory(
            workspace_id=workspace_id,
            batch_id=batch_id,
            recipient_status=recipient_status,
            engine=session.get_bind(),
        )
        if body is None:  # nobody rendered this version while we queued
            batch = get_batch(session, workspace_id=workspace_id, batch_id=batch_id)
            body = orjson.dumps(_detail(session, batch, recipient_status))
            _detail_cache.put(key, batch.version, body)
    return body


# Striped: one lock per (batch, filter) would be a map that only grows.
_RENDER_LOCKS = [threading.Lock() for _ in range(64)]


def recipients_page(
    session: Session,
    *,
    workspace_id: str,
    batch_id: str,
    status: str | None = None,
    search: str | None = None,
    offset: int = 0,
    limit: int = 50,
) -> tuple[list[dict[str, Any]], int]:
    """One page of a batch's recipients (the console never loads more) and the matching total."""
    _check_recipient_status(status)
    get_batch(session, workspace_id=workspace_id, batch_id=batch_id)
    query = _recipient_query(batch_id, status=status, search=search)
    total = (
        session.connection()
        .execute(select(func.count()).select_from(query.order_by(None).subquery()))
        .scalar_one()
    )
    rows = session.connection().execute(query.offset(offset).limit(limit))
    page = []
    for row in rows:
        item = _recipient_public(row)
        item["dynamic_vars"] = orjson.loads(row[2])
        page.append(item)
    return page, total


# --- live pages -------------------------------------------------------------------------


def versions(session: Session, *, batch_ids: list[str]) -> dict[str, int]:
    """The change marker of each batch (bumped by every transition): what live pages poll."""
    if not batch_ids:
        return {}
    rows = session.execute(select(Batch.id, Batch.version).where(Batch.id.in_(batch_ids)))
    return {row.id: row.version for row in rows}


def workspace_marker(session: Session, *, workspace_id: str) -> str:
    """Changes whenever any batch of the workspace is created or changes."""
    count, total, newest = session.execute(
        select(func.count(), func.coalesce(func.sum(Batch.version), 0), func.max(Batch.id)).where(
            Batch.workspace_id == workspace_id
        )
    ).one()
    return f"{count}:{total}:{newest}"


def calls_per_minute(session: Session, *, batch_id: str, now: datetime) -> int:
    """Calls of the batch that ended in the last minute."""
    table = Recipient.__table__
    return session.execute(
        select(func.count())
        .select_from(table)
        .where(table.c.batch_id == batch_id, table.c.ended_at > now - timedelta(minutes=1))
        .where(table.c.status.in_((RecipientStatus.completed.value, RecipientStatus.failed.value)))
    ).scalar_one()


# The estimate of time left follows the calls that ended lately, so a batch that slows down
# (a calling window closing, a platform throttling) says so within minutes. A couple of calls in
# the first seconds are noise (calls end in waves of the concurrency limit): at least
# RATE_MIN_ENDED calls, over at least RATE_MIN_SPAN, or no estimate rather than a wild one.
RATE_WINDOW = timedelta(minutes=5)
RATE_MIN_SPAN = timedelta(seconds=20)
RATE_MIN_ENDED = 3


def seconds_left(session: Session, *, batch: Any, now: datetime) -> int | None:
    """How long the batch's remaining calls will take at the rate its calls ended over the
    last RATE_WINDOW (or since it started, if later); None while that says nothing: not
    running, paused, stopping, or too few calls ended. The batch page and the wall both show
    this one estimate (`batch` is a Batch or a row with its status, counts and times)."""
    if (
        batch.status != BatchStatus.running.value
        or batch.paused_at is not None
        or batch.stopped_at is not None
    ):
        return None
    left = batch.pending_count + batch.dialing_count
    since = now - RATE_WINDOW
    if batch.started_at is not None and to_utc(batch.started_at) > since:
        since = to_utc(batch.started_at)
    span = max((now - since).total_seconds(), RATE_MIN_SPAN.total_seconds())
    if left == 0:
        return None
    table = Recipient.__table__
    ended = session.execute(
        select(func.count())
        .select_from(table)
        .where(table.c.batch_id == batch.id, table.c.ended_at >= since)
        .where(table.c.status.in_((RecipientStatus.completed.value, RecipientStatus.failed.value)))
    ).scalar_one()
    if ended < RATE_MIN_ENDED:
        return None
    return max(1, round(left * span / ended))
