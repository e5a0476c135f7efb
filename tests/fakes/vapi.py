"""A local fake of Vapi's API (https://api.vapi.ai) and of the server messages Vapi posts to a
Server URL, for testing the Vapi adapter without the internet.

Everything it speaks comes from Vapi's public docs and OpenAPI description (VapiAI/docs) or its
Python SDK (VapiAI/server-sdk-python); VAPI_SOURCES.md, next to this file, names the source of
each field, value and rule, and what was ambiguous.

Serves, on 127.0.0.1 and an ephemeral port, in background threads:

    POST /call                   create a call (CreateCallDTO) -> 201 Call
    GET  /call/{id}              a call -> 200 Call, 404 unknown
    GET  /call                   the account's calls (limit, createdAt*, assistantId, phoneNumberId, id)
    GET  /assistant              the account's assistants (limit, createdAt*)
    GET  /phone-number           the account's phone numbers (limit, createdAt*)
    POST /control/{id}           the call's `monitor.controlUrl` (Live Call Control: end-call, say)

Usage (a pytest fixture is `with VapiFake(...) as fake: yield fake`):

    with VapiFake(time_scale=0.01, server_url="https://calls.example.com/v1/provider-events/vapi/c",
                  server_target=lambda url: recorder.url) as fake:
        assistant = fake.add_assistant(name="Reminders", first_message="Hi {{name}}")
        number = fake.add_phone_number("+14155550100")
        fake.script("+14155550001", ended_reason="customer-busy")
        fake.fail_next(2, status=429, retry_after=1)
        ...
        fake.wait_for_status(call_id, "ended")

Calls advance on their own (time_scale real seconds per scripted second) or, with
mode="manual", only when the test calls `finish(call_id)`. Each status change is sent as a
`status-update` server message and the end as an `end-of-call-report`, authenticated with the
account's server credential (`auth`: "secret" = `X-Vapi-Secret: <secret>`, "bearer" =
`Authorization: Bearer <secret>`, "hmac" = `x-signature` + `x-timestamp`, "none"). The fake only
ever sends to loopback; `server_target` maps the configured Server URL to a local receiver.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import queue
import re
import secrets
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

import httpx

from tests.fakes.loopback import is_loopback, send_json

__all__ = [
    "CONNECTED_REASONS",
    "DeliveryBehaviour",
    "FakeCall",
    "MessageRecorder",
    "RecordedRequest",
    "Script",
    "ServerDelivery",
    "VapiFake",
    "vapi_hmac_signature",
]

# endedReason values the fake scripts (Call.endedReason enum, VapiAI/docs openapi.json).
CONNECTED_REASONS = frozenset(
    {
        "customer-ended-call",
        "assistant-ended-call",
        "assistant-said-end-call-phrase",
        "assistant-ended-call-after-message-spoken",
        "assistant-ended-call-with-hangup-task",
        "assistant-forwarded-call",
        "silence-timed-out",
        "exceeded-max-duration",
        "voicemail",
    }
)
UNCONNECTED_REASONS = frozenset(
    {
        "customer-busy",
        "customer-did-not-answer",
        "twilio-failed-to-connect-call",
        "twilio-reported-customer-misdialed",
        "call.in-progress.error-sip-outbound-call-failed-to-connect",
        "call.in-progress.error-providerfault-outbound-sip-403-forbidden",
        "call.in-progress.error-providerfault-outbound-sip-480-temporarily-unavailable",
        "call.in-progress.error-providerfault-outbound-sip-408-request-timeout",
        "call.in-progress.error-providerfault-outbound-sip-503-service-unavailable",
    }
)
# Reasons of calls that never start (Call ended reasons, "Call start errors").
START_ERRORS = frozenset(
    {
        "call.start.error-subscription-insufficient-credits",
        "call.start.error-subscription-frozen",
        "call.start.error-subscription-concurrency-limit-reached",
        "call.start.error-get-phone-number",
        "assistant-not-valid",
    }
)
CALL_STATUSES = ("scheduled", "queued", "ringing", "in-progress", "forwarding", "ended")
# AssistantOverrides properties (the schema); anything else in assistantOverrides is refused.
ASSISTANT_OVERRIDE_KEYS = frozenset(
    {
        "transcriber", "model", "voice", "firstMessage", "firstMessageInterruptionsEnabled",
        "firstMessageMode", "voicemailDetection", "clientMessages", "serverMessages",
        "maxDurationSeconds", "backgroundSound", "modelOutputInMessagesEnabled",
        "transportConfigurations", "observabilityPlan", "credentials", "hooks", "tools:append",
        "variableValues", "name", "voicemailMessage", "endCallMessage", "endCallPhrases",
        "compliancePlan", "metadata", "backgroundSpeechDenoisingPlan", "analysisPlan",
        "artifactPlan", "startSpeakingPlan", "stopSpeakingPlan", "monitorPlan", "credentialIds",
        "server", "keypadInputPlan",
    }
)  # fmt: skip
CREATE_CALL_KEYS = frozenset(
    {
        "assistantVersion", "transport", "customers", "name", "schedulePlan", "assistantId",
        "assistant", "assistantOverrides", "squadId", "squad", "squadOverrides", "workflowId",
        "workflow", "workflowOverrides", "phoneNumberId", "phoneNumber", "customerId", "customer",
    }
)  # fmt: skip
CUSTOMER_KEYS = frozenset(
    {
        "numberE164CheckEnabled", "extension", "assistantOverrides", "number", "sipUri", "name",
        "email", "externalId", "squadOverrides",
    }
)  # fmt: skip
VOICEMAIL_PROVIDERS = frozenset({"vapi", "google", "openai", "twilio"})


def _now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime | None) -> str | None:
    """Vapi's dates: ISO 8601 with milliseconds and Z ("2024-09-10T11:14:12.339Z")."""
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{moment.microsecond // 1000:03d}Z"
    )


def vapi_hmac_signature(secret: str, timestamp: str, body: bytes, algorithm: str = "sha256") -> str:
    """The HMAC credential's defaults (HMACAuthenticationPlan): payloadFormat
    "{timestamp}.{body}", signatureEncoding hex, the secret as UTF-8 (secretIsBase64 false)."""
    payload = timestamp.encode() + b"." + body
    return hmac.new(secret.encode(), payload, getattr(hashlib, algorithm)).hexdigest()


def error_body(status: int, message: str | list[str]) -> dict[str, Any]:
    """The error JSON of Vapi's API (a NestJS app: `message`, `error`, `statusCode`)."""
    names = {
        400: "Bad Request",
        401: "Unauthorized",
        404: "Not Found",
        429: "Too Many Requests",
        500: "Internal Server Error",
        503: "Service Unavailable",
    }
    return {"message": message, "error": names.get(status, "Error"), "statusCode": status}


# --------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------


@dataclass
class RecordedRequest:
    """One HTTP request the fake received."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    json: Any
    wall_time: datetime
    operation: str | None = None
    status: int | None = None  # None: no answer was sent (lost answer)
    fault: str | None = None  # "error", "concurrency", "lose" or "slow"
    call_id: str | None = None

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


@dataclass(frozen=True)
class DeliveryBehaviour:
    """How the fake sends server messages (per fake, or per scripted number).

    duplicate: every message is sent twice (same body, same credential).
    out_of_order: the call's messages are held until its end, then sent last-first.
    unauthenticated: no credential header at all.
    wrong_secret: the credential made with another secret.
    drop: True to send none, or the message types ("status-update", "end-of-call-report")
        not to send; the test then settles the call with GET /call/{id}.
    """

    duplicate: bool = False
    out_of_order: bool = False
    unauthenticated: bool = False
    wrong_secret: bool = False
    drop: bool | frozenset[str] = False

    def __post_init__(self) -> None:
        if not isinstance(self.drop, bool):
            object.__setattr__(self, "drop", frozenset(self.drop))

    def drops(self, kind: str) -> bool:
        return self.drop if isinstance(self.drop, bool) else kind in self.drop


@dataclass(frozen=True)
class Script:
    """What happens to calls to one customer number.

    ended_reason: the call's `endedReason` (customer-ended-call: answered, talked, hung up;
        customer-busy; customer-did-not-answer; voicemail; a failure such as
        twilio-failed-to-connect-call or a SIP error; a call.start.error-*: ended at once).
    ring_seconds / duration: scripted seconds ringing, then in progress.
    transcript: (role, message) turns of a connected call: "assistant" (the docs' examples;
        the schema's BotMessage suggests "bot", also accepted) or "user".
    success_evaluation / structured_data / summary: its `analysis`.
    ended_message: `Call.endedMessage` for failures.
    messages: DeliveryBehaviour for this number (else the fake's).
    """

    ended_reason: str = "customer-ended-call"
    ring_seconds: float = 1.0
    duration: float = 5.0
    transcript: tuple[tuple[str, str], ...] = (
        ("assistant", "Hi, this is the clinic calling."),
        ("user", "Hello, yes?"),
        ("assistant", "Your appointment is at 3pm tomorrow."),
        ("user", "Great, thanks."),
    )
    success_evaluation: str | None = "true"
    structured_data: dict[str, Any] | None = None
    summary: str | None = "The customer confirmed the appointment."
    ended_message: str | None = None
    messages: DeliveryBehaviour | None = None

    @property
    def connects(self) -> bool:
        return self.ended_reason in CONNECTED_REASONS

    @property
    def starts(self) -> bool:
        return self.ended_reason not in START_ERRORS


@dataclass
class ServerDelivery:
    """One server message the fake sent, or chose not to send."""

    call_id: str
    kind: str  # "status-update" | "end-of-call-report"
    status: str | None  # the status of a status-update
    url: str  # the Server URL as configured
    target: str  # where the fake actually sent it
    headers: dict[str, str]
    body: bytes
    copy: int = 1
    dropped: bool = False
    http_status: int | None = None
    error: str | None = None
    done: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)

    @property
    def message(self) -> dict[str, Any]:
        return json.loads(self.body)["message"]


@dataclass
class FakeCall:
    """A call the fake created, with the body it was created with."""

    id: str
    body: dict[str, Any]
    script: Script
    created: datetime
    status: str = "queued"
    updated: datetime | None = None
    started: datetime | None = None
    ended: datetime | None = None
    ended_reason: str | None = None
    ended_by: str | None = None  # "script", "control" or "test"
    statuses: list[str] = field(default_factory=list)
    control: list[dict[str, Any]] = field(default_factory=list)
    blocked: bool = False
    _cancel: threading.Event = field(default_factory=threading.Event, repr=False)
    _held: list[ServerDelivery] = field(default_factory=list, repr=False)

    @property
    def overrides(self) -> dict[str, Any]:
        return self.body.get("assistantOverrides") or {}

    @property
    def metadata(self) -> dict[str, Any]:
        return self.overrides.get("metadata") or {}

    @property
    def to(self) -> str:
        return (self.body.get("customer") or {}).get("number", "")

    @property
    def terminal(self) -> bool:
        return self.status == "ended"


@dataclass
class _Fault:
    kind: Literal["error", "concurrency", "lose", "slow"]
    operation: str | None
    remaining: int
    status: int = 429
    message: str | None = None
    retry_after: float | None = None
    seconds: float = 0.0


class _HttpError(Exception):
    def __init__(self, status: int, message: str | list[str]) -> None:
        super().__init__(str(message))
        self.status = status
        self.message = message


_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("POST", re.compile(r"^/call$"), "create_call"),
    ("GET", re.compile(r"^/call$"), "list_calls"),
    ("GET", re.compile(r"^/call/(?P<id>[^/]+)$"), "get_call"),
    ("GET", re.compile(r"^/assistant$"), "list_assistants"),
    ("GET", re.compile(r"^/phone-number$"), "list_phone_numbers"),
    ("POST", re.compile(r"^/control/(?P<id>[^/]+)$"), "control"),
]
_OPEN_OPERATIONS = frozenset({"control"})  # the control URL: no API key in the docs' examples


class VapiFake:
    """The fake Vapi account. See the module docstring; public methods are thread-safe.

    api_key: the private API key it accepts (random when not given).
    webhook_secret: the server credential's token / HMAC secret (random when not given).
    auth: how server messages are authenticated: "secret", "bearer", "hmac" or "none".
    server_url: the Server URL set on the assistant/org (what the messages are sent to);
        None sends none.
    server_target: maps server_url to where the fake really sends (loopback only).
    concurrency_limit: calls live at once before a create answers `concurrencyBlocked`.
    """

    def __init__(
        self,
        api_key: str | None = None,
        webhook_secret: str | None = None,
        *,
        auth: Literal["secret", "bearer", "hmac", "none"] = "secret",
        server_url: str | None = None,
        server_target: Callable[[str], str] | None = None,
        mode: Literal["auto", "manual"] = "auto",
        time_scale: float = 1.0,
        default_script: Script | None = None,
        messages: DeliveryBehaviour | None = None,
        concurrency_limit: int = 10,
        delivery_timeout: float = 5.0,
    ) -> None:
        self.api_key = api_key or str(uuid.uuid4())
        self.webhook_secret = webhook_secret or secrets.token_urlsafe(24)
        self.auth = auth
        self.server_url = server_url
        self.server_target = server_target
        self.mode = mode
        self.time_scale = time_scale
        self.default_script = default_script or Script()
        self.delivery_behaviour = messages or DeliveryBehaviour()
        self.concurrency_limit = concurrency_limit
        self.delivery_timeout = delivery_timeout
        self.org_id = str(uuid.uuid4())
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._scripts: dict[str, Script] = {}
        self._assistants: list[dict[str, Any]] = []
        self._numbers: list[dict[str, Any]] = []
        self._calls: dict[str, FakeCall] = {}
        self._requests: list[RecordedRequest] = []
        self._deliveries: list[ServerDelivery] = []
        self._faults: list[_Fault] = []
        self._outbox: queue.Queue[ServerDelivery | None] = queue.Queue()
        self._server: ThreadingHTTPServer | None = None
        self._base_url: str | None = None
        self._stopping = False
        self._threads: list[threading.Thread] = []
        self._clock_base = _now() - timedelta(days=3)
        self._tick = 0

    # ---- lifecycle -----------------------------------------------------------------------

    def start(self) -> VapiFake:
        if self._server is not None:
            return self
        server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        server.daemon_threads = True
        self._server = server
        self._base_url = f"http://127.0.0.1:{server.server_address[1]}"
        self._stopping = False
        self._threads = [
            threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="vapi-fake-http",
                daemon=True,
            ),
            threading.Thread(target=self._run_deliveries, name="vapi-fake-messages", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        with self._lock:
            self._stopping = True
            for call in self._calls.values():
                call._cancel.set()
            self._changed.notify_all()
        self._outbox.put(None)
        server.shutdown()
        server.server_close()
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads = []

    def __enter__(self) -> VapiFake:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """http://127.0.0.1:<port> (kept after stop, for calls that still describe
        themselves)."""
        if self._base_url is None:
            raise RuntimeError("the fake was never started")
        return self._base_url

    # ---- the account -----------------------------------------------------------------------

    def _created_at(self) -> datetime:
        """Distinct, increasing createdAt values for what the account holds."""
        with self._lock:
            self._tick += 1
            return self._clock_base + timedelta(seconds=self._tick)

    def add_assistant(
        self,
        name: str | None = "Assistant",
        first_message: str | None = "Hello!",
        prompt: str | None = "You are a helpful assistant.",
        *,
        id: str | None = None,
        extra_messages: Iterable[dict[str, Any]] = (),
    ) -> str:
        """An Assistant as GET /assistant returns it; returns its id."""
        created = iso(self._created_at())
        messages = [{"role": "system", "content": prompt}] if prompt is not None else []
        assistant: dict[str, Any] = {
            "id": id or str(uuid.uuid4()),
            "orgId": self.org_id,
            "createdAt": created,
            "updatedAt": created,
            "model": {"provider": "openai", "model": "gpt-4o", "messages": messages},
            "voice": {"provider": "vapi", "voiceId": "Elliot"},
            "transcriber": {"provider": "deepgram", "model": "nova-2", "language": "en"},
        }
        assistant["model"]["messages"].extend(extra_messages)
        if name is not None:
            assistant["name"] = name
        if first_message is not None:
            assistant["firstMessage"] = first_message
        with self._lock:
            self._assistants.append(assistant)
        return assistant["id"]

    def add_phone_number(
        self,
        number: str | None,
        name: str | None = None,
        *,
        provider: str = "twilio",
        status: str = "active",
        id: str | None = None,
    ) -> str:
        """A PhoneNumber (TwilioPhoneNumber, VapiPhoneNumber…); returns its id."""
        created = iso(self._created_at())
        phone: dict[str, Any] = {
            "id": id or str(uuid.uuid4()),
            "orgId": self.org_id,
            "provider": provider,
            "createdAt": created,
            "updatedAt": created,
            "status": status,
        }
        if number is not None:
            phone["number"] = number
        if name is not None:
            phone["name"] = name
        if provider == "twilio":
            phone["twilioAccountSid"] = "AC" + secrets.token_hex(16)
        if provider == "vapi":
            phone["sipUri"] = f"sip:{phone['id']}@sip.vapi.ai"
        with self._lock:
            self._numbers.append(phone)
        return phone["id"]

    def script(
        self, to_number: str, ended_reason: str = "customer-ended-call", **kw: Any
    ) -> Script:
        script = Script(ended_reason=ended_reason, **kw)
        with self._lock:
            self._scripts[to_number] = script
        return script

    def set_delivery_behaviour(self, **kwargs: Any) -> None:
        with self._lock:
            self.delivery_behaviour = replace(self.delivery_behaviour, **kwargs)

    # Faults apply to one operation: "create_call", "get_call", "list_calls",
    # "list_assistants", "list_phone_numbers", "control" (or None: any of them).

    def fail_next(
        self,
        count: int = 1,
        status: int = 429,
        *,
        retry_after: float | None = 1,
        operation: str | None = "create_call",
        message: str | None = None,
    ) -> None:
        """The next `count` requests answer `status` with Vapi's error body (and Retry-After
        when given). Nothing is created."""
        self._add_fault(
            _Fault("error", operation, count, status, message=message, retry_after=retry_after)
        )

    def concurrency_block_next(self, count: int = 1) -> None:
        """The next `count` creates answer as an account at its concurrency limit does: 201,
        `subscriptionLimits.concurrencyBlocked: true`, the call ended at once, never ringing."""
        self._add_fault(_Fault("concurrency", "create_call", count))

    def lose_next(self, count: int = 1, *, operation: str | None = "create_call") -> None:
        """The next `count` requests are carried out (a create makes a call that rings) but
        the connection is closed without an answer."""
        self._add_fault(_Fault("lose", operation, count))

    def slow_next(
        self, count: int = 1, seconds: float = 5.0, *, operation: str | None = "create_call"
    ) -> None:
        """The next `count` requests are carried out, then answered after `seconds`."""
        self._add_fault(_Fault("slow", operation, count, seconds=seconds))

    def _add_fault(self, fault: _Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def _take_fault(self, operation: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.remaining > 0 and fault.operation in (None, operation):
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._faults.remove(fault)
                    return replace(fault)
        return None

    # ---- introspection ---------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def requests_for(self, operation: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.operation == operation]

    @property
    def calls(self) -> list[FakeCall]:
        with self._lock:
            return sorted(self._calls.values(), key=lambda c: c.created)

    def call(self, call_id: str) -> FakeCall:
        with self._lock:
            return self._calls[call_id]

    def calls_to(self, number: str) -> list[FakeCall]:
        return [c for c in self.calls if c.to == number]

    @property
    def deliveries(self) -> list[ServerDelivery]:
        with self._lock:
            return list(self._deliveries)

    def deliveries_for(self, call_id: str) -> list[ServerDelivery]:
        return [d for d in self.deliveries if d.call_id == call_id]

    def wait_for_status(self, call_id: str, status: str, timeout: float = 10.0) -> FakeCall:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                call = self._calls.get(call_id)
                if call is not None and status in call.statuses:
                    return call
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"call {call_id} never reached {status}")
                self._changed.wait(left)

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Until every call has ended and every server message was delivered."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                busy = any(not c.terminal for c in self._calls.values() if not c.blocked)
                pending = any(
                    not d.done.is_set() and not d.dropped for d in self._deliveries
                ) or any(c._held for c in self._calls.values())
            if not busy and not pending and self._outbox.empty():
                return
            time.sleep(0.01)
        raise TimeoutError("the fake did not become idle")

    # ---- the call's life -------------------------------------------------------------------

    def finish(self, call_id: str) -> None:
        """Manual mode: run the call's script to its end now."""
        call = self.call(call_id)
        self._run_script(call, scale=0.0)

    def _run_script(self, call: FakeCall, scale: float) -> None:
        script = call.script

        def sleep(seconds: float) -> bool:
            return not call._cancel.wait(seconds * scale) if scale else not call._cancel.is_set()

        if not script.starts:
            self._end(call, script.ended_reason, by="script")
            return
        self._set_status(call, "ringing")
        if not sleep(script.ring_seconds):
            return
        if script.connects:
            with self._lock:
                call.started = _now()
            self._set_status(call, "in-progress")
            if not sleep(script.duration):
                return
        self._end(call, script.ended_reason, by="script")

    def _set_status(self, call: FakeCall, status: str) -> None:
        with self._lock:
            if call.terminal:
                return
            call.status = status
            call.updated = _now()
            call.statuses.append(status)
            self._changed.notify_all()
        self._send(call, "status-update")

    def _end(self, call: FakeCall, reason: str, *, by: str) -> None:
        with self._lock:
            if call.terminal:
                return
            call.ended_reason = reason
            call.ended = _now()
            call.ended_by = by
            if call.started is None and reason in CONNECTED_REASONS:
                call.started = call.created
            call.status = "ended"
            call.updated = call.ended
            call.statuses.append("ended")
            call._cancel.set()
            self._changed.notify_all()
        self._send(call, "status-update")
        if not call.blocked:
            self._send(call, "end-of-call-report")
        self._release_held(call)

    def end_call(self, call_id: str, reason: str = "customer-ended-call") -> None:
        """End a live call now, from the test."""
        self._end(self.call(call_id), reason, by="test")

    # ---- JSON shapes -----------------------------------------------------------------------

    def _artifact(self, call: FakeCall) -> dict[str, Any]:
        script = call.script
        messages: list[dict[str, Any]] = []
        if script.connects and call.started is not None:
            start_ms = call.started.timestamp() * 1000
            prompt = next(
                (
                    m.get("content", "")
                    for a in self._assistants
                    if a["id"] == call.body.get("assistantId")
                    for m in a["model"]["messages"]
                    if m.get("role") == "system"
                ),
                "",
            )
            messages.append(
                {"role": "system", "message": prompt, "time": start_ms, "secondsFromStart": 0}
            )
            for index, (role, text) in enumerate(script.transcript):
                offset = 0.5 + 2.0 * index
                messages.append(
                    {
                        "role": role,
                        "message": text,
                        "time": start_ms + offset * 1000,
                        "endTime": start_ms + (offset + 1.5) * 1000,
                        "secondsFromStart": offset,
                        "duration": 1.5,
                        **({"source": ""} if role != "user" else {}),
                    }
                )
        transcript = "\n".join(
            f"{'User' if m['role'] == 'user' else 'AI'}: {m['message']}"
            for m in messages
            if m["role"] in ("assistant", "bot", "user")
        )
        return {"messages": messages, "transcript": transcript}

    def _analysis(self, call: FakeCall) -> dict[str, Any]:
        script = call.script
        if not script.connects or call.status != "ended":
            return {}
        analysis: dict[str, Any] = {}
        if script.summary is not None:
            analysis["summary"] = script.summary
        if script.structured_data is not None:
            analysis["structuredData"] = script.structured_data
        if script.success_evaluation is not None:
            analysis["successEvaluation"] = script.success_evaluation
        return analysis

    def call_json(self, call: FakeCall) -> dict[str, Any]:
        """The Call object, keyed as in the Call schema and the docs' examples."""
        with self._lock:
            body = call.body
            data: dict[str, Any] = {
                "id": call.id,
                "orgId": self.org_id,
                "type": "outboundPhoneCall",
                "createdAt": iso(call.created),
                "updatedAt": iso(call.updated or call.created),
                "status": call.status,
                "assistantId": body.get("assistantId"),
                "phoneNumberId": body.get("phoneNumberId"),
                "customer": body.get("customer"),
                "cost": 0,
                "phoneCallProvider": "twilio",
                "phoneCallProviderId": "CA" + call.id.replace("-", "")[:32],
                "phoneCallTransport": "pstn",
                "monitor": {
                    "listenUrl": f"{self.base_url.replace('http', 'ws', 1)}/listen/{call.id}",
                    "controlUrl": f"{self.base_url}/control/{call.id}",
                },
            }
            if "assistantOverrides" in body:
                data["assistantOverrides"] = body["assistantOverrides"]
            if call.started is not None:
                data["startedAt"] = iso(call.started)
            if call.terminal:
                data["endedReason"] = call.ended_reason
                data["endedAt"] = iso(call.ended)
                if call.script.ended_message and not call.script.connects:
                    data["endedMessage"] = call.script.ended_message
                data["artifact"] = self._artifact(call)
                data["analysis"] = self._analysis(call)
                data["messages"] = data["artifact"]["messages"]
            return data

    def server_message(self, call: FakeCall, kind: str) -> dict[str, Any]:
        """A ServerMessage body as Vapi posts it."""
        with self._lock:
            message: dict[str, Any] = {
                "type": kind,
                "timestamp": int(time.time() * 1000),
                "call": self.call_json(call),
                "customer": call.body.get("customer"),
            }
            if kind == "status-update":
                message["status"] = call.status
                if call.status == "ended":
                    message["endedReason"] = call.ended_reason
            else:
                message["endedReason"] = call.ended_reason
                message["cost"] = 0.0
                message["artifact"] = self._artifact(call)
                message["analysis"] = self._analysis(call)
                if call.started is not None:
                    message["startedAt"] = iso(call.started)
                message["endedAt"] = iso(call.ended)
            return {"message": message}

    # ---- server messages -------------------------------------------------------------------

    def credential_headers(
        self, body: bytes, *, secret: str | None = None, timestamp: str | None = None
    ) -> dict[str, str]:
        """The server credential's headers for this body (auth mode of the fake)."""
        secret = secret or self.webhook_secret
        if self.auth == "secret":
            return {"X-Vapi-Secret": secret}
        if self.auth == "bearer":
            return {"Authorization": f"Bearer {secret}"}
        if self.auth == "hmac":
            stamp = timestamp or str(int(time.time()))
            return {
                "x-signature": vapi_hmac_signature(secret, stamp, body),
                "x-timestamp": stamp,
            }
        return {}

    def _send(self, call: FakeCall, kind: str) -> None:
        if self.server_url is None or self._stopping:
            return
        behaviour = call.script.messages or self.delivery_behaviour
        body = json.dumps(self.server_message(call, kind), separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json"}
        if not behaviour.unauthenticated:
            wrong = "not-the-secret-" + secrets.token_hex(4) if behaviour.wrong_secret else None
            headers |= self.credential_headers(body, secret=wrong)
        target = self.server_target(self.server_url) if self.server_target else self.server_url
        status = json.loads(body)["message"].get("status")
        copies = 2 if behaviour.duplicate else 1
        for copy in range(1, copies + 1):
            delivery = ServerDelivery(
                call_id=call.id,
                kind=kind,
                status=status,
                url=self.server_url,
                target=target,
                headers=dict(headers),
                body=body,
                copy=copy,
                dropped=behaviour.drops(kind),
            )
            with self._lock:
                self._deliveries.append(delivery)
                if delivery.dropped:
                    delivery.done.set()
                    continue
                if behaviour.out_of_order:
                    call._held.append(delivery)
                    continue
            self._outbox.put(delivery)

    def _release_held(self, call: FakeCall) -> None:
        with self._lock:
            held, call._held = call._held, []
        for delivery in reversed(held):
            self._outbox.put(delivery)

    def _run_deliveries(self) -> None:
        with httpx.Client(timeout=self.delivery_timeout, trust_env=False) as client:
            while True:
                delivery = self._outbox.get()
                if delivery is None:
                    return
                if not is_loopback(delivery.target):
                    delivery.error = "not a loopback target: not sent"
                    delivery.done.set()
                    continue
                try:
                    response = client.post(
                        delivery.target, content=delivery.body, headers=delivery.headers
                    )
                    delivery.http_status = response.status_code
                except httpx.HTTPError as error:
                    delivery.error = f"{type(error).__name__}: {error}"
                delivery.done.set()

    # ---- the API ---------------------------------------------------------------------------

    def handle(self, operation: str, params: dict[str, str], request: RecordedRequest) -> Any:
        handler = getattr(self, f"_op_{operation}")
        return handler(params, request)

    def _op_create_call(self, _params: dict[str, str], request: RecordedRequest) -> Any:
        body = request.json
        if not isinstance(body, dict):
            raise _HttpError(400, "body must be a JSON object")
        problems = [
            f"property {key} should not exist" for key in body if key not in CREATE_CALL_KEYS
        ]
        assistant_id = body.get("assistantId")
        phone_id = body.get("phoneNumberId")
        customer = body.get("customer")
        if not isinstance(customer, dict):
            problems.append("customer must be an object")
            customer = {}
        problems += [
            f"customer.property {key} should not exist"
            for key in customer
            if key not in CUSTOMER_KEYS
        ]
        number = customer.get("number")
        if not isinstance(number, str) or not 3 <= len(number) <= 40:
            problems.append("customer.number must be longer than or equal to 3 characters")
        overrides = body.get("assistantOverrides", {})
        if not isinstance(overrides, dict):
            problems.append("assistantOverrides must be an object")
            overrides = {}
        problems += [
            f"assistantOverrides.property {key} should not exist"
            for key in overrides
            if key not in ASSISTANT_OVERRIDE_KEYS
        ]
        for key in ("variableValues", "metadata"):
            if key in overrides and not isinstance(overrides[key], dict):
                problems.append(f"assistantOverrides.{key} must be an object")
        detection = overrides.get("voicemailDetection")
        if (
            detection is not None
            and detection != "off"
            and (
                not isinstance(detection, dict)
                or detection.get("provider") not in VOICEMAIL_PROVIDERS
            )
        ):
            problems.append(
                "assistantOverrides.voicemailDetection.provider must be one of vapi, google, openai, twilio"
            )
        message = overrides.get("voicemailMessage")
        if message is not None and (not isinstance(message, str) or len(message) > 1000):
            problems.append(
                "assistantOverrides.voicemailMessage must be shorter than or equal to 1000 characters"
            )
        for config in overrides.get("transportConfigurations", []) or []:
            timeout = config.get("timeout") if isinstance(config, dict) else None
            if not isinstance(config, dict) or config.get("provider") != "twilio":
                problems.append(
                    "assistantOverrides.transportConfigurations.provider must be twilio"
                )
            elif timeout is not None and (
                not isinstance(timeout, int | float) or not 1 <= timeout <= 600
            ):
                problems.append(
                    "assistantOverrides.transportConfigurations.timeout must not be greater than 600"
                )
        if problems:
            raise _HttpError(400, problems)
        with self._lock:
            if not any(a["id"] == assistant_id for a in self._assistants):
                raise _HttpError(
                    400, f"Couldn't Get Assistant. `assistantId` {assistant_id} Does Not Exist."
                )
            if not any(n["id"] == phone_id for n in self._numbers):
                raise _HttpError(
                    400, f"Couldn't Get Phone Number. `phoneNumberId` {phone_id} Does Not Exist."
                )
            fault = request.fault
            live = sum(1 for c in self._calls.values() if not c.terminal and not c.blocked)
            blocked = fault == "concurrency" or live >= self.concurrency_limit
            call = FakeCall(
                id=str(uuid.uuid4()),
                body=body,
                script=self._scripts.get(number, self.default_script),
                created=_now(),
                blocked=blocked,
            )
            call.statuses.append("queued")
            self._calls[call.id] = call
            request.call_id = call.id
            self._changed.notify_all()
        if blocked:
            self._end(call, "call.start.error-subscription-concurrency-limit-reached", by="script")
        elif self.mode == "auto":
            threading.Thread(
                target=self._run_script, args=(call, self.time_scale), daemon=True
            ).start()
        data = self.call_json(call)
        if blocked:
            data["status"] = "ended"
        data["subscriptionLimits"] = {
            "concurrencyBlocked": blocked,
            "concurrencyLimit": self.concurrency_limit,
            "remainingConcurrentCalls": max(
                0, self.concurrency_limit - live - (0 if blocked else 1)
            ),
        }
        return 201, data

    def _op_get_call(self, params: dict[str, str], request: RecordedRequest) -> Any:
        with self._lock:
            call = self._calls.get(params["id"])
            if call is None:
                raise _HttpError(404, "Call not found")
            request.call_id = call.id
            return 200, self.call_json(call)

    def _listing(
        self, items: list[dict[str, Any]], query: dict[str, list[str]]
    ) -> list[dict[str, Any]]:
        """Vapi's list filters (limit, createdAtGt/Lt/Ge/Le), newest first."""

        def arg(name: str) -> str | None:
            values = query.get(name)
            return values[0] if values else None

        def when(value: str) -> datetime:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))

        try:
            limit = int(float(arg("limit") or 100))
        except ValueError:
            raise _HttpError(400, ["limit must be a number"]) from None
        if not 0 <= limit <= 1000:
            raise _HttpError(400, ["limit must not be greater than 1000"])
        tests = {
            "createdAtGt": lambda a, b: a > b,
            "createdAtLt": lambda a, b: a < b,
            "createdAtGe": lambda a, b: a >= b,
            "createdAtLe": lambda a, b: a <= b,
        }
        chosen = sorted(items, key=lambda item: item["createdAt"], reverse=True)
        for name, test in tests.items():
            bound = arg(name)
            if bound is None:
                continue
            try:
                moment = when(bound)
            except ValueError:
                raise _HttpError(400, [f"{name} must be a valid ISO 8601 date string"]) from None
            chosen = [item for item in chosen if test(when(item["createdAt"]), moment)]
        return chosen[:limit]

    def _op_list_calls(self, _params: dict[str, str], request: RecordedRequest) -> Any:
        with self._lock:
            items = [self.call_json(c) for c in self._calls.values()]
        for name in ("id", "assistantId", "phoneNumberId"):
            wanted = request.param(name)
            if wanted is not None:
                items = [item for item in items if item.get(name) == wanted]
        return 200, self._listing(items, request.query)

    def _op_list_assistants(self, _params: dict[str, str], request: RecordedRequest) -> Any:
        with self._lock:
            items = [dict(a) for a in self._assistants]
        return 200, self._listing(items, request.query)

    def _op_list_phone_numbers(self, _params: dict[str, str], request: RecordedRequest) -> Any:
        with self._lock:
            items = [dict(n) for n in self._numbers]
        return 200, self._listing(items, request.query)

    def _op_control(self, params: dict[str, str], request: RecordedRequest) -> Any:
        with self._lock:
            call = self._calls.get(params["id"])
            if call is None:
                raise _HttpError(404, "Call not found")
            request.call_id = call.id
            body = request.json if isinstance(request.json, dict) else {}
            call.control.append(body)
        kind = body.get("type")
        if kind not in ("say", "add-message", "control", "end-call", "transfer"):
            raise _HttpError(
                400, ["type must be one of say, add-message, control, end-call, transfer"]
            )
        if kind == "end-call":
            # UNCONFIRMED: the reason a call ended through its control URL reports.
            self._end(call, "manually-canceled", by="control")
        return 200, {}


def _make_handler(fake: VapiFake) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_args: Any) -> None:  # quiet
            pass

        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def _answer(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
            send_json(self, status, data, headers, content_type="application/json; charset=utf-8")

        def _serve(self) -> None:
            parts = urllib.parse.urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                parsed = json.loads(raw) if raw else None
            except ValueError:
                parsed = None
            record = RecordedRequest(
                method=self.command,
                path=parts.path,
                query=urllib.parse.parse_qs(parts.query),
                headers={k.lower(): v for k, v in self.headers.items()},
                body=raw,
                json=parsed,
                wall_time=_now(),
            )
            with fake._lock:
                fake._requests.append(record)
            operation, params = None, {}
            for method, pattern, name in _ROUTES:
                match = pattern.match(parts.path)
                if match and method == self.command:
                    operation, params = name, match.groupdict()
                    break
            record.operation = operation
            if operation is None:
                record.status = 404
                self._answer(404, error_body(404, f"Cannot {self.command} {parts.path}"))
                return
            if operation not in _OPEN_OPERATIONS:
                auth = self.headers.get("Authorization") or ""
                if auth != f"Bearer {fake.api_key}":
                    record.status = 401
                    self._answer(401, error_body(401, "Unauthorized"))
                    return
            if raw and parsed is None:
                record.status = 400
                self._answer(400, error_body(400, "Unexpected token in JSON"))
                return
            fault = fake._take_fault(operation)
            if fault is not None and fault.kind == "error":
                record.fault = "error"
                record.status = fault.status
                headers = {}
                if fault.retry_after is not None:
                    headers["Retry-After"] = f"{fault.retry_after:g}"
                message = fault.message or {
                    429: "Too Many Requests",
                    500: "Internal server error",
                    503: "Service Unavailable",
                }.get(fault.status, "Error")
                self._answer(fault.status, error_body(fault.status, message), headers)
                return
            if fault is not None:
                record.fault = fault.kind
            try:
                status, data = fake.handle(operation, params, record)
            except _HttpError as error:
                record.status = error.status
                self._answer(error.status, error_body(error.status, error.message))
                return
            if fault is not None and fault.kind == "lose":
                record.status = None
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(2)
                return
            if fault is not None and fault.kind == "slow":
                time.sleep(fault.seconds)
            record.status = status
            with contextlib.suppress(OSError):
                self._answer(status, data)

    return Handler


# --------------------------------------------------------------------------------------------
# A receiver for server messages (the events URL's stand-in in adapter tests)
# --------------------------------------------------------------------------------------------


@dataclass
class ReceivedMessage:
    path: str
    headers: dict[str, str]
    body: bytes


class MessageRecorder:
    """A loopback HTTP server that answers 200 and keeps every POST it gets."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self._lock = threading.Lock()
        self._received: list[ReceivedMessage] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with recorder._lock:
                    recorder._received.append(
                        ReceivedMessage(self.path, dict(self.headers.items()), body)
                    )
                self.send_response(recorder.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/events"

    @property
    def received(self) -> list[ReceivedMessage]:
        with self._lock:
            return list(self._received)

    def __enter__(self) -> MessageRecorder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def __iter__(self) -> Iterator[ReceivedMessage]:
        return iter(self.received)
