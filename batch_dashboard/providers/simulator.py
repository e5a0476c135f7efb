"""The simulator: the default telephony, a real adapter that never touches a phone network.

Like a carrier it keeps its own ledger of the calls it placed (table `simulator_call`, keyed
by attempt id), so `call_status` answers for an attempt even after the process that placed it
died. The outcome of each call is decided when it is placed — deterministically from
`BATCH_SIM_SEED`, the number and the attempt number when a seed is set — and becomes visible
when the simulated call ends: ringing up to the batch's ringing timeout, then talking for about
`BATCH_SIM_CALL_SECONDS`.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import insert, select, update

from batch_dashboard.clock import Clock, system_clock, to_utc
from batch_dashboard.db import one_of, session_scope
from batch_dashboard.models import simulator_ledger as ledger
from batch_dashboard.providers.base import (
    AgentSnapshot,
    CallRequest,
    CallResult,
    CallStatus,
    Provider,
    ProviderError,
    render,
)
from batch_dashboard.settings import Settings, get_settings

OUTCOMES = ("completed", "no_answer", "busy", "voicemail", "failed")
FAILURE_REASONS = {
    "no_answer": "no_answer",
    "busy": "busy",
    "voicemail": "voicemail",
    "failed": "call_failed",
}


def parse_outcomes(text: str) -> list[tuple[str, float]]:
    """`completed=0.8,no_answer=0.2` → weights; refuses unknown outcomes and bad numbers."""
    mix: list[tuple[str, float]] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, weight = part.partition("=")
        name = name.strip()
        if name not in OUTCOMES:
            raise ValueError(
                f"BATCH_SIM_OUTCOMES: unknown outcome {name!r} (use {', '.join(OUTCOMES)})"
            )
        try:
            value = float(weight)
        except ValueError:
            raise ValueError(
                f"BATCH_SIM_OUTCOMES: {part!r} needs a number, like completed=0.8"
            ) from None
        if value < 0:
            raise ValueError(f"BATCH_SIM_OUTCOMES: {name} has a negative weight")
        mix.append((name, value))
    if not mix or sum(weight for _, weight in mix) <= 0:
        raise ValueError("BATCH_SIM_OUTCOMES: give at least one outcome a positive weight")
    return mix


def _conversation(
    request: CallRequest, rng: random.Random, talk_seconds: float
) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any], list[str]]:
    agent = request.agent
    opening, missing = render(agent.first_message or "Hello!", request.variables)
    _prompt, missing_in_prompt = render(agent.prompt, request.variables)
    missing += [name for name in missing_in_prompt if name not in missing]
    name = request.variables.get("first_name")
    lines = [
        ("agent", " ".join(opening.split()) or "Hello!"),
        ("user", f"Hi, yes, this is {name}." if name else "Hello? Yes, speaking."),
        ("agent", f"Thanks for picking up. I'm calling from {agent.name}; do you have a moment?"),
        ("user", rng.choice(["Sure, go ahead.", "Yes, briefly.", "Okay."])),
        ("agent", "Great, that's everything I needed. Thank you and have a good day!"),
        ("user", rng.choice(["You too, bye.", "Thanks, bye!", "Bye."])),
    ]
    step = talk_seconds / len(lines) if talk_seconds else 0.0
    transcript = [
        {"role": role, "message": message, "time_in_call_secs": round(i * step)}
        for i, (role, message) in enumerate(lines)
    ]
    evaluations = {}
    for criterion in agent.evaluation_criteria:
        result = rng.choices(["success", "failure", "unknown"], weights=[0.75, 0.2, 0.05])[0]
        evaluations[criterion["name"]] = {
            "result": result,
            "rationale": {
                "success": "The callee agreed and the goal of the call was met.",
                "failure": "The callee declined, so the goal was not met.",
                "unknown": "The conversation did not make this clear.",
            }[result],
        }
    collected = {}
    for item in agent.data_collection:
        kind = item.get("type", "string")
        if kind == "boolean":
            value: Any = rng.random() < 0.7
        elif kind in ("number", "integer"):
            value = rng.randint(1, 5)
        else:
            value = rng.choice(["next Tuesday morning", "no preference", "after 5pm"])
        collected[item["name"]] = {
            "value": value,
            "rationale": "Stated by the callee during the call.",
        }
    warnings = [f"no value for placeholder {{{{{name}}}}}; it was left empty" for name in missing]
    return transcript, evaluations, collected, warnings


class Simulator(Provider):
    name = "simulator"

    def __init__(self, *, settings: Settings | None = None, clock: Clock = system_clock) -> None:
        super().__init__(clock=clock)
        settings = settings or get_settings()
        self.mix = parse_outcomes(settings.sim_outcomes)
        self.mean_seconds = max(0.0, settings.sim_call_seconds)
        self.seed = settings.sim_seed
        self._random = random.Random()

    def _rng(self, request: CallRequest) -> random.Random:
        if self.seed is None:
            return self._random
        material = f"{self.seed}:{request.to}:{request.attempt_number}".encode()
        return random.Random(int.from_bytes(hashlib.sha256(material).digest()[:8], "big"))

    def decide(self, request: CallRequest, now: datetime) -> tuple[dict[str, Any], CallResult]:
        """The ledger row and the final result of a call placed `now`."""
        rng = self._rng(request)
        outcome = rng.choices([name for name, _ in self.mix], weights=[w for _, w in self.mix])[0]
        timeout = request.ringing_timeout_ms / 1000
        mean = self.mean_seconds
        if mean == 0:
            ring = talk = 0.0
        elif outcome == "no_answer":
            ring, talk = timeout, 0.0
        else:
            ring = min(timeout, rng.uniform(0.1, 0.3) * mean)
            talk = {"completed": rng.uniform(0.5, 1.5) * mean, "voicemail": 0.3 * mean}.get(
                outcome, 0.0
            )
        answered = now + timedelta(seconds=ring)
        ends = answered + timedelta(seconds=talk)
        connected = outcome == "completed"
        result = CallResult(
            status=CallStatus(outcome),
            failure_reason=FAILURE_REASONS.get(outcome),
            started_at=answered if connected else None,
            ended_at=ends,
            duration_seconds=round(talk, 1) if connected else None,
        )
        if connected:
            transcript, evaluations, collected, warnings = _conversation(request, rng, talk)
            result.transcript, result.evaluations = transcript, evaluations
            result.data_collection, result.warnings = collected, warnings
        row = {
            "attempt_id": request.attempt_id,
            "to_number": request.to,
            "from_number": request.from_,
            "status": outcome,
            "placed_at": now,
            "answered_at": answered if connected else None,
            "ends_at": ends,
            "duration_seconds": result.duration_seconds,
            "result": orjson.dumps(
                {
                    "transcript": result.transcript,
                    "evaluations": result.evaluations,
                    "data_collection": result.data_collection,
                    "warnings": result.warnings,
                }
            ).decode(),
        }
        return row, result

    def _place(self, requests: Sequence[CallRequest]) -> list[CallResult | ProviderError]:
        now = self.clock.now()
        decided = [self.decide(request, now) for request in requests]
        ids = [row["attempt_id"] for row, _ in decided]
        with session_scope(write=True) as session:
            # Placing an attempt twice is a no-op, like a carrier honouring an idempotency key.
            known = set(
                session.execute(
                    select(ledger.c.attempt_id).where(one_of(session, ledger.c.attempt_id, ids))
                ).scalars()
            )
            fresh = [row for row, _ in decided if row["attempt_id"] not in known]
            if fresh:
                session.execute(insert(ledger), fresh)
        results: list[CallResult | ProviderError] = []
        for row, result in decided:
            if row["attempt_id"] in known:
                results.append(self._status(row["attempt_id"]) or ProviderError("ledger lost"))
            else:
                results.append(_as_of(result, now))
        return results

    async def place_calls(
        self, requests: Sequence[CallRequest]
    ) -> list[CallResult | ProviderError]:
        return await asyncio.to_thread(self._place, requests)

    def _status(self, attempt_id: str) -> CallResult | None:
        with session_scope() as session:
            row = session.execute(select(ledger).where(ledger.c.attempt_id == attempt_id)).first()
        if row is None:
            return None
        stored = orjson.loads(row.result)
        ended = row.hung_up_at or row.ends_at
        connected = row.status == "completed" and row.hung_up_at is None
        result = CallResult(
            status=CallStatus(row.status) if row.hung_up_at is None else CallStatus.failed,
            failure_reason=FAILURE_REASONS.get(row.status) if row.hung_up_at is None else "hung_up",
            started_at=row.answered_at,
            ended_at=ended,
            duration_seconds=row.duration_seconds if connected else None,
            transcript=stored["transcript"] if connected else None,
            evaluations=stored["evaluations"] if connected else None,
            data_collection=stored["data_collection"] if connected else None,
            warnings=stored["warnings"] or [],
        )
        return _as_of(result, self.clock.now())

    async def call_status(self, attempt_id: str, call_id: str | None = None) -> CallResult | None:
        return await asyncio.to_thread(self._status, attempt_id)

    def _hang_up(self, attempt_id: str) -> None:
        now = self.clock.now()
        with session_scope(write=True) as session:
            session.execute(
                update(ledger)
                .where(ledger.c.attempt_id == attempt_id, ledger.c.ends_at > now)
                .values(hung_up_at=now)
            )

    async def hang_up(self, attempt_id: str, call_id: str | None = None) -> None:
        await asyncio.to_thread(self._hang_up, attempt_id)

    async def wait(self, attempt_id: str, placed: CallResult) -> CallResult:
        # The outcome was decided when the call was placed: sleep until it ends, then read the
        # ledger once (a hang-up in between wins).
        if placed.terminal:
            return placed
        if placed.expected_end is not None:
            await asyncio.sleep(max(0.0, (placed.expected_end - self.clock.now()).total_seconds()))
        return await super().wait(attempt_id, await self.call_status(attempt_id) or placed)


def _as_of(result: CallResult, now: datetime) -> CallResult:
    """The final result once the call has ended; until then, `in_progress` with its end time."""
    if result.ended_at is not None and to_utc(result.ended_at) <= now:
        return result
    return CallResult(
        status=CallStatus.in_progress, started_at=result.started_at, expected_end=result.ended_at
    )


def ledger_rows(attempt_ids: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """The ledger (tests and benchmarks check it: at most one call per attempt)."""
    query = select(ledger)
    if attempt_ids is not None:
        query = query.where(ledger.c.attempt_id.in_(list(attempt_ids)))
    with session_scope() as session:
        return [dict(row._mapping) for row in session.execute(query)]


__all__ = ["AgentSnapshot", "Simulator", "ledger", "ledger_rows", "parse_outcomes", "render"]
