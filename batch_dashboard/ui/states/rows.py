"""What the batch pages show of a batch and its recipients, built from the services' public
forms. The builders that read take a session and keyword `workspace_id`, like the services:
tabs run them through `read`, the poller in a unit of work of its own."""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

from sqlmodel import Session

from batch_dashboard.clock import system_clock
from batch_dashboard.services import agents, batches, breaker, phones
from batch_dashboard.settings import get_settings
from batch_dashboard.ui.styles import failure_words

FIRST_PAGE = 50


@dataclasses.dataclass
class BatchRow:
    id: str = ""
    name: str = ""
    agent_name: str = ""
    status: str = ""
    total: int = 0
    pending: int = 0
    dialing: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    done: int = 0
    created_at: str = ""
    scheduled_at: str = ""
    started_at: str = ""
    finished_at: str = ""
    caller_number: str = ""
    ringing_timeout_s: int = 0
    paused: bool = False
    # Stopped while calls were live: no new calls, ends cancelled when the last one ends.
    stopping: bool = False
    max_concurrency: int = 0
    # "About 12 min" at the recent rate of ended calls; empty when that says nothing.
    time_left: str = ""
    # The calling rules in force, in words.
    rules: list[str] = dataclasses.field(default_factory=list)
    # Paused by its circuit breaker: why, in words (empty otherwise).
    breaker_title: str = ""
    breaker_detail: str = ""
    breaker_error: str = ""


@dataclasses.dataclass
class RecipientRow:
    id: str = ""
    phone: str = ""
    phone_e164: str = ""
    status: str = ""
    failure: str = ""
    # What happened, for every ended call: the main evaluation or "Connected", or the failure.
    outcome: str = ""
    # The outcome's colour: a connected call whose evaluation failed is not a green success.
    outcome_tone: str = "gray"
    attempts: int = 0
    started_at: str = ""
    ended_at: str = ""
    duration: str = ""
    conversation_id: str = ""
    variables: str = ""


class Snapshot(NamedTuple):
    """A batch as its page shows it at one version."""

    batch: BatchRow
    first_page: list[RecipientRow]
    calls_per_minute: int
    version: int


def batch_row(public: dict[str, Any], agent_name: str = "", caller: str = "") -> BatchRow:
    counts = public["counts"]
    return BatchRow(
        id=public["id"],
        name=public["name"],
        agent_name=agent_name,
        status=public["status"],
        total=public["total_recipients"],
        pending=counts["pending"],
        dialing=counts["dialing"],
        completed=counts["completed"],
        failed=counts["failed"],
        cancelled=counts["cancelled"],
        done=counts["completed"] + counts["failed"],
        created_at=public["created_at"] or "",
        scheduled_at=public["scheduled_at"] or "",
        started_at=public["started_at"] or "",
        finished_at=public["finished_at"] or "",
        caller_number=caller,
        ringing_timeout_s=public["ringing_timeout_ms"] // 1000,
        paused=public["paused"],
        stopping=public["stopping"],
        max_concurrency=public["max_concurrency"] or 0,
        **_breaker_words(public),
    )


def _breaker_words(public: dict[str, Any]) -> dict[str, str]:
    words = breaker.describe(public.get("paused_reason"), public.get("circuit_breaker_trip"))
    return {
        "breaker_title": words["title"],
        "breaker_detail": words["detail"],
        "breaker_error": words["last_error"],
    }


def _outcome_tone(status: str, outcome: str) -> str:
    if status == "failed":
        return "red"
    if status != "completed" or outcome.endswith(": unknown"):
        return "gray"
    return "orange" if outcome.endswith(": failure") else "green"


def recipient_row(item: dict[str, Any], evaluations: dict[str, Any] | None = None) -> RecipientRow:
    variables = item["dynamic_vars"]
    ended = item["status"] in ("completed", "failed", "cancelled")
    outcome = (
        batches.outcome_words(item["status"], item["failure_reason"], evaluations) if ended else ""
    )
    return RecipientRow(
        id=item["id"],
        phone=phones.for_people(item["phone"]),
        phone_e164=item["phone"],
        status=item["status"],
        failure=failure_words(item["failure_reason"]),
        outcome=outcome,
        outcome_tone=_outcome_tone(item["status"], outcome),
        attempts=item["attempts"],
        started_at=item["started_at"] or "",
        ended_at=item["ended_at"] or "",
        duration="" if item["duration_seconds"] is None else f"{item['duration_seconds']:.0f} s",
        conversation_id=item["conversation_id"] or "",
        variables=", ".join(f"{k}: {v}" for k, v in variables.items()),
    )


def list_rows(
    session: Session, *, workspace_id: str, status: str | None, limit: int = 50
) -> list[BatchRow]:
    page = batches.list_batches(session, workspace_id=workspace_id, limit=limit, status=status)
    names = {a.id: a.name for a in agents.list_agents(session, workspace_id=workspace_id)}
    return [
        batch_row(item, names.get(item["agent_id"], "Deleted agent"))
        for item in page["batch_calls"]
    ]


def recipient_rows(
    session: Session,
    *,
    workspace_id: str,
    batch_id: str,
    status: str | None,
    search: str | None,
    offset: int,
    limit: int,
) -> tuple[list[RecipientRow], int]:
    """One page of a batch's recipients, and how many match in all."""
    items, total = batches.recipients_page(
        session,
        workspace_id=workspace_id,
        batch_id=batch_id,
        status=status,
        search=search,
        offset=offset,
        limit=limit,
    )
    return _with_outcomes(session, workspace_id, items), total


def _with_outcomes(
    session: Session, workspace_id: str, items: list[dict[str, Any]]
) -> list[RecipientRow]:
    """A page of recipients with the main evaluation of each connected call."""
    evaluations = batches.main_evaluations(
        session,
        workspace_id=workspace_id,
        conversation_ids=[item["conversation_id"] for item in items if item["conversation_id"]],
    )
    return [recipient_row(item, evaluations.get(item["conversation_id"] or "")) for item in items]


def time_left_words(seconds: int | None) -> str:
    """Under its label "Time left": "About 12 min"."""
    if seconds is None:
        return ""
    if seconds < 60:
        return "Under a minute"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"About {minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"About {hours} h {minutes:02d} min"


def batch_snapshot(session: Session, *, workspace_id: str, batch_id: str) -> Snapshot:
    """The batch, its first page of recipients, its calls per minute and its version."""
    batch = batches.get_batch(session, workspace_id=workspace_id, batch_id=batch_id)
    public, version = batches.batch_public(batch), batch.version
    agent = session.get(agents.Agent, batch.agent_id)
    number = batches.caller_number(session, batch=batch)
    page, _total = batches.recipients_page(
        session, workspace_id=workspace_id, batch_id=batch_id, limit=FIRST_PAGE
    )
    now = system_clock.now()
    per_minute = batches.calls_per_minute(session, batch_id=batch_id, now=now)
    row = batch_row(
        public,
        agent.name if agent else "Deleted agent",
        phones.for_people(number.phone_number) if number else "—",
    )
    row.time_left = time_left_words(batches.seconds_left(session, batch=batch, now=now))
    row.rules = batches.rules_in_force(public, workspace_limit=get_settings().max_concurrent_calls)
    return Snapshot(row, _with_outcomes(session, workspace_id, page), per_minute, version)
