"""What a batch can be told to do: create, cancel, stop, retry, pause and resume.

Status changes go through `services.transitions`; this module checks who asks and answers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from itertools import repeat
from typing import Any

from sqlalchemy import func, select, update
from sqlmodel import Session

from batch_dashboard.clock import system_clock
from batch_dashboard.db import session_scope
from batch_dashboard.ids import id_block, new_id
from batch_dashboard.models import Batch, BatchStatus, Recipient, RecipientStatus
from batch_dashboard.services import idempotency, recipients, transitions
from batch_dashboard.services.batches.reads import batch_public, get_batch
from batch_dashboard.services.batches.rules import check_caller, parse_fields
from batch_dashboard.services.errors import (
    BatchNotCancellable,
    BatchNotStoppable,
    Conflict,
    NotFound,
    Problems,
    is_clean_id,
)
from batch_dashboard.services.outcomes import REDIALLED_BY_RETRY
from batch_dashboard.services.recipients import RecipientRows
from batch_dashboard.settings import Settings, get_settings

_INSERT_CHUNK = 5_000


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
                return batch_public(
                    get_batch(session, workspace_id=workspace_id, batch_id=earlier)
                ), False
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
        voicemail=parsed.voicemail,
        circuit_breaker=parsed.circuit_breaker,
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
    pending = RecipientStatus.pending.value
    phones = rows.phones
    encoded = recipients.encode_all_variables(rows.variables)
    for start in range(0, len(rows), _INSERT_CHUNK):
        end = min(start + _INSERT_CHUNK, len(rows))
        connection.exec_driver_sql(
            statement,
            list(
                zip(
                    ids[start:end],
                    repeat(batch_id),
                    range(start, end),
                    phones[start:end],
                    encoded[start:end],
                    repeat(pending),
                    repeat(0),
                )
            ),
        )


def _raise(problems: Problems, rows: RecipientRows) -> None:
    problems.merge(rows.problems)
    problems.raise_if_any()


# --- status changes ---------------------------------------------------------------------


def _known(batch_id: str) -> str:
    if not is_clean_id(batch_id):
        raise NotFound(f"no batch call {batch_id}")
    return batch_id


def cancel_batch(
    session: Session, *, workspace_id: str, batch_id: str, now: datetime | None = None
) -> dict[str, Any]:
    """Only a batch still `scheduled` or `pending` (nothing dialed) cancels; a cancelled one
    answers unchanged."""
    transitions.cancel_batch(
        session, workspace_id=workspace_id, batch_id=_known(batch_id), now=now or system_clock.now()
    )
    batch = _fresh(session, workspace_id, batch_id)
    if batch.status != BatchStatus.cancelled.value:
        raise BatchNotCancellable(
            f"batch {batch_id} is {batch.status}; only scheduled or pending batches can be cancelled"
        )
    return batch_public(batch)


def stop_batch(
    session: Session,
    *,
    workspace_id: str,
    batch_id: str,
    hang_up: bool = False,
    now: datetime | None = None,
) -> dict[str, Any]:
    """A batch that has not dialed yet is cancelled; a running one places no new call (its
    pending recipients end `cancelled`) and ends `cancelled` when its last live call ends.
    With `hang_up` the workers hang those calls up (`dialing.attempts_to_hang_up`)."""
    now = now or system_clock.now()
    _known(batch_id)
    changed = transitions.cancel_batch(
        session, workspace_id=workspace_id, batch_id=batch_id, now=now
    ) or transitions.stop_batch(
        session, workspace_id=workspace_id, batch_id=batch_id, now=now, hang_up=hang_up
    )
    batch = _fresh(session, workspace_id, batch_id)
    stopping = batch.status == BatchStatus.running.value and batch.stopped_at is not None
    if not changed and not stopping:
        raise BatchNotStoppable(
            f"batch {batch_id} is {batch.status}; only scheduled, pending or running batches "
            "can be stopped"
        )
    return batch_public(batch)


def retry_batch(
    session: Session,
    *,
    workspace_id: str,
    batch_id: str,
    failure_reasons: Sequence[str] | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Dial a completed batch's failed and unanswered recipients again, as new attempts:
    those whose failure reason is in `failure_reasons` (default: every reason worth a retry)."""
    reasons = REDIALLED_BY_RETRY if failure_reasons is None else list(failure_reasons)
    problems = Problems()
    if not reasons:
        problems.add(["failure_reasons"], "choose at least one outcome to retry")
    for index, reason in enumerate(reasons):
        if reason not in REDIALLED_BY_RETRY:
            problems.add(
                ["failure_reasons", index],
                f"{reason!r} is not retried; choose among {', '.join(REDIALLED_BY_RETRY)}",
            )
    problems.raise_if_any()
    reopened = transitions.reopen_for_retry(
        session, workspace_id=workspace_id, batch_id=_known(batch_id), reasons=reasons
    )
    batch = _fresh(session, workspace_id, batch_id)
    if not reopened and batch.status != BatchStatus.completed.value:
        raise Conflict(f"batch {batch_id} is {batch.status}; only completed batches can be retried")
    return batch_public(batch)


def retry_choices(session: Session, *, workspace_id: str, batch_id: str) -> dict[str, int]:
    """How many of the batch's failed recipients a retry would call again, by failure reason
    (only the reasons a retry redials, in the vocabulary's order)."""
    get_batch(session, workspace_id=workspace_id, batch_id=_known(batch_id))
    table = Recipient.__table__
    found = dict(
        session.execute(
            select(table.c.failure_reason, func.count())
            .where(
                table.c.batch_id == batch_id,
                table.c.status == RecipientStatus.failed.value,
                table.c.failure_reason.in_(REDIALLED_BY_RETRY),
            )
            .group_by(table.c.failure_reason)
        ).all()
    )
    return {reason: found[reason] for reason in REDIALLED_BY_RETRY if found.get(reason)}


def pause_batch(
    session: Session, *, workspace_id: str, batch_id: str, now: datetime | None = None
) -> dict[str, Any]:
    """A running batch stops placing new calls at once; calls already live finish."""
    return _set_paused(session, workspace_id, batch_id, now or system_clock.now())


def resume_batch(session: Session, *, workspace_id: str, batch_id: str) -> dict[str, Any]:
    """Dialing goes on where it stopped, whatever paused it (a user or its breaker); the
    breaker's window starts afresh."""
    return _set_paused(session, workspace_id, batch_id, None)


def _set_paused(
    session: Session, workspace_id: str, batch_id: str, paused_at: datetime | None
) -> dict[str, Any]:
    transitions.set_paused(
        session, workspace_id=workspace_id, batch_id=_known(batch_id), paused_at=paused_at
    )
    batch = _fresh(session, workspace_id, batch_id)
    if batch.status != BatchStatus.running.value or batch.stopped_at is not None:
        verb = "paused" if paused_at is not None else "resumed"
        state = "stopping" if batch.stopped_at is not None else batch.status
        raise Conflict(f"batch {batch_id} is {state}; only running batches can be {verb}")
    return batch_public(batch)


def _fresh(session: Session, workspace_id: str, batch_id: str) -> Batch:
    """The batch as the statements above left it (they bypass the identity map)."""
    session.expire_all()
    return get_batch(session, workspace_id=workspace_id, batch_id=batch_id)
