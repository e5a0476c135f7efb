"""The do-not-call list of a workspace, checked at the moment of dialing."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session

from batch_dashboard.clock import system_clock, to_rfc3339
from batch_dashboard.db import one_of
from batch_dashboard.models import DoNotCall
from batch_dashboard.services import cursors, phones
from batch_dashboard.services.errors import NotFound, ValidationFailed, refuse_nul
from batch_dashboard.services.recipients import RecipientRows

table = DoNotCall.__table__
LIST_LIMIT_MAX = 1000
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")


def canonical(number: object) -> str:
    clean, reason = phones.normalize(number)
    if reason is not None:
        raise ValidationFailed.at(["phone"], reason)
    valid = phones.check_valid(clean or "")
    if valid is None:
        raise ValidationFailed.at(["phone"], phones.invalid_reason(clean or ""))
    return valid


def entry_public(entry: Any) -> dict[str, Any]:
    return {
        "phone": entry.phone,
        "reason": entry.reason,
        "source": entry.source,
        "created_at": to_rfc3339(entry.created_at),
    }


def add_numbers(
    session: Session,
    *,
    workspace_id: str,
    numbers: Iterable[str],
    reason: str = "",
    source: str = "api",
    now: datetime | None = None,
) -> int:
    """Add canonical E.164 numbers (already validated); numbers already listed are kept."""
    refuse_nul(reason, ["reason"])  # the reason of an import, too, is text a user typed
    now = now or system_clock.now()
    rows = [
        {
            "workspace_id": workspace_id,
            "phone": number,
            "reason": reason[:500],
            "source": source,
            "created_at": now,
        }
        for number in dict.fromkeys(numbers)
    ]
    if not rows:
        return 0
    dialect_insert = (
        postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    )
    result = session.execute(dialect_insert(table).values(rows).on_conflict_do_nothing())
    return result.rowcount or 0


def add(
    session: Session,
    *,
    workspace_id: str,
    phone: object,
    reason: str = "",
    source: str = "api",
    now: datetime | None = None,
) -> dict[str, Any]:
    number = canonical(phone)
    if not isinstance(reason, str) or len(reason) > 500:
        raise ValidationFailed.at(["reason"], "must be a string of at most 500 characters")
    add_numbers(
        session, workspace_id=workspace_id, numbers=[number], reason=reason, source=source, now=now
    )
    return entry_public(session.get(DoNotCall, (workspace_id, number)))


def import_rows(
    session: Session,
    *,
    workspace_id: str,
    rows: RecipientRows,
    reason: str = "",
    now: datetime | None = None,
) -> int:
    """The valid numbers of a parsed CSV (the same parser as batch uploads)."""
    return add_numbers(
        session,
        workspace_id=workspace_id,
        numbers=[p for p in rows.phones if p],
        reason=reason,
        source="import",
        now=now,
    )


def remove(session: Session, *, workspace_id: str, phone: object) -> None:
    number = canonical(phone)
    result = session.execute(
        delete(table).where(table.c.workspace_id == workspace_id, table.c.phone == number)
    )
    if not result.rowcount:
        raise NotFound(f"{number} is not on the do-not-call list")


def list_entries(
    session: Session, *, workspace_id: str, limit: int = 100, after: str | None = None
) -> dict[str, Any]:
    if not 1 <= limit <= LIST_LIMIT_MAX:
        raise ValidationFailed.at(["limit"], f"must be between 1 and {LIST_LIMIT_MAX}")
    last = cursors.decode(after, parts=1)
    if last is not None and not _E164.fullmatch(last[0]):
        raise cursors.refused()
    query = select(DoNotCall).where(DoNotCall.workspace_id == workspace_id)
    if last is not None:
        query = query.where(DoNotCall.phone > last[0])
    page = list(session.execute(query.order_by(DoNotCall.phone).limit(limit + 1)).scalars())
    more = len(page) > limit
    page = page[:limit]
    return {
        "do_not_call": [entry_public(e) for e in page],
        "next_cursor": cursors.encode(page[-1].phone) if more else None,
    }


def listed(session: Session, *, workspace_id: str, numbers: Iterable[str]) -> set[str]:
    numbers = list(numbers)
    if not numbers:
        return set()
    return set(
        session.execute(
            select(table.c.phone).where(
                table.c.workspace_id == workspace_id, one_of(session, table.c.phone, numbers)
            )
        ).scalars()
    )
