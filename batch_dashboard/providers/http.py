"""The generic HTTP adapter: a voice runtime that places calls for us, as docs/providers.md says.

Every placement carries its attempt id as the `Idempotency-Key`, and the runtime keeps one call
per key. That is what makes retrying a placement safe: when an answer is lost (timeout, reset),
the retry finds the call the first try created instead of ringing the phone a second time.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from batch_dashboard.clock import Clock, system_clock, to_utc
from batch_dashboard.providers.base import (
    CallRequest,
    CallResult,
    CallStatus,
    Provider,
    ProviderError,
)
from batch_dashboard.retry_after import retry_after_seconds
from batch_dashboard.settings import Settings, get_settings

log = logging.getLogger(__name__)

# The runtime's call statuses; the first three are all "still going" to the dialer.
RUNTIME_STATUSES: dict[str, CallStatus] = {
    "queued": CallStatus.in_progress,
    "ringing": CallStatus.in_progress,
    "in_progress": CallStatus.in_progress,
    "completed": CallStatus.completed,
    "no_answer": CallStatus.no_answer,
    "busy": CallStatus.busy,
    "voicemail": CallStatus.voicemail,
    "failed": CallStatus.failed,
}
DEFAULT_FAILURE_REASONS = {
    CallStatus.no_answer: "no_answer",
    CallStatus.busy: "busy",
    CallStatus.voicemail: "voicemail",
    CallStatus.failed: "call_failed",
}
# recipient.failure_reason is VARCHAR(40); PostgreSQL refuses a longer value outright.
FAILURE_REASON_MAX = 40
ATTEMPT_ID_MAX = 64

MAX_TRIES = 4
BACKOFF_START_SECONDS = 0.2
BACKOFF_CAP_SECONDS = 2.0
RETRY_AFTER_CAP_SECONDS = 30.0
PLACE_CONCURRENCY = 20
# Every request holds one of these while it is on the wire, so httpx never queues for a pooled
# connection inside our timeout (a queue wait is our own load, not the runtime being slow).
MAX_CONNECTIONS = 50
_ERROR_SNIPPET = 200


class InvalidCall(ValueError):
    """A Call object that does not follow the contract; `loc` names the offending field."""

    def __init__(self, loc: list[str], message: str) -> None:
        super().__init__(f"{'.'.join(loc) or 'call'}: {message}")
        self.loc = loc
        self.message = message


def _time(data: dict[str, Any], name: str) -> datetime | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidCall([name], "must be an RFC 3339 date-time string")
    try:
        return to_utc(datetime.fromisoformat(value))
    except (ValueError, OverflowError):
        raise InvalidCall([name], f"{value[:40]!r} is not an RFC 3339 date-time") from None


def _optional(data: dict[str, Any], name: str, kind: type, what: str) -> Any:
    value = data.get(name)
    if value is not None and not isinstance(value, kind):
        raise InvalidCall([name], f"must be {what}")
    return value


def parse_call(data: object) -> tuple[str, CallResult]:
    """The attempt id and result of a runtime's Call object (a placement, status or event)."""
    if not isinstance(data, dict):
        raise InvalidCall([], "must be a Call object")
    attempt_id = data.get("attempt_id")
    if (
        not isinstance(attempt_id, str)
        or not attempt_id
        or len(attempt_id) > ATTEMPT_ID_MAX
        or "\x00" in attempt_id
    ):
        raise InvalidCall(["attempt_id"], "must be the attempt id the call was placed with")
    raw_status = data.get("status")
    if not isinstance(raw_status, str) or raw_status not in RUNTIME_STATUSES:
        raise InvalidCall(["status"], f"must be one of {', '.join(RUNTIME_STATUSES)}")
    status = RUNTIME_STATUSES[raw_status]
    started_at, ended_at = _time(data, "started_at"), _time(data, "ended_at")
    duration = data.get("duration_seconds")
    if duration is not None and (
        isinstance(duration, bool)
        or not isinstance(duration, int | float)
        or not math.isfinite(duration)
        or duration < 0
    ):
        raise InvalidCall(["duration_seconds"], "must be a number of seconds, at least 0")
    reason = _optional(data, "failure_reason", str, "a string")
    transcript = _optional(data, "transcript", list, "a list of turns")
    if transcript is not None and not all(isinstance(turn, dict) for turn in transcript):
        raise InvalidCall(["transcript"], "must be a list of turn objects")
    evaluations = _optional(data, "evaluations", dict, "an object")
    collected = _optional(data, "data_collection", dict, "an object")
    if status == CallStatus.in_progress:
        return attempt_id, CallResult(status=status, started_at=started_at)
    failure_reason = None
    if status != CallStatus.completed:
        failure_reason = (reason or DEFAULT_FAILURE_REASONS[status])[:FAILURE_REASON_MAX]
    return attempt_id, CallResult(
        status=status,
        failure_reason=failure_reason,
        started_at=started_at,
        ended_at=ended_at,
        duration_seconds=float(duration) if duration is not None else None,
        transcript=transcript,
        evaluations=evaluations,
        data_collection=collected,
    )


def _retry_after(response: httpx.Response, now: datetime) -> float | None:
    """The runtime's `Retry-After`, capped: it only ever delays one placement."""
    seconds = retry_after_seconds(response.headers.get("retry-after"), now)
    return None if seconds is None else min(seconds, RETRY_AFTER_CAP_SECONDS)


def _snippet(response: httpx.Response) -> str:
    text = " ".join(response.text.split())
    return text[:_ERROR_SNIPPET] + ("…" if len(text) > _ERROR_SNIPPET else "")


class Refused(ProviderError):
    """The runtime answered and said no (a 3xx or 4xx): nothing happened, and a retry won't help."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


def _runtime_not_found(response: httpx.Response) -> bool:
    if not response.headers.get("content-type", "").startswith("application/json"):
        return False
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and "error" in body


class HttpProvider(Provider):
    name = "http"
    poll_interval = 1.0

    def __init__(
        self,
        *,
        settings: Settings | None = None,
        clock: Clock = system_clock,
        status_callback_url: str | None = None,
    ) -> None:
        super().__init__(clock=clock)
        settings = settings or get_settings()
        url = settings.http_provider_url.strip().rstrip("/")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ProviderError(
                "BATCH_HTTP_PROVIDER_URL must be the runtime's http(s) base URL"
                + (f" (got {url!r})" if url else " (it is not set)"),
                retryable=False,
            )
        self.base_url = url
        self.timeout = settings.http_provider_timeout_seconds
        self.status_callback_url = (
            status_callback_url or settings.http_provider_callback_url or None
        )
        self._token = settings.http_provider_token
        # Instance attributes so tests (and a patient operator) can shrink or widen them.
        self.max_tries = MAX_TRIES
        self.backoff_start = BACKOFF_START_SECONDS
        self.backoff_cap = BACKOFF_CAP_SECONDS
        self._client: httpx.AsyncClient | None = None
        self._slots: asyncio.Semaphore | None = None
        self._placing: asyncio.Semaphore | None = None

    def __repr__(self) -> str:
        return f"HttpProvider({self.base_url!r})"

    # --- the wire ------------------------------------------------------------------------------

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            headers = {"User-Agent": "batch-dashboard", "Accept": "application/json"}
            if self._token:
                headers["Authorization"] = f"Bearer {self._token}"
            self._client = httpx.AsyncClient(
                base_url=self.base_url,
                headers=headers,
                # The deadline is enforced per try around the whole exchange (see _send); httpx's
                # own timeouts only back it up, and the pool never waits (see MAX_CONNECTIONS).
                timeout=httpx.Timeout(self.timeout, pool=None),
                limits=httpx.Limits(
                    max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS
                ),
                follow_redirects=False,
            )
            self._slots = asyncio.Semaphore(MAX_CONNECTIONS)
            self._placing = asyncio.Semaphore(PLACE_CONCURRENCY)
        return self._client

    def _backoff(self, tried: int) -> float:
        delay = min(self.backoff_cap, self.backoff_start * 2 ** (tried - 1))
        # Jitter: calls placed together after an outage would otherwise retry in lockstep.
        return delay * random.uniform(0.5, 1.0)

    async def _send(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        accept: Collection[int] = (),
        tries: int | None = None,
    ) -> httpx.Response:
        """A 2xx answer, or one of `accept`; retries what may pass, refuses the rest.

        Raises ProviderError: `retryable=False` when the runtime refused the request (nothing
        happened), `retryable=True` when the tries ran out (something may have happened).
        """
        client = self._http()
        assert self._slots is not None
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        tries = tries or self.max_tries
        problem = ""
        for tried in range(1, tries + 1):
            wait = self._backoff(tried)
            try:
                async with self._slots, asyncio.timeout(self.timeout):
                    response = await client.request(method, path, json=body, headers=headers)
            except (TimeoutError, httpx.TimeoutException):
                problem = f"no answer within {self.timeout:g} s"
            except httpx.TransportError as error:
                problem = f"connection failed ({type(error).__name__}: {error or 'closed'})"
            else:
                status = response.status_code
                if 200 <= status < 300 or status in accept:
                    return response
                if status not in (409, 429) and status < 500:
                    raise Refused(
                        f"the runtime refused {method} {path}: {status} {_snippet(response)}"
                    )
                problem = f"answered {status}"
                hinted = _retry_after(response, self.clock.now())
                if hinted is not None:
                    wait = hinted
            if tried < tries:
                log.info("http provider: %s %s %s; retrying in %.2f s", method, path, problem, wait)
                await asyncio.sleep(wait)
        raise ProviderError(f"{method} {path}: {problem} ({tries} tries)", retryable=True)

    def _read(self, response: httpx.Response, attempt_id: str) -> CallResult:
        try:
            answered, result = parse_call(response.json())
        except ValueError as error:  # not JSON, or an InvalidCall
            raise ProviderError(
                f"the runtime's answer about {attempt_id} is not a Call object: {error}",
                retryable=False,
            ) from None
        if answered != attempt_id:
            raise ProviderError(
                f"asked about {attempt_id}, the runtime answered about {answered}",
                retryable=False,
            )
        return result

    # --- the interface -------------------------------------------------------------------------

    def payload(self, request: CallRequest) -> dict[str, Any]:
        """The body of `POST /calls` for one request."""
        agent = request.agent
        body: dict[str, Any] = {
            "attempt_id": request.attempt_id,
            "to": request.to,
            "from": request.from_,
            "agent": {
                "id": agent.id,
                "name": agent.name,
                "prompt": agent.prompt,
                "first_message": agent.first_message,
                "evaluation_criteria": agent.evaluation_criteria,
                "data_collection": agent.data_collection,
            },
            "variables": request.variables,
            "ringing_timeout_ms": request.ringing_timeout_ms,
        }
        if self.status_callback_url:
            body["status_callback_url"] = self.status_callback_url
        return body

    async def _place(self, request: CallRequest) -> CallResult | ProviderError:
        attempt_id = request.attempt_id
        try:
            response = await self._send(
                "POST", "/calls", body=self.payload(request), idempotency_key=attempt_id
            )
            return self._read(response, attempt_id)
        except Refused as error:
            # The runtime said no (4xx): it created nothing, and asking again would not help.
            return error
        except ProviderError as error:
            failure = error
        # The answer was lost or unreadable: the call may exist. The runtime answers for every
        # attempt it ever received, so one question settles whether a phone is ringing.
        try:
            found = await self._status(attempt_id, tries=1)
        except ProviderError as check:
            return ProviderError(
                f"placing {attempt_id}: {failure}; asking about it failed too: {check}",
                retryable=True,
            )
        if found is None:
            return ProviderError(f"placing {attempt_id}: {failure}", retryable=True)
        log.info("http provider: %s was placed although its answer was lost", attempt_id)
        return found

    async def place_calls(
        self, requests: Sequence[CallRequest]
    ) -> list[CallResult | ProviderError]:
        self._http()
        assert self._placing is not None
        placing = self._placing

        async def one(request: CallRequest) -> CallResult | ProviderError:
            async with placing:
                return await self._place(request)

        return list(await asyncio.gather(*(one(request) for request in requests)))

    async def _status(self, attempt_id: str, *, tries: int | None = None) -> CallResult | None:
        response = await self._send(
            "GET", f"/calls/{quote(attempt_id, safe='')}", accept=(404,), tries=tries
        )
        if response.status_code == 404:
            # "Never received" re-queues the recipient, so only the runtime may say it: a 404
            # from anything else (a wrong base URL, a proxy) is no answer at all.
            if not _runtime_not_found(response):
                raise ProviderError(
                    f"GET /calls/{attempt_id} answered 404 without the runtime's JSON error "
                    "body; is BATCH_HTTP_PROVIDER_URL right?",
                    retryable=False,
                )
            return None
        return self._read(response, attempt_id)

    async def call_status(self, attempt_id: str, call_id: str | None = None) -> CallResult | None:
        return await self._status(attempt_id)

    async def hang_up(self, attempt_id: str, call_id: str | None = None) -> None:
        # 404: the runtime never had the call; 409: it has ended already. Nothing to hang up.
        await self._send("POST", f"/calls/{quote(attempt_id, safe='')}/hangup", accept=(404, 409))

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()


__all__ = ["RUNTIME_STATUSES", "HttpProvider", "InvalidCall", "Refused", "parse_call"]
