"""What a batch produced: a conversation, and the results as CSV."""

from __future__ import annotations

import csv
import io
from typing import Any

import orjson
from sqlmodel import Session, select

from batch_dashboard.clock import to_rfc3339
from batch_dashboard.models import Conversation, Recipient, RecipientStatus
from batch_dashboard.services import outcomes
from batch_dashboard.services.batches.reads import get_batch
from batch_dashboard.services.errors import NotFound, is_clean_id
from batch_dashboard.services.outcomes import Outcome


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


def _outcome_words(status: str, reason: str | None) -> str:
    """What happened, for people: the vocabulary's words for an ended call."""
    if status == RecipientStatus.completed.value:
        return Outcome.completed.words
    if status == RecipientStatus.cancelled.value:
        return "Cancelled"
    return outcomes.words(reason)


# Full-width forms too: spreadsheets fold them to their ASCII twins when reading a formula.
_FORMULA_STARTS = frozenset("=+-@＝＋－＠")


def _neutralise(value: object) -> str:
    """Spreadsheets run cells that start with = + - @ as formulas, and skip leading whitespace
    (tab, CR, LF, a space, a no-break space) to find one: such a cell gets a leading `'`."""
    text = "" if value is None else str(value)
    if text and (text[0] in _FORMULA_STARTS or text[0].isspace()):
        return "'" + text
    return text


def export_results_csv(session: Session, *, workspace_id: str, batch_id: str) -> str:
    """The batch's input columns, each recipient's outcome and its collected data, as CSV.

    Phone numbers are exported in E.164 (so `+…` is written as `'+…` like every other cell
    that a spreadsheet would take for a formula).
    """
    get_batch(session, workspace_id=workspace_id, batch_id=batch_id)
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
        "outcome",
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
                _outcome_words(row.status, row.failure_reason),
                row.attempts,
                to_rfc3339(row.started_at) or "",
                to_rfc3339(row.ended_at) or "",
                "" if row.duration_seconds is None else row.duration_seconds,
                row.conversation_id or "",
                *(_neutralise((data.get(name) or {}).get("value", "")) for name in collected),
            ]
        )
    return buffer.getvalue()
