"""Idempotency keys for batch creation, scoped to a workspace and kept for 24 hours.

A key is claimed in its own short transaction before the work starts, so a second request with
the same key sees it at once (`409 conflict` while the first runs), and completed in the same
transaction that creates the batch, so a replay can never miss a batch that exists.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from batch_dashboard.db import session_scope
from batch_dashboard.ids import new_id
from batch_dashboard.models import IdempotencyRecord
from batch_dashboard.services.errors import Conflict, IdempotencyKeyReused, ValidationFailed

RETENTION = timedelta(hours=24)
# A claim this old whose request never finished belongs to a process that died.
ABANDONED_AFTER = timedelta(minutes=10)
MAX_KEY_LENGTH = 255


def fingerprint(*parts: object) -> str:
    """A stable hash of a request's meaning (not its bytes: key order and spacing don't count)."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, bytes):
            digest.update(hashlib.sha256(part).digest())
        else:
            digest.update(json.dumps(part, sort_keys=True, default=str).encode())
        digest.update(b"\x1e")
    return digest.hexdigest()


def check_key(key: str) -> None:
    if not key or len(key) > MAX_KEY_LENGTH:
        raise ValidationFailed.at(["Idempotency-Key"], f"must be 1 to {MAX_KEY_LENGTH} characters")


def claim(*, workspace_id: str, key: str, request_hash: str, now: datetime) -> str | None:
    """Claim `key` for this request; the batch id of an earlier identical request, or None."""
    check_key(key)
    for _ in range(3):
        try:
            with session_scope(write=True) as session:
                return _claim(session, workspace_id, key, request_hash, now)
        except IntegrityError:
            continue  # another request inserted the same key between our read and write
    raise Conflict("a request with this Idempotency-Key is still being processed")


def _claim(
    session: Session, workspace_id: str, key: str, request_hash: str, now: datetime
) -> str | None:
    record = session.exec(
        select(IdempotencyRecord).where(
            IdempotencyRecord.workspace_id == workspace_id, IdempotencyRecord.key == key
        )
    ).first()
    if record is not None:
        expired = record.created_at < now - RETENTION
        abandoned = record.batch_id is None and record.created_at < now - ABANDONED_AFTER
        if expired or abandoned:
            session.delete(record)
            session.flush()
            record = None
    if record is None:
        session.add(
            IdempotencyRecord(
                id=new_id("idem"),
                workspace_id=workspace_id,
                key=key,
                request_hash=request_hash,
                created_at=now,
            )
        )
        session.flush()
        return None
    if record.request_hash != request_hash:
        raise IdempotencyKeyReused(
            "this Idempotency-Key was already used with a different request body"
        )
    if record.batch_id is None:
        raise Conflict("a request with this Idempotency-Key is still being processed")
    return record.batch_id


def complete(
    session: Session, *, workspace_id: str, key: str, batch_id: str, now: datetime
) -> None:
    session.execute(
        update(IdempotencyRecord)
        .where(IdempotencyRecord.workspace_id == workspace_id, IdempotencyRecord.key == key)
        .values(batch_id=batch_id, completed_at=now)
    )


def release(*, workspace_id: str, key: str) -> None:
    """Forget a claim whose request failed, so the corrected request can use the key."""
    with session_scope(write=True) as session:
        session.execute(
            delete(IdempotencyRecord).where(
                IdempotencyRecord.workspace_id == workspace_id,
                IdempotencyRecord.key == key,
                IdempotencyRecord.batch_id.is_(None),
            )
        )


def purge_expired(session: Session, *, now: datetime) -> int:
    result = session.execute(
        delete(IdempotencyRecord).where(IdempotencyRecord.created_at < now - RETENTION)
    )
    return result.rowcount or 0
