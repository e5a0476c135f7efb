"""Vapi: calls placed through a workspace's Vapi account (`POST /call` with one of its
assistants and phone numbers), their end read from Vapi's server messages (`status-update`,
`end-of-call-report`) or, when none comes, from `GET /call/{id}`.

Field names and values are Vapi's (docs/providers.md, "Vapi", cites the page of each; the
fake's VAPI_SOURCES.md lists every rule with its source). Plain httpx, no SDK: Vapi's Python SDK
owns no signature scheme (it has no webhook helper), so nothing here would be better done by it.

Vapi takes no idempotency key for a call. The attempt id travels in
`assistantOverrides.metadata.attempt_id`, which Vapi stores on the call and echoes in every
server message, so an attempt whose answer was lost can still be found among the account's
recent calls; one that cannot be found ends `outcome_unknown`, never dialed twice.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import math
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from batch_dashboard.clock import to_rfc3339, to_utc
from batch_dashboard.providers.base import (
    CallRequest,
    CallResult,
    CallStatus,
    EventRefused,
    ImportedAgent,
    NotPlaced,
    PlatformEvent,
    ProviderError,
    account_refusal,
    render,
)
from batch_dashboard.providers.hosted import HostedPlatform
from batch_dashboard.retry_after import retry_after_seconds
from batch_dashboard.services.outcomes import Outcome

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.vapi.ai"
TIMEOUT_SECONDS = 15.0
# Placements of one claim sent at once; Vapi's own limit is the account's concurrency.
PLACE_CONCURRENCY = 10
# `limit` of Vapi's list endpoints (their default is 100, their maximum 1000).
PAGE_SIZE = 100
# Finding a call by its attempt id: that many pages of the account's calls of the last days.
LOOKUP_PAGES = 5
LOOKUP_WINDOW = timedelta(days=2)
# Reads (status polls, lists) are retried this many times on a 429, a 5xx or no answer.
READ_TRIES = 3
BACKOFF_START_SECONDS = 0.5
RETRY_AFTER_CAP_SECONDS = 30.0
# A connected call polled this soon after its end whose analysis is not there yet is reported
# live a little longer: Vapi analyses the call after it ends (`end-of-call-report` "is sent
# when the call ends and post-processing is complete").
ANALYSIS_GRACE_SECONDS = 30.0
# HMAC credentials: how far the `x-timestamp` may be from now (Vapi states none).
HMAC_TOLERANCE_SECONDS = 300.0
_ERROR_SNIPPET = 300

# The server credential (Server authentication): a bearer credential sent as `X-Vapi-Secret`
# without prefix (the legacy `secret`), or as `Authorization: Bearer …` (its default), or an
# HMAC credential with its default headers, algorithm and payload format.
SECRET_HEADER = "x-vapi-secret"
SIGNATURE_HEADER = "x-signature"
TIMESTAMP_HEADER = "x-timestamp"
HMAC_PAYLOAD = "{timestamp}.{body}"

# `Call.status`: everything but `ended` is a live call; `not-found`/`deletion-failed` say
# nothing about how a call went.
LIVE_STATUSES = frozenset({"scheduled", "queued", "ringing", "in-progress", "forwarding"})
CONCURRENCY_REASON = "call.start.error-subscription-concurrency-limit-reached"

# What each `endedReason` means here (Call ended reasons; Troubleshoot call errors). A reason
# not listed is a `provider_error` whose message carries Vapi's words.
ENDED_REASONS: dict[str, Outcome] = {
    # The call connected and ended normally: someone or something decided it should end.
    "customer-ended-call": Outcome.completed,
    "customer-ended-call-before-warm-transfer": Outcome.completed,
    "customer-ended-call-after-warm-transfer-attempt": Outcome.completed,
    "customer-ended-call-during-transfer": Outcome.completed,
    "assistant-ended-call": Outcome.completed,
    "assistant-said-end-call-phrase": Outcome.completed,
    "assistant-ended-call-after-message-spoken": Outcome.completed,
    "assistant-ended-call-with-hangup-task": Outcome.completed,
    "assistant-forwarded-call": Outcome.completed,
    "silence-timed-out": Outcome.completed,
    "exceeded-max-duration": Outcome.completed,
    # The phone rang and nobody took it ("Phone rang but no answer": customer-did-not-answer,
    # customer-busy, SIP 408/480, "callee was unavailable").
    "customer-busy": Outcome.busy,
    "customer-did-not-answer": Outcome.no_answer,
    "call.in-progress.error-providerfault-outbound-sip-408-request-timeout": Outcome.no_answer,
    "call.in-progress.error-providerfault-outbound-sip-480-temporarily-unavailable": (
        Outcome.no_answer
    ),
    "voicemail": Outcome.voicemail,
    "twilio-reported-customer-misdialed": Outcome.invalid_number,
    "manually-canceled": Outcome.hung_up,
}

_RESULT_STATUSES = {
    Outcome.completed: CallStatus.completed,
    Outcome.voicemail: CallStatus.voicemail,
    Outcome.no_answer: CallStatus.no_answer,
    Outcome.busy: CallStatus.busy,
}
_EVALUATION_NAME = "success_evaluation"
_PASSED = frozenset({"true", "pass", "passed", "success", "successful", "yes"})
_FAILED = frozenset({"false", "fail", "failed", "failure", "unsuccessful", "no"})


def outcome_of(ended_reason: str | None) -> Outcome:
    return ENDED_REASONS.get(ended_reason or "", Outcome.provider_error)


# --- what Vapi sends (only the fields read here; everything else is ignored) ------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class Artifact(_Model):
    messages: list[dict[str, Any]] = Field(default_factory=list)
    transcript: str | None = None


class Analysis(_Model):
    summary: str | None = None
    structured_data: dict[str, Any] | None = Field(None, alias="structuredData")
    # A string in the spec ("'PassFail': A simple 'true' if call passed, 'false' if not").
    success_evaluation: str | bool | int | float | None = Field(None, alias="successEvaluation")


class Monitor(_Model):
    control_url: str | None = Field(None, alias="controlUrl")


class SubscriptionLimits(_Model):
    concurrency_blocked: bool = Field(False, alias="concurrencyBlocked")
    concurrency_limit: float | None = Field(None, alias="concurrencyLimit")


class VapiCall(_Model):
    """`Call` (GET /call/{id}, the 201 of POST /call, `message.call`)."""

    id: str
    status: str | None = None
    ended_reason: str | None = Field(None, alias="endedReason")
    ended_message: str | None = Field(None, alias="endedMessage")
    created_at: datetime | None = Field(None, alias="createdAt")
    started_at: datetime | None = Field(None, alias="startedAt")
    ended_at: datetime | None = Field(None, alias="endedAt")
    assistant_overrides: dict[str, Any] | None = Field(None, alias="assistantOverrides")
    artifact: Artifact | None = None
    analysis: Analysis | None = None
    monitor: Monitor | None = None
    subscription_limits: SubscriptionLimits | None = Field(None, alias="subscriptionLimits")

    @property
    def attempt_id(self) -> str | None:
        return _metadata_attempt(self.assistant_overrides)


class ServerMessageBody(_Model):
    """`ServerMessage.message`: `status-update` and `end-of-call-report` are read."""

    type: str
    status: str | None = None
    ended_reason: str | None = Field(None, alias="endedReason")
    started_at: datetime | None = Field(None, alias="startedAt")
    ended_at: datetime | None = Field(None, alias="endedAt")
    call: VapiCall | None = None
    assistant: dict[str, Any] | None = None
    artifact: Artifact | None = None
    analysis: Analysis | None = None


class ServerMessage(_Model):
    message: ServerMessageBody


class VapiAssistant(_Model):
    id: str
    name: str | None = None
    first_message: str | None = Field(None, alias="firstMessage")
    model: dict[str, Any] | None = None
    created_at: datetime | None = Field(None, alias="createdAt")

    @property
    def prompt(self) -> str:
        """The system prompt: `model.messages[role == "system"].content`."""
        messages = (self.model or {}).get("messages") or []
        parts = [
            item["content"]
            for item in messages
            if isinstance(item, dict)
            and item.get("role") == "system"
            and isinstance(item.get("content"), str)
        ]
        return "\n\n".join(parts)


class VapiPhoneNumber(_Model):
    id: str
    provider: str | None = None
    number: str | None = None
    name: str | None = None
    status: str | None = None
    created_at: datetime | None = Field(None, alias="createdAt")


def _metadata_attempt(container: Mapping[str, Any] | None) -> str | None:
    metadata = (container or {}).get("metadata")
    value = metadata.get("attempt_id") if isinstance(metadata, Mapping) else None
    return value if isinstance(value, str) and value else None


# --- what we send ---------------------------------------------------------------------------


@dataclass(frozen=True)
class VoicemailDetection:
    """`assistantOverrides.voicemailDetection` (Voicemail Detection: Vapi's own detector is
    the recommended one)."""

    provider: str = "vapi"

    def body(self) -> dict[str, Any]:
        return {"provider": self.provider}


@dataclass(frozen=True)
class CreateCall:
    """The body of `POST /call` (CreateCallDTO) for one outbound call."""

    assistant_id: str
    phone_number_id: str
    customer_number: str
    variable_values: Mapping[str, Any]
    metadata: Mapping[str, str]
    # TransportConfigurationTwilio.timeout: seconds of ringing, 1 to 600.
    ringing_timeout_seconds: int
    voicemail_detection: VoicemailDetection | None = None
    voicemail_message: str | None = None

    def body(self) -> dict[str, Any]:
        overrides: dict[str, Any] = {
            "variableValues": dict(self.variable_values),
            "metadata": dict(self.metadata),
            "transportConfigurations": [
                {"provider": "twilio", "timeout": self.ringing_timeout_seconds}
            ],
        }
        if self.voicemail_detection is not None:
            overrides["voicemailDetection"] = self.voicemail_detection.body()
        if self.voicemail_message:
            overrides["voicemailMessage"] = self.voicemail_message
        return {
            "assistantId": self.assistant_id,
            "phoneNumberId": self.phone_number_id,
            "customer": {"number": self.customer_number},
            "assistantOverrides": overrides,
        }


def create_call(request: CallRequest) -> CreateCall:
    voicemail = request.voicemail or {}
    action = voicemail.get("action")
    message = None
    if action == "leave_message" and voicemail.get("message"):
        # "the message that the assistant will say if the call is forwarded to voicemail"
        # (max 1000 characters); without one the assistant's own applies, and with neither
        # Vapi hangs up.
        message = render(str(voicemail["message"]), request.variables)[0][:1000]
    return CreateCall(
        assistant_id=request.external_agent_id or "",
        phone_number_id=request.from_external_id or "",
        customer_number=request.to,
        variable_values=request.variables,
        metadata={
            "attempt_id": request.attempt_id,
            "batch_id": request.batch_id,
            "recipient_id": request.recipient_id,
        },
        ringing_timeout_seconds=min(600, max(1, round(request.ringing_timeout_ms / 1000))),
        voicemail_detection=VoicemailDetection() if action else None,
        voicemail_message=message,
    )


# --- reading a call ---------------------------------------------------------------------------


def transcript_of(artifact: Artifact | None) -> list[dict[str, Any]]:
    """`artifact.messages` as turns: the assistant's (role "bot", or "assistant" in the
    docs' examples) and the customer's ("user"); system and tool messages are left out."""
    turns: list[dict[str, Any]] = []
    for item in artifact.messages if artifact else []:
        role = item.get("role")
        text = item.get("message")
        if role in ("bot", "assistant"):
            who = "agent"
        elif role == "user":
            who = "user"
        else:
            continue
        if not isinstance(text, str):
            continue
        offset = item.get("secondsFromStart")
        seconds = (
            float(offset)
            if isinstance(offset, int | float) and not isinstance(offset, bool)
            else 0.0
        )
        turns.append({"role": who, "message": text, "time_in_call_secs": seconds})
    return turns


def evaluations_of(analysis: Analysis | None) -> dict[str, Any] | None:
    """`analysis.successEvaluation` as the one criterion `success_evaluation`: 'true'/'false'
    with the default PassFail rubric; other rubrics' grades are `unknown`, kept as rationale."""
    raw = analysis.success_evaluation if analysis else None
    if raw is None or raw == "":
        return None
    text = str(raw).strip()
    if isinstance(raw, bool):
        result = "success" if raw else "failure"
    elif text.lower() in _PASSED:
        result = "success"
    elif text.lower() in _FAILED:
        result = "failure"
    else:
        result = "unknown"
    return {_EVALUATION_NAME: {"result": result, "rationale": text}}


def data_collection_of(analysis: Analysis | None) -> dict[str, Any] | None:
    data = analysis.structured_data if analysis else None
    if not data:
        return None
    return {name: {"value": value, "rationale": ""} for name, value in data.items()}


def _duration(started: datetime | None, ended: datetime | None) -> float | None:
    if started is None or ended is None:
        return None
    return max(0.0, (ended - started).total_seconds())


def ended_result(
    *,
    call_id: str | None,
    ended_reason: str | None,
    ended_message: str | None = None,
    started_at: datetime | None = None,
    ended_at: datetime | None = None,
    artifact: Artifact | None = None,
    analysis: Analysis | None = None,
) -> CallResult:
    """A call Vapi reports ended, in our words."""
    started = to_utc(started_at) if started_at else None
    ended = to_utc(ended_at) if ended_at else None
    outcome = outcome_of(ended_reason)
    if outcome == Outcome.completed:
        return CallResult(
            status=CallStatus.completed,
            started_at=started,
            ended_at=ended,
            duration_seconds=_duration(started, ended),
            transcript=transcript_of(artifact),
            evaluations=evaluations_of(analysis),
            data_collection=data_collection_of(analysis),
            call_id=call_id,
        )
    words = f"Vapi ended the call: {ended_reason or 'no endedReason'}"
    if ended_reason == CONCURRENCY_REASON:
        words = f"Vapi's concurrency limit was reached, the call never rang ({ended_reason})"
    if ended_message:
        words += f" ({ended_message})"
    return CallResult(
        status=_RESULT_STATUSES.get(outcome, CallStatus.failed),
        failure_reason=outcome.value,
        started_at=started,
        ended_at=ended,
        duration_seconds=_duration(started, ended),
        call_id=call_id,
        message=words,
    )


def result_of(call: VapiCall) -> CallResult:
    """A Call object (GET /call/{id}) as a CallResult."""
    if call.status != "ended":
        started = to_utc(call.started_at) if call.started_at else None
        return CallResult(status=CallStatus.in_progress, started_at=started, call_id=call.id)
    return ended_result(
        call_id=call.id,
        ended_reason=call.ended_reason,
        ended_message=call.ended_message,
        started_at=call.started_at,
        ended_at=call.ended_at,
        artifact=call.artifact,
        analysis=call.analysis,
    )


def events_path(connection_id: str) -> str:
    return f"/v1/provider-events/vapi/{connection_id}"


def _message_of(response: httpx.Response) -> str:
    """What Vapi said in an error answer (`message`, a string or a list, and `error`)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        said = body.get("message")
        if isinstance(said, list):
            said = "; ".join(str(part) for part in said)
        parts = [str(part) for part in (body.get("error"), said) if part]
        if parts:
            return ": ".join(parts)[:_ERROR_SNIPPET]
    text = " ".join(response.text.split())
    return text[:_ERROR_SNIPPET] + ("…" if len(text) > _ERROR_SNIPPET else "")


def _mentions_concurrency(response: httpx.Response) -> bool:
    return "concurrency" in _message_of(response).lower()


class VapiProvider(HostedPlatform):
    name = "vapi"
    default_base_url = DEFAULT_BASE_URL

    def __init__(self, **connection: Any) -> None:
        super().__init__(**connection)
        self._api_key = self._credential("api_key")
        self._webhook_secret = self._credential("webhook_secret")
        # Instance attributes so tests (and a patient operator) can change them.
        self.page_size = PAGE_SIZE
        self.read_tries = READ_TRIES
        self.backoff_start = BACKOFF_START_SECONDS
        self.analysis_grace = ANALYSIS_GRACE_SECONDS

    # --- the wire ------------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self._api_key}",
            "Accept": "application/json",
            "User-Agent": "batch-dashboard",
        }

    def _refusal(self, response: httpx.Response, doing: str) -> ProviderError:
        """A non-2xx answer: what it means for the call, with Vapi's words (never a key)."""
        status = response.status_code
        said = _message_of(response)
        if status == 429:
            return NotPlaced(
                f"Vapi asked to wait while {doing} (429 {said})".strip(),
                retry_after=self._retry_after(response),
            )
        if status >= 500:
            return ProviderError(f"Vapi failed while {doing}: {status} {said}".strip())
        return ProviderError(
            f"Vapi refused {doing}: {status} {said}".strip(),
            retryable=False,
            account=account_refusal(status),
        )

    def _retry_after(self, response: httpx.Response) -> float | None:
        seconds = retry_after_seconds(response.headers.get("retry-after"), self.clock.now())
        return None if seconds is None else min(seconds, RETRY_AFTER_CAP_SECONDS)

    def _no_answer(self, error: Exception, doing: str) -> ProviderError:
        # A timeout or a broken connection: Vapi may have acted on it.
        if isinstance(error, httpx.TimeoutException):
            what = f"no answer within {self.timeout:g} s"
        else:
            what = f"connection failed ({type(error).__name__})"
        return ProviderError(f"Vapi did not answer while {doing}: {what}")

    def _backoff(self, tried: int) -> float:
        return self.backoff_start * 2 ** (tried - 1) * random.uniform(0.5, 1.0)

    async def _read(self, path: str, doing: str, params: dict[str, Any] | None = None) -> Any:
        """A GET answered 2xx, as JSON; retries a 429, a 5xx or no answer a few times."""
        client = self._async_client()
        failure: ProviderError | None = None
        for tried in range(1, self.read_tries + 1):
            wait = self._backoff(tried)
            try:
                response = await client.get(path, params=params)
            except httpx.TransportError as error:
                failure = self._no_answer(error, doing)
            else:
                if response.is_success:
                    return self._json(response, doing)
                failure = self._refusal(response, doing)
                if not failure.retryable:
                    raise failure
                if isinstance(failure, NotPlaced) and failure.retry_after is not None:
                    wait = failure.retry_after
            if tried < self.read_tries:
                await asyncio.sleep(wait)
        assert failure is not None
        raise ProviderError(str(failure), retryable=True)

    def _read_sync(self, client: httpx.Client, path: str, doing: str, **params: Any) -> Any:
        try:
            response = client.get(path, params=params or None)
        except httpx.TransportError as error:
            raise self._no_answer(error, doing) from None
        if not response.is_success:
            raise self._refusal(response, doing)
        return self._json(response, doing)

    @staticmethod
    def _json(response: httpx.Response, doing: str) -> Any:
        try:
            return response.json()
        except ValueError:
            raise ProviderError(
                f"Vapi's answer while {doing} is not JSON", retryable=False
            ) from None

    # --- placing -------------------------------------------------------------------------------

    async def _place(self, request: CallRequest) -> CallResult | ProviderError:
        if not request.external_agent_id or not request.from_external_id:
            missing = "assistant id" if not request.external_agent_id else "phone number id"
            return ProviderError(
                f"Vapi needs the agent's assistantId and the number's phoneNumberId: the "
                f"{missing} is missing (import the agents and numbers of the connection)",
                retryable=False,
            )
        doing = "creating a call"
        try:
            response = await self._async_client().post("/call", json=create_call(request).body())
        except httpx.TransportError as error:
            return self._no_answer(error, doing)
        if not response.is_success:
            if response.status_code == 400 and _mentions_concurrency(response):
                return NotPlaced(f"Vapi's concurrency limit: {_message_of(response)}")
            return self._refusal(response, doing)
        try:
            call = VapiCall.model_validate(response.json())
        except (ValueError, ValidationError):
            # A 2xx we cannot read: the call probably exists; settled later by attempt id.
            return ProviderError(f"Vapi's answer while {doing} is not a Call object")
        limits = call.subscription_limits
        if (limits is not None and limits.concurrency_blocked) or (
            call.ended_reason == CONCURRENCY_REASON
        ):
            # "New calls receive a concurrencyBlocked: true response and do not connect."
            limit = (
                f" of {limits.concurrency_limit:g}" if limits and limits.concurrency_limit else ""
            )
            return NotPlaced(f"Vapi's concurrency limit{limit} calls is reached")
        log.info("vapi: attempt %s is call %s", request.attempt_id, call.id)
        return result_of(call)

    async def place_calls(
        self, requests: Sequence[CallRequest]
    ) -> list[CallResult | ProviderError]:
        slots = asyncio.Semaphore(PLACE_CONCURRENCY)

        async def one(request: CallRequest) -> CallResult | ProviderError:
            async with slots:
                return await self._place(request)

        return list(await asyncio.gather(*(one(request) for request in requests)))

    # --- asking, hanging up --------------------------------------------------------------------

    async def _get_call(self, call_id: str) -> VapiCall:
        data = await self._read(f"/call/{quote(call_id, safe='')}", f"looking up call {call_id}")
        try:
            return VapiCall.model_validate(data)
        except ValidationError:
            raise ProviderError(
                f"Vapi's answer about call {call_id} is not a Call object", retryable=False
            ) from None

    async def _find_call(self, attempt_id: str) -> VapiCall | None:
        """The account's call carrying this attempt id in its metadata, among its recent ones
        (GET /call has no metadata filter)."""
        since = to_rfc3339(self.clock.now() - LOOKUP_WINDOW)
        pages = _keyset_pages(
            lambda params: self._read("/call", f"looking for attempt {attempt_id}", params),
            self.page_size,
            {"createdAtGt": since},
            LOOKUP_PAGES,
        )
        async for item in pages:
            overrides = item.get("assistantOverrides") if isinstance(item, dict) else None
            if _metadata_attempt(overrides if isinstance(overrides, dict) else None) == (
                attempt_id
            ):
                try:
                    return VapiCall.model_validate(item)
                except ValidationError:
                    return None
        return None

    async def call_status(self, attempt_id: str, call_id: str | None = None) -> CallResult | None:
        if call_id is None:
            found = await self._find_call(attempt_id)
            if found is None:
                # Nobody can say whether it rang: it must not be placed again.
                raise ProviderError(
                    f"attempt {attempt_id} has no Vapi call id and none of the account's "
                    "recent calls carries it: its outcome cannot be known",
                    retryable=False,
                )
            call = found
        else:
            call = await self._get_call(call_id)
        result = result_of(call)
        if result.connected and not _analysed(call) and call.ended_at is not None:
            ready = to_utc(call.ended_at) + timedelta(seconds=self.analysis_grace)
            if self.clock.now() < ready:
                # Its end-of-call report (transcript, evaluation, data) is still being made.
                return CallResult(
                    status=CallStatus.in_progress,
                    started_at=result.started_at,
                    expected_end=ready,
                    call_id=call.id,
                )
        return result

    async def hang_up(self, attempt_id: str, call_id: str | None = None) -> None:
        """Live Call Control: `POST {call.monitor.controlUrl}` with `{"type": "end-call"}`
        (the control URL is the call's own; Vapi's examples send it no API key)."""
        if call_id is None:
            log.info("vapi: attempt %s has no call id, nothing to hang up", attempt_id)
            return
        call = await self._get_call(call_id)
        if call.status == "ended":
            return
        control = call.monitor.control_url if call.monitor else None
        if not control or urlsplit(control).scheme not in ("http", "https"):
            log.warning("vapi: call %s has no control URL yet, it cannot be hung up", call_id)
            return
        doing = f"hanging up call {call_id}"
        try:
            async with httpx.AsyncClient(timeout=httpx.Timeout(self.timeout)) as client:
                response = await client.post(control, json={"type": "end-call"})
        except httpx.TransportError as error:
            raise self._no_answer(error, doing) from None
        if not response.is_success:
            raise self._refusal(response, doing)

    # --- the account (sync) ----------------------------------------------------------------------

    def check(self) -> None:
        """One harmless authenticated read: one assistant of the account."""
        with self._sync_client() as client:
            self._read_sync(client, "/assistant", "reading the account's assistants", limit=1)

    def _list(self, path: str, doing: str) -> Iterator[dict[str, Any]]:
        with self._sync_client() as client:
            yield from _keyset_pages_sync(
                lambda params: self._read_sync(client, path, doing, **params),
                self.page_size,
                {},
            )

    def list_agents(self) -> list[ImportedAgent]:
        """The account's assistants: name, first message and system prompt."""
        agents = []
        for item in self._list("/assistant", "listing the account's assistants"):
            try:
                assistant = VapiAssistant.model_validate(item)
            except ValidationError:
                continue
            agents.append(
                ImportedAgent(
                    external_agent_id=assistant.id,
                    name=assistant.name or assistant.id,
                    first_message=assistant.first_message or "",
                    prompt=assistant.prompt,
                )
            )
        return agents

    def incoming_numbers(self) -> list[dict[str, Any]]:
        """The account's phone numbers with a number (SIP-only ones have none)."""
        numbers = []
        for item in self._list("/phone-number", "listing the account's phone numbers"):
            try:
                number = VapiPhoneNumber.model_validate(item)
            except ValidationError:
                continue
            if not number.number:
                continue
            numbers.append(
                {
                    "phone_number": number.number,
                    "external_id": number.id,
                    "label": number.name or number.number,
                    "voice": number.status in (None, "active"),
                }
            )
        return numbers

    # --- its events ----------------------------------------------------------------------------

    def authenticate(self, headers: Mapping[str, str], body: bytes, now: datetime) -> None:
        """The server credential, exactly as Vapi sends it; EventRefused otherwise."""
        secret = self._webhook_secret
        if not secret:
            raise EventRefused("the connection has no webhook_secret")
        lowered = {name.lower(): value for name, value in headers.items()}
        if SECRET_HEADER in lowered:
            if not _same(lowered[SECRET_HEADER], secret):
                raise EventRefused("wrong X-Vapi-Secret")
            return
        authorization = lowered.get("authorization", "")
        if authorization:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not _same(token.strip(), secret):
                raise EventRefused("wrong Authorization bearer token")
            return
        if SIGNATURE_HEADER in lowered:
            _check_hmac(
                secret,
                lowered[SIGNATURE_HEADER],
                lowered.get(TIMESTAMP_HEADER),
                body,
                now,
            )
            return
        raise EventRefused("no X-Vapi-Secret, Authorization or x-signature header")

    def read_event(
        self, *, url: str, headers: Mapping[str, str], body: bytes, now: datetime
    ) -> list[PlatformEvent]:
        """One POST to the events URL: authenticated, then read (`[]` for the message types
        that say nothing about a call's end)."""
        self.authenticate(headers, body, now)
        return parse_server_message(body)


def _analysed(call: VapiCall) -> bool:
    analysis = call.analysis
    return analysis is not None and bool(
        analysis.summary or analysis.structured_data or analysis.success_evaluation is not None
    )


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def hmac_signature(secret: str, timestamp: str, body: bytes, algorithm: str = "sha256") -> str:
    """Vapi's HMAC credential with its defaults: hex HMAC of "{timestamp}.{body}"."""
    payload = HMAC_PAYLOAD.format(timestamp=timestamp, body="").encode() + body
    return hmac.new(secret.encode(), payload, getattr(hashlib, algorithm)).hexdigest()


def _check_hmac(
    secret: str, signature: str, timestamp: str | None, body: bytes, now: datetime
) -> None:
    if not timestamp:
        raise EventRefused("x-signature without x-timestamp")
    try:
        moment = float(timestamp)
    except ValueError:
        raise EventRefused("x-timestamp is not a number") from None
    if not math.isfinite(moment):
        raise EventRefused("x-timestamp is not a number")
    # Seconds or milliseconds (Vapi does not say): a 13-digit value is in milliseconds.
    seconds = moment / 1000 if moment > 1e11 else moment
    if abs(to_utc(now).timestamp() - seconds) > HMAC_TOLERANCE_SECONDS:
        raise EventRefused("x-timestamp outside the tolerance")
    given = signature.strip()
    if given.lower().startswith("sha256="):
        given = given[len("sha256=") :]
    digest = bytes.fromhex(hmac_signature(secret, timestamp, body))
    hex_ok = _same(given.lower(), digest.hex())
    b64_ok = _same(given, base64.b64encode(digest).decode())
    if not (hex_ok or b64_ok):
        raise EventRefused("wrong x-signature")


def parse_server_message(body: bytes) -> list[PlatformEvent]:
    """A server message `{"message": {...}}` as events; ValueError when it is not one."""
    try:
        envelope = ServerMessage.model_validate_json(body)
    except ValidationError as error:
        first = error.errors()[0] if error.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ())) or "body"
        raise ValueError(f"not a Vapi server message: {where}: {first.get('msg', error)}") from None
    message = envelope.message
    call = message.call
    attempt_id = (call.attempt_id if call else None) or _metadata_attempt(message.assistant)
    call_id = call.id if call else None
    if message.type == "status-update":
        if message.status is None:
            raise ValueError("not a Vapi server message: message.status is required")
        if message.status in LIVE_STATUSES:
            started = call.started_at if call else None
            result = CallResult(
                status=CallStatus.in_progress,
                started_at=to_utc(started) if started else None,
                call_id=call_id,
            )
        elif message.status == "ended":
            reason = message.ended_reason or (call.ended_reason if call else None)
            if outcome_of(reason) == Outcome.completed:
                # A conversation: its end comes with the end-of-call report, which carries the
                # transcript and the analysis this message lacks.
                return []
            result = ended_result(
                call_id=call_id,
                ended_reason=reason,
                ended_message=call.ended_message if call else None,
                started_at=call.started_at if call else None,
                ended_at=call.ended_at if call else None,
            )
        else:
            return []
    elif message.type == "end-of-call-report":
        if message.ended_reason is None:
            raise ValueError("not a Vapi server message: message.endedReason is required")
        result = ended_result(
            call_id=call_id,
            ended_reason=message.ended_reason,
            ended_message=call.ended_message if call else None,
            started_at=message.started_at or (call.started_at if call else None),
            ended_at=message.ended_at or (call.ended_at if call else None),
            artifact=message.artifact or (call.artifact if call else None),
            analysis=message.analysis or (call.analysis if call else None),
        )
    else:
        return []
    if attempt_id is None and call_id is None:
        return []
    return [PlatformEvent(attempt_id=attempt_id, call_id=call_id, result=result)]


# --- Vapi's lists: plain arrays, `limit` and createdAt filters -----------------------------------


def _created(item: Any) -> str | None:
    value = item.get("createdAt") if isinstance(item, dict) else None
    return value if isinstance(value, str) else None


def _next_params(page: list[Any], base: dict[str, Any], size: int) -> dict[str, Any] | None:
    """The filter for the page after this one, whichever way Vapi sorts (newest first, as its
    paginated lists do by default, or oldest first)."""
    if len(page) < size:
        return None
    stamps = [stamp for stamp in map(_created, page) if stamp]
    if len(stamps) < 2:
        return None
    first, last = _parse_time(stamps[0]), _parse_time(stamps[-1])
    if first is None or last is None:
        return None
    # Inclusive bounds: calls created in the same millisecond are not skipped (the ones seen
    # already are left out by id).
    if first >= last:  # newest first: go on from the oldest seen
        return {**base, "createdAtLe": stamps[-1]}
    return {**base, "createdAtGe": stamps[-1]}


def _parse_time(value: str) -> datetime | None:
    try:
        return to_utc(datetime.fromisoformat(value))
    except ValueError:
        return None


def _keyset_pages_sync(
    fetch: Callable[[dict[str, Any]], Any], size: int, base: dict[str, Any], most: int = 1000
) -> Iterator[dict[str, Any]]:
    seen: set[str] = set()
    params: dict[str, Any] | None = {**base, "limit": size}
    for _ in range(most):
        if params is None:
            return
        page = fetch(params)
        if not isinstance(page, list):
            raise ProviderError("Vapi's list answer is not a list", retryable=False)
        fresh = [item for item in page if isinstance(item, dict) and item.get("id") not in seen]
        if not fresh:
            return
        for item in fresh:
            seen.add(str(item.get("id")))
            yield item
        params = _next_params(page, {**base, "limit": size}, size)


async def _keyset_pages(
    fetch: Callable[[dict[str, Any]], Any], size: int, base: dict[str, Any], most: int
):  # -> AsyncIterator[dict[str, Any]]
    seen: set[str] = set()
    params: dict[str, Any] | None = {**base, "limit": size}
    for _ in range(most):
        if params is None:
            return
        page = await fetch(params)
        if not isinstance(page, list):
            raise ProviderError("Vapi's list answer is not a list", retryable=False)
        fresh = [item for item in page if isinstance(item, dict) and item.get("id") not in seen]
        if not fresh:
            return
        for item in fresh:
            seen.add(str(item.get("id")))
            yield item
        params = _next_params(page, {**base, "limit": size}, size)


__all__ = [
    "ENDED_REASONS",
    "CreateCall",
    "VapiCall",
    "VapiProvider",
    "create_call",
    "events_path",
    "hmac_signature",
    "outcome_of",
    "parse_server_message",
    "result_of",
]
