"""/v1/provider-events/…: call status events from the HTTP voice runtime and from telephony
platforms (docs/providers.md).

No API key here: the runtime is not a workspace. It signs each event as Standard Webhooks says,
with BATCH_HTTP_PROVIDER_SECRET, and that signature is the authentication.
"""

from __future__ import annotations

import asyncio
import binascii
import logging
from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Header, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from standardwebhooks import Webhook
from standardwebhooks.webhooks import EmptyWebhookSecretError, WebhookVerificationError

from batch_dashboard.api import bodies
from batch_dashboard.clock import system_clock
from batch_dashboard.db import session_scope
from batch_dashboard.models import ErrorResponse
from batch_dashboard.providers.base import CallResult, PlatformEvent
from batch_dashboard.providers.http import RUNTIME_STATUSES, InvalidCall, parse_call
from batch_dashboard.services import dialing, platform_calls
from batch_dashboard.services.errors import (
    NotFound,
    Unauthorized,
    ValidationFailed,
    is_clean_id,
)
from batch_dashboard.settings import get_settings

router = APIRouter(prefix="/v1/provider-events", tags=["Provider events"])
log = logging.getLogger(__name__)

# A status event carries one call's transcript; this is far beyond any real one.
MAX_EVENT_BYTES = 5 * 1024 * 1024
STATUS_EVENT = "call.status"


class EventAnswer(BaseModel):
    recorded: bool


DESCRIPTION = f"""
The HTTP voice runtime (`BATCH_PROVIDER=http`) posts here whenever a call's status changes, so a
call's end is recorded at once instead of at the dialer's next poll.

**Authentication** is the signature, not an API key: each event is signed as the Standard
Webhooks specification says with `BATCH_HTTP_PROVIDER_SECRET` (a `whsec_…` secret), in the
headers `webhook-id`, `webhook-timestamp` (Unix seconds, within 5 minutes of now) and
`webhook-signature` (`v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`, several
space-separated during a secret rotation). A missing or wrong signature answers `401`. Without a
configured secret this route does not exist (`404`).

**Body**: `{{"type": "{STATUS_EVENT}", "data": <Call>}}`, the Call object being what
`GET /calls/{{attempt_id}}` of the runtime answers.

**Answers**: a terminal status (`completed`, `no_answer`, `busy`, `voicemail`, `failed`) is recorded
and answers `200 {{"recorded": true}}`; the same event again, or an event for an attempt that has
already ended (or that this service does not know), answers `200 {{"recorded": false}}` and changes
nothing, so the runtime may deliver at least once. A non-terminal status
({", ".join(name for name, status in RUNTIME_STATUSES.items() if status == "in_progress")}) or
another event type is accepted and ignored: `202 {{"recorded": false}}`.
"""

_CALL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["attempt_id", "status"],
    "properties": {
        "attempt_id": {"type": "string", "description": "The Idempotency-Key of the placement"},
        "status": {"type": "string", "enum": list(RUNTIME_STATUSES)},
        "started_at": {"type": ["string", "null"], "format": "date-time"},
        "ended_at": {"type": ["string", "null"], "format": "date-time"},
        "duration_seconds": {"type": ["number", "null"], "minimum": 0},
        "failure_reason": {"type": ["string", "null"]},
        "transcript": {"type": ["array", "null"], "items": {"type": "object"}},
        "evaluations": {"type": ["object", "null"]},
        "data_collection": {"type": ["object", "null"]},
    },
}

OPENAPI_EXTRA: dict[str, Any] = {
    "security": [],
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["type", "data"],
                    "properties": {
                        "type": {"type": "string", "example": STATUS_EVENT},
                        "data": _CALL_SCHEMA,
                    },
                },
                "example": {
                    "type": STATUS_EVENT,
                    "data": {
                        "attempt_id": "att_01JD7QA5V8K3M2N1P0Q9R8S7T6-0",
                        "status": "completed",
                        "started_at": "2026-12-01T15:00:04Z",
                        "ended_at": "2026-12-01T15:00:46Z",
                        "duration_seconds": 42.0,
                        "transcript": [
                            {"role": "agent", "message": "Hi Ada!", "time_in_call_secs": 0}
                        ],
                        "evaluations": {
                            "confirmed": {"result": "success", "rationale": "She confirmed."}
                        },
                        "data_collection": {},
                    },
                },
            }
        },
    },
}


def _error_response(description: str) -> dict[str, Any]:
    return {"model": ErrorResponse, "description": description}


RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {"model": EventAnswer, "description": "Not a call's end: accepted and ignored"},
    401: _error_response("unauthorized: the signature is missing, stale or wrong"),
    404: _error_response("not found: no BATCH_HTTP_PROVIDER_SECRET is configured"),
    413: _error_response("payload too large"),
    422: _error_response("validation failed: the event is not a status event of a Call"),
}


def _verify(secret: str, body: bytes, headers: dict[str, str | None]) -> None:
    try:
        webhook = Webhook(secret)
    except (EmptyWebhookSecretError, binascii.Error) as error:
        # The operator's mistake, not the caller's: a 500 that says so in the log.
        raise RuntimeError("BATCH_HTTP_PROVIDER_SECRET is not a whsec_… secret") from error
    present = {name: value for name, value in headers.items() if value}
    if len(present) < len(headers):
        raise Unauthorized(
            "sign the event: the webhook-id, webhook-timestamp and webhook-signature headers "
            "are required"
        )
    try:
        webhook.verify(body, present, json_parse=False)
    # The library lets malformed headers and non-UTF-8 bodies escape as ValueError.
    except (WebhookVerificationError, ValueError):
        raise Unauthorized(
            "the event's signature does not match, or its timestamp is not within 5 minutes"
        ) from None


def _call_end(body: bytes) -> tuple[str, CallResult] | None:
    """A signed `{"type": "call.status", "data": <Call>}` event's attempt and its end; None
    for another event type (from a newer sender: not ours to judge, nor worth a retry storm)
    or a status that is not an end."""
    event = bodies.parse_json_object(body, what="an event object")
    if event.get("type") != STATUS_EVENT:
        return None
    try:
        attempt_id, result = parse_call(event.get("data"))
    except InvalidCall as error:
        raise ValidationFailed.at(["data", *error.loc], error.message) from None
    return (attempt_id, result) if result.terminal else None


def _record(attempt_id: str, result: CallResult) -> bool:
    with session_scope(write=True) as session:
        recorded = dialing.record_outcomes(
            session, outcomes=[(attempt_id, result)], now=system_clock.now()
        )
    return bool(recorded)


@router.post(
    "/http",
    summary="Receive a call status event from the HTTP voice runtime (signed, no API key)",
    description=DESCRIPTION,
    response_model=EventAnswer,
    responses=RESPONSES,
    openapi_extra=OPENAPI_EXTRA,
)
async def http_provider_event(
    request: Request,
    webhook_id: Annotated[
        str | None, Header(alias="webhook-id", description="The event's id (same on retries)")
    ] = None,
    webhook_timestamp: Annotated[
        str | None, Header(alias="webhook-timestamp", description="Unix seconds of this attempt")
    ] = None,
    webhook_signature: Annotated[
        str | None,
        Header(alias="webhook-signature", description="`v1,<base64 HMAC-SHA256>`, space-separated"),
    ] = None,
) -> JSONResponse:
    secret = get_settings().http_provider_secret
    if not secret:
        raise NotFound("no such route: /v1/provider-events/http")
    body = await bodies.read_limited(request, MAX_EVENT_BYTES)
    _verify(
        secret,
        body,
        {
            "webhook-id": webhook_id,
            "webhook-timestamp": webhook_timestamp,
            "webhook-signature": webhook_signature,
        },
    )
    ended = _call_end(body)
    if ended is None:
        return JSONResponse({"recorded": False}, status_code=202)
    attempt_id, result = ended
    recorded = await run_in_threadpool(_record, attempt_id, result)
    log.info("http provider event: %s %s (recorded: %s)", attempt_id, result.status, recorded)
    return JSONResponse({"recorded": recorded}, status_code=200)


# --- Twilio status callbacks ---------------------------------------------------------------------

TWILIO_DESCRIPTION = """
Twilio posts each call's progress here (the `StatusCallback` of every call Batch calls places
through this connection, with the events initiated, ringing, answered and completed). Each
request is checked with Twilio's own validator against `X-Twilio-Signature`, computed by Twilio
from this exact URL (so `BATCH_PUBLIC_URL` must be the address Twilio calls) and the connection's
auth token: a missing or wrong signature answers `401` and changes nothing. A call's end is
recorded at once; events may come late, twice or out of order (`{"recorded": false}`), and an
event for a call this service does not know answers `200` and is ignored.

**Your bot's result** (optional): the same URL takes `application/json`
`{"type": "call.status", "data": <Call>}` (the HTTP runtime's Call object: `attempt_id` from the
stream's parameters, `status`, `transcript`, `evaluations`, `data_collection`), signed as
Standard Webhooks says with the connection's `bot_secret` credential. It ends a call still live,
or adds the transcript to one whose end Twilio reported first (its `conversation.completed`
webhook waits 30 seconds for it).
"""

TWILIO_OPENAPI: dict[str, Any] = {
    "security": [],
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "CallSid": {"type": "string"},
                        "AccountSid": {"type": "string"},
                        "CallStatus": {"type": "string"},
                        "AnsweredBy": {"type": "string"},
                        "CallDuration": {"type": "string"},
                    },
                    "additionalProperties": {"type": "string"},
                }
            },
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["type", "data"],
                    "properties": {
                        "type": {"type": "string", "example": STATUS_EVENT},
                        "data": _CALL_SCHEMA,
                    },
                },
                "example": OPENAPI_EXTRA["requestBody"]["content"]["application/json"]["example"],
            },
        },
    },
}


# How long a connected call's `conversation.completed` waits for its bot's result, when the
# connection takes results (its bot_secret is set).
BOT_RESULT_GRACE = timedelta(seconds=30)


def _twilio_connection(connection_id: str) -> tuple[Any, str]:
    """The connection's adapter (its auth token checks Twilio's signature) and the secret its
    bot signs results with ("" when it takes none)."""
    from batch_dashboard.models import Connection
    from batch_dashboard.providers.registry import platform_adapter
    from batch_dashboard.services import connections

    with session_scope() as session:
        connection = session.get(Connection, connection_id) if is_clean_id(connection_id) else None
        if connection is None or connection.provider != "twilio":
            raise NotFound(f"no Twilio connection {connection_id}")
        bot_secret = connections.credentials(connection).get("bot_secret", "")
        return platform_adapter(connection, settings=get_settings()), bot_secret


def _record_platform(
    connection_id: str, events: list[Any], delay: timedelta | None
) -> tuple[int, list[Any]]:
    with session_scope(write=True) as session:
        return platform_calls.record_platform_events(
            session,
            connection_id=connection_id,
            events=events,
            now=system_clock.now(),
            webhook_delay=delay,
        )


def _record_twilio(
    adapter: Any,
    connection_id: str,
    attempt_id: str,
    params: dict[str, str],
    webhook_delay: timedelta | None,
) -> bool:
    from batch_dashboard.providers.twilio import result_from

    call_id = params.get("CallSid") or None
    failed = params.get("CallStatus") == "failed" and call_id
    result = result_from(params, error_code=adapter.error_code(call_id) if failed else None)
    event = PlatformEvent(attempt_id=attempt_id, call_id=call_id, result=result)
    recorded, _unknown = _record_platform(connection_id, [event], webhook_delay)
    return bool(recorded)


@router.post(
    "/twilio/{connection_id}",
    summary="Receive a Twilio call status callback (signed by Twilio, no API key)",
    description=TWILIO_DESCRIPTION,
    response_model=EventAnswer,
    responses={
        202: {"model": EventAnswer, "description": "A bot result that is not a call's end"},
        401: _error_response("unauthorized: the signature is missing or wrong"),
        404: _error_response(
            "not found: no such Twilio connection (or, for a bot result, no bot_secret)"
        ),
        413: _error_response("payload too large"),
        422: _error_response("validation failed: not a Call object, or not a Twilio form"),
    },
    openapi_extra=TWILIO_OPENAPI,
)
async def twilio_event(
    connection_id: str,
    request: Request,
    signature: Annotated[
        str | None, Header(alias="X-Twilio-Signature", description="Twilio's HMAC-SHA1")
    ] = None,
) -> JSONResponse:
    adapter, bot_secret = await run_in_threadpool(_twilio_connection, connection_id)
    body = await bodies.read_limited(request, MAX_EVENT_BYTES)
    if request.headers.get("content-type", "").startswith("application/json"):
        return await _bot_result(connection_id, bot_secret, body, request)
    try:
        params = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False))
    except (UnicodeDecodeError, ValueError):
        raise ValidationFailed.at(["body"], "must be a form-encoded Twilio callback") from None
    query = request.url.query
    url = f"{get_settings().public_url.rstrip('/')}{request.url.path}" + (
        f"?{query}" if query else ""
    )
    if not adapter.validates(url, params, signature):
        raise Unauthorized(
            "X-Twilio-Signature is missing or does not match this URL and the connection's "
            "auth token (is BATCH_PUBLIC_URL the address Twilio calls?)"
        )
    attempt_id = request.query_params.get("attempt_id", "")
    if not attempt_id or not is_clean_id(attempt_id):
        return JSONResponse({"recorded": False}, status_code=200)
    recorded = await run_in_threadpool(
        _record_twilio,
        adapter,
        connection_id,
        attempt_id,
        params,
        BOT_RESULT_GRACE if bot_secret else None,
    )
    log.info("twilio event: %s %s (recorded: %s)", attempt_id, params.get("CallStatus"), recorded)
    return JSONResponse({"recorded": recorded}, status_code=200)


async def _bot_result(
    connection_id: str, secret: str, body: bytes, request: Request
) -> JSONResponse:
    """Your bot's own result for a call: `{"type": "call.status", "data": <Call>}` (the HTTP
    runtime's Call object), signed as Standard Webhooks says with the connection's bot_secret."""
    if not secret:
        raise NotFound(
            f"connection {connection_id} takes no bot results: set its bot_secret credential"
        )
    _verify(
        secret,
        body,
        {
            name: request.headers.get(name)
            for name in ("webhook-id", "webhook-timestamp", "webhook-signature")
        },
    )
    ended = _call_end(body)
    if ended is None:
        return JSONResponse({"recorded": False}, status_code=202)
    attempt_id, result = ended
    # It ends a call still live, or fills in one whose end Twilio reported first.
    event = PlatformEvent(attempt_id=attempt_id, call_id=None, result=result)
    recorded, _unknown = await run_in_threadpool(_record_platform, connection_id, [event], None)
    log.info("bot result: %s %s (recorded: %s)", attempt_id, result.status, recorded)
    return JSONResponse({"recorded": bool(recorded)}, status_code=200)


# --- hosted voice-agent platforms (ElevenLabs, Vapi, Retell) ------------------------------------

PLATFORM_DESCRIPTION = """
The post-call webhooks of a hosted voice-agent platform for the calls Batch calls placed through
this connection: ElevenLabs (post-call transcription, call initiation failure; `ElevenLabs-Signature`
with the connection's webhook_secret), Vapi (server messages status-update and end-of-call-report;
`X-Vapi-Secret` equal to the connection's webhook_secret), Retell (call_started, call_ended,
call_analyzed; `x-retell-signature` keyed with the API key). Each is verified as the platform signs
it (a missing or wrong signature, or one outside the platform's time tolerance, answers `401` and
changes nothing), then each call's end is recorded once; events for calls this service does not
know answer `200` and are ignored.
"""

HOSTED_PLATFORMS = ("elevenlabs", "vapi", "retell")
# Seconds to wait, one after another, for the call id of an end reported before it was stored.
UNKNOWN_CALL_WAITS = (0.2, 0.5, 1.0, 2.0)


def _platform_connection(provider: str, connection_id: str) -> Any:
    from batch_dashboard.models import Connection
    from batch_dashboard.providers.registry import platform_adapter

    with session_scope() as session:
        connection = session.get(Connection, connection_id) if is_clean_id(connection_id) else None
        if connection is None or connection.provider != provider:
            raise NotFound(f"no {provider} connection {connection_id}")
        return platform_adapter(connection, settings=get_settings())


@router.post(
    "/{provider}/{connection_id}",
    summary="Receive a hosted platform's call webhook (signed by the platform, no API key)",
    description=PLATFORM_DESCRIPTION,
    response_model=EventAnswer,
    responses={
        401: _error_response("unauthorized: the signature is missing, stale or wrong"),
        404: _error_response("not found: no such connection of that platform"),
        413: _error_response("payload too large"),
        422: _error_response("validation failed: not an event of that platform"),
    },
    openapi_extra={"security": []},
)
async def platform_event(provider: str, connection_id: str, request: Request) -> JSONResponse:
    from batch_dashboard.providers.base import EventRefused

    if provider not in HOSTED_PLATFORMS:
        raise NotFound(f"no such route: /v1/provider-events/{provider}/…")
    adapter = await run_in_threadpool(_platform_connection, provider, connection_id)
    body = await bodies.read_limited(request, MAX_EVENT_BYTES)
    query = request.url.query
    url = f"{get_settings().public_url.rstrip('/')}{request.url.path}" + (
        f"?{query}" if query else ""
    )
    try:
        events = adapter.read_event(
            url=url, headers=dict(request.headers), body=body, now=system_clock.now()
        )
    except EventRefused as refused:
        raise Unauthorized(f"the event's signature was refused: {refused}") from None
    except ValueError as error:
        raise ValidationFailed.at(["body"], str(error)) from None
    # Platforms whose analysis follows the call's end (Retell's call_analyzed) hold the
    # conversation.completed event back for it.
    delay = getattr(adapter, "webhook_delay", None)
    recorded, unknown = await run_in_threadpool(_record_platform, connection_id, events, delay)
    for wait in UNKNOWN_CALL_WAITS:
        if not unknown:
            break
        # The platform reported a call's end before its answer to our placement (the call id)
        # was stored: give the dialer a moment, then look again.
        await asyncio.sleep(wait)
        more, unknown = await run_in_threadpool(_record_platform, connection_id, unknown, delay)
        recorded += more
    log.info("%s event: %d call(s) recorded", provider, recorded)
    return JSONResponse({"recorded": bool(recorded)}, status_code=200)
