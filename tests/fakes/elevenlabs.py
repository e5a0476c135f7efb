"""A local fake of ElevenLabs Agents (Conversational AI): the outbound-call API (Twilio and SIP
trunk numbers), conversations, agents, phone numbers, and the post-call webhooks ElevenLabs
sends, for testing the ElevenLabs adapter without the internet.

Everything it speaks comes from ElevenLabs' public docs and its Python SDK (generated from its API
definition); elevenlabs_SOURCES.md, next to this file, names the page or SDK file each field, value
and rule came from, and lists what the sources leave open (and what the fake chose).

Serves, on 127.0.0.1 and an ephemeral port, in a background thread:

    POST /v1/convai/twilio/outbound-call        place a call from a Twilio number
    POST /v1/convai/sip-trunk/outbound-call     place a call from a SIP trunk number
    GET  /v1/convai/conversations/{id}          a conversation (the call) and its results
    GET  /v1/convai/conversations               conversations, filtered by user_id / agent_id, paged
    GET  /v1/convai/agents                      the account's agents, paged by cursor
    GET  /v1/convai/agents/{id}                 one agent with its first message and prompt
    GET  /v1/convai/phone-numbers               the account's phone numbers (one list)
    GET  /v1/convai/phone-numbers/{id}          one phone number

Every request needs `xi-api-key: <api_key>` (401 `invalid_api_key` otherwise). Usage:

    with ElevenLabsFake(callback_url=receiver.url(), time_scale=0.01) as fake:
        agent = fake.add_agent(name="Reminders", first_message="Hi {{first_name}}", prompt="…")
        number = fake.add_number("+14155550100")                  # a Twilio number
        fake.script("+14155552001", outcome="busy")
        fake.fail_next(1, status=429, retry_after=2)              # the next placement: 429
        ...                                                       # base_url, api_key, webhook_secret
        fake.wait_idle()
        assert fake.calls[0].status == "failed"

Calls advance on their own (mode="auto": ringing for `ring_seconds`, talking for `duration`, each
times `time_scale`), or only when told (mode="manual": `finish(conversation_id)`). When a call
ends the fake POSTs its webhooks (post_call_transcription, optionally post_call_audio, or
call_initiation_failure) to `callback_url`, signed with `ElevenLabs-Signature` as ElevenLabs signs
them (`sign` below, this module's own implementation). Webhooks can be duplicated, sent in
reverse order, held and released, sent unsigned, signed with another secret, dated outside the
30-minute tolerance, or not sent at all (then only `GET /v1/convai/conversations/{id}` tells).
The fake only ever sends to loopback addresses.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import hmac
import json
import queue
import re
import secrets
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

__all__ = [
    "OUTCOMES",
    "SIGNATURE_HEADER",
    "Delivery",
    "ElevenLabsFake",
    "FakeCall",
    "RecordedRequest",
    "Script",
    "WebhookBehaviour",
    "WebhookRecorder",
    "sign",
    "signature_header",
]
from tests.fakes.loopback import is_loopback, reset, send_json

SIGNATURE_HEADER = "ElevenLabs-Signature"
API_KEY_HEADER = "xi-api-key"
TOLERANCE_SECONDS = 30 * 60
# What a scripted call does. `completed` / `voicemail` / `failed` are conversations that connected
# (post_call_transcription); the others never connected (call_initiation_failure).
OUTCOMES = (
    "completed",
    "voicemail",
    "failed",
    "busy",
    "no-answer",
    "declined",
    "invalid",
    "unknown",
)
CONNECTED = frozenset({"completed", "voicemail", "failed"})
NUMBER_PROVIDERS = ("twilio", "sip_trunk", "exotel")
# The initiation failures: failure_reason, Twilio CallStatus, SIP code, SIP status text.
_FAILURES: dict[str, tuple[str, str, int, str]] = {
    "busy": ("busy", "busy", 486, "Busy here"),
    "no-answer": ("no-answer", "no-answer", 487, "Request Terminated"),
    "declined": ("busy", "busy", 603, "Decline"),
    "invalid": ("unknown", "failed", 404, "Not Found"),
    "unknown": ("unknown", "failed", 500, "Server Internal Error"),
}
_CLIENT_DATA_KEYS = frozenset(
    {
        "conversation_config_override",
        "custom_llm_extra_body",
        "user_id",
        "source_info",
        "branch_id",
        "environment",
        "starting_workflow_node_id",
        "dynamic_variables",
    }
)
_TELEPHONY_KEYS = frozenset({"ringing_timeout_secs", "twilio_call_recording_enabled"})
_E164 = re.compile(r"^\+[1-9]\d{1,14}$")


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The hex HMAC-SHA256 of `"{timestamp}.{body}"` keyed with the webhook secret (docs:
    "the hex encoded sha256 HMAC signature of `timestamp.request_body`")."""
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secret: str, body: bytes, timestamp: int) -> str:
    """`ElevenLabs-Signature`: `t=<unix seconds>,v0=<hex>`."""
    return f"t={timestamp},v0={sign(secret, body, timestamp)}"


def new_id(prefix: str, size: int = 26) -> str:
    alphabet = "0123456789abcdefghjkmnpqrstvwxyz"
    return prefix + "".join(secrets.choice(alphabet) for _ in range(size))


# --------------------------------------------------------------------------------------------
# Scripts and behaviours
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WebhookBehaviour:
    """How the fake delivers a call's webhooks (per fake, or per scripted number).

    duplicate: every webhook is sent twice (same body, same signature).
    reverse: a call's webhooks go out last-first (post_call_audio before the transcription;
        `send_audio` is implied).
    hold: webhooks are kept until `release_held()` (which can send them in reverse order).
    unsigned: no ElevenLabs-Signature header.
    wrong_secret: signed with another secret.
    stale: dated 31 minutes ago, outside the 30-minute tolerance (a replay).
    drop: none is sent; `GET /v1/convai/conversations/{id}` is the only way to learn the end.
    send_audio: also send post_call_audio after post_call_transcription.
    """

    duplicate: bool = False
    reverse: bool = False
    hold: bool = False
    unsigned: bool = False
    wrong_secret: bool = False
    stale: bool = False
    drop: bool = False
    send_audio: bool = False


@dataclass(frozen=True)
class Script:
    """What happens to calls to one destination number.

    outcome: see OUTCOMES.
    ring_seconds: before the answer (or the failure); duration: of the talk (connected calls).
    transcript: (role, message) turns ("agent" / "user"); the default is a short exchange.
    evaluations: name -> (result "success"|"failure"|"unknown", rationale).
    data_collection: name -> (value, rationale).
    termination_reason: metadata.termination_reason (free text at ElevenLabs).
    error_reason: metadata.error.reason of a `failed` conversation.
    webhooks: WebhookBehaviour for this number (else the fake's).
    """

    outcome: str = "completed"
    ring_seconds: float = 0.0
    duration: int = 12
    transcript: tuple[tuple[str, str], ...] | None = None
    evaluations: dict[str, tuple[str, str]] = field(default_factory=dict)
    data_collection: dict[str, tuple[Any, str]] = field(default_factory=dict)
    termination_reason: str = "Call ended by remote party"
    error_reason: str = "Internal error"
    webhooks: WebhookBehaviour | None = None

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}, not {self.outcome!r}")
        if self.ring_seconds < 0 or self.duration < 0:
            raise ValueError("ring_seconds and duration cannot be negative")


# --------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------


@dataclass
class RecordedRequest:
    """One HTTP request the fake received, auth header included (tests assert on it)."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    raw: bytes
    json: Any
    monotonic: float
    operation: str | None = None
    status: int | None = None  # None: no answer was sent (a lost answer)
    fault: str | None = None  # "error", "lose" or "slow"
    conversation_id: str | None = None

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


@dataclass
class Delivery:
    """One webhook the fake sent (or chose not to)."""

    conversation_id: str
    type: str
    body: bytes
    timestamp: int
    signature: str | None
    target: str | None
    copy: int = 1
    dropped: bool = False
    held: bool = False
    status: int | None = None
    error: str | None = None
    done: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)

    @property
    def headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.signature is not None:
            headers[SIGNATURE_HEADER] = self.signature
        return headers


@dataclass
class FakeCall:
    """A call the fake placed: the body it was placed with and where it stands."""

    conversation_id: str
    call_sid: str
    kind: str  # "twilio" | "sip_trunk": the endpoint used
    body: dict[str, Any]
    agent_id: str
    number_id: str
    to: str
    script: Script
    created: float  # unix seconds
    status: str = "initiated"  # initiated, in-progress, processing, done, failed
    answered: float | None = None
    ended: float | None = None
    ended_by: str | None = None
    failure: str | None = None  # the initiation failure, when it never connected
    _steps: list[str] = field(default_factory=list, repr=False)
    _next: int = field(default=0, repr=False)

    @property
    def client_data(self) -> dict[str, Any]:
        return self.body.get("conversation_initiation_client_data") or {}

    @property
    def dynamic_variables(self) -> dict[str, Any]:
        return dict(self.client_data.get("dynamic_variables") or {})

    @property
    def user_id(self) -> str | None:
        return self.client_data.get("user_id")

    @property
    def ringing_timeout_secs(self) -> int | None:
        return (self.body.get("telephony_call_config") or {}).get("ringing_timeout_secs")

    @property
    def terminal(self) -> bool:
        return self.status in ("done", "failed")


@dataclass
class _Agent:
    agent_id: str
    name: str
    first_message: str
    prompt: str
    created: int
    archived: bool = False


@dataclass
class _Number:
    phone_number_id: str
    phone_number: str
    label: str
    provider: str
    supports_outbound: bool | None = None


@dataclass
class _Fault:
    kind: Literal["error", "lose", "slow"]
    operation: str | None
    remaining: int
    status: int = 429
    detail_status: str | None = None
    message: str | None = None
    retry_after: float | None = None
    seconds: float = 0.0


class _HttpError(Exception):
    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(str(body))
        self.status = status
        self.body = body
        self.headers = headers or {}


def detail(status: str, message: str) -> dict[str, Any]:
    """ElevenLabs' error body: `{"detail": {"status": <code>, "message": <words>}}`."""
    return {"detail": {"status": status, "message": message}}


def _invalid(errors: list[tuple[list[Any], str, str]]) -> _HttpError:
    """A 422 HTTPValidationError: `{"detail": [{"type", "loc", "msg", "input"}]}`."""
    return _HttpError(
        422, {"detail": [{"type": kind, "loc": loc, "msg": msg} for loc, kind, msg in errors]}
    )


_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("POST", re.compile(r"^/v1/convai/twilio/outbound-call$"), "outbound_call"),
    ("POST", re.compile(r"^/v1/convai/sip-trunk/outbound-call$"), "outbound_call"),
    ("GET", re.compile(r"^/v1/convai/conversations/(?P<id>[^/]+)$"), "get_conversation"),
    ("GET", re.compile(r"^/v1/convai/conversations$"), "list_conversations"),
    ("GET", re.compile(r"^/v1/convai/agents$"), "list_agents"),
    ("GET", re.compile(r"^/v1/convai/agents/(?P<id>[^/]+)$"), "get_agent"),
    ("GET", re.compile(r"^/v1/convai/phone-numbers$"), "list_numbers"),
    ("GET", re.compile(r"^/v1/convai/phone-numbers/(?P<id>[^/]+)$"), "get_number"),
]


# --------------------------------------------------------------------------------------------
# The fake
# --------------------------------------------------------------------------------------------


class ElevenLabsFake:
    """The fake ElevenLabs API and webhook sender. Every public method is thread-safe.

    api_key / webhook_secret: the credentials it accepts and signs with (random when not given).
    callback_url: where webhooks go (the workspace's post-call webhook URL); None sends nothing.
    mode: "auto" or "manual" (see the module docstring); time_scale: real seconds per scripted one.
    strict: refuse (422) body fields the docs and SDK do not know, as well as missing ones.
    """

    def __init__(
        self,
        api_key: str | None = None,
        webhook_secret: str | None = None,
        *,
        callback_url: str | None = None,
        mode: Literal["auto", "manual"] = "auto",
        time_scale: float = 1.0,
        default_script: Script | None = None,
        webhooks: WebhookBehaviour | None = None,
        callback_timeout: float = 5.0,
        strict: bool = True,
    ) -> None:
        self.api_key = api_key or "sk_" + secrets.token_hex(24)
        self.webhook_secret = webhook_secret or "wsec_" + secrets.token_hex(32)
        self.callback_url = callback_url
        self.mode = mode
        self.time_scale = time_scale
        self.default_script = default_script or Script()
        self.webhook_behaviour = webhooks or WebhookBehaviour()
        self.callback_timeout = callback_timeout
        self.strict = strict
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._scripts: dict[str, Script] = {}
        self._agents: list[_Agent] = []
        self._numbers: list[_Number] = []
        self._calls: dict[str, FakeCall] = {}
        self._requests: list[RecordedRequest] = []
        self._deliveries: list[Delivery] = []
        self._held: list[Delivery] = []
        self._faults: list[_Fault] = []
        self._timers: list[tuple[float, int, str, int]] = []
        self._seq = 0
        self._outbox: queue.Queue[Delivery | None] = queue.Queue()
        self._pending = 0
        self._stopping = False
        self._server: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []

    # ---- lifecycle -----------------------------------------------------------------------

    def start(self) -> ElevenLabsFake:
        if self._server is not None:
            return self
        self._stopping = False
        server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        server.daemon_threads = True
        self._server = server
        self._threads = [
            threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="elevenlabs-fake-http",
                daemon=True,
            ),
            threading.Thread(target=self._run_timers, name="elevenlabs-fake-calls", daemon=True),
            threading.Thread(target=self._run_outbox, name="elevenlabs-fake-hooks", daemon=True),
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
            self._changed.notify_all()
        self._outbox.put(None)
        server.shutdown()
        server.server_close()
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads = []

    def __enter__(self) -> ElevenLabsFake:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the fake is not running")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # ---- configuration -------------------------------------------------------------------

    def add_agent(
        self,
        name: str = "Agent",
        *,
        first_message: str = "",
        prompt: str = "",
        agent_id: str | None = None,
        archived: bool = False,
    ) -> str:
        agent = _Agent(
            agent_id or new_id("agent_"),
            name,
            first_message,
            prompt,
            int(time.time()) - 86400,
            archived,
        )
        with self._lock:
            self._agents.append(agent)
        return agent.agent_id

    def add_number(
        self,
        phone_number: str,
        *,
        label: str | None = None,
        provider: str = "twilio",
        phone_number_id: str | None = None,
        supports_outbound: bool | None = None,
    ) -> str:
        if provider not in NUMBER_PROVIDERS:
            raise ValueError(f"provider must be one of {NUMBER_PROVIDERS}")
        number = _Number(
            phone_number_id or new_id("phnum_"),
            phone_number,
            label if label is not None else f"{provider} {phone_number}",
            provider,
            supports_outbound,
        )
        with self._lock:
            self._numbers.append(number)
        return number.phone_number_id

    def script(self, to_number: str, outcome: str = "completed", **kwargs: Any) -> Script:
        script = Script(outcome=outcome, **kwargs)
        with self._lock:
            self._scripts[to_number] = script
        return script

    def set_webhooks(self, **kwargs: Any) -> None:
        """Change how webhooks are delivered from now on (WebhookBehaviour keywords)."""
        with self._lock:
            self.webhook_behaviour = replace(self.webhook_behaviour, **kwargs)

    # Faults apply to one operation: "outbound_call", "get_conversation", "list_conversations",
    # "list_agents", "get_agent", "list_numbers", "get_number" (or None: any of them).

    def fail_next(
        self,
        count: int = 1,
        status: int = 429,
        *,
        detail_status: str | None = None,
        message: str | None = None,
        retry_after: float | None = None,
        operation: str | None = "outbound_call",
    ) -> None:
        """The next `count` requests answer `status` with ElevenLabs' error body and nothing
        happens. A 200 here answers `{"success": false, "message": …}` instead."""
        self._add(_Fault("error", operation, count, status, detail_status, message, retry_after))

    def concurrency_limit_next(
        self, count: int = 1, *, status: int = 429, retry_after: float | None = None
    ) -> None:
        """The account is at its concurrency limit: `too_many_concurrent_requests`."""
        self.fail_next(
            count,
            status,
            detail_status="too_many_concurrent_requests",
            message="Too many concurrent requests. Your current subscription is associated "
            "with a maximum of 4 concurrent calls.",
            retry_after=retry_after,
        )

    def lose_next(self, count: int = 1, *, operation: str | None = "outbound_call") -> None:
        """The next requests are carried out (a placement makes a call that will ring), then
        the connection is reset without an answer."""
        self._add(_Fault("lose", operation, count))

    def slow_next(
        self, count: int = 1, seconds: float = 5.0, *, operation: str | None = "outbound_call"
    ) -> None:
        """The next requests are carried out, then answered only after `seconds`."""
        self._add(_Fault("slow", operation, count, seconds=seconds))

    def _add(self, fault: _Fault) -> None:
        if fault.remaining < 1:
            raise ValueError("count must be at least 1")
        with self._lock:
            self._faults.append(fault)

    # ---- introspection -------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def requests_for(self, operation: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.operation == operation]

    @property
    def placements(self) -> list[RecordedRequest]:
        """Every outbound-call POST that reached the fake, faulted or not."""
        return self.requests_for("outbound_call")

    @property
    def calls(self) -> list[FakeCall]:
        with self._lock:
            return list(self._calls.values())

    def call(self, conversation_id: str) -> FakeCall:
        with self._lock:
            return self._calls[conversation_id]

    def calls_to(self, number: str) -> list[FakeCall]:
        return [c for c in self.calls if c.to == number]

    @property
    def deliveries(self) -> list[Delivery]:
        with self._lock:
            return list(self._deliveries)

    def deliveries_for(self, conversation_id: str) -> list[Delivery]:
        return [d for d in self.deliveries if d.conversation_id == conversation_id]

    def conversation_json(self, conversation_id: str) -> dict[str, Any]:
        """What `GET /v1/convai/conversations/{id}` answers now."""
        with self._lock:
            return self._conversation(self._calls[conversation_id])

    # ---- waiting and driving -------------------------------------------------------------

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        with self._lock:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("condition not met in time")
                self._changed.wait(min(left, 0.05))

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Until every call has ended and every webhook (not held) has been sent."""
        self.wait_for(
            lambda: all(c.terminal for c in self._calls.values()) and not self._pending, timeout
        )

    def finish(self, conversation_id: str, *, wait: bool = True) -> FakeCall:
        """Run a call to its scripted end now (manual mode, or to hurry an auto one)."""
        deliveries: list[Delivery] = []
        with self._lock:
            call = self._calls[conversation_id]
            while call._next < len(call._steps):
                step = call._steps[call._next]
                call._next += 1
                deliveries += self._fire(call, step)
        if wait:
            for delivery in deliveries:
                delivery.done.wait(self.callback_timeout + 5)
        return self.call(conversation_id)

    def release_held(self, *, reverse: bool = False, wait: bool = True) -> list[Delivery]:
        """Send the webhooks held back (WebhookBehaviour.hold), optionally last-first."""
        with self._lock:
            held, self._held = self._held, []
            for delivery in reversed(held) if reverse else held:
                delivery.held = False
                self._enqueue(delivery)
        if wait:
            for delivery in held:
                delivery.done.wait(self.callback_timeout + 5)
        return held

    # ---- the call engine (callers hold the lock) -----------------------------------------

    def _create(self, kind: str, body: dict[str, Any]) -> FakeCall:
        to = body["to_number"]
        script = self._scripts.get(to, self.default_script)
        call = FakeCall(
            conversation_id=new_id("conv_"),
            call_sid=("CA" + secrets.token_hex(16)) if kind == "twilio" else str(_uuid()),
            kind=kind,
            body=body,
            agent_id=body["agent_id"],
            number_id=body["agent_phone_number_id"],
            to=to,
            script=script,
            created=time.time(),
        )
        call._steps = ["answer", "end", "analyzed"] if script.outcome in CONNECTED else ["fail"]
        self._calls[call.conversation_id] = call
        if self.mode == "auto":
            self._schedule(call, 0, script.ring_seconds)
        self._changed.notify_all()
        return call

    def _schedule(self, call: FakeCall, index: int, after: float) -> None:
        due = time.monotonic() + max(after, 0.0) * self.time_scale
        self._seq += 1
        heapq.heappush(self._timers, (due, self._seq, call.conversation_id, index))
        self._changed.notify_all()

    def _run_timers(self) -> None:
        while True:
            with self._lock:
                while not self._stopping and (
                    not self._timers or self._timers[0][0] > time.monotonic()
                ):
                    wait = self._timers[0][0] - time.monotonic() if self._timers else None
                    self._changed.wait(None if wait is None else max(wait, 0.0))
                if self._stopping:
                    return
                _, _, conversation_id, index = heapq.heappop(self._timers)
                call = self._calls.get(conversation_id)
                if call is None or call._next != index or index >= len(call._steps):
                    continue
                step = call._steps[index]
                call._next += 1
                self._fire(call, step)
                if call._next < len(call._steps):
                    delay = call.script.duration if step == "answer" else 0.0
                    self._schedule(call, call._next, delay)

    def _fire(self, call: FakeCall, step: str) -> list[Delivery]:
        now = time.time()
        deliveries: list[Delivery] = []
        if step == "answer":
            call.status = "in-progress"
            call.answered = now
        elif step == "end":
            call.status = "processing"
            call.ended = now
            call.ended_by = "script"
        elif step == "analyzed":
            call.status = "failed" if call.script.outcome == "failed" else "done"
            deliveries += self._webhooks(call, "post_call_transcription")
        elif step == "fail":
            call.status = "failed"
            call.ended = now
            call.failure = call.script.outcome
            deliveries += self._webhooks(call, "call_initiation_failure")
        self._changed.notify_all()
        return deliveries

    # ---- what ElevenLabs says about a call -----------------------------------------------

    def _number(self, number_id: str) -> _Number | None:
        return next((n for n in self._numbers if n.phone_number_id == number_id), None)

    def _agent(self, agent_id: str) -> _Agent | None:
        return next((a for a in self._agents if a.agent_id == agent_id), None)

    def _transcript(self, call: FakeCall) -> list[dict[str, Any]]:
        if call.script.outcome not in CONNECTED or call.answered is None:
            return []
        agent = self._agent(call.agent_id)
        first = agent.first_message if agent else "Hello!"
        for name, value in call.dynamic_variables.items():
            first = re.sub(r"\{\{\s*" + re.escape(name) + r"\s*\}\}", str(value), first)
        turns = list(call.script.transcript or (("agent", first), ("user", "Yes, that works.")))
        out = []
        for index, (role, message) in enumerate(turns):
            out.append(_turn(role, message, index * 3))
        if call.script.outcome == "voicemail":
            request_id = "voicemail_detection_" + secrets.token_hex(6)
            reason = "Automated greeting asking to leave a message after the tone."
            out.append(
                _turn(
                    "agent",
                    None,
                    len(turns) * 3,
                    tool_calls=[
                        {
                            "type": "system",
                            "request_id": request_id,
                            "tool_name": "voicemail_detection",
                            "params_as_json": json.dumps({"reason": reason}),
                            "tool_has_been_called": True,
                            "tool_details": None,
                        }
                    ],
                    tool_results=[
                        {
                            "request_id": request_id,
                            "tool_name": "voicemail_detection",
                            "result_value": json.dumps({"status": "success", "reason": reason}),
                            "is_error": False,
                            "tool_has_been_called": True,
                            "tool_latency_secs": 0.01,
                            "type": "system",
                            "result": {
                                "result_type": "voicemail_detection_success",
                                "status": "success",
                                "voicemail_message": None,
                                "reason": reason,
                            },
                        }
                    ],
                )
            )
        return out

    def _conversation(self, call: FakeCall) -> dict[str, Any]:
        """The GetConversationResponseModel of a call (and the data of its transcription)."""
        script = call.script
        agent = self._agent(call.agent_id)
        number = self._number(call.number_id)
        duration = 0
        if call.answered is not None:
            duration = script.duration if call.ended else int(time.time() - call.answered)
        error = None
        termination = ""
        if call.terminal:
            termination = script.termination_reason
            if call.status == "failed" and call.failure is None:
                error = {"code": 1011, "reason": script.error_reason}
            elif call.failure is not None:
                reason = _FAILURES[call.failure][0]
                termination = f"Call initiation failed: {reason}"
        phone_call: dict[str, Any] = {
            "direction": "outbound",
            "phone_number_id": call.number_id,
            "agent_number": number.phone_number if number else "",
            "external_number": call.to,
            "call_sid": call.call_sid,
        }
        if call.kind == "twilio":
            phone_call = {"type": "twilio", **phone_call, "stream_sid": "MZ" + call.call_sid[2:]}
        else:
            phone_call = {"type": "sip_trunking", **phone_call, "call_id": call.call_sid}
        done = call.status == "done"
        analysis = None
        if done or (call.terminal and call.failure is None):
            analysis = {
                "evaluation_criteria_results": {
                    name: {"criteria_id": name, "result": result, "rationale": rationale}
                    for name, (result, rationale) in script.evaluations.items()
                },
                "data_collection_results": {
                    name: {
                        "data_collection_id": name,
                        "value": value,
                        "json_schema": None,
                        "rationale": rationale,
                    }
                    for name, (value, rationale) in script.data_collection.items()
                },
                "call_successful": "success" if done else "failure",
                "transcript_summary": "The agent spoke with the recipient.",
            }
        return {
            "agent_id": call.agent_id,
            "agent_name": agent.name if agent else None,
            "conversation_id": call.conversation_id,
            "status": call.status,
            "user_id": call.user_id,
            "branch_id": None,
            "version_id": None,
            "transcript": self._transcript(call),
            "metadata": {
                "start_time_unix_secs": int(call.created),
                "accepted_time_unix_secs": int(call.answered) if call.answered else None,
                "call_duration_secs": duration,
                "cost": duration * 10,
                "termination_reason": termination,
                "error": error,
                "phone_call": phone_call,
                "batch_call": None,
                "main_language": "en",
                "timezone": None,
            },
            "analysis": analysis,
            "conversation_initiation_client_data": {
                "conversation_config_override": {
                    "agent": {"prompt": None, "first_message": None, "language": "en"},
                    "tts": {"voice_id": None},
                },
                "custom_llm_extra_body": {},
                "user_id": call.user_id,
                "source_info": {"source": call.kind, "version": None},
                "dynamic_variables": call.dynamic_variables,
            },
            "environment": None,
            "has_audio": call.answered is not None,
            "has_user_audio": call.answered is not None,
            "has_response_audio": call.answered is not None,
            "has_auxiliary_audio": False,
        }

    def _failure_data(self, call: FakeCall) -> dict[str, Any]:
        reason, twilio_status, code, sip_status = _FAILURES[call.failure or "unknown"]
        number = self._number(call.number_id)
        caller = number.phone_number if number else ""
        if call.kind == "twilio":
            stamp = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())
            metadata = {
                "type": "twilio",
                "body": {
                    "Called": call.to,
                    "Direction": "outbound-api",
                    "Timestamp": stamp,
                    "CallbackSource": "call-progress-events",
                    "SipResponseCode": str(code),
                    "SequenceNumber": "2",
                    "CallSid": call.call_sid,
                    "To": call.to,
                    "ApiVersion": "2010-04-01",
                    "CallStatus": twilio_status,
                    "Duration": "0",
                    "From": caller,
                    "CallDuration": "0",
                    "AccountSid": "AC" + secrets.token_hex(16),
                    "Caller": caller,
                },
            }
        else:
            metadata = {
                "type": "sip",
                "body": {
                    "from_number": caller,
                    "to_number": call.to,
                    "sip_status_code": code,
                    "error_reason": f"INVITE failed: sip status: {code}: {sip_status} (SIP {code})",
                    "call_sid": call.call_sid,
                    "sip_status": sip_status,
                    "twirp_code": "unavailable",
                },
            }
        return {
            "agent_id": call.agent_id,
            "conversation_id": call.conversation_id,
            "failure_reason": reason,
            "metadata": metadata,
        }

    # ---- webhooks (callers hold the lock) ------------------------------------------------

    def _behaviour(self, call: FakeCall) -> WebhookBehaviour:
        return call.script.webhooks or self.webhook_behaviour

    def _webhooks(self, call: FakeCall, kind: str) -> list[Delivery]:
        behaviour = self._behaviour(call)
        now = int(time.time())
        events: list[tuple[str, dict[str, Any]]] = []
        if kind == "call_initiation_failure":
            events.append((kind, self._failure_data(call)))
        else:
            events.append((kind, self._conversation(call)))
            if (behaviour.send_audio or behaviour.reverse) and call.answered is not None:
                audio = base64.b64encode(b"ID3\x04fake mp3 " + call.conversation_id.encode())
                events.append(
                    (
                        "post_call_audio",
                        {
                            "agent_id": call.agent_id,
                            "conversation_id": call.conversation_id,
                            "full_audio": audio.decode(),
                        },
                    )
                )
        if behaviour.reverse:
            events.reverse()
        sent: list[Delivery] = []
        for event_type, data in events:
            body = json.dumps({"type": event_type, "event_timestamp": now, "data": data}).encode()
            stamp = now - (TOLERANCE_SECONDS + 60 if behaviour.stale else 0)
            secret = (
                ("not-" + self.webhook_secret) if behaviour.wrong_secret else self.webhook_secret
            )
            signature = None if behaviour.unsigned else signature_header(secret, body, stamp)
            for copy in range(1, 3 if behaviour.duplicate else 2):
                delivery = Delivery(
                    call.conversation_id,
                    event_type,
                    body,
                    stamp,
                    signature,
                    self.callback_url,
                    copy,
                )
                self._deliveries.append(delivery)
                if behaviour.drop or self.callback_url is None:
                    delivery.dropped = True
                    delivery.done.set()
                elif behaviour.hold:
                    delivery.held = True
                    self._held.append(delivery)
                    continue
                else:
                    self._enqueue(delivery)
                sent.append(delivery)
        return sent

    def _enqueue(self, delivery: Delivery) -> None:
        self._pending += 1
        self._outbox.put(delivery)

    def _run_outbox(self) -> None:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        while True:
            delivery = self._outbox.get()
            if delivery is None:
                return
            try:
                self._send(opener, delivery)
            finally:
                with self._lock:
                    self._pending -= 1
                    self._changed.notify_all()
                delivery.done.set()

    def _send(self, opener: urllib.request.OpenerDirector, delivery: Delivery) -> None:
        target = delivery.target or ""
        if not is_loopback(target):
            delivery.error = "not sent: the fake only sends to loopback addresses"
            return
        request = urllib.request.Request(
            target, data=delivery.body, headers=delivery.headers, method="POST"
        )
        try:
            with opener.open(request, timeout=self.callback_timeout) as response:
                delivery.status = response.status
                response.read()
        except urllib.error.HTTPError as error:
            delivery.status = error.code
        except (OSError, ValueError) as error:
            delivery.error = f"{type(error).__name__}: {error}"

    # ---- HTTP operations (called by the handler) -----------------------------------------

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)
            self._changed.notify_all()

    def _take_fault(self, operation: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.operation in (None, operation) and fault.remaining > 0:
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def _check_auth(self, request: RecordedRequest) -> None:
        key = request.header(API_KEY_HEADER)
        if not key or not hmac.compare_digest(key, self.api_key):
            raise _HttpError(401, detail("invalid_api_key", "Invalid API key"))

    def _validate_outbound(self, kind: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise _invalid([(["body"], "model_attributes_type", "Input should be an object")])
        errors: list[tuple[list[Any], str, str]] = []
        for name in ("agent_id", "agent_phone_number_id", "to_number"):
            if name not in body:
                errors.append((["body", name], "missing", "Field required"))
            elif not isinstance(body[name], str):
                errors.append((["body", name], "string_type", "Input should be a valid string"))
        known = {
            "agent_id",
            "agent_phone_number_id",
            "to_number",
            "conversation_initiation_client_data",
            "telephony_call_config",
        }
        if kind == "twilio":
            known.add("call_recording_enabled")
        if self.strict:
            errors += [
                (["body", name], "extra_forbidden", "Extra inputs are not permitted")
                for name in body
                if name not in known
            ]
        client = body.get("conversation_initiation_client_data")
        if client is not None:
            if not isinstance(client, dict):
                errors.append(
                    (
                        ["body", "conversation_initiation_client_data"],
                        "dict_type",
                        "Input should be an object",
                    )
                )
            else:
                where = ["body", "conversation_initiation_client_data"]
                if self.strict:
                    errors += [
                        ([*where, name], "extra_forbidden", "Extra inputs are not permitted")
                        for name in client
                        if name not in _CLIENT_DATA_KEYS
                    ]
                user_id = client.get("user_id")
                if user_id is not None and not isinstance(user_id, str):
                    errors.append(
                        ([*where, "user_id"], "string_type", "Input should be a valid string")
                    )
                variables = client.get("dynamic_variables")
                if variables is not None and not isinstance(variables, dict):
                    errors.append(
                        ([*where, "dynamic_variables"], "dict_type", "Input should be an object")
                    )
                for name, value in (variables or {}).items():
                    if value is not None and not isinstance(value, str | int | float | bool):
                        errors.append(
                            (
                                [*where, "dynamic_variables", name],
                                "union_type",
                                "Input should be a string, number or boolean",
                            )
                        )
                    if name.startswith("system__"):
                        errors.append(
                            (
                                [*where, "dynamic_variables", name],
                                "value_error",
                                "Custom dynamic variables cannot use the reserved system__ prefix",
                            )
                        )
        config = body.get("telephony_call_config")
        if config is not None:
            where = ["body", "telephony_call_config"]
            if not isinstance(config, dict):
                errors.append((where, "dict_type", "Input should be an object"))
            else:
                if self.strict:
                    errors += [
                        ([*where, name], "extra_forbidden", "Extra inputs are not permitted")
                        for name in config
                        if name not in _TELEPHONY_KEYS
                    ]
                ringing = config.get("ringing_timeout_secs")
                if ringing is not None and (
                    isinstance(ringing, bool) or not isinstance(ringing, int) or ringing < 1
                ):
                    errors.append(
                        (
                            [*where, "ringing_timeout_secs"],
                            "int_type",
                            "Input should be a positive integer",
                        )
                    )
        if errors:
            raise _invalid(errors)
        if not _E164.match(body["to_number"]):
            raise _HttpError(
                400, detail("invalid_phone_number", f"Invalid to_number: {body['to_number']}")
            )
        with self._lock:
            agent = self._agent(body["agent_id"])
            number = self._number(body["agent_phone_number_id"])
        if agent is None:
            raise _HttpError(404, detail("agent_not_found", f"Agent {body['agent_id']} not found"))
        if number is None:
            raise _HttpError(
                404,
                detail(
                    "phone_number_not_found",
                    f"Phone number {body['agent_phone_number_id']} not found",
                ),
            )
        if number.provider != kind:
            raise _HttpError(
                400,
                detail(
                    "invalid_phone_number_provider",
                    f"Phone number {number.phone_number_id} is a {number.provider} number",
                ),
            )
        return body

    def _op_outbound_call(self, request: RecordedRequest, match: re.Match[str]) -> tuple[int, Any]:
        kind = "twilio" if "/twilio/" in request.path else "sip_trunk"
        body = self._validate_outbound(kind, request.json)
        with self._lock:
            call = self._create(kind, body)
        request.conversation_id = call.conversation_id
        if kind == "twilio":
            return 200, {
                "success": True,
                "message": "Success",
                "conversation_id": call.conversation_id,
                "callSid": call.call_sid,
            }
        return 200, {
            "success": True,
            "message": "Success",
            "conversation_id": call.conversation_id,
            "sip_call_id": call.call_sid,
        }

    def _op_get_conversation(
        self, request: RecordedRequest, match: re.Match[str]
    ) -> tuple[int, Any]:
        with self._lock:
            call = self._calls.get(urllib.parse.unquote(match["id"]))
            if call is None:
                raise _HttpError(404, detail("conversation_not_found", "Conversation not found"))
            request.conversation_id = call.conversation_id
            return 200, self._conversation(call)

    def _op_list_conversations(
        self, request: RecordedRequest, match: re.Match[str]
    ) -> tuple[int, Any]:
        user_id, agent_id = request.param("user_id"), request.param("agent_id")
        with self._lock:
            calls = sorted(self._calls.values(), key=lambda c: c.created, reverse=True)
            summaries = [
                {
                    "agent_id": c.agent_id,
                    "agent_name": (a.name if (a := self._agent(c.agent_id)) else None),
                    "conversation_id": c.conversation_id,
                    "start_time_unix_secs": int(c.created),
                    "call_duration_secs": c.script.duration if c.status == "done" else 0,
                    "message_count": len(self._transcript(c)),
                    "status": c.status,
                    "termination_reason": None,
                    "call_successful": "success" if c.status == "done" else "unknown",
                    "direction": "outbound",
                }
                for c in calls
                if (user_id is None or c.user_id == user_id)
                and (agent_id is None or c.agent_id == agent_id)
            ]
        return 200, _cursor_page(request, summaries, "conversations", 30)

    def _op_list_agents(self, request: RecordedRequest, match: re.Match[str]) -> tuple[int, Any]:
        with self._lock:
            agents = [
                {
                    "agent_id": a.agent_id,
                    "name": a.name,
                    "tags": [],
                    "created_at_unix_secs": a.created,
                    "access_info": {
                        "is_creator": True,
                        "creator_name": "Test",
                        "creator_email": "test@example.com",
                        "role": "admin",
                    },
                    "last_call_time_unix_secs": None,
                    "archived": a.archived,
                }
                for a in self._agents
            ]
        return 200, _cursor_page(request, agents, "agents", 30)

    def _op_get_agent(self, request: RecordedRequest, match: re.Match[str]) -> tuple[int, Any]:
        with self._lock:
            agent = self._agent(urllib.parse.unquote(match["id"]))
        if agent is None:
            raise _HttpError(404, detail("agent_not_found", "Agent not found"))
        return 200, {
            "agent_id": agent.agent_id,
            "name": agent.name,
            "conversation_config": {
                "agent": {
                    "first_message": agent.first_message,
                    "language": "en",
                    "dynamic_variables": {"dynamic_variable_placeholders": {}},
                    "prompt": {
                        "prompt": agent.prompt,
                        "llm": "gemini-2.0-flash",
                        "temperature": 0.0,
                    },
                },
                "tts": {"voice_id": "cjVigY5qzO86Huf0OWal"},
            },
            "metadata": {
                "created_at_unix_secs": agent.created,
                "updated_at_unix_secs": agent.created,
            },
            "platform_settings": None,
            "phone_numbers": [],
            "tags": [],
        }

    def _number_json(self, number: _Number) -> dict[str, Any]:
        out: dict[str, Any] = {
            "phone_number": number.phone_number,
            "label": number.label,
            "supports_inbound": True,
            "supports_outbound": True
            if number.supports_outbound is None
            else number.supports_outbound,
            "phone_number_id": number.phone_number_id,
            "assigned_agent": None,
            "provider": number.provider,
        }
        if number.provider == "sip_trunk":
            out |= {"outbound_trunk": None, "inbound_trunk": None, "livekit_stack": "standard"}
        return out

    def _op_list_numbers(self, request: RecordedRequest, match: re.Match[str]) -> tuple[int, Any]:
        with self._lock:
            return 200, [self._number_json(n) for n in self._numbers]

    def _op_get_number(self, request: RecordedRequest, match: re.Match[str]) -> tuple[int, Any]:
        with self._lock:
            number = self._number(urllib.parse.unquote(match["id"]))
        if number is None:
            raise _HttpError(404, detail("phone_number_not_found", "Phone number not found"))
        return 200, self._number_json(number)


def _uuid() -> str:
    raw = secrets.token_hex(16)
    return f"{raw[:8]}-{raw[8:12]}-{raw[12:16]}-{raw[16:20]}-{raw[20:]}"


def _turn(role: str, message: str | None, at: int, **extra: Any) -> dict[str, Any]:
    return {
        "role": role,
        "message": message,
        "tool_calls": extra.get("tool_calls", []),
        "tool_results": extra.get("tool_results", []),
        "feedback": None,
        "time_in_call_secs": at,
        "conversation_turn_metrics": None,
        "interrupted": False,
        "original_message": None,
    }


def _cursor_page(
    request: RecordedRequest, items: list[dict[str, Any]], key: str, default: int
) -> dict[str, Any]:
    """A cursor-paged list: `{key: [...], "next_cursor": str | null, "has_more": bool}` (the
    cursor is opaque: here the offset of the next page, base64)."""
    try:
        size = int(request.param("page_size") or default)
        cursor = request.param("cursor")
        start = int(base64.urlsafe_b64decode(cursor.encode()).decode()) if cursor else 0
    except ValueError:
        raise _invalid([(["query", "cursor"], "value_error", "Invalid cursor")]) from None
    if not 1 <= size <= 100:
        raise _invalid(
            [(["query", "page_size"], "less_than_equal", "Input should be between 1 and 100")]
        )
    chunk = items[start : start + size]
    more = start + size < len(items)
    next_cursor = base64.urlsafe_b64encode(str(start + size).encode()).decode() if more else None
    return {key: chunk, "next_cursor": next_cursor, "has_more": more}


def _make_handler(fake: ElevenLabsFake) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "elevenlabs-fake"
        sys_version = ""
        # Headers and body go out in two writes: without this, Nagle's algorithm and delayed
        # ACKs add ~40 ms to every keep-alive request.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            self._handle()

        def do_POST(self) -> None:
            self._handle()

        def do_DELETE(self) -> None:
            self._handle()

        def _handle(self) -> None:
            parts = urllib.parse.urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                parsed: Any = json.loads(raw) if raw else None
            except ValueError:
                parsed = ValueError("not JSON")
            query: dict[str, list[str]] = {}
            for name, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True):
                query.setdefault(name, []).append(value)
            request = RecordedRequest(
                method=self.command,
                path=parts.path,
                query=query,
                headers=dict(self.headers.items()),
                raw=raw,
                json=parsed,
                monotonic=time.monotonic(),
            )
            fake._record(request)
            try:
                operation, match = _route(self.command, parts.path)
                if operation is None or match is None:
                    raise _HttpError(404, {"detail": "Not Found"})
                request.operation = operation
                fake._check_auth(request)
                if isinstance(parsed, ValueError):
                    raise _invalid([(["body"], "json_invalid", "JSON decode error")])
                fault = fake._take_fault(operation)
                if fault is not None:
                    request.fault = fault.kind
                if fault is not None and fault.kind == "error":
                    headers = {}
                    if fault.retry_after is not None:
                        headers["Retry-After"] = f"{fault.retry_after:g}"
                    if fault.status == 200:
                        message = fault.message or "Failed to initiate call"
                        body = {
                            "success": False,
                            "message": message,
                            "conversation_id": None,
                            "callSid": None,
                        }
                        self._answer(request, 200, body, headers)
                        return
                    code = fault.detail_status or {
                        429: "system_busy",
                        500: "internal_error",
                        503: "service_unavailable",
                    }.get(fault.status, "error")
                    raise _HttpError(
                        fault.status,
                        detail(code, fault.message or code.replace("_", " ").capitalize()),
                        headers,
                    )
                status, payload = getattr(fake, f"_op_{operation}")(request, match)
                if fault is not None and fault.kind == "lose":
                    self._drop()
                    return
                if fault is not None and fault.kind == "slow":
                    time.sleep(fault.seconds)
                self._answer(request, status, payload)
            except _HttpError as error:
                self._answer(request, error.status, error.body, error.headers)

        def _answer(
            self,
            request: RecordedRequest,
            status: int,
            payload: Any,
            headers: dict[str, str] | None = None,
        ) -> None:
            request.status = status
            send_json(self, status, payload, headers, content_type="application/json")

        def _drop(self) -> None:
            reset(self)

    return Handler


def _route(method: str, path: str) -> tuple[str | None, re.Match[str] | None]:
    for route_method, pattern, operation in _ROUTES:
        if route_method == method:
            match = pattern.match(path)
            if match:
                return operation, match
    return None, None


# --------------------------------------------------------------------------------------------
# A webhook receiver for tests
# --------------------------------------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def signature(self) -> str | None:
        return next(
            (v for k, v in self.headers.items() if k.lower() == SIGNATURE_HEADER.lower()), None
        )


class WebhookRecorder:
    """A tiny HTTP server on 127.0.0.1 that records every POST (raw body and headers) and answers
    `status`, or hands them to `handler(received) -> status` when one is given."""

    def __init__(self, status: int = 200, handler: Callable[[Received], int] | None = None) -> None:
        self.status = status
        self.handler = handler
        self._received: list[Received] = []
        self._cond = threading.Condition()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                item = Received(self.path, dict(self.headers.items()), self.rfile.read(length))
                status = recorder.handler(item) if recorder.handler else recorder.status
                with recorder._cond:
                    recorder._received.append(item)
                    recorder._cond.notify_all()
                self.send_response(status)
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

    def url(self, path: str = "/v1/provider-events/elevenlabs/conn_test") -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    @property
    def received(self) -> list[Received]:
        with self._cond:
            return list(self._received)

    def __iter__(self) -> Iterator[Received]:
        return iter(self.received)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._received) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(self._received)} of {count} webhooks arrived")
                self._cond.wait(left)
            return list(self._received)
