"""What a batch produced: a conversation, and the results as CSV."""

from __future__ import annotations

import csv
import io
import re
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


def outcome_words(status: str, reason: str | None, evaluations: dict[str, Any] | None) -> str:
    """What happened, for people: for a connected call the agent's main evaluation (its first
    criterion, as the side panel shows it) or "Connected"; else the vocabulary's words."""
    if status == RecipientStatus.completed.value:
        main = next(iter((evaluations or {}).items()), None)
        if main is None:
            return Outcome.completed.words
        name, value = main
        result = (value or {}).get("result", "") if isinstance(value, dict) else value
        return f"{name}: {result}" if result else name
    if status == RecipientStatus.cancelled.value:
        return "Cancelled"
    return outcomes.words(reason)


def shown_value(value: object) -> str:
    """A collected value as the side panel shows it (Yes/No for booleans)."""
    if isinstance(value, bool):
        return "Yes" if value else "No"
    return "" if value is None else str(value)


def main_evaluations(
    session: Session, *, workspace_id: str, conversation_ids: list[str]
) -> dict[str, dict[str, Any]]:
    """The evaluations of a page of conversations (a page: the console shows 50 rows)."""
    if not conversation_ids:
        return {}
    rows = session.execute(
        select(Conversation.id, Conversation.evaluations).where(
            Conversation.id.in_(conversation_ids), Conversation.workspace_id == workspace_id
        )
    )
    return {row.id: row.evaluations or {} for row in rows}


_NOT_IN_A_NAME = re.compile(r"[^A-Za-z0-9_]+")


def _column(prefix: str, name: str, taken: set[str]) -> str:
    """A column name the import accepts as a variable name (letters, digits, `_`, at most
    64), so the exported file uploads again unchanged; criteria may be named freely."""
    slug = _NOT_IN_A_NAME.sub("_", name).strip("_").lower() or "field"
    column = f"{prefix}_{slug}"[:64]
    base, n = column, 2
    while column in taken:
        suffix = f"_{n}"
        column, n = base[: 64 - len(suffix)] + suffix, n + 1
    taken.add(column)
    return column


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
    """The batch's input columns, each recipient's outcome, evaluations and collected data,
    as CSV (the console's Export results and `GET /v1/batch-calls/{id}/export`).

    Phone numbers are exported in E.164 (so `+…` is written as `'+…` like every other cell
    that a spreadsheet would take for a formula; the import removes that prefix).
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
            Conversation.evaluations,
            Conversation.data_collection,
        )
        .select_from(table)
        .outerjoin(Conversation, Conversation.id == table.c.conversation_id)
        .where(table.c.batch_id == batch_id)
        .order_by(table.c.position)
    ).all()
    variables: dict[str, None] = {}
    evaluated: dict[str, None] = {}
    collected: dict[str, None] = {}
    decoded = []
    for row in rows:
        values = orjson.loads(row.dynamic_vars)
        variables.update(dict.fromkeys(values))
        evaluations = row.evaluations or {}
        evaluated.update(dict.fromkeys(evaluations))
        data = row.data_collection or {}
        collected.update(dict.fromkeys(data))
        decoded.append((row, values, evaluations, data))
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
    taken = {"phone", *variables, *outcome}
    evaluation_columns = []
    for name in evaluated:
        evaluation_columns += [
            _column("evaluation", name, taken),
            _column("evaluation", f"{name}_rationale", taken),
        ]
    collected_columns = [_column("collected", name, taken) for name in collected]
    writer.writerow(["phone", *variables, *outcome, *evaluation_columns, *collected_columns])
    for row, values, evaluations, data in decoded:
        judged: list[str] = []
        for name in evaluated:
            verdict = evaluations.get(name) or {}
            judged += [verdict.get("result", ""), verdict.get("rationale", "")]
        writer.writerow(
            [
                _neutralise(row.phone),
                *(_neutralise(values.get(name, "")) for name in variables),
                row.status,
                row.failure_reason or "",
                _neutralise(outcome_words(row.status, row.failure_reason, evaluations)),
                row.attempts,
                to_rfc3339(row.started_at) or "",
                to_rfc3339(row.ended_at) or "",
                "" if row.duration_seconds is None else row.duration_seconds,
                row.conversation_id or "",
                *(_neutralise(cell) for cell in judged),
                *(
                    _neutralise(shown_value((data.get(name) or {}).get("value")))
                    for name in collected
                ),
            ]
        )
    return buffer.getvalue()
