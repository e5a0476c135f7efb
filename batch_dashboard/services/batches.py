"""Batches: create, list, read, cancel."""

from __future__ import annotations

import base64
import binascii
import csv
import functools
import io
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Engine, Row, Select, and_, bindparam, or_, update
from sqlmodel import Session, func, select

from batch_dashboard.clock import system_clock, to_rfc3339, to_utc
from batch_dashboard.db import fetch_all, fetch_one, session_scope
from batch_dashboard.ids import id_block, new_id
from batch_dashboard.models import (
    RECIPIENT_STATUSES,
    Batch,
    BatchStatus,
    Conversation,
    PhoneNumber,
    Recipient,
    RecipientStatus,
)
from batch_dashboard.services import agents, idempotency, recipients, windows
from batch_dashboard.services.errors import (
    BatchNotCancellable,
    Conflict,
    NotFound,
    Problems,
    ValidationFailed,
    is_clean_id,
    json_object_field,
)
from batch_dashboard.services.recipients import RecipientRows
from batch_dashboard.services.versioned import VersionedCache
from batch_dashboard.settings import Settings, get_settings

MAX_SCHEDULE_AHEAD = timedelta(days=30)
RINGING_TIMEOUT_RANGE = (1_000, 80_000)
DEFAULT_RINGING_TIMEOUT_MS = 30_000
NAME_LENGTH = (1, 200)
LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX = 100, 200
BATCH_STATUSES = tuple(status.value for status in BatchStatus)
CANCELLABLE = (BatchStatus.scheduled.value, BatchStatus.pending.value)
_INSERT_CHUNK = 5_000


@dataclass
class BatchFields:
    name: str
    agent_id: str
    phone_number_id: str | None
    scheduled_at: datetime | None
    ringing_timeout_ms: int
    max_concurrency: int | None = None
    retry_policy: dict[str, Any] | None = None
    calling_window: dict[str, Any] | None = None


# --- reading the request ------------------------------------------------------------------


def _parse_timestamp(value: object, problems: Problems, now: datetime) -> datetime | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        problems.add(["scheduled_at"], "must be an RFC 3339 date-time string")
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        problems.add(
            ["scheduled_at"], f"{value!r} is not an RFC 3339 date-time such as 2026-12-01T15:00:00Z"
        )
        return None
    if moment.tzinfo is None:
        problems.add(["scheduled_at"], "must include a time zone offset, e.g. Z or +02:00")
        return None
    try:
        moment = to_utc(moment)
    except OverflowError:
        problems.add(["scheduled_at"], "is out of range")
        return None
    if moment <= now:
        problems.add(["scheduled_at"], f"must be in the future (now is {to_rfc3339(now)})")
    elif moment > now + MAX_SCHEDULE_AHEAD:
        problems.add(["scheduled_at"], "must be at most 30 days ahead")
    return moment


def _parse_int(
    value: object,
    problems: Problems,
    field: str,
    *,
    from_form: bool,
    low: int,
    high: int,
    default: int | None,
    unit: str = "",
) -> int | None:
    """An optional whole number in [low, high]; forms send it as text."""
    if value is None or (from_form and value == ""):
        return default
    if from_form and isinstance(value, str) and value.strip().isdigit() and len(value) < 12:
        value = int(value.strip())
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        got = f" (got {value})" if isinstance(value, int) and not isinstance(value, bool) else ""
        problems.add([field], f"must be a whole number{unit} from {low} to {high}{got}")
        return default
    return value


# A call's failure reason → the `retry_on` name of a retry policy that covers it.
RETRYABLE = {
    "no_answer": "no_answer",
    "busy": "busy",
    "voicemail": "voicemail",
    "provider_error": "provider_error",
    "call_failed": "provider_error",
}
RETRY_ON = tuple(dict.fromkeys(RETRYABLE.values()))


def _parse_retry_policy(
    value: object, problems: Problems, *, from_form: bool
) -> dict[str, Any] | None:
    value = json_object_field(
        value,
        problems,
        field="retry_policy",
        allowed={"max_attempts", "retry_on", "delay_seconds"},
        shape="with max_attempts, retry_on, delay_seconds",
        from_form=from_form,
    )
    if value is None:
        return None
    attempts = value.get("max_attempts", 1)
    if not isinstance(attempts, int) or isinstance(attempts, bool) or not 1 <= attempts <= 10:
        problems.add(["retry_policy", "max_attempts"], "must be an integer from 1 to 10")
    retry_on = value.get("retry_on", list(RETRY_ON))
    if not isinstance(retry_on, list) or not all(
        isinstance(r, str) and r in RETRY_ON for r in retry_on
    ):
        problems.add(["retry_policy", "retry_on"], f"must be a list of: {', '.join(RETRY_ON)}")
    delay = value.get("delay_seconds", 600)
    if not isinstance(delay, int) or isinstance(delay, bool) or not 60 <= delay <= 86_400:
        problems.add(["retry_policy", "delay_seconds"], "must be an integer from 60 to 86400")
    return {"max_attempts": attempts, "retry_on": retry_on, "delay_seconds": delay}


def _parse_id(
    fields: Mapping[str, Any], name: str, problems: Problems, *, required: bool
) -> str | None:
    value = fields.get(name)
    if value is None or value == "":
        if required:
            problems.add([name], "is required")
        return None
    if not isinstance(value, str) or not is_clean_id(value):
        problems.add([name], "must be an id string")
        return None
    return value


def parse_fields(
    fields: Mapping[str, Any],
    *,
    from_form: bool,
    now: datetime,
    problems: Problems,
    concurrency_limit: int = 10_000,
) -> BatchFields:
    name = fields.get("name")
    if not isinstance(name, str):
        problems.add(["name"], "is required" if name is None else "must be a string")
        name = ""
    elif not name.strip():
        problems.add(["name"], "must not be blank")
    elif not NAME_LENGTH[0] <= len(name) <= NAME_LENGTH[1]:
        problems.add(["name"], f"must be 1 to 200 characters (got {len(name)})")
    elif any(ord(char) < 32 for char in name):
        problems.add(["name"], "must not contain control characters")
    return BatchFields(
        name=name.strip(),
        agent_id=_parse_id(fields, "agent_id", problems, required=True) or "",
        phone_number_id=_parse_id(fields, "phone_number_id", problems, required=False),
        scheduled_at=_parse_timestamp(fields.get("scheduled_at"), problems, now),
        ringing_timeout_ms=_parse_int(
            fields.get("ringing_timeout_ms"),
            problems,
            "ringing_timeout_ms",
            from_form=from_form,
            low=RINGING_TIMEOUT_RANGE[0],
            high=RINGING_TIMEOUT_RANGE[1],
            default=DEFAULT_RINGING_TIMEOUT_MS,
            unit=" of milliseconds",
        )
        or DEFAULT_RINGING_TIMEOUT_MS,
        max_concurrency=_parse_int(
            fields.get("max_concurrency"),
            problems,
            "max_concurrency",
            from_form=from_form,
            low=1,
            high=concurrency_limit,
            default=None,
            unit=" of calls",
        ),
        retry_policy=_parse_retry_policy(fields.get("retry_policy"), problems, from_form=from_form),
        calling_window=windows.parse_window(
            fields.get("calling_window"), problems, from_form=from_form
        ),
    )


def check_caller(
    session: Session, *, workspace_id: str, fields: BatchFields, problems: Problems
) -> None:
    """The agent exists here and its caller number (override, else bound) can call out."""
    if not fields.agent_id:
        return
    try:
        agent = agents.get_agent(session, workspace_id=workspace_id, agent_id=fields.agent_id)
    except NotFound as error:
        problems.add(["agent_id"], error.message)
        return
    if fields.phone_number_id is not None:
        loc, number_id = ["phone_number_id"], fields.phone_number_id
    elif agent.phone_number_id is not None:
        loc, number_id = ["agent_id"], agent.phone_number_id
    else:
        problems.add(
            ["agent_id"],
            f"agent {agent.id} has no caller number: bind a phone number to the agent "
            "or pass phone_number_id",
        )
        return
    try:
        number = agents.get_phone_number(
            session, workspace_id=workspace_id, phone_number_id=number_id
        )
    except NotFound as error:
        problems.add(
            loc,
            error.message
            if loc == ["phone_number_id"]
            else f"the agent's caller number {number_id} no longer exists",
        )
        return
    if not number.outbound_enabled:
        problems.add(
            loc,
            f"caller number {number.phone_number} ({number.id}) is not enabled for outbound calls",
        )


# --- create -------------------------------------------------------------------------------


def create_batch(
    *,
    workspace_id: str,
    fields: Mapping[str, Any],
    rows: RecipientRows,
    from_form: bool = False,
    idempotency_key: str | None = None,
    request_hash: str | None = None,
    now: datetime | None = None,
    settings: Settings | None = None,
) -> tuple[dict[str, Any], bool]:
    """Validate everything, then store the batch and its recipients in one transaction.

    Returns the public Batch and whether it was created now (False: an idempotent replay).
    Any problem raises `ValidationFailed` with all of them and stores nothing.
    """
    settings = settings or get_settings()
    now = now or system_clock.now()
    if idempotency_key is not None:
        earlier = idempotency.claim(
            workspace_id=workspace_id, key=idempotency_key, request_hash=request_hash or "", now=now
        )
        if earlier is not None:
            with session_scope() as session:
                return batch_public(_get_batch(session, workspace_id, earlier)), False
    try:
        return _create(workspace_id, fields, rows, from_form, idempotency_key, now, settings), True
    except BaseException:
        if idempotency_key is not None:
            idempotency.release(workspace_id=workspace_id, key=idempotency_key)
        raise


def _create(
    workspace_id: str,
    fields: Mapping[str, Any],
    rows: RecipientRows,
    from_form: bool,
    idempotency_key: str | None,
    now: datetime,
    settings: Settings,
) -> dict[str, Any]:
    problems = Problems()
    parsed = parse_fields(
        fields,
        from_form=from_form,
        now=now,
        problems=problems,
        concurrency_limit=settings.max_concurrent_calls,
    )
    with session_scope() as session:
        check_caller(session, workspace_id=workspace_id, fields=parsed, problems=problems)
    if len(rows) > settings.max_recipients_per_batch:
        problems.add(
            ["recipients"],
            f"a batch holds at most {settings.max_recipients_per_batch:,} recipients",
        )
    # Numbers are checked on another core while this one stores the rows (optimistically:
    # any problem found afterwards rolls the transaction back).
    check = recipients.check_numbers(
        rows, parallel=len(rows) >= settings.parallel_validation_threshold
    )
    if problems or rows.problems:
        recipients.apply_validity(rows, check)
        _raise(problems, rows)
    batch_id = new_id("batch")
    status = BatchStatus.scheduled if parsed.scheduled_at else BatchStatus.pending
    batch = Batch(
        id=batch_id,
        workspace_id=workspace_id,
        name=parsed.name,
        agent_id=parsed.agent_id,
        phone_number_id=parsed.phone_number_id,
        status=status.value,
        scheduled_at=parsed.scheduled_at,
        ringing_timeout_ms=parsed.ringing_timeout_ms,
        max_concurrency=parsed.max_concurrency,
        retry_policy=parsed.retry_policy,
        calling_window=parsed.calling_window,
        created_at=now,
        total_recipients=len(rows),
        pending_count=len(rows),
    )
    with session_scope(write=True) as session:
        session.add(batch)
        session.flush()
        _insert_recipients(session, batch_id, rows)
        changed = recipients.apply_validity(rows, check)
        if rows.problems:
            _raise(problems, rows)
        table = Recipient.__table__
        for index in changed:
            session.execute(
                update(table)
                .where(table.c.batch_id == batch_id, table.c.position == index)
                .values(phone=rows.phones[index])
            )
        if idempotency_key is not None:
            idempotency.complete(
                session, workspace_id=workspace_id, key=idempotency_key, batch_id=batch_id, now=now
            )
    return batch_public(batch)


def _insert_recipients(session: Session, batch_id: str, rows: RecipientRows) -> None:
    """Bulk insert through the driver's executemany: per-row ORM or Core parameter handling
    costs more than the insert itself at 50,000 rows."""
    connection = session.connection()
    marker = "?" if connection.dialect.paramstyle == "qmark" else "%s"
    statement = (
        "INSERT INTO recipient (id, batch_id, position, phone, dynamic_vars, status, attempts) "
        f"VALUES ({', '.join([marker] * 7)})"
    )
    ids = id_block("rcpt", len(rows))
    encode = recipients.encode_variables
    pending = RecipientStatus.pending.value
    phones, variables = rows.phones, rows.variables
    for start in range(0, len(rows), _INSERT_CHUNK):
        connection.exec_driver_sql(
            statement,
            [
                (ids[i], batch_id, i, phones[i], encode(variables[i]), pending, 0)
                for i in range(start, min(start + _INSERT_CHUNK, len(rows)))
            ],
        )


def _raise(problems: Problems, rows: RecipientRows) -> None:
    for item in rows.problems.items:
        problems.add(item["loc"], item["message"])
    problems.raise_if_any()


# --- read ---------------------------------------------------------------------------------


def batch_public(batch: Batch | Row[Any]) -> dict[str, Any]:
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
        "paused": batch.paused_at is not None,
        "retry_policy": batch.retry_policy,
        "calling_window": batch.calling_window,
        "next_window_at": to_rfc3339(batch.next_window_at)
        if batch.status == BatchStatus.running.value
        else None,
    }


def _get_batch(session: Session, workspace_id: str, batch_id: str) -> Batch:
    batch = session.get(Batch, batch_id) if is_clean_id(batch_id) else None
    if batch is None or batch.workspace_id != workspace_id:
        raise NotFound(f"no batch call {batch_id}")
    return batch


def get_batch(session: Session, *, workspace_id: str, batch_id: str) -> Batch:
    return _get_batch(session, workspace_id, batch_id)


def _encode_cursor(created_at: datetime, batch_id: str) -> str:
    raw = f"{created_at.isoformat()}|{batch_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, batch_id = raw.split("|", 1)
        moment = datetime.fromisoformat(created)
        if moment.tzinfo is None or not is_clean_id(batch_id):
            raise ValueError("not one of our cursors")
        return moment, batch_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ValidationFailed.at(["cursor"], "is not a cursor this API returned") from None


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
    batch = _get_batch(session, workspace_id, batch_id)
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
            batch = _get_batch(session, workspace_id, batch_id)
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
    _get_batch(session, workspace_id, batch_id)
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


# --- cancel -------------------------------------------------------------------------------


def cancel_batch(
    session: Session, *, workspace_id: str, batch_id: str, now: datetime | None = None
) -> dict[str, Any]:
    """Compare-and-set: only a batch still `scheduled` or `pending` (nothing dialed) cancels.

    The dialer moves a batch to `running` in the same transaction as its first claim, so
    exactly one of the two wins.
    """
    now = now or system_clock.now()
    if not is_clean_id(batch_id):
        raise NotFound(f"no batch call {batch_id}")
    batches = Batch.__table__
    result = session.execute(
        update(batches)
        .where(
            batches.c.id == batch_id,
            batches.c.workspace_id == workspace_id,
            batches.c.status.in_(CANCELLABLE),
        )
        .values(
            status=BatchStatus.cancelled.value,
            finished_at=now,
            cancelled_count=batches.c.cancelled_count + batches.c.pending_count,
            pending_count=0,
            version=batches.c.version + 1,
        )
    )
    if result.rowcount == 1:
        recipient_table = Recipient.__table__
        session.execute(
            update(recipient_table)
            .where(
                recipient_table.c.batch_id == batch_id,
                recipient_table.c.status == RecipientStatus.pending.value,
            )
            .values(status=RecipientStatus.cancelled.value, ended_at=now)
        )
        session.expire_all()
    batch = _get_batch(session, workspace_id, batch_id)
    if batch.status != BatchStatus.cancelled.value:
        raise BatchNotCancellable(
            f"batch {batch_id} is {batch.status}; only scheduled or pending batches can be cancelled"
        )
    return batch_public(batch)


def retry_batch(
    session: Session, *, workspace_id: str, batch_id: str, now: datetime | None = None
) -> dict[str, Any]:
    """Dial a completed batch's failed and unanswered recipients again, as new attempts."""
    now = now or system_clock.now()
    if not is_clean_id(batch_id):
        raise NotFound(f"no batch call {batch_id}")
    table, recipients_table = Batch.__table__, Recipient.__table__
    reopened = session.execute(
        update(table)
        .where(
            table.c.id == batch_id,
            table.c.workspace_id == workspace_id,
            table.c.status == BatchStatus.completed.value,
        )
        .values(status=BatchStatus.running.value, finished_at=None)
    ).rowcount
    if reopened != 1:
        batch = _get_batch(session, workspace_id, batch_id)
        raise Conflict(f"batch {batch_id} is {batch.status}; only completed batches can be retried")
    again = (
        session.execute(
            update(recipients_table)
            .where(
                recipients_table.c.batch_id == batch_id,
                recipients_table.c.status == RecipientStatus.failed.value,
                recipients_table.c.failure_reason.in_(RETRIABLE_REASONS),
            )
            .values(status=RecipientStatus.pending.value, next_attempt_at=None, attempt_id=None)
        ).rowcount
        or 0
    )
    session.execute(
        update(table)
        .where(table.c.id == batch_id)
        .values(
            pending_count=table.c.pending_count + again,
            failed_count=table.c.failed_count - again,
            finished_at=None if again else now,
            status=BatchStatus.running.value if again else BatchStatus.completed.value,
            version=table.c.version + 1,  # once for the whole retry, in this transaction
        )
    )
    session.expire_all()
    return batch_public(_get_batch(session, workspace_id, batch_id))


# Redialled by POST …/retry: what a retry policy may cover, and calls whose end is unknown.
# Never redialled: the number is listed, invalid, or the batch could not be dialed at all.
RETRIABLE_REASONS = (*RETRYABLE, "outcome_unknown", "hung_up")


def pause_batch(
    session: Session, *, workspace_id: str, batch_id: str, now: datetime | None = None
) -> dict[str, Any]:
    """A running batch stops placing new calls at once; calls already live finish."""
    return _set_paused(session, workspace_id, batch_id, now or system_clock.now())


def resume_batch(session: Session, *, workspace_id: str, batch_id: str) -> dict[str, Any]:
    return _set_paused(session, workspace_id, batch_id, None)


def _set_paused(
    session: Session, workspace_id: str, batch_id: str, paused_at: datetime | None
) -> dict[str, Any]:
    if not is_clean_id(batch_id):
        raise NotFound(f"no batch call {batch_id}")
    table = Batch.__table__
    # A compare-and-set on the batch row: a claim already holding that row finishes first,
    # every claim after it sees the pause.
    session.execute(
        update(table)
        .where(
            table.c.id == batch_id,
            table.c.workspace_id == workspace_id,
            table.c.status == BatchStatus.running.value,
            table.c.paused_at.is_(None)
            if paused_at is not None
            else table.c.paused_at.is_not(None),
        )
        .values(paused_at=paused_at, version=table.c.version + 1)
    )
    session.expire_all()
    batch = _get_batch(session, workspace_id, batch_id)
    if batch.status != BatchStatus.running.value:
        verb = "paused" if paused_at is not None else "resumed"
        raise Conflict(f"batch {batch_id} is {batch.status}; only running batches can be {verb}")
    return batch_public(batch)


def caller_number(session: Session, *, batch: Batch | Row[Any]) -> PhoneNumber | None:
    """The batch's own caller number, else its agent's (the one rule; the dialer uses it too)."""
    number_id = batch.phone_number_id
    if number_id is None:
        agent = session.get(agents.Agent, batch.agent_id)
        number_id = agent.phone_number_id if agent else None
    return session.get(PhoneNumber, number_id) if number_id else None


# --- live pages and exports ---------------------------------------------------------------


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


def get_conversation(
    session: Session, *, workspace_id: str, conversation_id: str
) -> dict[str, Any]:
    conversation = (
        session.get(Conversation, conversation_id) if is_clean_id(conversation_id) else None
    )
    if conversation is None or conversation.workspace_id != workspace_id:
        raise NotFound(f"no conversation {conversation_id}")
    return {
        "id": conversation.id,
        "recipient_id": conversation.recipient_id,
        "started_at": to_rfc3339(conversation.started_at),
        "ended_at": to_rfc3339(conversation.ended_at),
        "duration_seconds": conversation.duration_seconds,
        "transcript": conversation.transcript,
        "evaluations": conversation.evaluations,
        "data_collection": conversation.data_collection,
        "warnings": conversation.warnings,
    }


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _neutralise(value: object) -> str:
    """Spreadsheets run cells that start with = + - @ (and tab, CR) as formulas."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def export_results_csv(session: Session, *, workspace_id: str, batch_id: str) -> str:
    """The batch's input columns, each recipient's outcome and its collected data, as CSV.

    Phone numbers are exported in E.164 (so `+…` is written as `'+…` like every other cell
    that a spreadsheet would take for a formula).
    """
    _get_batch(session, workspace_id, batch_id)
    table = Recipient.__table__
    rows = session.execute(
        select(
            table.c.phone,
            table.c.dynamic_vars,
            table.c.status,
            table.c.failure_reason,
            table.c.attempts,
            table.c.started_at,
            table.c.ended_at,
            table.c.duration_seconds,
            table.c.conversation_id,
            Conversation.data_collection,
        )
        .select_from(table)
        .outerjoin(Conversation, Conversation.id == table.c.conversation_id)
        .where(table.c.batch_id == batch_id)
        .order_by(table.c.position)
    ).all()
    variables: dict[str, None] = {}
    collected: dict[str, None] = {}
    decoded = []
    for row in rows:
        values = orjson.loads(row.dynamic_vars)
        variables.update(dict.fromkeys(values))
        data = row.data_collection or {}
        collected.update(dict.fromkeys(data))
        decoded.append((row, values, data))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    outcome = [
        "status",
        "failure_reason",
        "attempts",
        "started_at",
        "ended_at",
        "duration_seconds",
        "conversation_id",
    ]
    writer.writerow(["phone", *variables, *outcome, *(f"collected_{name}" for name in collected)])
    for row, values, data in decoded:
        writer.writerow(
            [
                _neutralise(row.phone),
                *(_neutralise(values.get(name, "")) for name in variables),
                row.status,
                row.failure_reason or "",
                row.attempts,
                to_rfc3339(row.started_at) or "",
                to_rfc3339(row.ended_at) or "",
                "" if row.duration_seconds is None else row.duration_seconds,
                row.conversation_id or "",
                *(_neutralise((data.get(name) or {}).get("value", "")) for name in collected),
            ]
        )
    return buffer.getvalue()
