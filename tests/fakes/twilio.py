"""A local fake of Twilio's REST API (version 2010-04-01) and of the call status callbacks
Twilio posts back, for testing the Twilio adapter without the internet.

Everything it speaks comes from Twilio's public documentation or from the installed `twilio`
helper library (which is generated from Twilio's OpenAPI description); TWILIO_SOURCES.md, next
to this file, names the page each field, value and error code came from.

Serves, on 127.0.0.1 and an ephemeral port, in a background thread:

    POST /2010-04-01/Accounts/{AccountSid}/Calls.json                  create a call
    GET  /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json        fetch a call
    POST /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json        update (Status=completed|canceled)
    GET  /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}/Notifications.json   (a failed call's
         error_code; Twilio marks Notifications deprecated in favour of Alerts)
    GET  /2010-04-01/Accounts/{AccountSid}.json                        fetch the account
    GET  /2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers.json   the account's numbers, paged

Usage (as a context manager; a pytest fixture is `with TwilioFake(...) as fake: yield fake`):

    with TwilioFake(numbers=["+15005550006"], time_scale=0.01) as fake:
        client = twilio.rest.Client(fake.account_sid, fake.auth_token,
                                    http_client=BaseUrlHttpClient(fake.base_url, timeout=5))
        # (or simply: client = fake.client())
        fake.script("+15551230001", outcome="busy")
        fake.fail_next(2, status=429, retry_after=1)        # the next two creates answer 429
        ...
        fake.wait_idle()
        assert fake.calls[0].status == "busy"

Calls advance on their own (mode="auto", paced by the scripted lengths times `time_scale`) or only
when the test says so (mode="manual": `advance(sid)` / `finish(sid, outcome)`). Status callbacks are
POSTed (or GET, per StatusCallbackMethod) to the StatusCallback URL, signed with X-Twilio-Signature
by this module's own implementation of Twilio's scheme (`twilio_signature`). The fake only ever
sends to loopback addresses; give `callback_target` to map a public StatusCallback URL (which is
still the URL that gets signed, as Twilio signs the URL it was given) to a local receiver.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import heapq
import hmac
import os
import queue
import re
import secrets
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

from requests.adapters import HTTPAdapter
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response as TwilioResponse
from twilio.rest import Client

__all__ = [
    "ANSWERED_BY_VALUES",
    "API_VERSION",
    "CALLBACK_EVENTS",
    "OUTCOMES",
    "BaseUrlHttpClient",
    "CallbackBehaviour",
    "CallbackDelivery",
    "CallbackRecorder",
    "FakeCall",
    "Hangup",
    "ReceivedCallback",
    "RecordedRequest",
    "Script",
    "TwilioFake",
    "twilio_signature",
]
from tests.fakes.loopback import is_loopback, reset, send_json

API_VERSION = "2010-04-01"
TWILIO_API_BASE = "https://api.twilio.com"

# StatusCallbackEvent values (Call resource, create; TwiML <Number>/<Client> statusCallbackEvent).
CALLBACK_EVENTS = ("initiated", "ringing", "answered", "completed")
# Terminal call statuses the fake can script (Call resource: Call Status values).
OUTCOMES = ("completed", "busy", "no-answer", "failed", "canceled")
# AnsweredBy values (Answering Machine Detection page).
ANSWERED_BY_VALUES = (
    "human",
    "machine_start",
    "machine_end_beep",
    "machine_end_silence",
    "machine_end_other",
    "fax",
    "unknown",
)
MACHINE_DETECTION_VALUES = ("Enable", "DetectMessageEnd")
HTTP_METHODS = ("GET", "POST")

# Error codes from Twilio's Error and Warning Dictionary (https://www.twilio.com/docs/api/errors).
ERROR_AUTHENTICATE = 20003  # 401, "Authenticate" / Permission Denied
ERROR_NOT_FOUND = 20404
ERROR_TOO_MANY_REQUESTS = 20429
ERROR_INTERNAL = 20500
ERROR_UNAVAILABLE = 20503
ERROR_CALLS_RESOURCE = 21200  # generic problem with a request to the Calls resource
ERROR_NO_TO = 21201
ERROR_INVALID_URL = 21205
ERROR_FROM_NOT_VERIFIED = 21210
ERROR_NO_FROM = 21213
ERROR_CALL_STATE = 21220  # realtime operation on a call that is not in-progress
ERROR_INVALID_PAGE_TOKEN = 21481
ERROR_INVALID_STATUS_CALLBACK_EVENT = 21626
# For failed calls: the docs' code for an invalid / unsupported destination, and the one for a
# destination that cannot be reached (the fake's default for a scripted generic failure).
ERROR_INVALID_NUMBER = 13224
ERROR_UNREACHABLE = 21214

_ERROR_MESSAGES = {
    ERROR_AUTHENTICATE: "Authenticate",
    ERROR_NOT_FOUND: "The requested resource {path} was not found",
    ERROR_TOO_MANY_REQUESTS: "Too Many Requests",
    ERROR_INTERNAL: "Internal Server Error",
    ERROR_UNAVAILABLE: "Service unavailable",
    ERROR_INVALID_NUMBER: "Twilio does not support calling this number or the number is invalid",
    ERROR_UNREACHABLE: "'To' phone number cannot be reached",
}
_STATUS_TO_CODE = {429: ERROR_TOO_MANY_REQUESTS, 500: ERROR_INTERNAL, 503: ERROR_UNAVAILABLE}

_TERMINAL = frozenset(OUTCOMES)


def _now() -> datetime:
    return datetime.now(UTC)


def rfc2822(moment: datetime | None) -> str | None:
    """Twilio's date format for the 2010 API ("Tue, 31 Aug 2010 20:36:28 +0000")."""
    if moment is None:
        return None
    return email.utils.format_datetime(moment.astimezone(UTC).replace(microsecond=0))


def new_sid(prefix: str) -> str:
    """A SID: two letters and 32 hexadecimal digits."""
    return prefix + secrets.token_hex(16)


def twilio_signature(auth_token: str, url: str, params: Iterable[tuple[str, str]] = ()) -> str:
    """X-Twilio-Signature as Twilio documents it ("Secure webhooks"): the full URL the request
    goes to, then every POST parameter sorted by name with its value appended, no delimiters;
    HMAC-SHA1 of that with the Auth Token as key; Base64. For a GET the parameters are in the URL
    and none are appended."""
    signed = url
    for name, value in sorted(params, key=lambda item: (item[0], item[1])):
        signed += name + value
    digest = hmac.new(auth_token.encode(), signed.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def format_number(number: str) -> str:
    """`to_formatted` / `from_formatted`: North American numbers as (NPA) NXX-XXXX, others E.164."""
    if re.fullmatch(r"\+1\d{10}", number):
        return f"({number[2:5]}) {number[5:8]}-{number[8:]}"
    return number


# --------------------------------------------------------------------------------------------
# The reusable base-URL client (the production adapter needs the same trick)
# --------------------------------------------------------------------------------------------


class BaseUrlHttpClient(TwilioHttpClient):
    """A `twilio.http.http_client.TwilioHttpClient` that sends every request to `base_url`
    instead of https://api.twilio.com (or any other *.twilio.com host the library builds),
    keeping path and query. Use it with the real client:

        client = Client(sid, token, http_client=BaseUrlHttpClient("http://127.0.0.1:8123", timeout=5))

    `last_response` is the last `twilio.http.response.Response` this thread received (None when
    the request raised): `TwilioRestException` does not carry headers, so a 429's Retry-After
    is read from `client.http_client.last_response.headers["Retry-After"]`.
    For a loopback base URL the session ignores proxy settings from the environment.
    """

    def __init__(self, base_url: str, timeout: float | None = None, **kwargs: Any) -> None:
        super().__init__(timeout=timeout, **kwargs)
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"base_url must be an absolute http(s) URL, not {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self._base = parts
        self._local = threading.local()
        if self.session is not None and parts.scheme == "http":
            # TwilioHttpClient only tunes the https:// adapter; give http:// the same pool.
            retries = kwargs.get("max_retries")
            adapter = (
                HTTPAdapter(max_retries=retries)
                if retries is not None
                else HTTPAdapter(pool_maxsize=min(32, (os.cpu_count() or 1) + 4))
            )
            self.session.mount("http://", adapter)
        if self.session is not None and is_loopback(base_url):
            self.session.trust_env = False

    def rewrite(self, url: str) -> str:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
        if host != "twilio.com" and not host.endswith(".twilio.com"):
            return url
        path = self._base.path.rstrip("/") + parts.path
        return urllib.parse.urlunsplit(
            (self._base.scheme, self._base.netloc, path, parts.query, parts.fragment)
        )

    @property
    def last_response(self) -> TwilioResponse | None:
        return getattr(self._local, "response", None)

    def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> TwilioResponse:
        self._local.response = None
        response = super().request(
            method,
            self.rewrite(url),
            params=params,
            data=data,
            headers=headers,
            auth=auth,
            timeout=timeout,
            allow_redirects=allow_redirects,
        )
        self._local.response = response
        return response


# --------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------


def _multidict(items: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in items:
        out.setdefault(name, []).append(value)
    return out


@dataclass
class RecordedRequest:
    """One HTTP request the fake received. `form` and `query` are multi-dicts (name -> values)."""

    method: str
    path: str
    query: dict[str, list[str]]
    form: dict[str, list[str]]
    form_items: list[tuple[str, str]]
    auth: tuple[str, str] | None
    headers: dict[str, str]
    wall_time: datetime
    monotonic: float
    operation: str | None = None
    status: int | None = None  # None: no answer was sent (lost answer, or still running)
    fault: str | None = None  # "error", "lose" or "slow" when a scripted fault applied
    call_sid: str | None = None

    def get(self, name: str, default: str | None = None) -> str | None:
        values = self.form.get(name) or self.query.get(name)
        return values[0] if values else default

    def getall(self, name: str) -> list[str]:
        return list(self.form.get(name) or self.query.get(name) or [])


@dataclass(frozen=True)
class CallbackBehaviour:
    """How the fake delivers status callbacks (per fake, or per scripted number).

    duplicate: every callback is sent twice (same SequenceNumber, same signature).
    out_of_order: the call's callbacks are held until it ends, then sent last-first.
    unsigned: no X-Twilio-Signature header.
    sign_for_url: sign for this URL instead of the one the request goes to.
    drop: True to send none, or the event names ("initiated", "ringing", "answered",
        "completed", "amd") not to send; the test then has to settle the call with a fetch.
    """

    duplicate: bool = False
    out_of_order: bool = False
    unsigned: bool = False
    sign_for_url: str | None = None
    drop: bool | frozenset[str] = False

    def __post_init__(self) -> None:
        if not isinstance(self.drop, bool):
            object.__setattr__(self, "drop", frozenset(self.drop))

    def drops(self, event: str) -> bool:
        if isinstance(self.drop, bool):
            return self.drop
        return event in self.drop


@dataclass(frozen=True)
class Script:
    """What happens to calls to one destination number.

    outcome: the terminal status ("completed" = answered then hung up, "busy", "no-answer",
        "failed", "canceled").
    duration: seconds between answer and hang-up (completed calls; 0 = at once).
    ring_seconds: seconds of ringing before the answer / busy / no-answer.
    answered_by: who answered a completed call; reported as AnsweredBy / answered_by only when
        the create asked for MachineDetection (otherwise answered_by is empty, as documented).
    error_code / error_message: for "failed" (defaults: 21214 'To' phone number cannot be
        reached); shown in the call's Notifications subresource.
    amd_seconds: MachineDetectionDuration reported to AsyncAmdStatusCallback, in seconds.
    callbacks: CallbackBehaviour for this number (else the fake's).
    """

    outcome: str = "completed"
    duration: int = 0
    ring_seconds: float = 0.0
    answered_by: str = "human"
    error_code: int | None = None
    error_message: str | None = None
    amd_seconds: float = 1.0
    callbacks: CallbackBehaviour | None = None

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}, not {self.outcome!r}")
        if self.answered_by not in ANSWERED_BY_VALUES:
            raise ValueError(f"answered_by must be one of {ANSWERED_BY_VALUES}")
        if self.duration < 0 or self.ring_seconds < 0:
            raise ValueError("duration and ring_seconds cannot be negative")


@dataclass
class CallbackDelivery:
    """One status (or async AMD) callback the fake sent, or chose not to send."""

    call_sid: str
    event: str  # "initiated" | "ringing" | "answered" | "completed" | "amd"
    url: str  # the callback URL as given in the create (what a valid signature covers)
    target: str  # where the fake actually sent it
    method: str
    params: list[tuple[str, str]]
    signature: str | None
    sequence_number: int | None
    copy: int = 1  # 2 for the duplicate of a duplicated delivery
    dropped: bool = False
    status: int | None = None
    error: str | None = None
    wall_time: datetime | None = None
    monotonic: float | None = None
    done: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)

    @property
    def form(self) -> dict[str, str]:
        return dict(self.params)


@dataclass
class Hangup:
    """An update with Status=completed|canceled the fake accepted."""

    call_sid: str
    requested: str
    status_before: str
    status_after: str
    wall_time: datetime
    monotonic: float


@dataclass
class _Step:
    event: str
    delay: float  # scripted seconds after the previous step


@dataclass
class FakeCall:
    """A call the fake created, with every field it was created with."""

    sid: str
    account_sid: str
    to: str
    from_: str
    form: dict[str, list[str]]
    form_items: list[tuple[str, str]]
    script: Script
    created_wall: datetime
    created_monotonic: float
    phone_number_sid: str | None = None
    status: str = "queued"
    date_updated: datetime | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    answer_time: datetime | None = None
    answer_monotonic: float | None = None
    duration: int | None = None
    answered_by: str | None = None
    error_code: int | None = None
    error_message: str | None = None
    events: list[str] = field(default_factory=list)  # call progress events fired, in order
    updates: list[dict[str, list[str]]] = field(default_factory=list)
    ended_by: str | None = None  # "script", "api" or "test"
    _steps: list[_Step] = field(default_factory=list, repr=False)
    _next_step: int = field(default=0, repr=False)
    _sequence: int = field(default=0, repr=False)
    _held: list[CallbackDelivery] = field(default_factory=list, repr=False)

    def param(self, name: str, default: str | None = None) -> str | None:
        """The first value of a create parameter (e.g. "Twiml", "MachineDetection")."""
        values = self.form.get(name)
        return values[0] if values else default

    @property
    def twiml(self) -> str | None:
        return self.param("Twiml")

    @property
    def url(self) -> str | None:
        return self.param("Url")

    @property
    def status_callback(self) -> str | None:
        return self.param("StatusCallback")

    @property
    def status_callback_method(self) -> str:
        return (self.param("StatusCallbackMethod") or "POST").upper()

    @property
    def status_callback_events(self) -> list[str]:
        """The events asked for; `completed` alone when StatusCallback came without any."""
        events = [e for value in self.form.get("StatusCallbackEvent", []) for e in value.split()]
        if not events and self.status_callback:
            return ["completed"]
        return events

    @property
    def machine_detection(self) -> str | None:
        return self.param("MachineDetection")

    @property
    def async_amd(self) -> bool:
        return (self.param("AsyncAmd") or "false").lower() == "true"

    @property
    def terminal(self) -> bool:
        return self.status in _TERMINAL

    def resource(self) -> dict[str, Any]:
        """The Call resource JSON, keyed as in the Call resource reference and its examples."""
        base = f"/{API_VERSION}/Accounts/{self.account_sid}/Calls/{self.sid}"
        return {
            "account_sid": self.account_sid,
            "annotation": None,
            "answered_by": self.answered_by,
            "api_version": API_VERSION,
            "caller_name": None,
            "date_created": rfc2822(self.created_wall),
            "date_updated": rfc2822(self.date_updated or self.created_wall),
            "direction": "outbound-api",
            "duration": None if self.duration is None else str(self.duration),
            "end_time": rfc2822(self.end_time),
            "forwarded_from": None,
            "from": self.from_,
            "from_formatted": format_number(self.from_),
            "group_sid": None,
            "parent_call_sid": None,
            "phone_number_sid": self.phone_number_sid,
            "price": None,
            "price_unit": "USD",
            "queue_time": "0",
            "sid": self.sid,
            "start_time": rfc2822(self.start_time),
            "status": self.status,
            "subresource_uris": {
                "notifications": f"{base}/Notifications.json",
                "recordings": f"{base}/Recordings.json",
                "payments": f"{base}/Payments.json",
                "events": f"{base}/Events.json",
                "siprec": f"{base}/Siprec.json",
                "streams": f"{base}/Streams.json",
                "user_defined_message_subscriptions": f"{base}/UserDefinedMessageSubscriptions.json",
                "user_defined_messages": f"{base}/UserDefinedMessages.json",
            },
            "to": self.to,
            "to_formatted": format_number(self.to),
            "trunk_sid": None,
            "uri": f"{base}.json",
        }


@dataclass
class _Number:
    sid: str
    phone_number: str
    friendly_name: str
    capabilities: dict[str, bool]
    created: datetime


@dataclass
class _Fault:
    kind: Literal["error", "lose", "slow"]
    operation: str | None
    remaining: int
    status: int = 429
    code: int | None = None
    message: str | None = None
    retry_after: float | None = None
    seconds: float = 0.0


class _HttpError(Exception):
    def __init__(self, status: int, code: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def error_body(status: int, code: int, message: str) -> dict[str, Any]:
    """Twilio's error JSON for the 2010 API: code, message, more_info, status."""
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


# --------------------------------------------------------------------------------------------
# The fake
# --------------------------------------------------------------------------------------------

_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("GET", re.compile(rf"^/{API_VERSION}/Accounts/(?P<account>[^/]+)\.json$"), "fetch_account"),
    (
        "POST",
        re.compile(rf"^/{API_VERSION}/Accounts/(?P<account>[^/]+)/Calls\.json$"),
        "create_call",
    ),
    (
        "GET",
        re.compile(rf"^/{API_VERSION}/Accounts/(?P<account>[^/]+)/Calls/(?P<sid>[^/]+)\.json$"),
        "fetch_call",
    ),
    (
        "POST",
        re.compile(rf"^/{API_VERSION}/Accounts/(?P<account>[^/]+)/Calls/(?P<sid>[^/]+)\.json$"),
        "update_call",
    ),
    (
        "GET",
        re.compile(
            rf"^/{API_VERSION}/Accounts/(?P<account>[^/]+)/Calls/(?P<sid>[^/]+)/Notifications\.json$"
        ),
        "list_call_notifications",
    ),
    (
        "GET",
        re.compile(rf"^/{API_VERSION}/Accounts/(?P<account>[^/]+)/IncomingPhoneNumbers\.json$"),
        "list_numbers",
    ),
]


class TwilioFake:
    """The fake Twilio API server. See the module docstring; every public attribute and method
    is thread-safe.

    account_sid / auth_token: the credentials it accepts (random when not given).
    numbers: the account's IncomingPhoneNumbers (E.164 strings, or dicts with phone_number,
        friendly_name, capabilities).
    mode: "auto" (calls advance on their own) or "manual" (only advance()/finish() move them).
    time_scale: real seconds per scripted second in auto mode (0.01 runs a 60 s call in 0.6 s;
        reported durations stay the scripted ones).
    callback_target: maps a StatusCallback URL to where the fake really sends it (default:
        unchanged; non-loopback targets are never contacted and are recorded with an error).
    callback_timeout: seconds the fake waits for a callback receiver.
    strict_from: refuse a From that is not one of `numbers` (21210).
    """

    def __init__(
        self,
        account_sid: str | None = None,
        auth_token: str | None = None,
        *,
        numbers: Iterable[str | dict[str, Any]] = (),
        mode: Literal["auto", "manual"] = "auto",
        time_scale: float = 1.0,
        default_script: Script | None = None,
        callbacks: CallbackBehaviour | None = None,
        callback_target: Callable[[str], str] | None = None,
        callback_timeout: float = 5.0,
        strict_from: bool = False,
        friendly_name: str = "Batch calls test account",
    ) -> None:
        self.account_sid = account_sid or new_sid("AC")
        self.auth_token = auth_token or secrets.token_hex(16)
        self.friendly_name = friendly_name
        self.mode = mode
        self.time_scale = time_scale
        self.default_script = default_script or Script()
        self.callback_behaviour = callbacks or CallbackBehaviour()
        self.callback_target = callback_target
        self.callback_timeout = callback_timeout
        self.strict_from = strict_from
        self.account_created = _now() - timedelta(days=30)

        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._scripts: dict[str, Script] = {}
        self._numbers: list[_Number] = []
        self._calls: dict[str, FakeCall] = {}
        self._requests: list[RecordedRequest] = []
        self._hangups: list[Hangup] = []
        self._deliveries: list[CallbackDelivery] = []
        self._faults: list[_Fault] = []
        self._timers: list[tuple[float, int, str, int]] = []
        self._timer_seq = 0
        self._outbox: queue.Queue[CallbackDelivery | None] = queue.Queue()
        self._pending_deliveries = 0
        self._stopping = False
        self._server: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []
        for number in numbers:
            if isinstance(number, str):
                self.add_number(number)
            else:
                self.add_number(**number)

    # ---- lifecycle -----------------------------------------------------------------------

    def start(self) -> TwilioFake:
        if self._server is not None:
            return self
        self._stopping = False
        server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        server.daemon_threads = True
        self._server = server
        self._threads = [
            threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},  # so stop() returns quickly
                name="twilio-fake-http",
                daemon=True,
            ),
            threading.Thread(target=self._run_timers, name="twilio-fake-calls", daemon=True),
            threading.Thread(
                target=self._run_deliveries, name="twilio-fake-callbacks", daemon=True
            ),
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

    def __enter__(self) -> TwilioFake:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the fake is not running")
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        """http://127.0.0.1:<port>, to give to BaseUrlHttpClient."""
        return f"http://127.0.0.1:{self.port}"

    def client(self, timeout: float | None = 5.0, **http_kwargs: Any) -> Client:
        """A real `twilio.rest.Client` for this fake's account, sending to this fake."""
        http = BaseUrlHttpClient(self.base_url, timeout=timeout, **http_kwargs)
        return Client(self.account_sid, self.auth_token, http_client=http)

    # ---- configuration -------------------------------------------------------------------

    def add_number(
        self,
        phone_number: str,
        friendly_name: str | None = None,
        capabilities: dict[str, bool] | None = None,
        sid: str | None = None,
    ) -> str:
        """Add an IncomingPhoneNumber to the account; returns its PN SID."""
        number = _Number(
            sid=sid or new_sid("PN"),
            phone_number=phone_number,
            friendly_name=friendly_name or format_number(phone_number),
            capabilities=capabilities or {"voice": True, "sms": True, "mms": False},
            created=_now() - timedelta(days=1),
        )
        with self._lock:
            self._numbers.append(number)
        return number.sid

    def script(self, to_number: str, outcome: str = "completed", **kwargs: Any) -> Script:
        """Script what happens to calls to `to_number` (see Script for the keywords)."""
        script = Script(outcome=outcome, **kwargs)
        with self._lock:
            self._scripts[to_number] = script
        return script

    def set_callback_behaviour(self, **kwargs: Any) -> None:
        """Change how callbacks are delivered from now on (CallbackBehaviour keywords)."""
        with self._lock:
            self.callback_behaviour = replace(self.callback_behaviour, **kwargs)

    # Faults apply to one operation: "create_call", "fetch_call", "update_call",
    # "list_call_notifications", "fetch_account", "list_numbers" (or None: any of them).

    def fail_next(
        self,
        count: int = 1,
        status: int = 429,
        *,
        retry_after: float | None = 1,
        operation: str | None = "create_call",
        code: int | None = None,
        message: str | None = None,
    ) -> None:
        """The next `count` requests for `operation` (None = any) answer `status` with Twilio's
        error body (429 -> 20429, 500 -> 20500, 503 -> 20503 unless `code` is given) and a
        Retry-After header when `retry_after` is not None. Nothing is created."""
        self._add_fault(
            _Fault(
                "error",
                operation,
                count,
                status=status,
                code=code,
                message=message,
                retry_after=retry_after,
            )
        )

    def lose_next(self, count: int = 1, *, operation: str | None = "create_call") -> None:
        """The next `count` requests for `operation` are carried out (a create makes a call that
        will ring) but the connection is closed without an answer."""
        self._add_fault(_Fault("lose", operation, count))

    def slow_next(
        self, count: int = 1, seconds: float = 5.0, *, operation: str | None = "create_call"
    ) -> None:
        """The next `count` requests for `operation` are carried out, then answered only after
        `seconds` (to trip client timeouts; the call exists either way)."""
        self._add_fault(_Fault("slow", operation, count, seconds=seconds))

    def _add_fault(self, fault: _Fault) -> None:
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
    def create_attempts(self) -> list[RecordedRequest]:
        """Every POST to Calls.json that reached the fake, faulted or not, in arrival order."""
        return self.requests_for("create_call")

    @property
    def calls(self) -> list[FakeCall]:
        """The calls created, in creation order."""
        with self._lock:
            return list(self._calls.values())

    def call(self, sid: str) -> FakeCall:
        with self._lock:
            return self._calls[sid]

    def calls_to(self, number: str) -> list[FakeCall]:
        return [c for c in self.calls if c.to == number]

    def create_times(self) -> list[tuple[float, datetime]]:
        """(time.monotonic(), wall time) of each call created. CLOCK_MONOTONIC is machine-wide,
        so these compare with monotonic readings from other processes on this machine."""
        return [(c.created_monotonic, c.created_wall) for c in self.calls]

    @property
    def hangups(self) -> list[Hangup]:
        with self._lock:
            return list(self._hangups)

    @property
    def deliveries(self) -> list[CallbackDelivery]:
        """Every callback the fake sent (or dropped), in the order it decided them."""
        with self._lock:
            return list(self._deliveries)

    def deliveries_for(self, call_sid: str) -> list[CallbackDelivery]:
        return [d for d in self.deliveries if d.call_sid == call_sid]

    # ---- waiting -------------------------------------------------------------------------

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        with self._lock:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("condition not met in time")
                self._changed.wait(min(left, 0.05))

    def wait_for_status(self, sid: str, *statuses: str, timeout: float = 10.0) -> FakeCall:
        wanted = statuses or tuple(_TERMINAL)
        self.wait_for(lambda: self._calls[sid].status in wanted, timeout)
        return self.call(sid)

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Until every call has ended and every callback has been sent."""
        self.wait_for(
            lambda: all(c.terminal for c in self._calls.values()) and not self._pending_deliveries,
            timeout,
        )

    # ---- driving calls by hand -----------------------------------------------------------

    def advance(self, sid: str, *, wait: bool = True) -> str | None:
        """Fire the call's next progress event (initiated, ringing, answered, completed); returns
        it, or None when the call has already ended. With `wait`, returns once its callbacks have
        been sent."""
        deliveries: list[CallbackDelivery] = []
        with self._lock:
            call = self._calls[sid]
            if call.terminal or call._next_step >= len(call._steps):
                return None
            step = call._steps[call._next_step]
            call._next_step += 1
            deliveries = self._fire(call, step.event)
        if wait:
            self._wait_deliveries(deliveries)
        return step.event

    def finish(
        self, sid: str, outcome: str | None = None, *, wait: bool = True, **script: Any
    ) -> FakeCall:
        """Run the call to its end, optionally with another outcome or Script keywords
        (duration, answered_by, error_code ...). A call already answered and asked to end
        unanswered (busy, no-answer, failed, canceled) just ends completed."""
        with self._lock:
            call = self._calls[sid]
            if not call.terminal and (outcome is not None or script):
                new = replace(call.script, outcome=outcome or call.script.outcome, **script)
                if call.answer_time is not None and new.outcome != "completed":
                    new = replace(new, outcome="completed")
                call.script = new
                call._steps = call._steps[: call._next_step] + [
                    s for s in _plan(new) if s.event not in call.events
                ]
        while self.advance(sid, wait=wait) is not None:
            pass
        return self.call(sid)

    def hang_up(self, sid: str, *, duration: int | None = None) -> FakeCall:
        """The callee hangs up now: an in-progress call ends completed, with `duration` seconds
        or the (scaled) time since the answer. Returns once its callbacks have been sent."""
        deliveries: list[CallbackDelivery] = []
        with self._lock:
            call = self._calls[sid]
            if call.status == "in-progress":
                deliveries = self._end(call, "completed", "test", duration)
        self._wait_deliveries(deliveries)
        return self.call(sid)

    # ---- call engine (callers hold the lock) ---------------------------------------------

    def _script_for(self, to: str) -> Script:
        return self._scripts.get(to, self.default_script)

    def _create(self, request: RecordedRequest) -> FakeCall:
        to = request.get("To") or ""
        from_ = request.get("From") or ""
        script = self._script_for(to)
        now = _now()
        number = next((n for n in self._numbers if n.phone_number == from_), None)
        call = FakeCall(
            sid=new_sid("CA"),
            account_sid=self.account_sid,
            to=to,
            from_=from_,
            form=request.form,
            form_items=request.form_items,
            script=script,
            created_wall=now,
            created_monotonic=request.monotonic,
            phone_number_sid=number.sid if number else None,
            date_updated=now,
        )
        call._steps = _plan(script)
        self._calls[call.sid] = call
        request.call_sid = call.sid
        if self.mode == "auto":
            self._schedule(call, 0, 0.0)
        self._changed.notify_all()
        return call

    def _schedule(self, call: FakeCall, step_index: int, after_seconds: float) -> None:
        due = time.monotonic() + max(after_seconds, 0.0) * self.time_scale
        self._timer_seq += 1
        heapq.heappush(self._timers, (due, self._timer_seq, call.sid, step_index))
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
                _, _, sid, index = heapq.heappop(self._timers)
                call = self._calls.get(sid)
                if call is None or call.terminal or call._next_step != index:
                    continue
                if index >= len(call._steps):
                    continue
                step = call._steps[index]
                call._next_step += 1
                self._fire(call, step.event)  # its callbacks go out on the delivery thread
                if not call.terminal and call._next_step < len(call._steps):
                    self._schedule(call, call._next_step, call._steps[call._next_step].delay)

    def _fire(self, call: FakeCall, event: str) -> list[CallbackDelivery]:
        """Move the call through one progress event; returns the callbacks it queued."""
        now = _now()
        script = call.script
        deliveries: list[CallbackDelivery] = []
        if event == "initiated":
            call.start_time = now
        elif event == "ringing":
            call.status = "ringing"
        elif event == "answered":
            call.status = "in-progress"
            call.answer_time = now
            call.answer_monotonic = time.monotonic()
            if call.machine_detection:
                call.answered_by = script.answered_by
        elif event == "completed":
            return self._end(call, script.outcome, "script", script.duration)
        call.date_updated = now
        call.events.append(event)
        deliveries += self._queue_status_callback(call, event, now)
        if event == "answered" and call.machine_detection and call.async_amd:
            deliveries += self._queue_amd_callback(call)
        self._changed.notify_all()
        return deliveries

    def _end(
        self, call: FakeCall, status: str, by: str, duration: int | None = None
    ) -> list[CallbackDelivery]:
        now = _now()
        call.status = status
        call.ended_by = by
        call.date_updated = now
        if status == "completed":
            if duration is None:
                elapsed = time.monotonic() - (call.answer_monotonic or time.monotonic())
                duration = round(elapsed / self.time_scale) if self.time_scale else 0
            call.duration = duration
            call.end_time = (call.answer_time or now) + timedelta(seconds=duration)
        if status == "failed":
            call.error_code = call.script.error_code or ERROR_UNREACHABLE
            call.error_message = call.script.error_message or _ERROR_MESSAGES.get(
                call.error_code, "Call failed"
            )
        call._next_step = len(call._steps)
        call.events.append("completed")
        deliveries = self._queue_status_callback(call, "completed", now)
        held, call._held = call._held, []
        for delivery in reversed(held):  # out_of_order: the rest go after the end, last first
            self._enqueue(delivery)
        self._changed.notify_all()
        return deliveries + held

    def _behaviour(self, call: FakeCall) -> CallbackBehaviour:
        return call.script.callbacks or self.callback_behaviour

    def _queue_status_callback(
        self, call: FakeCall, event: str, now: datetime
    ) -> list[CallbackDelivery]:
        url = call.status_callback
        if not url or event not in call.status_callback_events:
            return []
        # CallStatus: "initiated" / "ringing" for those events, "in-progress" once answered, and
        # the final status (completed, busy, no-answer, failed, canceled) on "completed".
        callback_status = {"answered": "in-progress", "completed": call.status}.get(event, event)
        params: list[tuple[str, str]] = [
            ("AccountSid", call.account_sid),
            ("ApiVersion", API_VERSION),
            ("CallSid", call.sid),
            ("CallStatus", callback_status),
            ("CallbackSource", "call-progress-events"),
            ("Direction", "outbound-api"),
            ("From", call.from_),
            ("SequenceNumber", str(call._sequence)),
            ("Timestamp", rfc2822(now) or ""),
            ("To", call.to),
        ]
        if event == "completed":
            params.append(("CallDuration", str(call.duration or 0)))
        if call.machine_detection and call.answered_by and event in ("answered", "completed"):
            params.append(("AnsweredBy", call.answered_by))
        sequence = call._sequence
        call._sequence += 1
        return self._deliver(call, event, url, call.status_callback_method, params, sequence)

    def _queue_amd_callback(self, call: FakeCall) -> list[CallbackDelivery]:
        url = call.param("AsyncAmdStatusCallback")
        if not url or not call.answered_by:
            return []
        method = (call.param("AsyncAmdStatusCallbackMethod") or "POST").upper()
        params = [
            ("AccountSid", call.account_sid),
            ("AnsweredBy", call.answered_by),
            ("CallSid", call.sid),
            ("MachineDetectionDuration", str(round(call.script.amd_seconds * 1000))),
        ]
        return self._deliver(call, "amd", url, method, params, None)

    def _deliver(
        self,
        call: FakeCall,
        event: str,
        url: str,
        method: str,
        params: list[tuple[str, str]],
        sequence: int | None,
    ) -> list[CallbackDelivery]:
        behaviour = self._behaviour(call)
        if method == "GET":
            sep = "&" if urllib.parse.urlsplit(url).query else "?"
            url = url + sep + urllib.parse.urlencode(params)
            signed_params: list[tuple[str, str]] = []
        else:
            signed_params = params
        signature = None
        if not behaviour.unsigned:
            signature = twilio_signature(
                self.auth_token, behaviour.sign_for_url or url, signed_params
            )
        target = self.callback_target(url) if self.callback_target else url
        copies = 2 if behaviour.duplicate else 1
        sent: list[CallbackDelivery] = []
        for copy in range(1, copies + 1):
            delivery = CallbackDelivery(
                call_sid=call.sid,
                event=event,
                url=url,
                target=target,
                method=method,
                params=list(params),
                signature=signature,
                sequence_number=sequence,
                copy=copy,
            )
            self._deliveries.append(delivery)
            if behaviour.drops(event):
                delivery.dropped = True
                delivery.done.set()
                sent.append(delivery)
            elif behaviour.out_of_order and not call.terminal:
                call._held.append(delivery)  # sent when the call ends (see _end)
            else:
                self._enqueue(delivery)
                sent.append(delivery)
        return sent

    def _enqueue(self, delivery: CallbackDelivery) -> None:
        self._pending_deliveries += 1
        self._outbox.put(delivery)

    def _run_deliveries(self) -> None:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        while True:
            delivery = self._outbox.get()
            if delivery is None:
                return
            try:
                self._send(opener, delivery)
            finally:
                with self._lock:
                    self._pending_deliveries -= 1
                    self._changed.notify_all()
                delivery.done.set()

    def _send(self, opener: urllib.request.OpenerDirector, delivery: CallbackDelivery) -> None:
        delivery.wall_time = _now()
        delivery.monotonic = time.monotonic()
        if not is_loopback(delivery.target):
            delivery.error = "not sent: the fake only sends to loopback addresses"
            return
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if delivery.signature is not None:
            headers["X-Twilio-Signature"] = delivery.signature
        body = None
        if delivery.method == "POST":
            body = urllib.parse.urlencode(delivery.params).encode()
        request = urllib.request.Request(
            delivery.target, data=body, headers=headers, method=delivery.method
        )
        try:
            with opener.open(request, timeout=self.callback_timeout) as response:
                delivery.status = response.status
                response.read()
        except urllib.error.HTTPError as exc:
            delivery.status = exc.code
        except (OSError, ValueError) as exc:
            delivery.error = f"{type(exc).__name__}: {exc}"

    def _wait_deliveries(self, deliveries: list[CallbackDelivery]) -> None:
        for delivery in deliveries:
            delivery.done.wait(self.callback_timeout + 5)

    # ---- HTTP operations (called by the handler) -----------------------------------------

    def _take_fault(self, operation: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.operation in (None, operation) and fault.remaining > 0:
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)
            self._changed.notify_all()

    def _check_auth(self, request: RecordedRequest, account: str) -> None:
        if request.auth != (self.account_sid, self.auth_token) or account != self.account_sid:
            raise _HttpError(401, ERROR_AUTHENTICATE, _ERROR_MESSAGES[ERROR_AUTHENTICATE])

    def _not_found(self, path: str) -> _HttpError:
        return _HttpError(404, ERROR_NOT_FOUND, _ERROR_MESSAGES[ERROR_NOT_FOUND].format(path=path))

    def _validate_create(self, request: RecordedRequest) -> None:
        def bad(code: int, message: str) -> _HttpError:
            return _HttpError(400, code, message)

        if not request.get("To"):
            raise bad(ERROR_NO_TO, "A 'To' phone number is required.")
        if not request.get("From"):
            raise bad(ERROR_NO_FROM, "A 'From' phone number is required.")
        if not (request.get("Url") or request.get("Twiml") or request.get("ApplicationSid")):
            raise bad(
                ERROR_CALLS_RESOURCE, "Either a 'Url', 'Twiml' or 'ApplicationSid' is required."
            )
        for name in ("Url", "StatusCallback", "AsyncAmdStatusCallback", "FallbackUrl"):
            value = request.get(name)
            if value is not None and not _absolute_url(value):
                code = ERROR_INVALID_URL if name == "Url" else ERROR_CALLS_RESOURCE
                raise bad(code, f"{name} is not a valid URL: {value}")
        for name in (
            "Method",
            "FallbackMethod",
            "StatusCallbackMethod",
            "AsyncAmdStatusCallbackMethod",
        ):
            value = request.get(name)
            if value is not None and value.upper() not in HTTP_METHODS:
                raise bad(ERROR_CALLS_RESOURCE, f"{name} must be GET or POST")
        events = [e for value in request.getall("StatusCallbackEvent") for e in value.split()]
        if any(e not in CALLBACK_EVENTS for e in events):
            raise bad(ERROR_INVALID_STATUS_CALLBACK_EVENT, "Invalid 'StatusCallbackEvent'")
        detection = request.get("MachineDetection")
        if detection is not None and detection not in MACHINE_DETECTION_VALUES:
            raise bad(ERROR_CALLS_RESOURCE, "MachineDetection must be Enable or DetectMessageEnd")
        if self.strict_from:
            with self._lock:
                known = {n.phone_number for n in self._numbers}
            if request.get("From") not in known:
                raise bad(
                    ERROR_FROM_NOT_VERIFIED, "The source phone number provided is not verified."
                )

    def _op_fetch_account(self, request: RecordedRequest, match: re.Match[str]) -> tuple[int, Any]:
        base = f"/{API_VERSION}/Accounts/{self.account_sid}"
        names = {
            "calls": "Calls",
            "incoming_phone_numbers": "IncomingPhoneNumbers",
            "notifications": "Notifications",
            "outgoing_caller_ids": "OutgoingCallerIds",
            "recordings": "Recordings",
            "queues": "Queues",
            "balance": "Balance",
        }
        return 200, {
            "auth_token": self.auth_token,
            "date_created": rfc2822(self.account_created),
            "date_updated": rfc2822(self.account_created),
            "friendly_name": self.friendly_name,
            "owner_account_sid": self.account_sid,
            "sid": self.account_sid,
            "status": "active",
            "subresource_uris": {key: f"{base}/{name}.json" for key, name in names.items()},
            "type": "Full",
            "uri": f"{base}.json",
        }

    def _op_create_call(self, request: RecordedRequest, match: re.Match[str]) -> tuple[int, Any]:
        self._validate_create(request)
        with self._lock:
            call = self._create(request)
            return 201, call.resource()

    def _op_fetch_call(self, request: RecordedRequest, match: re.Match[str]) -> tuple[int, Any]:
        with self._lock:
            call = self._calls.get(match["sid"])
            if call is None:
                raise self._not_found(request.path)
            request.call_sid = call.sid
            return 200, call.resource()

    def _op_update_call(self, request: RecordedRequest, match: re.Match[str]) -> tuple[int, Any]:
        with self._lock:
            call = self._calls.get(match["sid"])
            if call is None:
                raise self._not_found(request.path)
            request.call_sid = call.sid
            status = request.get("Status")
            redirect = request.get("Url") or request.get("Twiml")
            if status is not None and status not in ("completed", "canceled"):
                raise _HttpError(400, ERROR_CALLS_RESOURCE, "Status must be completed or canceled")
            if redirect and call.status != "in-progress":
                raise _HttpError(400, ERROR_CALL_STATE, "Call is not in-progress. Cannot redirect.")
            call.updates.append(request.form)
            if status is not None:
                before = call.status
                if not call.terminal:
                    if call.status == "in-progress" and status == "completed":
                        # callbacks go out asynchronously, as Twilio's do
                        self._end(call, "completed", "api")
                    elif call.status in ("queued", "ringing"):
                        self._end(call, "canceled", "api")
                self._hangups.append(
                    Hangup(call.sid, status, before, call.status, _now(), time.monotonic())
                )
            call.date_updated = _now()
            self._changed.notify_all()
            return 200, call.resource()

    def _op_list_call_notifications(
        self, request: RecordedRequest, match: re.Match[str]
    ) -> tuple[int, Any]:
        with self._lock:
            call = self._calls.get(match["sid"])
            if call is None:
                raise self._not_found(request.path)
            items = []
            if call.error_code is not None:
                when = call.date_updated or call.created_wall
                sid = "NO" + call.sid[2:]
                items.append(
                    {
                        "account_sid": call.account_sid,
                        "api_version": API_VERSION,
                        "call_sid": call.sid,
                        "date_created": rfc2822(when),
                        "date_updated": rfc2822(when),
                        "error_code": str(call.error_code),
                        "log": "0",
                        "message_date": rfc2822(when),
                        "message_text": call.error_message,
                        "more_info": f"https://www.twilio.com/docs/errors/{call.error_code}",
                        "request_method": None,
                        "request_url": None,
                        "sid": sid,
                        "uri": f"/{API_VERSION}/Accounts/{call.account_sid}/Calls/{call.sid}"
                        f"/Notifications/{sid}.json",
                    }
                )
        return 200, self._page(request, "notifications", items)

    def _op_list_numbers(self, request: RecordedRequest, match: re.Match[str]) -> tuple[int, Any]:
        with self._lock:
            numbers = list(self._numbers)
        wanted_number = request.get("PhoneNumber")
        wanted_name = request.get("FriendlyName")
        if wanted_number:
            numbers = [n for n in numbers if n.phone_number == wanted_number]
        if wanted_name:
            numbers = [n for n in numbers if n.friendly_name == wanted_name]
        records = [self._number_resource(n) for n in numbers]
        return 200, self._page(request, "incoming_phone_numbers", records)

    def _number_resource(self, number: _Number) -> dict[str, Any]:
        return {
            "account_sid": self.account_sid,
            "address_requirements": "none",
            "address_sid": None,
            "api_version": API_VERSION,
            "beta": False,
            "bundle_sid": None,
            "capabilities": dict(number.capabilities),
            "date_created": rfc2822(number.created),
            "date_updated": rfc2822(number.created),
            "emergency_address_sid": None,
            "emergency_status": "Inactive",
            "friendly_name": number.friendly_name,
            "identity_sid": None,
            "origin": "twilio",
            "phone_number": number.phone_number,
            "sid": number.sid,
            "sms_application_sid": "",
            "sms_fallback_method": "POST",
            "sms_fallback_url": "",
            "sms_method": "POST",
            "sms_url": "",
            "status_callback": "",
            "status_callback_method": "POST",
            "trunk_sid": None,
            "uri": f"/{API_VERSION}/Accounts/{self.account_sid}/IncomingPhoneNumbers/{number.sid}.json",
            "voice_application_sid": "",
            "voice_caller_id_lookup": False,
            "voice_fallback_method": "POST",
            "voice_fallback_url": None,
            "voice_method": "POST",
            "voice_url": None,
        }

    def _page(self, request: RecordedRequest, key: str, records: list[dict[str, Any]]) -> Any:
        """A page of a list resource with Twilio's paging keys; PageToken is PA<sid of the
        previous page's last record> (forward) or PB<sid of the next page's first> (back)."""
        try:
            size = int(request.get("PageSize") or 50)
            page = int(request.get("Page") or 0)
        except ValueError as exc:
            raise _HttpError(
                400, ERROR_CALLS_RESOURCE, "Page and PageSize must be integers"
            ) from exc
        size = min(max(size, 1), 1000)
        page = max(page, 0)
        start = page * size
        token = request.get("PageToken")
        if token is not None:
            expected = {
                "PA" + records[start - 1]["sid"] if 0 < start <= len(records) else None,
                "PB" + records[start + size]["sid"] if start + size < len(records) else None,
            }
            if token not in expected:
                raise _HttpError(400, ERROR_INVALID_PAGE_TOKEN, "Invalid PageToken")
        chunk = records[start : start + size]
        filters = [
            (name, values[0])
            for name, values in request.query.items()
            if name not in ("PageSize", "Page", "PageToken")
        ]

        def uri(number: int, page_token: str | None = None) -> str:
            query = [*filters, ("PageSize", str(size)), ("Page", str(number))]
            if page_token:
                query.append(("PageToken", page_token))
            return f"{request.path}?{urllib.parse.urlencode(query)}"

        has_next = start + size < len(records)
        return {
            key: chunk,
            "end": start + max(len(chunk) - 1, 0),
            "first_page_uri": uri(0),
            "next_page_uri": uri(page + 1, "PA" + chunk[-1]["sid"]) if has_next and chunk else None,
            "page": page,
            "page_size": size,
            "previous_page_uri": uri(page - 1, "PB" + chunk[0]["sid"]) if page and chunk else None,
            "start": start,
            "uri": uri(page, token),
        }


def _absolute_url(value: str) -> bool:
    parts = urllib.parse.urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.hostname) and "_" not in parts.hostname


def _plan(script: Script) -> list[_Step]:
    """The progress events a scripted call goes through, with the scripted wait before each."""
    outcome = script.outcome
    if outcome == "failed":
        return [_Step("initiated", 0), _Step("completed", 0)]
    steps = [_Step("initiated", 0), _Step("ringing", 0)]
    if outcome == "completed":
        steps += [_Step("answered", script.ring_seconds), _Step("completed", script.duration)]
    else:
        steps.append(_Step("completed", script.ring_seconds))
    return steps


def _make_handler(fake: TwilioFake) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "twilio-fake"
        sys_version = ""

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
            body = self.rfile.read(length).decode() if length else ""
            items = urllib.parse.parse_qsl(body, keep_blank_values=True)
            query_items = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
            request = RecordedRequest(
                method=self.command,
                path=parts.path,
                query=_multidict(query_items),
                form=_multidict(items),
                form_items=items,
                auth=_basic_auth(self.headers.get("Authorization")),
                headers={k: v for k, v in self.headers.items() if k.lower() != "authorization"},
                wall_time=_now(),
                monotonic=time.monotonic(),
            )
            fake._record(request)
            try:
                operation, match = _route(self.command, parts.path)
                if operation is None or match is None:
                    raise fake._not_found(parts.path)
                request.operation = operation
                fake._check_auth(request, match["account"])
                fault = fake._take_fault(operation)
                if fault is not None:
                    request.fault = fault.kind
                if fault is not None and fault.kind == "error":
                    code = fault.code or _STATUS_TO_CODE.get(fault.status, fault.status)
                    headers = {}
                    if fault.retry_after is not None:
                        headers["Retry-After"] = f"{fault.retry_after:g}"
                    message = fault.message or _ERROR_MESSAGES.get(code, "Error")
                    raise _HttpError(fault.status, code, message, headers)
                status, payload = getattr(fake, f"_op_{operation}")(request, match)
                if fault is not None and fault.kind == "lose":
                    self._drop()
                    return
                if fault is not None and fault.kind == "slow":
                    time.sleep(fault.seconds)
                self._answer(request, status, payload)
            except _HttpError as exc:
                self._answer(
                    request, exc.status, error_body(exc.status, exc.code, exc.message), exc.headers
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


def _route(method: str, path: str) -> tuple[str | None, re.Match[str] | None]:
    for route_method, pattern, operation in _ROUTES:
        if route_method == method:
            match = pattern.match(path)
            if match:
                return operation, match
    return None, None


def _basic_auth(header: str | None) -> tuple[str, str] | None:
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return user, password


# --------------------------------------------------------------------------------------------
# A small callback receiver for tests
# --------------------------------------------------------------------------------------------


@dataclass
class ReceivedCallback:
    method: str
    path: str
    url: str  # http://127.0.0.1:<port><path and query>
    headers: dict[str, str]
    params: list[tuple[str, str]]  # the POST body (or, for GET, the query)
    monotonic: float

    @property
    def form(self) -> dict[str, str]:
        return dict(self.params)

    @property
    def signature(self) -> str | None:
        return next((v for k, v in self.headers.items() if k.lower() == "x-twilio-signature"), None)


class CallbackRecorder:
    """A tiny HTTP server on 127.0.0.1 that records every request and answers `status`."""

    def __init__(self, status: int = 204) -> None:
        self.status = status
        self._received: list[ReceivedCallback] = []
        self._cond = threading.Condition()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                self._record(urllib.parse.parse_qsl(body, keep_blank_values=True))

            def do_GET(self) -> None:
                query = urllib.parse.urlsplit(self.path).query
                self._record(urllib.parse.parse_qsl(query, keep_blank_values=True))

            def _record(self, params: list[tuple[str, str]]) -> None:
                host, port = self.server.server_address[:2]
                item = ReceivedCallback(
                    method=self.command,
                    path=urllib.parse.urlsplit(self.path).path,
                    url=f"http://{host}:{port}{self.path}",
                    headers=dict(self.headers.items()),
                    params=params,
                    monotonic=time.monotonic(),
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

    def __enter__(self) -> CallbackRecorder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def url(self, path: str = "/twilio/status") -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    @property
    def received(self) -> list[ReceivedCallback]:
        with self._cond:
            return list(self._received)

    def __iter__(self) -> Iterator[ReceivedCallback]:
        return iter(self.received)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[ReceivedCallback]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._received) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(self._received)} of {count} callbacks arrived")
                self._cond.wait(left)
            return list(self._received)
