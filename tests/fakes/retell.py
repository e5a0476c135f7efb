"""A local fake of Retell AI's REST API and of the webhooks Retell posts, for testing the Retell
adapter without the internet.

Everything it speaks comes from Retell's public docs, its OpenAPI description and its official
Python SDK (generated from that description); RETELL_SOURCES.md, next to this file, names the
source of each field, value and rule.

Serves, on 127.0.0.1 and an ephemeral port, in a background thread:

    POST /v2/create-phone-call           create an outbound call (201, the call object)
    GET  /v2/get-call/{call_id}          the call object
    POST /v3/list-calls                  calls, filtered (metadata string filters), paged
    POST /v2/stop-call/{call_id}         stop an ongoing call (204)
    GET  /get-concurrency                the account's concurrency
    POST /v2/list-agents                 agents (query limit, pagination_key), paged
    GET  /get-agent/{agent_id}           one agent, with its response_engine
    GET  /get-retell-llm/{llm_id}        one Retell LLM (general_prompt, begin_message)
    GET  /v2/list-phone-numbers          the account's numbers, paged

Every request needs `Authorization: Bearer <api_key>` (401 otherwise). Errors are Retell's
`{"status": "error", "message": …}`.

Usage:

    with RetellFake(numbers=["+14155550100"], time_scale=0.01,
                    callback_url=receiver.url()) as fake:
        fake.script("+14155552001", "dial_busy")
        fake.fail_next(1, status=429, retry_after=2)
        ...
        fake.wait_idle()

Calls advance on their own (mode="auto", scripted seconds times `time_scale`) or only when the
test says so (mode="manual": `advance(call_id)`, `finish(call_id)`). Webhooks go to
`callback_url` (the account-level webhook URL), or to the agent's `webhook_url` when it has one,
signed as Retell signs them (`x-retell-signature`, compact JSON, the exact bytes sent). The fake
only ever sends to loopback addresses; `callback_target` maps a public URL to a local receiver.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

__all__ = [
    "CONNECTED_REASONS",
    "ERROR_REASONS",
    "NOT_CONNECTED_REASONS",
    "Delivery",
    "FakeCall",
    "ReceivedWebhook",
    "RecordedRequest",
    "RetellFake",
    "Script",
    "WebhookBehaviour",
    "WebhookRecorder",
    "compact_json",
    "retell_sign",
]
from tests.fakes.loopback import is_loopback, reset, send_json

RETELL_API_BASE = "https://api.retellai.com"
E164 = re.compile(r"^\+[1-9]\d{1,14}$")

# disconnection_reason values by the call_status they come with (debug-call-disconnect table).
CONNECTED_REASONS = frozenset(
    {
        "user_hangup",
        "agent_hangup",
        "call_transfer",
        "voicemail_reached",
        "ivr_reached",
        "inactivity",
        "max_duration_reached",
        "transfer_bridged",
        "transfer_cancelled",
        "call_take_over",
        "manual_stopped",
    }
)
NOT_CONNECTED_REASONS = frozenset(
    {
        "dial_busy",
        "dial_failed",
        "dial_no_answer",
        "invalid_destination",
        "telephony_provider_permission_denied",
        "telephony_provider_unavailable",
        "sip_routing_error",
        "marked_as_spam",
        "user_declined",
    }
)
ERROR_REASONS = frozenset(
    {
        "concurrency_limit_reached",
        "no_concurrency_fallback",
        "no_valid_payment",
        "scam_detected",
        "error_llm_websocket_open",
        "error_llm_websocket_lost_connection",
        "error_llm_websocket_runtime",
        "error_llm_websocket_corrupt_payload",
        "error_no_audio_received",
        "error_asr",
        "error_retell",
        "error_unknown",
        "error_user_not_joined",
        "registered_call_timeout",
    }
)
# Top-level fields of POST /v2/create-phone-call (SDK CallCreatePhoneCallParams).
CREATE_FIELDS = frozenset(
    {
        "from_number",
        "to_number",
        "override_agent_id",
        "override_agent_version",
        "agent_override",
        "metadata",
        "retell_llm_dynamic_variables",
        "custom_sip_headers",
        "ignore_e164_validation",
    }
)
VOICEMAIL_ACTIONS = ("prompt", "static_text", "hangup", "bridge_transfer")
WEBHOOK_EVENTS = ("call_started", "call_ended", "call_analyzed")
DEFAULT_RING_MS = 30_000

# Error messages: the OpenAPI's examples for each response.
MESSAGES = {
    400: "Invalid request format, please check API reference.",
    401: "API key is missing or invalid.",
    402: "Trial has ended, please add payment method.",
    403: "Forbidden",
    404: "The requested resource was not found.",
    422: "Cannot find requested asset under given api key.",
    429: "Account rate limited, please throttle your requests.",
    500: "An unexpected server error occurred.",
}
# UNCONFIRMED wording: Retell documents the reason, not the create answer's text.
CONCURRENCY_MESSAGE = "Concurrency limit reached, please retry later or purchase more concurrency."


def _now_ms() -> int:
    return int(time.time() * 1000)


def compact_json(payload: Any) -> bytes:
    """JSON as Retell sends it: no spaces, non-ASCII as UTF-8 (not \\u escapes)."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def retell_sign(body: bytes, api_key: str, timestamp_ms: int | None = None) -> str:
    """`x-retell-signature` as the SDK's `sign` makes it: v=<ms>,d=<hex HMAC-SHA256 of the body
    followed by the decimal timestamp, keyed with the API key>."""
    stamp = _now_ms() if timestamp_ms is None else timestamp_ms
    digest = hmac.new(api_key.encode(), body + str(stamp).encode(), hashlib.sha256).hexdigest()
    return f"v={stamp},d={digest}"


def new_id(length: int = 32) -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    return "".join(secrets.choice(alphabet) for _ in range(length))


# --------------------------------------------------------------------------------------------
# Scripts, behaviours, records
# --------------------------------------------------------------------------------------------

DEFAULT_TRANSCRIPT: tuple[tuple[str, str], ...] = (
    ("agent", "Hi, this is the clinic calling about your appointment."),
    ("user", "Oh hi, yes?"),
    ("agent", "Can you confirm tomorrow at 3pm?"),
    ("user", "Yes, that works."),
)


@dataclass(frozen=True)
class WebhookBehaviour:
    """How webhooks are sent. `events`: which ones (default all three)."""

    drop: bool = False  # send none (so get-call must settle the call)
    duplicate: bool = False  # each one twice
    out_of_order: bool = False  # hold call_started and call_ended, send them after call_analyzed
    unsigned: bool = False  # no x-retell-signature
    stale_ms: int = 0  # sign with a timestamp this many ms in the past (a replay)
    wrong_key: str | None = None  # sign with another key
    tamper: bool = False  # change the body after signing
    events: tuple[str, ...] = WEBHOOK_EVENTS
    retries: int = 3  # re-sent up to 3 times while the receiver answers non-2xx


@dataclass(frozen=True)
class Script:
    """What happens to a call. `outcome` is Retell's disconnection_reason."""

    outcome: str = "user_hangup"
    ring_seconds: float = 2.0
    duration: float = 30.0  # seconds of conversation (connected outcomes)
    analysis_seconds: float = 1.0  # after the end, until call_analyzed
    transcript: tuple[tuple[str, str], ...] = DEFAULT_TRANSCRIPT
    call_successful: bool | None = True
    in_voicemail: bool | None = None  # default: outcome == voicemail_reached
    user_sentiment: str | None = "Positive"
    call_summary: str = "The user confirmed the appointment."
    custom_analysis_data: dict[str, Any] = field(
        default_factory=lambda: {"confirmed": True, "preferred_time": "3pm"}
    )
    webhooks: WebhookBehaviour | None = None

    @property
    def connected(self) -> bool:
        return self.outcome in CONNECTED_REASONS

    @property
    def final_status(self) -> str:
        if self.outcome in NOT_CONNECTED_REASONS:
            return "not_connected"
        if self.outcome in ERROR_REASONS:
            return "error"
        return "ended"


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # without Authorization
    bearer: str | None  # the token of `Authorization: Bearer …`
    raw: bytes
    json: Any
    wall_time: datetime
    operation: str | None = None
    status: int | None = None
    fault: str | None = None
    call_id: str | None = None

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


@dataclass
class Delivery:
    """One webhook the fake sent (or decided not to)."""

    event: str
    call_id: str
    url: str
    target: str
    headers: dict[str, str]
    body: bytes
    status: int | None = None
    error: str | None = None
    attempts: int = 0
    dropped: bool = False

    @property
    def signature(self) -> str | None:
        return self.headers.get("x-retell-signature")


@dataclass
class FakeCall:
    """A call the fake created, with every field it was created with."""

    call_id: str
    body: dict[str, Any]
    script: Script
    agent_id: str
    agent_version: int
    created_ms: int
    call_status: str = "registered"
    start_timestamp: int | None = None
    end_timestamp: int | None = None
    disconnection_reason: str | None = None
    analysis: dict[str, Any] | None = None
    events: list[str] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)
    next_step: int = 0
    stopped: bool = False

    @property
    def to(self) -> str:
        return self.body["to_number"]

    @property
    def from_(self) -> str:
        return self.body["from_number"]

    @property
    def metadata(self) -> dict[str, Any]:
        return self.body.get("metadata") or {}

    @property
    def dynamic_variables(self) -> dict[str, str]:
        return self.body.get("retell_llm_dynamic_variables") or {}

    @property
    def agent_override(self) -> dict[str, Any]:
        return self.body.get("agent_override") or {}

    @property
    def ring_duration_ms(self) -> int:
        return int(self.agent_override.get("agent", {}).get("ring_duration_ms", DEFAULT_RING_MS))

    @property
    def voicemail_option(self) -> dict[str, Any] | None:
        return self.agent_override.get("agent", {}).get("voicemail_option")

    @property
    def ended(self) -> bool:
        return self.call_status in ("ended", "not_connected", "error")

    def resource(self) -> dict[str, Any]:
        """V2PhoneCallResponse, keyed as the SDK's PhoneCallResponse."""
        out: dict[str, Any] = {
            "call_type": "phone_call",
            "call_id": self.call_id,
            "agent_id": self.agent_id,
            "agent_version": self.agent_version,
            "call_status": self.call_status,
            "direction": "outbound",
            "from_number": self.from_,
            "to_number": self.to,
            "metadata": self.metadata,
            "retell_llm_dynamic_variables": self.dynamic_variables,
        }
        if self.start_timestamp is not None:
            out["start_timestamp"] = self.start_timestamp
        if self.ended:
            end = self.end_timestamp or self.start_timestamp or self.created_ms
            out["end_timestamp"] = end
            out["disconnection_reason"] = self.disconnection_reason
            out["duration_ms"] = max(0, end - (self.start_timestamp or end))
            if self.start_timestamp is not None and self.disconnection_reason in CONNECTED_REASONS:
                out.update(self._transcripts())
                out["recording_url"] = f"https://dxc03zgurdly9.cloudfront.net/{self.call_id}.wav"
                out["public_log_url"] = f"https://dxc03zgurdly9.cloudfront.net/{self.call_id}.txt"
            out["telephony_identifier"] = {"twilio_call_sid": "CA" + secrets.token_hex(16)}
        if self.analysis is not None:
            out["call_analysis"] = self.analysis
        return out

    def _transcripts(self) -> dict[str, Any]:
        turns = self.script.transcript
        span = max((self.end_timestamp or 0) - (self.start_timestamp or 0), 0) / 1000
        step = span / max(len(turns), 1)
        objects = []
        for i, (role, text) in enumerate(turns):
            words, at = [], i * step
            for word in text.split():
                words.append({"word": word, "start": round(at, 3), "end": round(at + 0.3, 3)})
                at += 0.35
            objects.append({"role": role, "content": text, "words": words})
        text = "".join(f"{'Agent' if r == 'agent' else 'User'}: {t}\n" for r, t in turns)
        return {"transcript": text, "transcript_object": objects}


@dataclass
class _Fault:
    kind: Literal["error", "lose", "slow", "concurrency_call"]
    operation: str | None
    remaining: int
    status: int = 429
    message: str | None = None
    retry_after: float | None = None
    seconds: float = 0.0


class _HttpError(Exception):
    def __init__(
        self, status: int, message: str | None = None, headers: dict[str, str] | None = None
    ):
        super().__init__(message)
        self.status = status
        self.message = message or MESSAGES.get(status, "Error")
        self.headers = headers or {}


_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("POST", re.compile(r"^/v2/create-phone-call$"), "create_phone_call"),
    ("GET", re.compile(r"^/v2/get-call/(?P<id>[^/]+)$"), "get_call"),
    ("POST", re.compile(r"^/v3/list-calls$"), "list_calls"),
    ("POST", re.compile(r"^/v2/stop-call/(?P<id>[^/]+)$"), "stop_call"),
    ("GET", re.compile(r"^/get-concurrency$"), "get_concurrency"),
    ("POST", re.compile(r"^/v2/list-agents$"), "list_agents"),
    ("GET", re.compile(r"^/get-agent/(?P<id>[^/]+)$"), "get_agent"),
    ("GET", re.compile(r"^/get-retell-llm/(?P<id>[^/]+)$"), "get_retell_llm"),
    ("GET", re.compile(r"^/v2/list-phone-numbers$"), "list_phone_numbers"),
]


# --------------------------------------------------------------------------------------------
# The fake
# --------------------------------------------------------------------------------------------


class RetellFake:
    """The fake Retell API server; every public method is thread-safe.

    api_key: the key it accepts (random when not given), also the webhook signing key.
    numbers: the account's numbers (E.164 strings, or dicts with phone_number, nickname).
    agents: dicts with agent_id, agent_name, and either `llm` ({general_prompt, begin_message})
        for a retell-llm agent or `engine` (a response_engine dict); `webhook_url` optional.
        Default: one retell-llm agent, `agent_default`.
    mode: "auto" or "manual"; time_scale: real seconds per scripted second (auto mode).
    callback_url: the account-level webhook URL; callback_target maps a URL to where the fake
        really sends it (non-loopback targets are never contacted, recorded with an error).
    strict_from: refuse a from_number that is not one of `numbers` (404).
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        numbers: Iterable[str | dict[str, Any]] = (),
        agents: Iterable[dict[str, Any]] | None = None,
        mode: Literal["auto", "manual"] = "auto",
        time_scale: float = 1.0,
        default_script: Script | None = None,
        webhooks: WebhookBehaviour | None = None,
        callback_url: str | None = None,
        callback_target: Callable[[str], str] | None = None,
        callback_timeout: float = 5.0,
        strict_from: bool = True,
        concurrency_limit: int = 20,
    ) -> None:
        self.api_key = api_key or "key_" + secrets.token_hex(12)
        self.mode = mode
        self.time_scale = time_scale
        self.default_script = default_script or Script()
        self.webhook_behaviour = webhooks or WebhookBehaviour()
        self.callback_url = callback_url
        self.callback_target = callback_target
        self.callback_timeout = callback_timeout
        self.strict_from = strict_from
        self.concurrency_limit = concurrency_limit
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._numbers: list[dict[str, Any]] = []
        self._agents: dict[str, dict[str, Any]] = {}
        self._llms: dict[str, dict[str, Any]] = {}
        self._scripts: dict[str, Script] = {}
        self._calls: dict[str, FakeCall] = {}
        self._requests: list[RecordedRequest] = []
        self._deliveries: list[Delivery] = []
        self._faults: list[_Fault] = []
        self._held: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        self._busy = 0  # call threads and deliveries in flight
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        for number in numbers:
            self.add_number(**({"phone_number": number} if isinstance(number, str) else number))
        for agent in agents if agents is not None else [{"agent_id": "agent_default"}]:
            self.add_agent(**agent)

    # ---- lifecycle -----------------------------------------------------------------------

    def start(self) -> RetellFake:
        if self._server is None:
            self._stopping.clear()
            self._server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
            self._server.daemon_threads = True
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="retell-fake-http",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        with self._lock:
            self._changed.notify_all()
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> RetellFake:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the fake is not running")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # ---- configuration -------------------------------------------------------------------

    def add_number(self, phone_number: str, nickname: str | None = None, **extra: Any) -> None:
        with self._lock:
            self._numbers.append(
                {
                    "phone_number": phone_number,
                    "phone_number_type": "retell-twilio",
                    "nickname": nickname,
                    "area_code": int(phone_number[2:5]) if phone_number.startswith("+1") else None,
                    "last_modification_timestamp": _now_ms() - 86_400_000,
                    **extra,
                }
            )

    def add_agent(
        self,
        agent_id: str | None = None,
        agent_name: str | None = None,
        *,
        llm: dict[str, Any] | None = None,
        engine: dict[str, Any] | None = None,
        webhook_url: str | None = None,
        channel: str = "voice",
        version: int = 1,
    ) -> str:
        agent_id = agent_id or "agent_" + new_id(24)
        if engine is None:
            llm_id = "llm_" + new_id(24)
            engine = {"type": "retell-llm", "llm_id": llm_id, "version": 0}
            llm = {
                "general_prompt": "You are a helpful agent.",
                "begin_message": "Hello!",
                **(llm or {}),
            }
            self._llms[llm_id] = {
                "llm_id": llm_id,
                "version": 0,
                "is_published": False,
                "model": "gpt-4.1",
                "start_speaker": "agent",
                "last_modification_timestamp": _now_ms(),
                **llm,
            }
        with self._lock:
            self._agents[agent_id] = {
                "agent_id": agent_id,
                "agent_name": agent_name,
                "version": version,
                "channel": channel,
                "response_engine": engine,
                "voice_id": "11labs-Adrian",
                "webhook_url": webhook_url,
                "last_modification_timestamp": _now_ms(),
            }
        return agent_id

    def script(self, to_number: str, outcome: str = "user_hangup", **kwargs: Any) -> Script:
        """What happens to calls to `to_number` (Script keywords)."""
        script = Script(outcome=outcome, **kwargs)
        with self._lock:
            self._scripts[to_number] = script
        return script

    def set_webhooks(self, **kwargs: Any) -> None:
        """Change how webhooks are sent from now on (WebhookBehaviour keywords)."""
        with self._lock:
            self.webhook_behaviour = replace(self.webhook_behaviour, **kwargs)

    # Faults apply to one operation (see _ROUTES: "create_phone_call", "get_call", …) or None.

    def fail_next(
        self,
        count: int = 1,
        status: int = 429,
        *,
        retry_after: float | None = 1,
        message: str | None = None,
        operation: str | None = "create_phone_call",
    ) -> None:
        """The next `count` requests answer `status` with Retell's error body (and Retry-After
        when given). Nothing is created."""
        self._add_fault(_Fault("error", operation, count, status, message, retry_after))

    def concurrency_next(
        self, count: int = 1, *, as_call: bool = False, retry_after: float | None = None
    ) -> None:
        """The next `count` creates meet the concurrency limit: a 429 whose message says so,
        or (`as_call`) a 201 whose call already failed with `concurrency_limit_reached`."""
        if as_call:
            self._add_fault(_Fault("concurrency_call", "create_phone_call", count))
        else:
            self._add_fault(
                _Fault("error", "create_phone_call", count, 429, CONCURRENCY_MESSAGE, retry_after)
            )

    def lose_next(self, count: int = 1, *, operation: str | None = "create_phone_call") -> None:
        """Carried out (a create makes a call that rings) but the connection closes unanswered."""
        self._add_fault(_Fault("lose", operation, count))

    def slow_next(
        self, count: int = 1, seconds: float = 5.0, *, operation: str | None = "create_phone_call"
    ) -> None:
        """Carried out, then answered only after `seconds`."""
        self._add_fault(_Fault("slow", operation, count, seconds=seconds))

    def _add_fault(self, fault: _Fault) -> None:
        if fault.remaining < 1:
            raise ValueError("count must be at least 1")
        with self._lock:
            self._faults.append(fault)

    def _take_fault(self, operation: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.operation in (None, operation) and fault.remaining > 0:
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._faults.remove(fault)
                    return fault
        return None

    # ---- introspection -------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def requests_for(self, operation: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.operation == operation]

    @property
    def calls(self) -> list[FakeCall]:
        with self._lock:
            return list(self._calls.values())

    def call(self, call_id: str) -> FakeCall:
        with self._lock:
            return self._calls[call_id]

    def calls_to(self, number: str) -> list[FakeCall]:
        return [c for c in self.calls if c.to == number]

    @property
    def deliveries(self) -> list[Delivery]:
        with self._lock:
            return list(self._deliveries)

    def deliveries_for(self, call_id: str) -> list[Delivery]:
        return [d for d in self.deliveries if d.call_id == call_id]

    # ---- waiting -------------------------------------------------------------------------

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        with self._lock:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("condition not met in time")
                self._changed.wait(min(left, 0.05))

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Until every call has ended, been analyzed and had its webhooks sent."""
        self.wait_for(
            lambda: (
                not self._busy and all(c.next_step >= len(c.steps) for c in self._calls.values())
            ),
            timeout,
        )

    # ---- driving calls -------------------------------------------------------------------

    def advance(self, call_id: str) -> str | None:
        """Fire the call's next step ("connect" | "end" | "analyze") and send its webhooks;
        returns it, or None when there is none left."""
        with self._lock:
            call = self._calls[call_id]
            if call.next_step >= len(call.steps):
                return None
            step = call.steps[call.next_step]
            call.next_step += 1
            self._busy += 1
        try:
            self._fire(call, step)
        finally:
            with self._lock:
                self._busy -= 1
                self._changed.notify_all()
        return step

    def finish(self, call_id: str) -> FakeCall:
        while self.advance(call_id) is not None:
            pass
        return self.call(call_id)

    def _plan(self, script: Script) -> list[str]:
        return ["connect", "end", "analyze"] if script.connected else ["end", "analyze"]

    def _run(self, call: FakeCall) -> None:
        delays = {
            "connect": call.script.ring_seconds,
            "end": call.script.duration if call.script.connected else call.script.ring_seconds,
            "analyze": call.script.analysis_seconds,
        }
        try:
            while not self._stopping.is_set():
                with self._lock:
                    if call.next_step >= len(call.steps):
                        return
                    step = call.steps[call.next_step]
                if self._stopping.wait(delays[step] * self.time_scale):
                    return
                with self._lock:
                    if call.next_step >= len(call.steps) or call.steps[call.next_step] != step:
                        continue  # moved on by stop-call or the test
                self.advance(call.call_id)
        finally:
            with self._lock:
                self._busy -= 1
                self._changed.notify_all()

    def _fire(self, call: FakeCall, step: str) -> None:
        script = call.script
        now = _now_ms()
        with self._lock:
            if step == "connect":
                call.call_status = "ongoing"
                call.start_timestamp = now
                event = "call_started"
            elif step == "end":
                reason = "manual_stopped" if call.stopped else script.outcome
                if call.stopped:
                    end = now
                elif call.start_timestamp is not None:
                    # Reported times are the scripted ones, whatever time_scale is.
                    end = call.start_timestamp + round(script.duration * 1000)
                else:
                    end = call.created_ms + round(script.ring_seconds * 1000)
                call.call_status = "ended" if call.stopped else script.final_status
                call.disconnection_reason = reason
                call.end_timestamp = end
                event = "call_ended"
            else:
                in_voicemail = script.in_voicemail
                if in_voicemail is None:
                    in_voicemail = call.disconnection_reason == "voicemail_reached"
                connected = call.disconnection_reason in CONNECTED_REASONS
                call.analysis = {
                    "call_summary": script.call_summary
                    if connected
                    else "The call did not connect.",
                    "in_voicemail": in_voicemail,
                    "user_sentiment": script.user_sentiment if connected else "Unknown",
                    "call_successful": script.call_successful if connected else False,
                    "custom_analysis_data": dict(script.custom_analysis_data) if connected else {},
                }
                event = "call_analyzed"
            call.events.append(event)
            payload = {"event": event, "call": call.resource()}
            if event == "call_ended":
                payload["call"].pop("call_analysis", None)
            if event == "call_started":
                payload["call"] = {
                    k: v
                    for k, v in payload["call"].items()
                    if k not in ("transcript", "transcript_object", "call_analysis")
                }
            self._changed.notify_all()
        self._webhook(call, event, payload)

    # ---- webhooks ------------------------------------------------------------------------

    def _webhook_url(self, call: FakeCall) -> str | None:
        agent = self._agents.get(call.agent_id) or {}
        override = call.agent_override.get("agent", {})
        return override.get("webhook_url") or agent.get("webhook_url") or self.callback_url

    def _webhook(self, call: FakeCall, event: str, payload: dict[str, Any]) -> None:
        behaviour = call.script.webhooks or self.webhook_behaviour
        url = self._webhook_url(call)
        if url is None or event not in behaviour.events:
            return
        if behaviour.drop:
            self._record_delivery(
                Delivery(event, call.call_id, url, url, {}, compact_json(payload), dropped=True)
            )
            return
        if behaviour.out_of_order and event != "call_analyzed":
            with self._lock:
                self._held.setdefault(call.call_id, []).append((event, payload))
            return
        self._send(call, behaviour, url, event, payload)
        if behaviour.out_of_order:
            with self._lock:
                held = self._held.pop(call.call_id, [])
            for held_event, held_payload in reversed(held):
                self._send(call, behaviour, url, held_event, held_payload)

    def _send(
        self,
        call: FakeCall,
        behaviour: WebhookBehaviour,
        url: str,
        event: str,
        payload: dict[str, Any],
    ) -> None:
        body = compact_json(payload)
        headers = {"content-type": "application/json"}
        if not behaviour.unsigned:
            headers["x-retell-signature"] = retell_sign(
                body, behaviour.wrong_key or self.api_key, _now_ms() - behaviour.stale_ms
            )
        if behaviour.tamper:
            body = body.replace(b'"ended"', b'"ongoing"', 1) + b" "
        for _ in range(2 if behaviour.duplicate else 1):
            self._post(Delivery(event, call.call_id, url, url, dict(headers), body), behaviour)

    def _post(self, delivery: Delivery, behaviour: WebhookBehaviour) -> None:
        target = self.callback_target(delivery.url) if self.callback_target else delivery.url
        delivery.target = target
        if not is_loopback(target):
            delivery.error = "not a loopback address: not sent"
            self._record_delivery(delivery)
            return
        for _ in range(1 + max(behaviour.retries, 0)):
            delivery.attempts += 1
            request = urllib.request.Request(
                target, data=delivery.body, headers=delivery.headers, method="POST"
            )
            try:
                with urllib.request.urlopen(request, timeout=self.callback_timeout) as answer:
                    delivery.status, delivery.error = answer.status, None
            except urllib.error.HTTPError as error:
                delivery.status, delivery.error = error.code, None
            except OSError as error:
                delivery.status, delivery.error = None, f"{type(error).__name__}: {error}"
            if delivery.status is not None and 200 <= delivery.status < 300:
                break
        self._record_delivery(delivery)

    def _record_delivery(self, delivery: Delivery) -> None:
        with self._lock:
            self._deliveries.append(delivery)
            self._changed.notify_all()

    # ---- operations (return status, payload) ---------------------------------------------

    def _op_create_phone_call(self, request: RecordedRequest, _: str | None, fault: _Fault | None):
        body = request.json
        if not isinstance(body, dict):
            raise _HttpError(400, "Request body must be a JSON object.")
        unknown = sorted(set(body) - CREATE_FIELDS)
        if unknown:
            raise _HttpError(400, f"Unknown field(s): {', '.join(unknown)}")
        for name in ("from_number", "to_number"):
            value = body.get(name)
            if not isinstance(value, str) or not value:
                raise _HttpError(400, f"{name} is required")
            if not E164.match(value):
                raise _HttpError(400, f"{name} must be in E.164 format")
        with self._lock:
            if self.strict_from and body["from_number"] not in {
                n["phone_number"] for n in self._numbers
            }:
                raise _HttpError(404, "from_number is not a number of this account.")
            agent_id = body.get("override_agent_id")
            if agent_id is not None and agent_id not in self._agents:
                raise _HttpError(422, f"Cannot find agent {agent_id} under given api key.")
        variables = body.get("retell_llm_dynamic_variables")
        if variables is not None and (
            not isinstance(variables, dict)
            or not all(isinstance(v, str) for v in variables.values())
        ):
            raise _HttpError(400, "retell_llm_dynamic_variables must map strings to strings")
        if "metadata" in body and not isinstance(body["metadata"], dict):
            raise _HttpError(400, "metadata must be an object")
        _check_override(body.get("agent_override"))
        with self._lock:
            script = self._scripts.get(body["to_number"], self.default_script)
            agent = self._agents.get(agent_id or "") or next(iter(self._agents.values()))
            call = FakeCall(
                call_id="call_" + new_id(28),
                body=body,
                script=script,
                agent_id=agent["agent_id"],
                agent_version=agent["version"],
                created_ms=_now_ms(),
            )
            if fault is not None and fault.kind == "concurrency_call":
                call.call_status = "error"
                call.disconnection_reason = "concurrency_limit_reached"
                call.end_timestamp = call.created_ms
                call.steps = []
            else:
                call.steps = self._plan(script)
            self._calls[call.call_id] = call
            request.call_id = call.call_id
            if self.mode == "auto" and call.steps:
                self._busy += 1
                threading.Thread(
                    target=self._run, args=(call,), name=f"retell-call-{call.call_id}", daemon=True
                ).start()
            self._changed.notify_all()
            return 201, call.resource()

    def _op_get_call(self, request: RecordedRequest, call_id: str | None, _: _Fault | None):
        with self._lock:
            call = self._calls.get(call_id or "")
            if call is None:
                raise _HttpError(404, "Call not found.")
            return 200, call.resource()

    def _op_list_calls(self, request: RecordedRequest, _: str | None, __: _Fault | None):
        body = request.json if isinstance(request.json, dict) else {}
        criteria = body.get("filter_criteria") or {}
        unsupported = sorted(set(criteria) - {"metadata", "to_number", "call_status"})
        if unsupported:
            raise _HttpError(400, f"this fake cannot filter by {', '.join(unsupported)}")
        with self._lock:
            calls = list(self._calls.values())
        for rule in criteria.get("metadata") or []:
            if rule.get("type") != "string" or rule.get("op") not in ("eq", "ne"):
                raise _HttpError(400, "this fake filters metadata by string eq/ne only")
            key, value = rule.get("key"), rule.get("value")
            same = [c for c in calls if c.metadata.get(key) == value]
            calls = same if rule["op"] == "eq" else [c for c in calls if c not in same]
        if (body.get("sort_order") or "descending") == "descending":
            calls.reverse()
        items = [
            {k: v for k, v in c.resource().items() if k not in ("transcript", "transcript_object")}
            for c in calls
        ]
        return 200, _page(items, body.get("limit"), body.get("pagination_key"))

    def _op_stop_call(self, request: RecordedRequest, call_id: str | None, _: _Fault | None):
        with self._lock:
            call = self._calls.get(call_id or "")
            if call is None:
                raise _HttpError(404, "Call not found.")
            if call.ended:
                raise _HttpError(400, "Call is not ongoing.")
            call.stopped = True
            # The call ends now: skip to its end (and analysis).
            call.steps = [*call.steps[: call.next_step], "end", "analyze"]
            self._busy += 1
        threading.Thread(target=self._stop_now, args=(call.call_id,), daemon=True).start()
        return 204, None

    def _stop_now(self, call_id: str) -> None:
        try:
            self.advance(call_id)
        finally:
            with self._lock:
                self._busy -= 1
                self._changed.notify_all()

    def _op_get_concurrency(self, request: RecordedRequest, _: str | None, __: _Fault | None):
        with self._lock:
            live = sum(1 for c in self._calls.values() if not c.ended)
        return 200, {
            "current_concurrency": live,
            "concurrency_limit": self.concurrency_limit,
            "base_concurrency": 20,
            "purchased_concurrency": max(self.concurrency_limit - 20, 0),
            "concurrency_purchase_limit": 100,
            "remaining_purchase_limit": 100 - max(self.concurrency_limit - 20, 0),
            "concurrency_burst_enabled": False,
            "concurrency_burst_limit": 0,
        }

    def _op_list_agents(self, request: RecordedRequest, _: str | None, __: _Fault | None):
        with self._lock:
            items = [
                {
                    "agent_id": a["agent_id"],
                    "agent_name": a["agent_name"] or "",
                    "channel": a["channel"],
                    "tags": {},
                    "user_modified_timestamp": a["last_modification_timestamp"],
                }
                for a in self._agents.values()
            ]
        return 200, _page(items, request.param("limit"), request.param("pagination_key"))

    def _op_get_agent(self, request: RecordedRequest, agent_id: str | None, _: _Fault | None):
        with self._lock:
            agent = self._agents.get(agent_id or "")
            if agent is None:
                raise _HttpError(404, "Agent not found.")
            return 200, dict(agent)

    def _op_get_retell_llm(self, request: RecordedRequest, llm_id: str | None, _: _Fault | None):
        with self._lock:
            llm = self._llms.get(llm_id or "")
            if llm is None:
                raise _HttpError(404, "Retell LLM not found.")
            return 200, dict(llm)

    def _op_list_phone_numbers(self, request: RecordedRequest, _: str | None, __: _Fault | None):
        with self._lock:
            items = [dict(n) for n in self._numbers]
        return 200, _page(items, request.param("limit"), request.param("pagination_key"))

    # ---- plumbing ------------------------------------------------------------------------

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)
            self._changed.notify_all()


def _check_override(override: Any) -> None:
    if override is None:
        return
    if not isinstance(override, dict) or set(override) - {
        "agent",
        "retell_llm",
        "conversation_flow",
    }:
        raise _HttpError(400, "agent_override has unknown fields")
    agent = override.get("agent") or {}
    if not isinstance(agent, dict):
        raise _HttpError(400, "agent_override.agent must be an object")
    ring = agent.get("ring_duration_ms")
    if ring is not None and (
        not isinstance(ring, int) or isinstance(ring, bool) or not 5_000 <= ring <= 300_000
    ):
        raise _HttpError(400, "ring_duration_ms must be an integer in [5000, 300000]")
    option = agent.get("voicemail_option")
    if option is not None:
        action = option.get("action") if isinstance(option, dict) else None
        if not isinstance(action, dict) or action.get("type") not in VOICEMAIL_ACTIONS:
            raise _HttpError(400, "voicemail_option.action.type is invalid")
        if action["type"] in ("prompt", "static_text") and not isinstance(action.get("text"), str):
            raise _HttpError(400, "voicemail_option.action.text is required")


def _page(items: list[dict[str, Any]], limit: Any, key: Any) -> dict[str, Any]:
    """A page in Retell's `{items, has_more, pagination_key}` shape; the key is opaque (here
    the offset of the next item)."""
    try:
        size = max(1, min(int(limit or 50), 1000))
        start = int(key) if key else 0
    except (TypeError, ValueError) as exc:
        raise _HttpError(400, "invalid limit or pagination_key") from exc
    chunk = items[start : start + size]
    more = start + size < len(items)
    return {"items": chunk, "has_more": more, "pagination_key": str(start + size) if more else None}


def _make_handler(fake: RetellFake) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "retell-fake"
        sys_version = ""

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            self._handle()

        def do_POST(self) -> None:
            self._handle()

        def _handle(self) -> None:
            parts = urllib.parse.urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = ValueError
            auth = self.headers.get("Authorization") or ""
            request = RecordedRequest(
                method=self.command,
                path=parts.path,
                query=urllib.parse.parse_qs(parts.query, keep_blank_values=True),
                headers={k: v for k, v in self.headers.items() if k.lower() != "authorization"},
                bearer=auth[7:] if auth.startswith("Bearer ") else None,
                raw=raw,
                json=None if body is ValueError else body,
                wall_time=datetime.now(UTC),
            )
            fake._record(request)
            try:
                operation, target = None, None
                for method, pattern, name in _ROUTES:
                    match = pattern.match(parts.path)
                    if match and method == self.command:
                        operation, target = name, match.groupdict().get("id")
                        break
                if operation is None:
                    raise _HttpError(404)
                request.operation = operation
                if request.bearer != fake.api_key:
                    raise _HttpError(401)
                if body is ValueError:
                    raise _HttpError(400)
                fault = fake._take_fault(operation)
                if fault is not None:
                    request.fault = fault.kind
                if fault is not None and fault.kind == "error":
                    headers = {}
                    if fault.retry_after is not None:
                        headers["Retry-After"] = f"{fault.retry_after:g}"
                    raise _HttpError(fault.status, fault.message, headers)
                status, payload = getattr(fake, f"_op_{operation}")(request, target, fault)
                if fault is not None and fault.kind == "lose":
                    self._drop()
                    return
                if fault is not None and fault.kind == "slow":
                    time.sleep(fault.seconds)
                self._answer(request, status, payload)
            except _HttpError as error:
                self._answer(
                    request,
                    error.status,
                    {"status": "error", "message": error.message},
                    error.headers,
                )

        def _answer(
            self,
            request: RecordedRequest,
            status: int,
            payload: Any,
            headers: dict[str, str] | None = None,
        ) -> None:
            request.status = status
            send_json(
                self, status, payload, headers, content_type="application/json; charset=utf-8"
            )

        def _drop(self) -> None:
            reset(self)

    return Handler


# --------------------------------------------------------------------------------------------
# A small webhook receiver for tests
# --------------------------------------------------------------------------------------------


@dataclass
class ReceivedWebhook:
    path: str
    url: str
    headers: dict[str, str]
    body: bytes  # exactly the bytes received

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def event(self) -> str:
        return self.json.get("event")

    @property
    def signature(self) -> str | None:
        return next((v for k, v in self.headers.items() if k.lower() == "x-retell-signature"), None)


class WebhookRecorder:
    """A tiny HTTP server on 127.0.0.1 that records every POST and answers `status` (204, as the
    docs' sample does)."""

    def __init__(self, status: int = 204) -> None:
        self.status = status
        self._received: list[ReceivedWebhook] = []
        self._cond = threading.Condition()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                host, port = self.server.server_address[:2]
                item = ReceivedWebhook(
                    path=urllib.parse.urlsplit(self.path).path,
                    url=f"http://{host}:{port}{self.path}",
                    headers=dict(self.headers.items()),
                    body=body,
                )
                with recorder._cond:
                    recorder._received.append(item)
                    recorder._cond.notify_all()
                self.send_response(recorder.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> WebhookRecorder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def url(self, path: str = "/retell/webhook") -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    @property
    def received(self) -> list[ReceivedWebhook]:
        with self._cond:
            return list(self._received)

    def __iter__(self) -> Iterator[ReceivedWebhook]:
        return iter(self.received)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[ReceivedWebhook]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._received) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(self._received)} of {count} webhooks arrived")
                self._cond.wait(left)
            return list(self._received)
