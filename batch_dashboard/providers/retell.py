"""Retell AI: calls placed through a workspace's Retell account, on one of its Retell agents,
over Retell's documented REST API with plain `httpx` (no SDK at runtime), and Retell's webhooks
(`call_started`, `call_ended`, `call_analyzed`) read after checking `x-retell-signature`.

Field names and values are Retell's (docs/providers.md, "Retell AI", cites the page of each;
tests/fakes/RETELL_SOURCES.md lists every rule with its source). Retell takes no idempotency key
for a call, but it stores and echoes our `metadata` and lists calls filtered by it
(`POST /v3/list-calls`), so an attempt whose answer was lost is found again by its attempt id;
one that cannot be found ends `outcome_unknown`, never dialed twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

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
    render,
)
from batch_dashboard.providers.hosted import HostedPlatform
from batch_dashboard.retry_after import retry_after_seconds
from batch_dashboard.services.outcomes import Outcome

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.retellai.com"
# Calls created at once by one `place_calls` (the claim already paces them per second).
MAX_PARALLEL_CREATES = 8
# `agent_override.agent.ring_duration_ms`: "Default to 30000 (30 s). Valid range is
# [5000, 300000]" (SDK types/call_create_phone_call_params.py, AgentOverrideAgent).
RING_DURATION_MS_MIN = 5_000
RING_DURATION_MS_MAX = 300_000
# Pages of list endpoints (`limit` + `pagination_key`, `has_more`); a bound against a loop.
PAGE_LIMIT = 100
MAX_PAGES = 200

# Webhook signature: `x-retell-signature: v=<unix ms>,d=<hex HMAC-SHA256>` of the raw body
# followed by the timestamp, keyed with the API key; 5 minutes either way
# (https://docs.retellai.com/features/secure-webhook; SDK src/retell/lib/webhook_auth.py).
SIGNATURE_HEADER = "x-retell-signature"
SIGNATURE_TOLERANCE_MS = 5 * 60 * 1000
_SIGNATURE = re.compile(r"v=(\d+),d=([0-9a-fA-F]{64})")

# `call_status` of a call that has not ended (V2PhoneCallResponse): registered, ongoing.
LIVE_CALL_STATUSES = frozenset({"registered", "ongoing"})
EVENTS = ("call_started", "call_ended", "call_analyzed")

# disconnection_reason → outcome. The enum is the SDK's (`PhoneCallResponse.disconnection_reason`
# in src/retell/types/phone_call_response.py @ a14e5119692c); the meanings are
# https://docs.retellai.com/reliability/debug-call-disconnect ("Understanding Disconnection
# Reasons"). Reasons no longer in the enum but in older docs (machine_detected,
# error_inbound_webhook) are kept so an old call still reads right.
DISCONNECTION_OUTCOMES: dict[str, Outcome] = {
    # ended after talking: the recipient is completed, the conversation stored
    "user_hangup": Outcome.completed,
    "agent_hangup": Outcome.completed,
    "call_transfer": Outcome.completed,
    "transfer_bridged": Outcome.completed,
    "transfer_cancelled": Outcome.completed,
    "inactivity": Outcome.completed,
    "max_duration_reached": Outcome.completed,
    "call_take_over": Outcome.completed,
    # a machine answered
    "voicemail_reached": Outcome.voicemail,
    "machine_detected": Outcome.voicemail,
    "ivr_reached": Outcome.voicemail,
    # not connected
    "dial_busy": Outcome.busy,
    "dial_no_answer": Outcome.no_answer,
    "user_declined": Outcome.declined,
    "invalid_destination": Outcome.invalid_number,
    # ended from our side (POST /v2/stop-call)
    "manual_stopped": Outcome.hung_up,
    # the platform, the account or the line failed it: provider_error, the reason in `message`
    "dial_failed": Outcome.provider_error,
    "telephony_provider_permission_denied": Outcome.provider_error,
    "telephony_provider_unavailable": Outcome.provider_error,
    "sip_routing_error": Outcome.provider_error,
    "marked_as_spam": Outcome.provider_error,
    "scam_detected": Outcome.provider_error,
    "no_valid_payment": Outcome.provider_error,
    "concurrency_limit_reached": Outcome.provider_error,
    "no_concurrency_fallback": Outcome.provider_error,
    "registered_call_timeout": Outcome.provider_error,
    "error_llm_websocket_open": Outcome.provider_error,
    "error_llm_websocket_lost_connection": Outcome.provider_error,
    "error_llm_websocket_runtime": Outcome.provider_error,
    "error_llm_websocket_corrupt_payload": Outcome.provider_error,
    "error_no_audio_received": Outcome.provider_error,
    "error_asr": Outcome.provider_error,
    "error_retell": Outcome.provider_error,
    "error_unknown": Outcome.provider_error,
    "error_user_not_joined": Outcome.provider_error,
    "error_inbound_webhook": Outcome.provider_error,
}
# A call that was never dialed because the account was at its concurrency limit: when create
# answers with such a call already failed, nothing rang and the recipient goes back in line.
CONCURRENCY_REASONS = frozenset({"concurrency_limit_reached", "no_concurrency_fallback"})
_STATUS_OF = {
    Outcome.completed: CallStatus.completed,
    Outcome.voicemail: CallStatus.voicemail,
    Outcome.no_answer: CallStatus.no_answer,
    Outcome.busy: CallStatus.busy,
}

# --------------------------------------------------------------------------------------------
# Wire models (only the fields we read or send; everything else is ignored)
# --------------------------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class VoicemailAction(_Model):
    """`voicemail_option.action`: `hangup`, `static_text` (+ text) or `prompt` (+ text)."""

    type: Literal["hangup", "static_text", "prompt"]
    text: str | None = None


class VoicemailOption(_Model):
    action: VoicemailAction


class AgentSettingsOverride(_Model):
    ring_duration_ms: int
    voicemail_option: VoicemailOption | None = None


class AgentOverride(_Model):
    agent: AgentSettingsOverride


class CreatePhoneCall(_Model):
    """The body of `POST /v2/create-phone-call`."""

    from_number: str
    to_number: str
    override_agent_id: str
    metadata: dict[str, str]
    retell_llm_dynamic_variables: dict[str, str]
    agent_override: AgentOverride

    def body(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class Word(_Model):
    word: str | None = None
    start: float | None = None
    end: float | None = None


class Utterance(_Model):
    role: str
    content: str = ""
    words: list[Word] = Field(default_factory=list)


class CallAnalysis(_Model):
    call_summary: str | None = None
    in_voicemail: bool | None = None
    user_sentiment: str | None = None
    call_successful: bool | None = None
    custom_analysis_data: dict[str, Any] | None = None


class RetellCall(_Model):
    """A call as `GET /v2/get-call/{call_id}` and the webhooks' `call` describe it."""

    call_id: str
    call_status: str | None = None
    metadata: dict[str, Any] | None = None
    start_timestamp: int | None = None
    end_timestamp: int | None = None
    duration_ms: int | None = None
    disconnection_reason: str | None = None
    transcript_object: list[Utterance] | None = None
    call_analysis: CallAnalysis | None = None

    @property
    def attempt_id(self) -> str | None:
        value = (self.metadata or {}).get("attempt_id")
        return value if isinstance(value, str) and value else None


class WebhookEnvelope(_Model):
    event: str
    call: dict[str, Any] | None = None
    # The payload's old name for `call` ("The data property is being deprecated").
    data: dict[str, Any] | None = None


class _Page(_Model):
    items: list[dict[str, Any]] = Field(default_factory=list)
    has_more: bool | None = None
    pagination_key: str | None = None


# --------------------------------------------------------------------------------------------
# Reading a call
# --------------------------------------------------------------------------------------------


def _moment(ms: int | None) -> datetime | None:
    if ms is None:
        return None
    try:
        return datetime.fromtimestamp(ms / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def transcript_of(utterances: Sequence[Utterance] | None) -> list[dict[str, Any]] | None:
    """`transcript_object` as our turns: role agent|user (a transfer target speaks as the
    user's side), the text, and when in the call it began (its first word's `start`, seconds
    of call audio)."""
    if not utterances:
        return None
    turns: list[dict[str, Any]] = []
    last = 0.0
    for utterance in utterances:
        start = next((w.start for w in utterance.words if w.start is not None), None)
        last = float(start) if start is not None else last
        turns.append(
            {
                "role": "agent" if utterance.role == "agent" else "user",
                "message": utterance.content,
                "time_in_call_secs": round(last, 3),
            }
        )
    return turns


def _verdict(value: bool | None) -> str:
    return "unknown" if value is None else ("success" if value else "failure")


_SENTIMENTS = {"Positive": "success", "Negative": "failure"}


def evaluations_of(analysis: CallAnalysis | None) -> dict[str, Any] | None:
    """`call_analysis` as evaluations: `call_successful` and `in_voicemail` (true = success,
    false = failure, absent = unknown; the call summary is the rationale) and
    `user_sentiment` (Positive = success, Negative = failure, Neutral/Unknown = unknown)."""
    if analysis is None:
        return None
    summary = analysis.call_summary or ""
    out: dict[str, Any] = {
        "call_successful": {"result": _verdict(analysis.call_successful), "rationale": summary},
        "in_voicemail": {"result": _verdict(analysis.in_voicemail), "rationale": summary},
    }
    if analysis.user_sentiment is not None:
        out["user_sentiment"] = {
            "result": _SENTIMENTS.get(analysis.user_sentiment, "unknown"),
            "rationale": f"User sentiment: {analysis.user_sentiment}",
        }
    return out


def data_collection_of(analysis: CallAnalysis | None) -> dict[str, Any] | None:
    """`call_analysis.custom_analysis_data` (the agent's post-call analysis fields)."""
    if analysis is None or not analysis.custom_analysis_data:
        return None
    return {
        name: {"value": value, "rationale": ""}
        for name, value in analysis.custom_analysis_data.items()
    }


def result_from(call: RetellCall, *, ended: bool = False) -> CallResult:
    """A call's state from Retell's call object. `ended`: the call is over whatever its
    `call_status` says (a `call_ended` or `call_analyzed` event)."""
    started = _moment(call.start_timestamp)
    if not ended and call.call_status in LIVE_CALL_STATUSES and not call.disconnection_reason:
        return CallResult(status=CallStatus.in_progress, started_at=started, call_id=call.call_id)
    finished = _moment(call.end_timestamp)
    duration: float | None = None
    if call.duration_ms is not None:
        duration = call.duration_ms / 1000
    elif started is not None and finished is not None:
        duration = max(0.0, (finished - started).total_seconds())
    reason = call.disconnection_reason
    outcome = DISCONNECTION_OUTCOMES.get(reason or "")
    if outcome is None:
        # A reason this adapter does not know: a call that ended normally was a conversation;
        # one that did not connect or errored is the platform's failure, in its own words.
        outcome = (
            Outcome.completed
            if call.call_status == "ended" or (ended and call.call_status is None)
            else Outcome.provider_error
        )
    if outcome is Outcome.completed:
        return CallResult(
            status=CallStatus.completed,
            started_at=started,
            ended_at=finished,
            duration_seconds=duration,
            transcript=transcript_of(call.transcript_object),
            evaluations=evaluations_of(call.call_analysis),
            data_collection=data_collection_of(call.call_analysis),
            call_id=call.call_id,
        )
    words = f"Retell {call.call_status or 'ended'}: {reason or 'no disconnection_reason'}"
    return CallResult(
        status=_STATUS_OF.get(outcome, CallStatus.failed),
        failure_reason=outcome.value,
        started_at=started,
        ended_at=finished,
        duration_seconds=duration if outcome is Outcome.voicemail else None,
        call_id=call.call_id,
        message=words,
    )


# --------------------------------------------------------------------------------------------
# Signatures
# --------------------------------------------------------------------------------------------


def retell_signature(body: bytes, api_key: str, timestamp_ms: int) -> str:
    """`v=<ms>,d=<hex HMAC-SHA256(api_key, raw body + str(ms))>`, as Retell signs webhooks."""
    digest = hmac.new(api_key.encode(), body + str(timestamp_ms).encode(), hashlib.sha256)
    return f"v={timestamp_ms},d={digest.hexdigest()}"


def verify_signature(body: bytes, api_key: str, signature: str | None, now: datetime) -> None:
    """Raise EventRefused unless `signature` is Retell's for `body` within 5 minutes of `now`."""
    if not signature:
        raise EventRefused(f"missing {SIGNATURE_HEADER}")
    match = _SIGNATURE.fullmatch(signature.strip())
    if match is None:
        raise EventRefused(f"malformed {SIGNATURE_HEADER}")
    stamp = int(match.group(1))
    now_ms = int(now.timestamp() * 1000)
    if abs(now_ms - stamp) > SIGNATURE_TOLERANCE_MS:
        raise EventRefused(f"{SIGNATURE_HEADER} is outside the 5-minute tolerance")
    expected = retell_signature(body, api_key, stamp).split(",d=", 1)[1]
    if not hmac.compare_digest(expected, match.group(2).lower()):
        raise EventRefused(f"{SIGNATURE_HEADER} does not match")


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    return next((v for k, v in headers.items() if k.lower() == name), None)


def _variable(value: Any) -> str:
    """A dynamic variable as the string Retell requires ({str: str}), written as `render`
    writes it into our own prompts."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


# --------------------------------------------------------------------------------------------
# The provider
# --------------------------------------------------------------------------------------------


class RetellRefused(ProviderError):
    """Retell answered with an HTTP error (`status`)."""

    def __init__(self, message: str, *, status: int, retryable: bool) -> None:
        super().__init__(message, retryable=retryable, account=account_refusal(status))
        self.status = status


class RetellProvider(HostedPlatform):
    default_base_url = DEFAULT_BASE_URL
    name = "retell"
    # call_ended records the end; call_analyzed brings the evaluations and collected data a
    # little later, so the conversation.completed webhook waits this long for them.
    webhook_delay = timedelta(seconds=60)

    def _headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self._api_key}",
            "Accept": "application/json",
            "User-Agent": "batch-calls",
        }

    @property
    def _api_key(self) -> str:
        return self._credential("api_key")

    # --- errors -----------------------------------------------------------------------------

    def _said(self, response: httpx.Response) -> str:
        """What Retell said (`{"status": "error", "message": …}`), never our key."""
        try:
            payload = response.json()
        except ValueError:
            payload = None
        text = payload.get("message") if isinstance(payload, dict) else None
        if not isinstance(text, str) or not text:
            text = response.reason_phrase or "no message"
        if self._api_key:
            text = text.replace(self._api_key, "…")
        return text[:500]

    def _refusal(self, response: httpx.Response, doing: str, *, creating: bool) -> ProviderError:
        said = self._said(response)
        status = response.status_code
        if creating and (status == 429 or (status < 500 and "concurrency" in said.lower())):
            return NotPlaced(
                f"Retell asked to wait while {doing} ({status}: {said})",
                retry_after=retry_after_seconds(
                    response.headers.get("Retry-After"), self.clock.now()
                ),
            )
        return RetellRefused(
            f"Retell refused {doing}: {status} {said}",
            status=status,
            retryable=status >= 500 or status == 429,
        )

    @staticmethod
    def _unreachable(error: Exception, doing: str) -> ProviderError:
        # A timeout or a broken connection: Retell may have acted on it.
        return ProviderError(f"Retell did not answer while {doing}: {type(error).__name__}")

    def _json(self, response: httpx.Response, doing: str) -> Any:
        try:
            return response.json()
        except ValueError:
            raise ProviderError(f"Retell answered {doing} with no JSON") from None

    async def _send(
        self, method: str, path: str, doing: str, *, creating: bool = False, **kwargs: Any
    ) -> httpx.Response:
        try:
            response = await self._async_client().request(method, path, **kwargs)
        except httpx.HTTPError as error:
            raise self._unreachable(error, doing) from None
        if response.status_code >= 400:
            raise self._refusal(response, doing, creating=creating)
        return response

    def _send_sync(
        self, client: httpx.Client, method: str, path: str, doing: str, **kwargs: Any
    ) -> httpx.Response:
        try:
            response = client.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            raise self._unreachable(error, doing) from None
        if response.status_code >= 400:
            raise self._refusal(response, doing, creating=False)
        return response

    # --- placing ------------------------------------------------------------------------------

    def create_body(self, request: CallRequest) -> CreatePhoneCall:
        ring_ms = min(
            max(int(request.ringing_timeout_ms), RING_DURATION_MS_MIN), RING_DURATION_MS_MAX
        )
        return CreatePhoneCall(
            from_number=request.from_,
            to_number=request.to,
            override_agent_id=request.external_agent_id or "",
            metadata={
                "attempt_id": request.attempt_id,
                "batch_id": request.batch_id,
                "recipient_id": request.recipient_id,
            },
            retell_llm_dynamic_variables={
                str(name): _variable(value) for name, value in request.variables.items()
            },
            agent_override=AgentOverride(
                agent=AgentSettingsOverride(
                    ring_duration_ms=ring_ms, voicemail_option=self.voicemail_option(request)
                )
            ),
        )

    @staticmethod
    def voicemail_option(request: CallRequest) -> VoicemailOption | None:
        """The batch's answering-machine choice as Retell's `voicemail_option`: hang up, or
        leave the batch's message (rendered per recipient) as static text. Without a choice the
        agent's own voicemail setting applies."""
        voicemail = request.voicemail or {}
        action = voicemail.get("action")
        if action == "hang_up":
            return VoicemailOption(action=VoicemailAction(type="hangup"))
        if action == "leave_message":
            message = str(voicemail.get("message") or "")
            if message:
                text, _ = render(message, request.variables)
                return VoicemailOption(action=VoicemailAction(type="static_text", text=text))
            return VoicemailOption(
                action=VoicemailAction(
                    type="prompt",
                    text="Leave a short voicemail: who is calling and why, then end the call.",
                )
            )
        return None

    async def _create(self, request: CallRequest) -> CallResult | ProviderError:
        if not request.external_agent_id:
            return ProviderError(
                f"agent {request.agent.id} has no Retell agent_id (external_agent_id)",
                retryable=False,
            )
        body = self.create_body(request).body()
        try:
            response = await self._send(
                "POST", "/v2/create-phone-call", "creating a call", creating=True, json=body
            )
            payload = self._json(response, "creating a call")
            call = RetellCall.model_validate(payload)
        except ProviderError as error:
            return error
        except ValidationError:
            return ProviderError("Retell answered creating a call without a call_id")
        if (
            call.call_status in ("error", "not_connected")
            and call.disconnection_reason in CONCURRENCY_REASONS
        ):
            # Created but never dialed: the account is at its concurrency limit.
            return NotPlaced(f"Retell is at its concurrency limit ({call.disconnection_reason})")
        result = result_from(call)
        if result.terminal:
            return result
        return CallResult(status=CallStatus.in_progress, call_id=call.call_id)

    async def place_calls(
        self, requests: Sequence[CallRequest]
    ) -> list[CallResult | ProviderError]:
        gate = asyncio.Semaphore(MAX_PARALLEL_CREATES)

        async def one(request: CallRequest) -> CallResult | ProviderError:
            async with gate:
                return await self._create(request)

        return list(await asyncio.gather(*(one(r) for r in requests)))

    # --- asking, hanging up ---------------------------------------------------------------------

    async def find_call_id(self, attempt_id: str) -> str | None:
        """The call Retell made for an attempt, by our `metadata.attempt_id`
        (`POST /v3/list-calls` with a metadata filter); None when there is none."""
        body = {
            "filter_criteria": {
                "metadata": [
                    {"key": "attempt_id", "type": "string", "op": "eq", "value": attempt_id}
                ]
            },
            "limit": 10,
            "sort_order": "descending",
        }
        doing = f"looking up attempt {attempt_id}"
        response = await self._send("POST", "/v3/list-calls", doing, json=body)
        try:
            page = _Page.model_validate(self._json(response, doing))
        except ValidationError:
            raise ProviderError(f"Retell answered {doing} with no list of calls") from None
        for item in page.items:
            call_id = item.get("call_id")
            if isinstance(call_id, str) and (item.get("metadata") or {}).get("attempt_id") in (
                attempt_id,
                None,
            ):
                return call_id
        return None

    async def fetch_call(self, call_id: str) -> RetellCall:
        doing = f"looking up call {call_id}"
        try:
            response = await self._send("GET", f"/v2/get-call/{call_id}", doing)
        except RetellRefused as error:
            if error.status in (404, 422):  # 422: "Cannot find requested asset"
                raise ProviderError(
                    f"Retell does not know call {call_id}", retryable=False
                ) from None
            raise
        try:
            return RetellCall.model_validate(self._json(response, doing))
        except ValidationError:
            raise ProviderError(f"Retell answered {doing} with no call") from None

    async def call_status(self, attempt_id: str, call_id: str | None = None) -> CallResult | None:
        if call_id is None:
            call_id = await self.find_call_id(attempt_id)
            if call_id is None:
                # Not listed: nobody can say whether it rang, so it must not be placed again.
                raise ProviderError(
                    f"Retell lists no call for attempt {attempt_id}: its outcome cannot be known",
                    retryable=False,
                )
        return result_from(await self.fetch_call(call_id))

    async def hang_up(self, attempt_id: str, call_id: str | None = None) -> None:
        """`POST /v2/stop-call/{call_id}` ("Stop an ongoing call"); the call then ends with
        `manual_stopped`. A call that has already ended (Retell refuses with a 4xx other than
        401/403) needs nothing."""
        if call_id is None:
            call_id = await self.find_call_id(attempt_id)
            if call_id is None:
                log.info("no Retell call to hang up for attempt %s", attempt_id)
                return
        try:
            await self._send("POST", f"/v2/stop-call/{call_id}", f"hanging up call {call_id}")
        except RetellRefused as error:
            if error.retryable or error.status in (401, 403):
                raise
            log.info("Retell call %s was not stopped (already over?): %s", call_id, error)

    # --- its events -------------------------------------------------------------------------

    def read_event(
        self, *, url: str, headers: Mapping[str, str], body: bytes, now: datetime
    ) -> list[PlatformEvent]:
        """One webhook: the signature checked first (EventRefused), then `{"event", "call"}`.
        `call_started` is progress; `call_ended` and `call_analyzed` are the call's end (the
        analysis, evaluations and collected data come only with `call_analyzed`)."""
        if not self._api_key:
            raise EventRefused("the connection has no api_key to check signatures with")
        verify_signature(body, self._api_key, _header(headers, SIGNATURE_HEADER), now)
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise ValueError("the body is not JSON") from None
        if not isinstance(payload, dict):
            raise ValueError("the body is not a JSON object")
        try:
            envelope = WebhookEnvelope.model_validate(payload)
        except ValidationError:
            raise ValueError("the body has no `event`") from None
        if envelope.event not in EVENTS:
            return []
        raw = envelope.call if envelope.call is not None else envelope.data
        if raw is None:
            raise ValueError(f"a {envelope.event} event without `call`")
        try:
            call = RetellCall.model_validate(raw)
        except ValidationError:
            raise ValueError(f"the `call` of a {envelope.event} event has no call_id") from None
        if envelope.event == "call_started":
            result = CallResult(
                status=CallStatus.in_progress,
                started_at=_moment(call.start_timestamp),
                call_id=call.call_id,
            )
        else:
            result = result_from(call, ended=True)
        return [PlatformEvent(attempt_id=call.attempt_id, call_id=call.call_id, result=result)]

    # --- the account ------------------------------------------------------------------------

    def check(self) -> None:
        """One harmless authenticated read: the account's concurrency (`GET /get-concurrency`)."""
        with self._sync_client() as client:
            self._send_sync(client, "GET", "/get-concurrency", "reading the account")

    def _pages(
        self, client: httpx.Client, method: str, path: str, doing: str, **kwargs: Any
    ) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        key: str | None = None
        for _ in range(MAX_PAGES):
            params: dict[str, Any] = {"limit": PAGE_LIMIT}
            if key:
                params["pagination_key"] = key
            response = self._send_sync(client, method, path, doing, params=params, **kwargs)
            payload = self._json(response, doing)
            if isinstance(payload, list):  # the legacy unpaged lists
                return items + [p for p in payload if isinstance(p, dict)]
            try:
                page = _Page.model_validate(payload)
            except ValidationError:
                raise ProviderError(f"Retell answered {doing} with no list") from None
            items += page.items
            if not page.has_more or not page.pagination_key or page.pagination_key == key:
                break
            key = page.pagination_key
        return items

    def list_agents(self) -> list[ImportedAgent]:
        """The account's voice agents (`POST /v2/list-agents`, paged), each read with
        `GET /get-agent/{agent_id}` for its response engine; a `retell-llm` agent's first
        message and prompt are its LLM's `begin_message` and `general_prompt`
        (`GET /get-retell-llm/{llm_id}`). Other engines import with neither."""
        agents: list[ImportedAgent] = []
        with self._sync_client() as client:
            listed = self._pages(client, "POST", "/v2/list-agents", "listing agents", json={})
            for item in listed:
                agent_id = item.get("agent_id")
                if not isinstance(agent_id, str) or item.get("channel", "voice") != "voice":
                    continue
                doing = f"reading agent {agent_id}"
                agent = self._json(
                    self._send_sync(client, "GET", f"/get-agent/{agent_id}", doing), doing
                )
                agent = agent if isinstance(agent, dict) else {}
                name = item.get("agent_name") or agent.get("agent_name") or agent_id
                engine = agent.get("response_engine") or {}
                first_message = prompt = ""
                if engine.get("type") == "retell-llm" and engine.get("llm_id"):
                    llm_id = engine["llm_id"]
                    params = {"version": engine["version"]} if "version" in engine else None
                    doing = f"reading Retell LLM {llm_id}"
                    llm = self._json(
                        self._send_sync(
                            client, "GET", f"/get-retell-llm/{llm_id}", doing, params=params
                        ),
                        doing,
                    )
                    llm = llm if isinstance(llm, dict) else {}
                    first_message = llm.get("begin_message") or ""
                    prompt = llm.get("general_prompt") or ""
                agents.append(
                    ImportedAgent(
                        external_agent_id=agent_id,
                        name=str(name),
                        first_message=str(first_message),
                        prompt=str(prompt),
                    )
                )
        return agents

    def incoming_numbers(self) -> list[dict[str, Any]]:
        """The account's numbers (`GET /v2/list-phone-numbers`, paged): Retell dials from the
        E.164 number itself, so it is also the external id."""
        with self._sync_client() as client:
            numbers = self._pages(
                client, "GET", "/v2/list-phone-numbers", "listing the account's numbers"
            )
        return [
            {
                "phone_number": number["phone_number"],
                "external_id": number["phone_number"],
                "label": number.get("nickname") or "",
                "voice": True,
            }
            for number in numbers
            if isinstance(number.get("phone_number"), str)
        ]
