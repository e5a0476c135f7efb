"""The provider interface: place calls, ask about an attempt, hang up.

Attempt ids are the idempotency keys of every provider call: placing the same attempt twice
must never ring a phone twice, and `call_status` must answer for an attempt even when the
process that placed it is gone (that is how expired leases are settled).
"""

from __future__ import annotations

import asyncio
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from batch_dashboard.clock import Clock, system_clock

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]{0,63})\s*\}\}")


def render(template: str, variables: dict[str, Any]) -> tuple[str, list[str]]:
    """Fill `{{name}}` placeholders; a missing value becomes empty text and is reported."""
    missing: list[str] = []

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in variables:
            value = variables[name]
            return ("yes" if value else "no") if isinstance(value, bool) else str(value)
        if name not in missing:
            missing.append(name)
        return ""

    return _PLACEHOLDER.sub(fill, template), missing


class CallStatus(StrEnum):
    in_progress = "in_progress"
    completed = "completed"
    no_answer = "no_answer"
    busy = "busy"
    voicemail = "voicemail"
    failed = "failed"


TERMINAL = frozenset(CallStatus) - {CallStatus.in_progress}


@dataclass(frozen=True)
class AgentSnapshot:
    id: str
    name: str
    prompt: str
    first_message: str
    evaluation_criteria: list[dict[str, Any]]
    data_collection: list[dict[str, Any]]


@dataclass(frozen=True)
class CallRequest:
    attempt_id: str
    attempt_number: int
    workspace_id: str
    batch_id: str
    recipient_id: str
    to: str
    from_: str
    agent: AgentSnapshot
    variables: dict[str, Any]
    ringing_timeout_ms: int
    # Where the call runs, for platforms other than the simulator and the HTTP runtime.
    connection_id: str | None = None
    # The caller number's id at the platform, and the agent's (or its bot's media stream).
    from_external_id: str | None = None
    external_agent_id: str | None = None
    stream_url: str | None = None
    # The batch's answering-machine choice: {"action": "hang_up" | "leave_message", "message"}.
    voicemail: dict[str, Any] | None = None


@dataclass
class CallResult:
    """What a provider knows about one attempt. `in_progress` until the call has ended."""

    status: CallStatus
    failure_reason: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    duration_seconds: float | None = None
    # When an in-progress call is expected to end, if the provider knows (saves polling).
    expected_end: datetime | None = None
    # Connected calls only.
    transcript: list[dict[str, Any]] | None = None
    evaluations: dict[str, Any] | None = None
    data_collection: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)
    # The platform's id of the call, where it has its own (Twilio's CallSid).
    call_id: str | None = None
    # The platform's own words when it failed the call (shown in logs and the breaker).
    message: str | None = None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def connected(self) -> bool:
        return self.status == CallStatus.completed


class ProviderError(Exception):
    """The provider could not be reached or refused; `retryable` when trying again may work.
    `account` says the platform refused the account itself, not this call
    ("authentication_refused", "account_suspended"): every batch on it pauses."""

    def __init__(self, message: str, *, retryable: bool = True, account: str | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.account = account


def account_refusal(status: int) -> str | None:
    """What an HTTP platform's status says of the account itself, for the breaker: 401, the
    credentials are refused; 402, the account must pay before it calls again (Retell's "Trial
    has ended, please add payment method")."""
    return {401: "authentication_refused", 402: "account_suspended"}.get(status)


@dataclass(frozen=True)
class PlatformEvent:
    """What one event of a platform's webhook says about one call: the attempt (where the
    platform echoes our metadata) and/or the platform's call id, and the call's state
    (`in_progress` for progress events)."""

    attempt_id: str | None
    call_id: str | None
    result: CallResult


class EventRefused(Exception):
    """A platform event whose signature is missing, wrong or outside its time tolerance."""


@dataclass(frozen=True)
class ImportedAgent:
    """An agent as its platform describes it, for `import-agents`."""

    external_agent_id: str
    name: str
    first_message: str
    prompt: str


class NotPlaced(ProviderError):
    """The platform created no call and asked us to wait (429, a concurrency limit): the
    recipient goes back in line without spending an attempt, the account slows down."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message, retryable=True)
        self.retry_after = retry_after


class Provider(ABC):
    name: str = "provider"
    # How often `wait` asks about a live call when the provider gives no end time.
    poll_interval: float = 1.0

    def __init__(self, *, clock: Clock = system_clock) -> None:
        self.clock = clock

    @abstractmethod
    async def place_calls(
        self, requests: Sequence[CallRequest]
    ) -> list[CallResult | ProviderError]:
        """Place calls (one result per request, in order); the result may already be final."""

    @abstractmethod
    async def call_status(self, attempt_id: str, call_id: str | None = None) -> CallResult | None:
        """What happened to an attempt (`call_id`: the platform's id, when it gave one); None
        when the provider never received it."""

    @abstractmethod
    async def hang_up(self, attempt_id: str, call_id: str | None = None) -> None: ...

    async def wait(self, attempt_id: str, placed: CallResult) -> CallResult:
        """Until the call ends. Providers with status events may return sooner."""
        result = placed
        while not result.terminal:
            delay = self.poll_interval
            if result.expected_end is not None:
                delay = max(0.0, (result.expected_end - self.clock.now()).total_seconds())
            await asyncio.sleep(delay)
            status = await self.call_status(attempt_id, result.call_id)
            if status is None:
                raise ProviderError(f"provider lost attempt {attempt_id}", retryable=False)
            result = status
        return result

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
