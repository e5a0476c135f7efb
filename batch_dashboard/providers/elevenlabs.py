"""ElevenLabs Agents (Conversational AI): calls placed by the workspace's ElevenLabs account
through one of its phone numbers (Twilio-backed or a SIP trunk), answered by one of its agents.
ElevenLabs reports each call's end with post-call webhooks signed with the workspace's HMAC
secret.

Field names and values are ElevenLabs' own (docs/providers.md ("ElevenLabs") cites the page or SDK
file of each; tests/fakes/elevenlabs_SOURCES.md lists every rule with its source). Plain httpx,
no SDK: the `elevenlabs` package is not a dependency, and the one scheme it owns (the webhook
signature, `webhooks_custom.py::construct_event`) is implemented here and checked in the tests
against a vector computed by the SDK's own function.

ElevenLabs takes no idempotency key for a call. The attempt id travels with the call twice: as the
dynamic variable `batch_attempt_id` (echoed in the conversation and its webhooks) and as
`conversation_initiation_client_data.user_id` (a filter of the conversations list). So a call
whose answer was lost can still be found by its attempt id. A call that cannot be found is never
dialed again; it ends `outcome_unknown`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import math
import random
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

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
)
from batch_dashboard.providers.hosted import HostedPlatform
from batch_dashboard.retry_after import retry_after_seconds
from batch_dashboard.services.outcomes import Outcome

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.elevenlabs.io"
TIMEOUT_SECONDS = 15.0
API_KEY_HEADER = "xi-api-key"
SIGNATURE_HEADER = "ElevenLabs-Signature"
# construct_event refuses a timestamp more than 30 minutes old and sets no bound in the future.
SIGNATURE_TOLERANCE = timedelta(minutes=30)
# The dynamic variable that carries our attempt id (the conversation and its webhooks echo it).
ATTEMPT_VARIABLE = "batch_attempt_id"
# Dynamic variables with this prefix are ElevenLabs' own; custom ones may not use it.
RESERVED_PREFIX = "system__"
# Placements sent at once by one adapter (the claim already paces them per account).
PLACE_CONCURRENCY = 10
# Reads (conversation, lists) are safe to repeat: they are tried this often on a transient fault.
READ_TRIES = 3
READ_BACKOFF_SECONDS = 0.25
# Page sizes (both endpoints accept at most 100).
AGENTS_PAGE_SIZE = 100
LOOKUP_PAGE_SIZE = 5
_SNIPPET = 200

OUTBOUND_CALL_PATHS = {
    "twilio": "/v1/convai/twilio/outbound-call",
    "sip_trunk": "/v1/convai/sip-trunk/outbound-call",
}
# `status` of a conversation (GetConversationResponseModelStatus).
LIVE_STATUSES = frozenset({"initiated", "in-progress", "processing"})
# `detail.status` codes that mean "nothing was done, try later" (Error messages page, code 429).
NOT_PLACED_CODES = frozenset({"too_many_concurrent_requests", "system_busy"})
# The system tool's result when the agent decided it reached a voicemail (SDK:
# ConversationHistoryTranscriptSystemToolResultCommonModelOutputResult_VoicemailDetectionSuccess).
VOICEMAIL_TOOL = "voicemail_detection"
VOICEMAIL_RESULT = "voicemail_detection_success"

# How each ElevenLabs ending maps into the outcome vocabulary (docs/providers.md ("ElevenLabs"),
# "Outcomes", cites the source of each line).
OUTCOME_TABLE: tuple[tuple[str, Outcome], ...] = (
    ("conversation `done`, no voicemail tool result", Outcome.completed),
    ("conversation `done` with a `voicemail_detection_success` tool result", Outcome.voicemail),
    ("conversation `failed`", Outcome.provider_error),
    ("call_initiation_failure `busy`", Outcome.busy),
    ("call_initiation_failure `no-answer`", Outcome.no_answer),
    ("call_initiation_failure with SIP 603 (any reason)", Outcome.declined),
    ("call_initiation_failure `unknown` with SIP 486 or 600", Outcome.busy),
    ("call_initiation_failure `unknown` with SIP 408 or 480", Outcome.no_answer),
    ("call_initiation_failure `unknown` with SIP 404, 484 or 604", Outcome.invalid_number),
    ("call_initiation_failure `unknown`, other SIP codes or none", Outcome.provider_error),
    ("outbound call answered `success: false`", Outcome.provider_error),
)
FAILURE_REASONS: dict[str, Outcome] = {"busy": Outcome.busy, "no-answer": Outcome.no_answer}
SIP_DECLINED = frozenset({603})
SIP_BUSY = frozenset({486, 600})
SIP_NO_ANSWER = frozenset({408, 480})
SIP_INVALID_NUMBER = frozenset({404, 484, 604})
_STATUS_OF = {
    Outcome.busy: CallStatus.busy,
    Outcome.no_answer: CallStatus.no_answer,
    Outcome.voicemail: CallStatus.voicemail,
}


# --- ElevenLabs' shapes ------------------------------------------------------------------------


class _Model(BaseModel):
    """ElevenLabs adds fields over time: unknown ones are ignored, the ones we read are typed."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)


_M = TypeVar("_M", bound=_Model)


@dataclass(frozen=True)
class OutboundCall:
    """The body of `POST /v1/convai/{twilio|sip-trunk}/outbound-call` (SDK `outbound_call`)."""

    agent_id: str
    agent_phone_number_id: str
    to_number: str
    dynamic_variables: dict[str, str | int | float | bool]
    user_id: str
    ringing_timeout_secs: int | None = None

    def to_wire(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "agent_id": self.agent_id,
            "agent_phone_number_id": self.agent_phone_number_id,
            "to_number": self.to_number,
            "conversation_initiation_client_data": {
                "user_id": self.user_id,
                "dynamic_variables": dict(self.dynamic_variables),
            },
        }
        if self.ringing_timeout_secs is not None:
            body["telephony_call_config"] = {"ringing_timeout_secs": self.ringing_timeout_secs}
        return body


class OutboundCallAnswer(_Model):
    """TwilioOutboundCallResponse (`callSid` camelCase on the wire) or SipTrunkOutboundCallResponse."""

    success: bool
    message: str = ""
    conversation_id: str | None = None
    call_sid: str | None = Field(default=None, alias="callSid")
    sip_call_id: str | None = None


class ToolResult(_Model):
    type: str | None = None
    tool_name: str | None = None
    is_error: bool = False
    result: dict[str, Any] | None = None


class TranscriptTurn(_Model):
    role: str
    message: str | None = None
    time_in_call_secs: float = 0
    tool_results: list[ToolResult] | None = None


class EvaluationResult(_Model):
    criteria_id: str | None = None
    result: str = "unknown"
    rationale: str | None = ""


class DataCollectionResult(_Model):
    data_collection_id: str | None = None
    value: Any = None
    rationale: str | None = ""


class Analysis(_Model):
    evaluation_criteria_results: dict[str, EvaluationResult] | None = None
    data_collection_results: dict[str, DataCollectionResult] | None = None
    call_successful: str | None = None
    transcript_summary: str | None = None


class ConversationError(_Model):
    code: int | None = None
    reason: str | None = None


class ConversationMetadata(_Model):
    start_time_unix_secs: float | None = None
    call_duration_secs: float | None = None
    termination_reason: str | None = None
    error: ConversationError | None = None


class ClientData(_Model):
    user_id: str | None = None
    dynamic_variables: dict[str, Any] | None = None


class Conversation(_Model):
    """`GET /v1/convai/conversations/{id}`, and the `data` of a post_call_transcription webhook
    (the docs say the two have the same format)."""

    conversation_id: str
    agent_id: str | None = None
    status: str
    user_id: str | None = None
    transcript: list[TranscriptTurn] | None = None
    metadata: ConversationMetadata = Field(default_factory=ConversationMetadata)
    analysis: Analysis | None = None
    conversation_initiation_client_data: ClientData | None = None


class FailureMetadata(_Model):
    type: str | None = None
    body: dict[str, Any] | None = None


class CallInitiationFailure(_Model):
    """The `data` of a call_initiation_failure webhook."""

    conversation_id: str
    agent_id: str | None = None
    failure_reason: str | None = None
    metadata: FailureMetadata | None = None


class WebhookEnvelope(_Model):
    type: str
    # A number on the post-call webhooks page, "string" on the workspace webhooks page.
    event_timestamp: float | str | None = None
    data: dict[str, Any]


class PhoneNumber(_Model):
    phone_number: str
    phone_number_id: str
    label: str | None = ""
    provider: str | None = None
    supports_outbound: bool | None = None


class AgentSummary(_Model):
    agent_id: str
    name: str = ""
    archived: bool | None = None


class AgentsPage(_Model):
    agents: list[AgentSummary]
    next_cursor: str | None = None
    has_more: bool = False


class PromptConfig(_Model):
    prompt: str | None = None


class AgentConfig(_Model):
    first_message: str | None = None
    prompt: PromptConfig | None = None


class ConversationalConfig(_Model):
    agent: AgentConfig | None = None


class AgentDetail(_Model):
    agent_id: str
    name: str = ""
    conversation_config: ConversationalConfig | None = None


class ConversationSummary(_Model):
    conversation_id: str
    start_time_unix_secs: float | None = None


class ConversationsPage(_Model):
    conversations: list[ConversationSummary]
    next_cursor: str | None = None
    has_more: bool = False


# --- the signature -----------------------------------------------------------------------------


def signature_digest(secret: str, timestamp: str, body: bytes) -> str:
    """Hex HMAC-SHA256, keyed with the webhook secret, of `"{t}.{raw body}"`."""
    message = timestamp.encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify_signature(secret: str, header: str | None, body: bytes, now: datetime) -> None:
    """Check `ElevenLabs-Signature: t=<unix secs>,v0=<hex>` as the SDK's construct_event does:
    parts split on `,` and read by their `t=` / `v0=` prefix in any order, the digest compared
    with `v0=`, a timestamp more than 30 minutes before `now` refused (no bound in the future).
    Unlike the SDK, blanks around parts are tolerated, any of several `v0=` may match (a secret
    rotation), and the comparison is constant-time."""
    if not secret:
        raise EventRefused("no ElevenLabs webhook secret is configured for this connection")
    if not header:
        raise EventRefused(f"missing {SIGNATURE_HEADER} header")
    timestamp: str | None = None
    hashes: list[str] = []
    for part in header.split(","):
        part = part.strip()
        if part.startswith("t="):
            timestamp = part[2:]
        elif part.startswith("v0="):
            hashes.append(part[3:])
    if not timestamp or not hashes:
        raise EventRefused("no signature hash found with expected scheme v0")
    try:
        sent = float(int(timestamp))
    except ValueError:
        raise EventRefused("the signature's timestamp is not a number") from None
    if now.timestamp() - sent > SIGNATURE_TOLERANCE.total_seconds():
        raise EventRefused("the signature's timestamp is outside the 30-minute tolerance")
    expected = signature_digest(secret, timestamp, body)
    if not any(hmac.compare_digest(expected, value) for value in hashes):
        raise EventRefused("the signature does not match the body")


# --- ElevenLabs' words → ours ------------------------------------------------------------------


def _time(unix: float | str | None) -> datetime | None:
    """Unix seconds (a number, or a string of one) as an aware UTC datetime; None otherwise."""
    try:
        seconds = float(unix) if unix is not None else math.nan
    except ValueError:
        return None
    if not math.isfinite(seconds):
        return None
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _failed(
    outcome: Outcome, *, call_id: str | None, message: str | None, **times: Any
) -> CallResult:
    return CallResult(
        status=_STATUS_OF.get(outcome, CallStatus.failed),
        failure_reason=outcome.value,
        call_id=call_id,
        message=message,
        **times,
    )


def reached_voicemail(conversation: Conversation) -> bool:
    """The agent's voicemail detection tool said it reached a voicemail: its system tool result
    is `voicemail_detection_success` (or, without a typed result, the tool succeeded)."""
    for turn in conversation.transcript or ():
        for result in turn.tool_results or ():
            if (result.result or {}).get("result_type") == VOICEMAIL_RESULT:
                return True
            if result.tool_name == VOICEMAIL_TOOL and not result.is_error and result.result is None:
                return True
    return False


def attempt_of(conversation: Conversation) -> str | None:
    """Our attempt id, as the conversation echoes it: the dynamic variable first, else user_id."""
    client = conversation.conversation_initiation_client_data
    variables = (client.dynamic_variables if client else None) or {}
    value = variables.get(ATTEMPT_VARIABLE)
    if isinstance(value, str) and value:
        return value
    for user_id in (client.user_id if client else None, conversation.user_id):
        if isinstance(user_id, str) and user_id:
            return user_id
    return None


def conversation_result(conversation: Conversation) -> CallResult:
    """A conversation's state as a CallResult (the GET answer and post_call_transcription alike)."""
    meta = conversation.metadata
    call_id = conversation.conversation_id
    started = _time(meta.start_time_unix_secs)
    duration = meta.call_duration_secs
    if conversation.status in LIVE_STATUSES:
        # `processing`: the call is over, the analysis is not; wait for `done` and its results.
        return CallResult(status=CallStatus.in_progress, started_at=started, call_id=call_id)
    ended = started + timedelta(seconds=duration) if started and duration is not None else None
    times = {"started_at": started, "ended_at": ended, "duration_seconds": duration}
    if conversation.status == "failed":
        words = (meta.error.reason if meta.error else None) or meta.termination_reason
        return _failed(
            Outcome.provider_error,
            call_id=call_id,
            message=f"ElevenLabs failed the conversation: {words}"
            if words
            else "ElevenLabs failed the conversation",
            **times,
        )
    if conversation.status != "done":
        return CallResult(
            status=CallStatus.in_progress,
            started_at=started,
            call_id=call_id,
            warnings=[f"unknown ElevenLabs conversation status {conversation.status!r}"],
        )
    if reached_voicemail(conversation):
        return _failed(
            Outcome.voicemail, call_id=call_id, message=meta.termination_reason or None, **times
        )
    analysis = conversation.analysis or Analysis()
    return CallResult(
        status=CallStatus.completed,
        call_id=call_id,
        transcript=[
            {
                "role": turn.role,
                "message": turn.message,
                "time_in_call_secs": turn.time_in_call_secs,
            }
            for turn in conversation.transcript or ()
            if turn.message  # turns that only call tools carry no words
        ],
        evaluations={
            name: {"result": item.result, "rationale": item.rationale or ""}
            for name, item in (analysis.evaluation_criteria_results or {}).items()
        },
        data_collection={
            name: {"value": item.value, "rationale": item.rationale or ""}
            for name, item in (analysis.data_collection_results or {}).items()
        },
        **times,
    )


def _sip_code(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def initiation_failure_result(
    failure: CallInitiationFailure, *, at: datetime | None = None
) -> CallResult:
    """A call that never connected (busy, no answer, declined, a carrier or trunk error)."""
    meta = failure.metadata or FailureMetadata()
    body = meta.body or {}
    reason = (failure.failure_reason or "").strip().lower()
    if meta.type == "sip":
        code = _sip_code(body.get("sip_status_code"))
        words = body.get("error_reason") or body.get("sip_status")
    else:  # "twilio": Twilio's own StatusCallback form
        code = _sip_code(body.get("SipResponseCode"))
        status = body.get("CallStatus")
        words = f"Twilio {status}" + (f" (SIP {code})" if code else "") if status else None
    if code in SIP_DECLINED:
        outcome = Outcome.declined
    elif reason in FAILURE_REASONS:
        outcome = FAILURE_REASONS[reason]
    elif code in SIP_BUSY:
        outcome = Outcome.busy
    elif code in SIP_NO_ANSWER:
        outcome = Outcome.no_answer
    elif code in SIP_INVALID_NUMBER:
        outcome = Outcome.invalid_number
    else:
        outcome = Outcome.provider_error
    message = f"ElevenLabs could not start the call: {reason or 'unknown'}" + (
        f" ({words})" if words else ""
    )
    return _failed(outcome, call_id=failure.conversation_id, message=message, ended_at=at)


def _short(error: ValidationError) -> str:
    first = error.errors()[0] if error.errors() else {}
    where = ".".join(str(part) for part in first.get("loc", ())) or "body"
    return f"{where}: {first.get('msg', 'invalid')}"


def parse_event(body: bytes) -> list[PlatformEvent]:
    """The calls a (verified) webhook body speaks of; [] for event types we do not read.
    Raises ValueError for a body that is not the documented shape."""
    try:
        raw = json.loads(body)
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError
        raise ValueError(f"the ElevenLabs event is not JSON: {error}") from None
    try:
        envelope = WebhookEnvelope.model_validate(raw)
    except ValidationError as error:
        raise ValueError(
            f"the ElevenLabs event is not a webhook envelope ({_short(error)})"
        ) from None
    at = _time(envelope.event_timestamp)
    try:
        if envelope.type == "post_call_transcription":
            conversation = Conversation.model_validate(envelope.data)
            result = conversation_result(conversation)
            return [PlatformEvent(attempt_of(conversation), conversation.conversation_id, result)]
        if envelope.type == "call_initiation_failure":
            failure = CallInitiationFailure.model_validate(envelope.data)
            result = initiation_failure_result(failure, at=at)
            return [PlatformEvent(None, failure.conversation_id, result)]
    except ValidationError as error:
        raise ValueError(
            f"the ElevenLabs {envelope.type} event is not the documented shape ({_short(error)})"
        ) from None
    return []  # post_call_audio and anything new: nothing about how a call ended


def dynamic_variables(
    request: CallRequest,
) -> tuple[dict[str, str | int | float | bool], list[str]]:
    """The recipient's variables as ElevenLabs takes them (strings, numbers, booleans: no value is
    sent as ""), plus our attempt id; names with the reserved `system__` prefix are left out
    (with a warning)."""
    variables: dict[str, str | int | float | bool] = {}
    warnings: list[str] = []
    for name, value in request.variables.items():
        key = str(name)
        if key.startswith(RESERVED_PREFIX):
            warnings.append(
                f"variable {key} not sent: ElevenLabs reserves the {RESERVED_PREFIX} prefix"
            )
            continue
        if value is None:
            variables[key] = ""
        elif isinstance(value, str | bool | int):
            variables[key] = value
        elif isinstance(value, float):
            variables[key] = value if math.isfinite(value) else str(value)
        else:
            variables[key] = json.dumps(value, default=str, ensure_ascii=False)
    variables[ATTEMPT_VARIABLE] = request.attempt_id
    return variables, warnings


def _platform_words(response: httpx.Response) -> tuple[str | None, str]:
    """ElevenLabs' code and message of an error answer: `{"detail": {"status", "message"}}`,
    `{"detail": "text"}` or a 422 `{"detail": [{"loc", "msg", "type"}]}`."""
    try:
        body = response.json()
    except ValueError:
        text = " ".join(response.text.split())
        return None, text[:_SNIPPET] + ("…" if len(text) > _SNIPPET else "")
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, dict):
        code = detail.get("status") or detail.get("code")
        return (str(code) if code else None), str(detail.get("message") or code or "")[:_SNIPPET]
    if isinstance(detail, list):
        parts = []
        for item in detail[:3]:
            if isinstance(item, dict):
                where = ".".join(str(p) for p in item.get("loc", ()) if p != "body")
                parts.append(
                    f"{where}: {item.get('msg', '')}" if where else str(item.get("msg", ""))
                )
        return "validation_error", "; ".join(parts)[:_SNIPPET]
    if isinstance(detail, str):
        return None, detail[:_SNIPPET]
    return None, json.dumps(body)[:_SNIPPET]


def _said(status: int, code: str | None, words: str) -> str:
    """`429 too_many_concurrent_requests: <message>`: what ElevenLabs answered, in one line."""
    head = f"{status} {code}" if code else str(status)
    return f"{head}: {words}" if words else head


def _concurrency(code: str | None, words: str) -> bool:
    return code in NOT_PLACED_CODES or "concurren" in words.lower()


def events_path(connection_id: str) -> str:
    return f"/v1/provider-events/elevenlabs/{connection_id}"


@dataclass
class _Loop:
    """What belongs to one event loop: the async client and the semaphores."""

    loop: asyncio.AbstractEventLoop
    client: httpx.AsyncClient
    placing: asyncio.Semaphore
    routes: dict[str, asyncio.Lock] = field(default_factory=dict)


class ElevenLabsProvider(HostedPlatform):
    name = "elevenlabs"
    default_base_url = DEFAULT_BASE_URL

    def __init__(self, **connection: Any) -> None:
        super().__init__(**connection)
        self._api_key = self._credential("api_key")
        self._webhook_secret = self._credential("webhook_secret")
        self.read_tries = READ_TRIES
        self.read_backoff = READ_BACKOFF_SECONDS
        # phone number id → "twilio" | "sip_trunk" | …, read once from ElevenLabs.
        self._providers: dict[str, str] = {}
        self._loop: _Loop | None = None

    # --- the wire ------------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        return {
            API_KEY_HEADER: self._api_key,
            "Accept": "application/json",
            "User-Agent": "batch-dashboard",
        }

    def _redact(self, text: str) -> str:
        for secret in (self._api_key, self._webhook_secret):
            if secret and len(secret) >= 4:
                text = text.replace(secret, "…")
        return text

    def _error(self, message: str, *, retryable: bool, status: int = 0) -> ProviderError:
        return ProviderError(
            self._redact(message), retryable=retryable, account=account_refusal(status)
        )

    def _state(self) -> _Loop:
        """The async client of the running loop. The dialer keeps one loop; an adapter used from
        another loop (tests, a CLI) gets a new client there, the old one is left to the GC."""
        loop = asyncio.get_running_loop()
        if self._loop is None or self._loop.loop is not loop:
            client = httpx.AsyncClient(**self._client_options())  # type: ignore[arg-type]
            self._loop = _Loop(loop, client, asyncio.Semaphore(PLACE_CONCURRENCY))
        return self._loop

    def _backoff(self, tried: int) -> float:
        return self.read_backoff * 2 ** (tried - 1) * random.uniform(0.5, 1.0)

    def _judge(self, response: httpx.Response, doing: str) -> str | None:
        """None for a 2xx; what went wrong for an answer worth another try (429, 5xx); raises
        ProviderError(retryable=False) for a refusal (another 4xx)."""
        status = response.status_code
        if 200 <= status < 300:
            return None
        code, words = _platform_words(response)
        if status != 429 and status < 500:
            raise self._error(
                f"ElevenLabs refused {doing}: {_said(status, code, words)}",
                retryable=False,
                status=status,
            )
        return f"answered {_said(status, code, words)}"

    def _gave_up(self, doing: str, problem: str) -> ProviderError:
        return self._error(
            f"ElevenLabs did not answer {doing}: {problem} ({self.read_tries} tries)",
            retryable=True,
        )

    async def _read(
        self, path: str, doing: str, *, params: Mapping[str, Any] | None = None, found: bool = False
    ) -> httpx.Response | None:
        """A 2xx answer to a GET (None for a 404 when `found` may say no), tried again on a
        timeout, a broken connection, a 429 or a 5xx."""
        client = self._state().client
        problem = ""
        for tried in range(1, self.read_tries + 1):
            wait = self._backoff(tried)
            try:
                response = await client.get(path, params=dict(params or {}))
            except httpx.TimeoutException:
                problem = f"no answer within {self.timeout:g} s"
            except httpx.TransportError as error:
                problem = f"connection failed ({type(error).__name__})"
            else:
                if response.status_code == 404 and found:
                    return None
                problem = self._judge(response, doing) or ""
                if not problem:
                    return response
                hinted = retry_after_seconds(response.headers.get("retry-after"), self.clock.now())
                if hinted is not None:
                    wait = min(hinted, 10.0)
            if tried < self.read_tries:
                await asyncio.sleep(wait)
        raise self._gave_up(doing, problem)

    def _read_sync(
        self, client: httpx.Client, path: str, doing: str, params: Mapping[str, Any] | None = None
    ) -> httpx.Response:
        """`_read` for the sync methods (check, agents, numbers)."""
        problem = ""
        for tried in range(1, self.read_tries + 1):
            try:
                response = client.get(path, params=dict(params or {}))
            except httpx.TimeoutException:
                problem = f"no answer within {self.timeout:g} s"
            except httpx.TransportError as error:
                problem = f"connection failed ({type(error).__name__})"
            else:
                problem = self._judge(response, doing) or ""
                if not problem:
                    return response
            if tried < self.read_tries:
                time.sleep(self._backoff(tried))
        raise self._gave_up(doing, problem)

    def _parse(self, model: type[_M], response: httpx.Response, doing: str) -> _M:
        try:
            return model.model_validate(response.json())
        except (ValueError, ValidationError) as error:
            detail = _short(error) if isinstance(error, ValidationError) else "not JSON"
            raise self._error(
                f"ElevenLabs' answer to {doing} is not the documented shape ({detail})",
                retryable=False,
            ) from None

    # --- placing -------------------------------------------------------------------------------

    def outbound_call(self, request: CallRequest) -> tuple[OutboundCall, list[str]]:
        """What one placement sends (and what it had to leave out)."""
        variables, warnings = dynamic_variables(request)
        ringing = None
        if request.ringing_timeout_ms and request.ringing_timeout_ms > 0:
            ringing = max(1, round(request.ringing_timeout_ms / 1000))
        call = OutboundCall(
            agent_id=request.external_agent_id or "",
            agent_phone_number_id=request.from_external_id or "",
            to_number=request.to,
            dynamic_variables=variables,
            user_id=request.attempt_id,
            ringing_timeout_secs=ringing,
        )
        if request.voicemail and request.voicemail.get("action"):
            warnings.append(
                "voicemail handling is the agent's Voicemail detection tool at ElevenLabs; "
                "the batch's voicemail setting is not sent"
            )
        return call, warnings

    async def number_provider(self, phone_number_id: str) -> str:
        """Whether a phone number is Twilio's or a SIP trunk's (its `provider`), read once."""
        known = self._providers.get(phone_number_id)
        if known:
            return known
        state = self._state()
        lock = state.routes.setdefault(phone_number_id, asyncio.Lock())
        async with lock:
            if phone_number_id not in self._providers:
                path = f"/v1/convai/phone-numbers/{quote(phone_number_id, safe='')}"
                response = await self._read(
                    path, f"reading phone number {phone_number_id}", found=True
                )
                if response is None:
                    raise self._error(
                        f"ElevenLabs has no phone number {phone_number_id} (the caller number's external_id)",
                        retryable=False,
                    )
                number = self._parse(
                    PhoneNumber, response, f"reading phone number {phone_number_id}"
                )
                self._providers[phone_number_id] = number.provider or "twilio"
        return self._providers[phone_number_id]

    async def _place(self, request: CallRequest) -> CallResult | ProviderError:
        attempt = request.attempt_id
        if not request.external_agent_id:
            return ProviderError(
                f"agent {request.agent.id} has no external_agent_id: ElevenLabs needs the agent's agent_id",
                retryable=False,
            )
        if not request.from_external_id:
            return ProviderError(
                f"caller number {request.from_} has no external_id: ElevenLabs needs its agent_phone_number_id "
                "(import the account's numbers)",
                retryable=False,
            )
        try:
            provider = await self.number_provider(request.from_external_id)
        except ProviderError as error:
            if not error.retryable:
                return error
            # Nothing was sent yet: the recipient goes back in line.
            return NotPlaced(f"could not read the caller number at ElevenLabs: {error}")
        path = OUTBOUND_CALL_PATHS.get(provider)
        if path is None:
            return ProviderError(
                f"ElevenLabs number {request.from_external_id} is a {provider} number; only Twilio and SIP trunk numbers place calls here",
                retryable=False,
            )
        call, warnings = self.outbound_call(request)
        client = self._state().client
        try:
            response = await client.post(path, json=call.to_wire())
        except (httpx.ConnectError, httpx.ConnectTimeout) as error:
            # The request never left: nothing was created.
            return NotPlaced(
                f"could not connect to ElevenLabs ({type(error).__name__}); nothing was sent"
            )
        except httpx.TimeoutException:
            return self._error(
                f"placing {attempt}: ElevenLabs did not answer within {self.timeout:g} s; the call may exist",
                retryable=True,
            )
        except httpx.TransportError as error:
            return self._error(
                f"placing {attempt}: the connection broke ({type(error).__name__}); the call may exist",
                retryable=True,
            )
        return self._placed(response, attempt, warnings)

    def _placed(
        self, response: httpx.Response, attempt: str, warnings: list[str]
    ) -> CallResult | ProviderError:
        status = response.status_code
        if 200 <= status < 300:
            try:
                answer = OutboundCallAnswer.model_validate(response.json())
            except (ValueError, ValidationError):
                return self._error(
                    f"placing {attempt}: ElevenLabs answered {status} with an unreadable body; the call may exist",
                    retryable=True,
                )
            if answer.success:
                return CallResult(
                    status=CallStatus.in_progress, call_id=answer.conversation_id, warnings=warnings
                )
            if answer.conversation_id:
                # ElevenLabs has a conversation and says it failed: that is its word on the call.
                return _failed(
                    Outcome.provider_error,
                    call_id=answer.conversation_id,
                    message=self._redact(f"ElevenLabs did not place the call: {answer.message}"),
                )
            if _concurrency(None, answer.message):
                return NotPlaced(self._redact(f"ElevenLabs asked to wait: {answer.message}"))
            return self._error(
                f"ElevenLabs did not place the call: {answer.message or 'success false'}",
                retryable=False,
            )
        code, words = _platform_words(response)
        if status == 429 or _concurrency(code, words):
            return NotPlaced(
                self._redact(f"ElevenLabs asked to wait: {_said(status, code, words)}"),
                retry_after=retry_after_seconds(
                    response.headers.get("retry-after"), self.clock.now()
                ),
            )
        if status >= 500:
            return self._error(
                f"placing {attempt}: ElevenLabs failed: {_said(status, code, words)}; the call may exist",
                retryable=True,
            )
        return self._error(
            f"ElevenLabs refused the call: {_said(status, code, words)}",
            retryable=False,
            status=status,
        )

    async def place_calls(
        self, requests: Sequence[CallRequest]
    ) -> list[CallResult | ProviderError]:
        placing = self._state().placing

        async def one(request: CallRequest) -> CallResult | ProviderError:
            async with placing:
                return await self._place(request)

        return list(await asyncio.gather(*(one(request) for request in requests)))

    # --- asking, hanging up --------------------------------------------------------------------

    async def conversation(self, conversation_id: str) -> Conversation:
        path = f"/v1/convai/conversations/{quote(conversation_id, safe='')}"
        doing = f"reading conversation {conversation_id}"
        response = await self._read(path, doing, found=True)
        if response is None:
            raise self._error(f"ElevenLabs has no conversation {conversation_id}", retryable=False)
        return self._parse(Conversation, response, doing)

    async def find(self, attempt_id: str) -> str:
        """The conversation of an attempt whose id we never got, by the user_id it was placed
        with (checked against the conversation's own echo of our attempt id)."""
        doing = f"looking up attempt {attempt_id}"
        response = await self._read(
            "/v1/convai/conversations",
            doing,
            params={"user_id": attempt_id, "page_size": LOOKUP_PAGE_SIZE},
        )
        assert response is not None
        page = self._parse(ConversationsPage, response, doing)
        for summary in page.conversations[:3]:
            conversation = await self.conversation(summary.conversation_id)
            if attempt_of(conversation) == attempt_id:
                return conversation.conversation_id
        raise self._error(
            f"attempt {attempt_id} has no ElevenLabs conversation id and none was found by its user_id: its outcome cannot be known",
            retryable=False,
        )

    async def call_status(self, attempt_id: str, call_id: str | None = None) -> CallResult | None:
        conversation = await self.conversation(call_id or await self.find(attempt_id))
        echoed = attempt_of(conversation)
        if echoed is not None and echoed != attempt_id:
            raise self._error(
                f"conversation {conversation.conversation_id} belongs to attempt {echoed}, not {attempt_id}",
                retryable=False,
            )
        return conversation_result(conversation)

    async def hang_up(self, attempt_id: str, call_id: str | None = None) -> None:
        # ElevenLabs' API has no call to end a live conversation (DELETE on a conversation
        # deletes its record): the call runs until the agent or the callee ends it.
        log.info(
            "elevenlabs: cannot hang up %s (conversation %s): ElevenLabs documents no way to end a live call",
            attempt_id,
            call_id or "unknown",
        )

    # --- its events ----------------------------------------------------------------------------

    def read_event(
        self, *, url: str, headers: Mapping[str, str], body: bytes, now: datetime
    ) -> list[PlatformEvent]:
        """A post-call webhook: verified (EventRefused), then read (ValueError for a body that is
        not the documented shape; [] for event types that say nothing about how a call ended).
        ElevenLabs signs the body only, not the URL."""
        header = next(
            (value for name, value in headers.items() if name.lower() == SIGNATURE_HEADER.lower()),
            None,
        )
        verify_signature(self._webhook_secret, header, body, now)
        return parse_event(body)

    # --- the account ---------------------------------------------------------------------------

    def check(self) -> None:
        """One harmless authenticated read: the first agent of the account."""
        with self._sync_client() as client:
            self._read_sync(
                client, "/v1/convai/agents", "listing the account's agents", {"page_size": 1}
            )

    def _agents(self, client: httpx.Client) -> Iterator[AgentSummary]:
        cursor: str | None = None
        seen: set[str] = set()
        while True:
            params: dict[str, Any] = {"page_size": AGENTS_PAGE_SIZE}
            if cursor:
                params["cursor"] = cursor
            response = self._read_sync(
                client, "/v1/convai/agents", "listing the account's agents", params
            )
            page = self._parse(AgentsPage, response, "listing the account's agents")
            for agent in page.agents:
                if agent.agent_id not in seen:
                    seen.add(agent.agent_id)
                    yield agent
            if not page.has_more or not page.next_cursor or page.next_cursor == cursor:
                return
            cursor = page.next_cursor

    def list_agents(self) -> list[ImportedAgent]:
        """Every agent of the account with its first message and prompt (the list has neither:
        each agent is read once)."""
        imported: list[ImportedAgent] = []
        with self._sync_client() as client:
            for summary in self._agents(client):
                if summary.archived:
                    continue
                doing = f"reading agent {summary.agent_id}"
                path = f"/v1/convai/agents/{quote(summary.agent_id, safe='')}"
                detail = self._parse(AgentDetail, self._read_sync(client, path, doing), doing)
                agent = (
                    detail.conversation_config.agent if detail.conversation_config else None
                ) or AgentConfig()
                imported.append(
                    ImportedAgent(
                        external_agent_id=detail.agent_id,
                        name=detail.name or summary.name,
                        first_message=agent.first_message or "",
                        prompt=(agent.prompt.prompt if agent.prompt else None) or "",
                    )
                )
        return imported

    def incoming_numbers(self) -> list[dict[str, Any]]:
        """The account's phone numbers (one unpaged list). `voice`: it can place calls here (a
        Twilio or SIP trunk number not marked `supports_outbound: false`)."""
        with self._sync_client() as client:
            response = self._read_sync(
                client, "/v1/convai/phone-numbers", "listing the account's phone numbers"
            )
        try:
            raw = response.json()
            numbers = [PhoneNumber.model_validate(item) for item in raw]
        except (ValueError, TypeError, ValidationError):
            raise self._error(
                "ElevenLabs' list of phone numbers is not the documented shape", retryable=False
            ) from None
        found = []
        for number in numbers:
            provider = number.provider or "twilio"
            self._providers[number.phone_number_id] = provider
            found.append(
                {
                    "phone_number": number.phone_number,
                    "external_id": number.phone_number_id,
                    "label": number.label or "",
                    "voice": provider in OUTBOUND_CALL_PATHS
                    and number.supports_outbound is not False,
                }
            )
        return found

    async def aclose(self) -> None:
        state, self._loop = self._loop, None
        if state is not None:
            with contextlib.suppress(RuntimeError):  # its loop is gone already
                await state.client.aclose()


__all__ = [
    "ATTEMPT_VARIABLE",
    "OUTCOME_TABLE",
    "SIGNATURE_HEADER",
    "Conversation",
    "ElevenLabsProvider",
    "OutboundCall",
    "conversation_result",
    "initiation_failure_result",
    "parse_event",
    "signature_digest",
    "verify_signature",
]
