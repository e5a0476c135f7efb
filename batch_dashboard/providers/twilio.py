"""Twilio: calls placed through a workspace's Twilio account, answered by the user's own voice
agent behind a media stream (TwiML `<Connect><Stream>`), with Twilio's kept library (`twilio`)
for the REST calls and for checking the signature of status callbacks.

Field names and values are Twilio's (docs/providers.md, "Twilio", cites the page of each).
Twilio takes no idempotency key for a call: the call's sid is stored against the attempt as
soon as Twilio answers, and an attempt without one cannot be looked up again (it ends
`outcome_unknown`, never dialed twice).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit
from xml.sax.saxutils import quoteattr

from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from batch_dashboard.clock import Clock, system_clock, to_utc
from batch_dashboard.providers.base import (
    CallRequest,
    CallResult,
    CallStatus,
    NotPlaced,
    Provider,
    ProviderError,
    render,
)
from batch_dashboard.retry_after import retry_after_seconds
from batch_dashboard.services.outcomes import Outcome

log = logging.getLogger(__name__)
# The library logs each request at INFO with its headers; ours must never hold a credential.
logging.getLogger("twilio.http_client").setLevel(logging.WARNING)

DEFAULT_BASE_URL = "https://api.twilio.com"
TIMEOUT_SECONDS = 15.0
STATUS_EVENTS = ("initiated", "ringing", "answered", "completed")
# Twilio's statuses of a call (`CallStatus` of callbacks, `status` of the Call resource).
LIVE_STATUSES = frozenset({"queued", "initiated", "ringing", "in-progress"})
# Error codes that mean the number cannot be called, not a fault of the account (13223 invalid
# format, 13224 invalid number, 21211 invalid 'To', 21214 'To' cannot be reached, 21217 not a
# valid number: docs/providers.md cites each page).
INVALID_NUMBER_CODES = frozenset({13223, 13224, 21211, 21214, 21217})
# Error codes of an account that cannot place calls at all, and what the breaker calls them:
# 20003 permission denied (wrong credentials, or a suspended or closed account), 20008 test
# credentials on a live resource, 20005 account not active (out of funds), 20403 forbidden
# (suspended or closed). docs/providers.md cites each page.
ACCOUNT_CODES = {
    20003: "authentication_refused",
    20008: "authentication_refused",
    20005: "account_suspended",
    20403: "account_suspended",
}
# Nothing was created, try again later: too many requests (20429), service unavailable (20503).
NOT_PLACED_CODES = frozenset({20429, 20503})
NOT_PLACED_STATUSES = frozenset({429, 503})
MACHINE_ANSWERS = frozenset(
    {"machine_start", "machine_end_beep", "machine_end_silence", "machine_end_other", "fax"}
)


class _BaseUrlClient(TwilioHttpClient):
    """The library's own HTTP client, sent to the connection's `base_url` (a Twilio edge or a
    local test server) with our timeout; it keeps the last answer's headers for Retry-After."""

    def __init__(self, base_url: str, timeout: float) -> None:
        super().__init__(timeout=timeout)
        self._base = urlsplit(base_url)
        self.last_headers: Mapping[str, str] = {}

    def request(  # type: ignore[override]
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        parts = urlsplit(url)
        path = self._base.path.rstrip("/") + parts.path
        url = urlunsplit((self._base.scheme, self._base.netloc, path, parts.query, ""))
        response = super().request(
            method, url, params, data, headers, auth, timeout, allow_redirects
        )
        self.last_headers = dict(response.headers or {})
        return response


def twiml(request: CallRequest) -> str:
    """`<Connect><Stream>` to the agent's bot, with everything the bot needs as parameters."""
    variables = request.variables
    first_message, _ = render(request.agent.first_message, variables)
    prompt, _ = render(request.agent.prompt, variables)
    parameters = {
        "attempt_id": request.attempt_id,
        "batch_id": request.batch_id,
        "recipient_id": request.recipient_id,
        "first_message": first_message,
        "prompt": prompt,
    }
    voicemail = request.voicemail or {}
    if voicemail.get("action"):
        parameters["voicemail_action"] = str(voicemail["action"])
        if voicemail.get("message"):
            parameters["voicemail_message"] = render(str(voicemail["message"]), variables)[0]
    for name, value in variables.items():
        parameters.setdefault(
            name, ("true" if value else "false") if isinstance(value, bool) else str(value)
        )
    items = "".join(
        f"<Parameter name={quoteattr(name)} value={quoteattr(value)}/>"
        for name, value in parameters.items()
    )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><Response><Connect>'
        f"<Stream url={quoteattr(request.stream_url or '')}>{items}</Stream>"
        f"</Connect></Response>"
    )


def _time(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return to_utc(value)
    if not value or not isinstance(value, str):
        return None
    try:
        return to_utc(parsedate_to_datetime(value))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _seconds(value: object) -> float | None:
    try:
        return float(value) if value not in (None, "") else None  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def result_from(
    fields: Mapping[str, Any], *, call_id: str | None = None, error_code: int | None = None
) -> CallResult:
    """A call's state from Twilio's words: the fields of a status callback (`CallStatus`,
    `AnsweredBy`, `CallDuration`, `ErrorCode`…) or of the Call resource (`status`,
    `answered_by`, `duration`, `start_time`, `end_time`)."""
    status = fields.get("CallStatus") or fields.get("status") or ""
    answered_by = fields.get("AnsweredBy") or fields.get("answered_by") or ""
    sid = call_id or fields.get("CallSid") or fields.get("sid")
    started = _time(fields.get("start_time") or fields.get("StartTime"))
    ended = _time(fields.get("end_time") or fields.get("EndTime"))
    duration = _seconds(fields.get("CallDuration") or fields.get("duration"))
    code = error_code if error_code is not None else _seconds(fields.get("ErrorCode"))
    message = fields.get("ErrorMessage") or None
    if status in LIVE_STATUSES:
        return CallResult(status=CallStatus.in_progress, started_at=started, call_id=sid)
    if status == "completed" and answered_by in MACHINE_ANSWERS:
        return CallResult(
            status=CallStatus.voicemail,
            failure_reason=Outcome.voicemail.value,
            started_at=started,
            ended_at=ended,
            duration_seconds=duration,
            call_id=sid,
        )
    if status == "completed":
        return CallResult(
            status=CallStatus.completed,
            started_at=started,
            ended_at=ended,
            duration_seconds=duration,
            call_id=sid,
        )
    if status == "busy":
        reason: Outcome = Outcome.busy
    elif status == "no-answer":
        reason = Outcome.no_answer
    elif status == "canceled":
        reason = Outcome.hung_up
    elif code is not None and int(code) in INVALID_NUMBER_CODES:
        reason = Outcome.invalid_number
    else:
        reason = Outcome.provider_error
    return CallResult(
        status=_FAILED_STATUSES.get(reason, CallStatus.failed),
        failure_reason=reason.value,
        ended_at=ended,
        call_id=sid,
        message=str(message) if message else (f"Twilio {status}" if status else None),
    )


_FAILED_STATUSES = {Outcome.busy: CallStatus.busy, Outcome.no_answer: CallStatus.no_answer}


def events_path(connection_id: str) -> str:
    return f"/v1/provider-events/twilio/{connection_id}"


class TwilioProvider(Provider):
    name = "twilio"
    # Status callbacks record each call's end at once; polling is only the fallback for a
    # callback that never comes, so it stays well inside Twilio's API limits.
    poll_interval = 10.0

    def __init__(
        self,
        *,
        connection_id: str,
        account_sid: str,
        auth_token: str,
        base_url: str | None,
        public_url: str,
        clock: Clock = system_clock,
        timeout: float = TIMEOUT_SECONDS,
    ) -> None:
        super().__init__(clock=clock)
        self.connection_id = connection_id
        self.account_sid = account_sid
        self._auth_token = auth_token
        self.base_url = base_url or DEFAULT_BASE_URL
        self.public_url = public_url.rstrip("/")
        self.timeout = timeout
        self._local = threading.local()

    def __repr__(self) -> str:  # never the token
        return f"TwilioProvider({self.connection_id}, {self.account_sid[:6]}…)"

    def client(self) -> Client:
        """One client per thread: the library's HTTP session is not shared across threads."""
        client = getattr(self._local, "client", None)
        if client is None:
            http = _BaseUrlClient(self.base_url, self.timeout)
            client = Client(self.account_sid, self._auth_token, http_client=http)
            self._local.client = client
        return client

    def _error(self, error: Exception, doing: str) -> ProviderError:
        if isinstance(error, TwilioRestException):
            if error.status in NOT_PLACED_STATUSES or error.code in NOT_PLACED_CODES:
                headers = self.client().http_client.last_headers  # type: ignore[attr-defined]
                return NotPlaced(
                    f"Twilio asked to wait while {doing} ({error.status} {error.code or ''})",
                    retry_after=retry_after_seconds(
                        headers.get("Retry-After") or headers.get("retry-after"),
                        self.clock.now(),
                    ),
                )
            retryable = error.status >= 500
            return ProviderError(
                f"Twilio refused {doing}: {error.status} {error.code or ''} {error.msg}".strip(),
                retryable=retryable,
                account=ACCOUNT_CODES.get(error.code) if isinstance(error.code, int) else None,
            )
        # A timeout or a broken connection: Twilio may have acted on it.
        return ProviderError(f"Twilio did not answer while {doing}: {type(error).__name__}")

    # --- placing --------------------------------------------------------------------------

    def status_callback(self, attempt_id: str) -> str:
        query = urlencode({"attempt_id": attempt_id})
        return f"{self.public_url}{events_path(self.connection_id)}?{query}"

    def create_fields(self, request: CallRequest) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "to": request.to,
            "from_": request.from_,
            "twiml": twiml(request),
            "timeout": max(1, round(request.ringing_timeout_ms / 1000)),
            "status_callback": self.status_callback(request.attempt_id),
            "status_callback_event": list(STATUS_EVENTS),
            "status_callback_method": "POST",
        }
        if request.voicemail and request.voicemail.get("action"):
            # Answering-machine detection only when the batch says what to do with a machine.
            fields["machine_detection"] = (
                "DetectMessageEnd"
                if request.voicemail.get("action") == "leave_message"
                else "Enable"
            )
        return fields

    def _create(self, request: CallRequest) -> CallResult | ProviderError:
        if not request.stream_url:
            return ProviderError(
                f"agent {request.agent.id} has no stream_url: Twilio needs the bot's wss:// "
                "media stream",
                retryable=False,
            )
        try:
            call = self.client().calls.create(**self.create_fields(request))
        except (TwilioRestException, TwilioException, OSError) as error:
            return self._error(error, "creating a call")
        except Exception as error:  # requests' own timeouts and connection errors
            return self._error(error, "creating a call")
        return CallResult(status=CallStatus.in_progress, call_id=call.sid)

    async def place_calls(
        self, requests: Sequence[CallRequest]
    ) -> list[CallResult | ProviderError]:
        # The claim paced these to the account's calls per second already: send them now.
        return list(await asyncio.gather(*(asyncio.to_thread(self._create, r) for r in requests)))

    # --- asking, hanging up -----------------------------------------------------------------

    def error_code(self, call_id: str) -> int | None:
        """Why Twilio failed a call: the error code of its notification (status callbacks and
        the Call resource carry none)."""
        try:
            notes = self.client().calls(call_id).notifications.list(limit=1)
        except Exception:
            return None
        code = notes[0].error_code if notes else None
        return int(code) if code and str(code).isdigit() else None

    def _fetch(self, call_id: str) -> CallResult:
        try:
            call = self.client().calls(call_id).fetch()
        except Exception as error:
            raise self._error(error, f"looking up call {call_id}") from None
        code = self.error_code(call_id) if call.status == "failed" else None
        return result_from(
            {
                "status": call.status,
                "answered_by": call.answered_by,
                "duration": call.duration,
                "start_time": call.start_time,
                "end_time": call.end_time,
            },
            call_id=call.sid,
            error_code=code,
        )

    async def call_status(self, attempt_id: str, call_id: str | None = None) -> CallResult | None:
        if call_id is None:
            # Twilio cannot find a call by our attempt id: without its sid nobody can say
            # whether it rang, so it must not be placed again.
            raise ProviderError(
                f"attempt {attempt_id} has no Twilio call sid: its outcome cannot be known",
                retryable=False,
            )
        return await asyncio.to_thread(self._fetch, call_id)

    def _hang_up(self, call_id: str) -> None:
        try:
            self.client().calls(call_id).update(status="completed")
        except Exception as error:
            raise self._error(error, f"hanging up call {call_id}") from None

    async def hang_up(self, attempt_id: str, call_id: str | None = None) -> None:
        if call_id is not None:
            await asyncio.to_thread(self._hang_up, call_id)

    # --- its events ---------------------------------------------------------------------------

    def validates(self, url: str, params: Mapping[str, Any], signature: str | None) -> bool:
        """`X-Twilio-Signature` checked by Twilio's own validator against the exact URL Twilio
        called (BATCH_PUBLIC_URL + path + query) and this account's auth token."""
        if not signature or not self._auth_token:
            return False
        return bool(RequestValidator(self._auth_token).validate(url, dict(params), signature))

    # --- the account ------------------------------------------------------------------------

    def check(self) -> None:
        """One harmless authenticated read: the account itself."""
        try:
            self.client().api.v2010.accounts(self.account_sid).fetch()
        except Exception as error:
            raise self._error(error, "reading the account") from None

    def incoming_numbers(self) -> list[dict[str, Any]]:
        """The account's phone numbers: E.164, Twilio's sid, and whether it can make calls."""
        try:
            numbers = self.client().incoming_phone_numbers.list()
        except Exception as error:
            raise self._error(error, "listing the account's numbers") from None
        return [
            {
                "phone_number": number.phone_number,
                "external_id": number.sid,
                "label": number.friendly_name or "",
                "voice": bool((number.capabilities or {}).get("voice")),
            }
            for number in numbers
        ]
