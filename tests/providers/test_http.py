"""The HTTP adapter against a real local server that plays the voice runtime, faults included,
and the signed status events that runtime posts back (on SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import socket
import struct
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.testclient import TestClient
from sqlmodel import select
from standardwebhooks import Webhook

from batch_dashboard.db import session_scope
from batch_dashboard.models import Conversation
from batch_dashboard.providers.base import (
    AgentSnapshot,
    CallRequest,
    CallResult,
    CallStatus,
    ProviderError,
)
from batch_dashboard.providers.http import HttpProvider, InvalidCall, parse_call
from batch_dashboard.services import batches, dialing, recipients
from batch_dashboard.settings import Settings, reload_settings
from tests.conftest import Tenant

CLIENT_TIMEOUT = 0.5
TOKEN = "rt_secret_token_do_not_log_42"
SECRET = "whsec_" + base64.b64encode(b"provider-events-test-secret-32b!").decode()
FAST_BACKOFF = 0.02

# --- the runtime -----------------------------------------------------------------------------


@dataclass
class Runtime:
    """What the fake runtime knows; shared between its server thread and the tests."""

    calls: dict[str, dict[str, Any]] = field(default_factory=dict)  # by Idempotency-Key
    log: list[dict[str, Any]] = field(default_factory=list)
    faults: list[str | None] = field(default_factory=list)  # one is taken by each request, in order
    resets: int = 0  # connections the reset proxy still cuts
    outcome: str = "completed"
    call_seconds: float = 0.0  # how long a placed call stays in progress
    latency: float = 0.0
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self.lock:
            self.calls.clear()
            self.log.clear()
            self.faults.clear()
            self.resets = 0
            self.outcome, self.call_seconds, self.latency = "completed", 0.0, 0.0
            self.in_flight = self.max_in_flight = 0

    def arrive(self, request: Request, body: Any) -> str | None:
        with self.lock:
            self.log.append(
                {
                    "method": request.method,
                    "path": request.url.path,
                    "headers": dict(request.headers),
                    "body": body,
                }
            )
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            return self.faults.pop(0) if self.faults else None

    def leave(self) -> None:
        with self.lock:
            self.in_flight -= 1

    def take_reset(self) -> bool:
        with self.lock:
            if self.resets > 0:
                self.resets -= 1
                return True
            return False

    def requests(self, method: str, prefix: str = "/calls") -> list[dict[str, Any]]:
        return [r for r in self.log if r["method"] == method and r["path"].startswith(prefix)]

    def create(self, key: str, body: dict[str, Any]) -> dict[str, Any]:
        """The call of this key: made on first sight, found again on every retry."""
        with self.lock:
            if key not in self.calls:
                self.calls[key] = {
                    "attempt_id": body["attempt_id"],
                    "placed": time.monotonic(),
                    "outcome": body["variables"].get("outcome", self.outcome),
                    "seconds": self.call_seconds,
                    "hung_up": False,
                }
            return self.calls[key]

    def view(self, call: dict[str, Any]) -> dict[str, Any]:
        """The Call object as the contract has it."""
        base = {"attempt_id": call["attempt_id"]}
        if call["hung_up"]:
            return {**base, "status": "failed", "failure_reason": "hung_up"}
        if time.monotonic() - call["placed"] < call["seconds"]:
            return {**base, "status": "in_progress", "started_at": "2026-12-01T15:00:04Z"}
        status = call["outcome"]
        if status == "completed":
            return {
                **base,
                "status": status,
                "started_at": "2026-12-01T15:00:04Z",
                "ended_at": "2026-12-01T15:00:46Z",
                "duration_seconds": 42,
                "transcript": [{"role": "agent", "message": "Hi Ada!", "time_in_call_secs": 0}],
                "evaluations": {"confirmed": {"result": "success", "rationale": "Said yes."}},
                "data_collection": {"slot": {"value": "3pm", "rationale": "Stated."}},
            }
        return {**base, "status": status, "ended_at": "2026-12-01T15:00:30Z"}


def build_runtime_app(rt: Runtime) -> FastAPI:
    app = FastAPI()

    async def faulty(fault: str | None, answer: Any) -> Response:
        if fault == "timeout":
            await asyncio.sleep(CLIENT_TIMEOUT * 2)
        elif fault == "slow":
            await asyncio.sleep(CLIENT_TIMEOUT / 2)
        elif fault == "500":
            return JSONResponse({"error": "boom"}, status_code=500)
        elif fault == "429":
            return JSONResponse(
                {"error": "slow down"}, status_code=429, headers={"Retry-After": "1"}
            )
        elif fault == "refuse":
            return JSONResponse({"error": "to: not a number we can dial"}, status_code=422)
        if rt.latency:
            await asyncio.sleep(rt.latency)
        # Responses are ASGI callables themselves: only a plain function is a deferred answer.
        return answer if isinstance(answer, Response) else answer()

    @app.post("/calls")
    async def place(request: Request) -> Response:
        body = await request.json()
        fault = rt.arrive(request, body)
        try:
            key = request.headers.get("idempotency-key")
            if fault in ("lost-timeout", "lost-drop"):
                call = rt.create(key, body)
                if fault == "lost-timeout":
                    await asyncio.sleep(CLIENT_TIMEOUT * 2)
                    return JSONResponse(rt.view(call))

                async def broken() -> AsyncIterator[bytes]:
                    yield b'{"attempt_id": '
                    raise ConnectionAbortedError("the answer is lost on the way back")

                # The status line goes out, then the connection dies mid-body.
                return StreamingResponse(broken(), media_type="application/json")
            return await faulty(
                fault, lambda: JSONResponse(rt.view(rt.create(key, body)), status_code=201)
            )
        finally:
            rt.leave()

    @app.get("/calls/{attempt_id}")
    async def status(attempt_id: str, request: Request) -> Response:
        fault = rt.arrive(request, None)
        try:
            call = next((c for c in rt.calls.values() if c["attempt_id"] == attempt_id), None)
            if call is None:
                return await faulty(fault, JSONResponse({"error": "no such call"}, 404))
            return await faulty(fault, lambda: JSONResponse(rt.view(call)))
        finally:
            rt.leave()

    @app.post("/calls/{attempt_id}/hangup")
    async def hangup(attempt_id: str, request: Request) -> Response:
        fault = rt.arrive(request, None)
        try:
            call = next((c for c in rt.calls.values() if c["attempt_id"] == attempt_id), None)
            if call is None:
                return await faulty(fault, JSONResponse({"error": "no such call"}, 404))
            if rt.view(call)["status"] != "in_progress":
                return await faulty(fault, JSONResponse({"error": "call has ended"}, 409))
            call["hung_up"] = True
            return await faulty(fault, lambda: JSONResponse(rt.view(call)))
        finally:
            rt.leave()

    return app


def _bound_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
    except ConnectionError:
        pass
    finally:
        sink.close()


class RuntimeServer:
    """uvicorn serving the runtime on one port, and a TCP proxy to it on another that resets
    the first `Runtime.resets` connections after their request arrives (uvicorn cannot)."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.app_sock, self.proxy_sock = _bound_socket(), _bound_socket()
        self.url = f"http://127.0.0.1:{self.app_sock.getsockname()[1]}"
        self.proxy_url = f"http://127.0.0.1:{self.proxy_sock.getsockname()[1]}"
        config = uvicorn.Config(
            build_runtime_app(rt), log_level="critical", lifespan="off", timeout_graceful_shutdown=1
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=asyncio.run, args=(self._main(),), daemon=True)

    async def _main(self) -> None:
        self.proxy_sock.listen()
        proxy = await asyncio.start_server(self._proxy, sock=self.proxy_sock)
        async with proxy:
            await self.server.serve(sockets=[self.app_sock])

    async def _proxy(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream: asyncio.StreamWriter | None = None
        answers: asyncio.Task[None] | None = None
        try:
            # Checked per chunk, not per connection: httpx reuses kept-alive connections.
            while data := await reader.read(65536):
                if self.rt.take_reset():
                    # The request is on its way: an RST now (SO_LINGER 0) loses it mid-flight.
                    writer.get_extra_info("socket").setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                    )
                    writer.transport.abort()
                    return
                if upstream is None:
                    port = self.app_sock.getsockname()[1]
                    up_reader, upstream = await asyncio.open_connection("127.0.0.1", port)
                    answers = asyncio.create_task(_pipe(up_reader, writer))
                upstream.write(data)
                await upstream.drain()
        except ConnectionError:
            pass
        finally:
            if upstream is not None:
                upstream.close()
            if answers is not None:
                await asyncio.gather(answers, return_exceptions=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the fake runtime did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        assert not self.thread.is_alive(), "the fake runtime did not stop"


@pytest.fixture(scope="module")
def runtime_server() -> Iterator[RuntimeServer]:
    server = RuntimeServer(Runtime())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def rt(runtime_server: RuntimeServer) -> Runtime:
    runtime_server.rt.reset()
    return runtime_server.rt


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def make_settings(url: str, **overrides: Any) -> Settings:
    return Settings.model_validate(
        {
            "BATCH_HTTP_PROVIDER_URL": url,
            "BATCH_HTTP_PROVIDER_TOKEN": TOKEN,
            "BATCH_HTTP_PROVIDER_TIMEOUT_SECONDS": CLIENT_TIMEOUT,
            **overrides,
        }
    )


@asynccontextmanager
async def connect(url: str, *, fast: bool = True, **kwargs: Any) -> AsyncIterator[HttpProvider]:
    provider = HttpProvider(settings=make_settings(url), **kwargs)
    if fast:
        provider.backoff_start = FAST_BACKOFF
    try:
        yield provider
    finally:
        await provider.aclose()


AGENT = AgentSnapshot(
    id="agent_1",
    name="Reminders",
    prompt="Remind {{first_name}}.",
    first_message="Hi {{first_name}}!",
    evaluation_criteria=[{"name": "confirmed", "prompt": "Did they confirm?"}],
    data_collection=[{"name": "slot", "type": "string"}],
)


def call_request(n: int = 0, **variables: Any) -> CallRequest:
    return CallRequest(
        attempt_id=f"att_test-{n}",
        attempt_number=1,
        workspace_id="ws_1",
        batch_id="batch_1",
        recipient_id=f"rcpt_{n}",
        to=f"+1415555{n:04d}",
        from_="+14155550100",
        agent=AGENT,
        variables={"first_name": "Ada", **variables},
        ringing_timeout_ms=30000,
    )


async def place_one(provider: HttpProvider, request: CallRequest) -> CallResult | ProviderError:
    [result] = await provider.place_calls([request])
    return result


# --- the happy path and the contract ----------------------------------------------------------


@pytest.mark.anyio
async def test_placement_speaks_the_contract(runtime_server: RuntimeServer, rt: Runtime) -> None:
    callback = "https://dash.example/v1/provider-events/http"
    async with connect(runtime_server.url, status_callback_url=callback) as provider:
        result = await place_one(provider, call_request(7))
    assert isinstance(result, CallResult) and result.status == CallStatus.completed
    [sent] = rt.requests("POST")
    assert sent["path"] == "/calls"
    assert sent["headers"]["authorization"] == f"Bearer {TOKEN}"
    assert sent["headers"]["idempotency-key"] == "att_test-7"
    assert sent["headers"]["content-type"] == "application/json"
    assert sent["body"] == {
        "attempt_id": "att_test-7",
        "to": "+14155550007",
        "from": "+14155550100",
        "agent": {
            "id": "agent_1",
            "name": "Reminders",
            "prompt": "Remind {{first_name}}.",
            "first_message": "Hi {{first_name}}!",
            "evaluation_criteria": [{"name": "confirmed", "prompt": "Did they confirm?"}],
            "data_collection": [{"name": "slot", "type": "string"}],
        },
        "variables": {"first_name": "Ada"},
        "ringing_timeout_ms": 30000,
        "status_callback_url": callback,
    }


@pytest.mark.anyio
async def test_no_callback_url_unless_configured(
    runtime_server: RuntimeServer, rt: Runtime
) -> None:
    async with connect(runtime_server.url) as provider:
        await place_one(provider, call_request())
    assert "status_callback_url" not in rt.requests("POST")[0]["body"]


EXPECTED = {
    "queued": (CallStatus.in_progress, None),
    "ringing": (CallStatus.in_progress, None),
    "in_progress": (CallStatus.in_progress, None),
    "completed": (CallStatus.completed, None),
    "no_answer": (CallStatus.no_answer, "no_answer"),
    "busy": (CallStatus.busy, "busy"),
    "voicemail": (CallStatus.voicemail, "voicemail"),
    "failed": (CallStatus.failed, "call_failed"),
}


@pytest.mark.anyio
@pytest.mark.parametrize("runtime_status", list(EXPECTED))
async def test_every_runtime_status_maps(
    runtime_server: RuntimeServer, rt: Runtime, runtime_status: str
) -> None:
    rt.outcome = runtime_status
    status, reason = EXPECTED[runtime_status]
    async with connect(runtime_server.url) as provider:
        placed = await place_one(provider, call_request())
        asked = await provider.call_status("att_test-0")
    for result in (placed, asked):
        assert isinstance(result, CallResult)
        assert (result.status, result.failure_reason) == (status, reason)
        assert result.terminal == (status != CallStatus.in_progress)
    assert isinstance(asked, CallResult)
    if runtime_status == "completed":
        assert asked.connected
        assert asked.started_at == datetime(2026, 12, 1, 15, 0, 4, tzinfo=UTC)
        assert asked.ended_at == datetime(2026, 12, 1, 15, 0, 46, tzinfo=UTC)
        assert asked.duration_seconds == 42.0
        assert asked.transcript == [{"role": "agent", "message": "Hi Ada!", "time_in_call_secs": 0}]
        assert asked.evaluations == {"confirmed": {"result": "success", "rationale": "Said yes."}}
        assert asked.data_collection == {"slot": {"value": "3pm", "rationale": "Stated."}}


def test_the_runtimes_own_failure_reason_wins_and_is_cut_to_the_column() -> None:
    _, result = parse_call({"attempt_id": "a", "status": "failed", "failure_reason": "x" * 99})
    assert result.failure_reason == "x" * 40
    _, result = parse_call({"attempt_id": "a", "status": "busy", "failure_reason": "line_busy"})
    assert result.failure_reason == "line_busy"


@pytest.mark.parametrize(
    ("call", "loc"),
    [
        ([], []),
        ({"status": "completed"}, ["attempt_id"]),
        ({"attempt_id": "a", "status": "exploded"}, ["status"]),
        ({"attempt_id": "a", "status": "completed", "ended_at": "yesterday"}, ["ended_at"]),
        ({"attempt_id": "a", "status": "completed", "duration_seconds": -1}, ["duration_seconds"]),
        (
            {"attempt_id": "a", "status": "completed", "duration_seconds": True},
            ["duration_seconds"],
        ),
        ({"attempt_id": "a", "status": "completed", "transcript": "hi"}, ["transcript"]),
        ({"attempt_id": "a", "status": "completed", "transcript": ["hi"]}, ["transcript"]),
        ({"attempt_id": "a", "status": "completed", "evaluations": []}, ["evaluations"]),
    ],
)
def test_a_call_object_off_the_contract_is_refused(call: Any, loc: list[str]) -> None:
    with pytest.raises(InvalidCall) as caught:
        parse_call(call)
    assert caught.value.loc == loc


@pytest.mark.anyio
async def test_wait_polls_until_the_call_ends(runtime_server: RuntimeServer, rt: Runtime) -> None:
    rt.call_seconds = 0.3
    async with connect(runtime_server.url) as provider:
        provider.poll_interval = 0.05
        placed = await place_one(provider, call_request())
        assert isinstance(placed, CallResult) and placed.status == CallStatus.in_progress
        ended = await provider.wait("att_test-0", placed)
    assert ended.status == CallStatus.completed and ended.transcript
    assert len(rt.requests("GET")) >= 2


def test_poll_interval_is_one_second() -> None:
    assert HttpProvider.poll_interval == 1.0


@pytest.mark.anyio
async def test_status_of_an_attempt_never_received_is_none(
    runtime_server: RuntimeServer, rt: Runtime
) -> None:
    async with connect(runtime_server.url) as provider:
        assert await provider.call_status("att_never") is None
    assert len(rt.requests("GET")) == 1  # a 404 is an answer, not a fault to retry


@pytest.mark.anyio
async def test_a_404_that_is_not_the_runtimes_is_no_answer(runtime_server: RuntimeServer) -> None:
    # A wrong base URL answers 404 for everything; taking that for "never received" would
    # re-queue recipients whose calls may exist.
    async with connect(runtime_server.url + "/not-the-runtime") as provider:
        with pytest.raises(ProviderError) as refused:
            await provider.call_status("att_never")
    assert not refused.value.retryable and "BATCH_HTTP_PROVIDER_URL" in str(refused.value)


@pytest.mark.anyio
async def test_hang_up(runtime_server: RuntimeServer, rt: Runtime) -> None:
    rt.call_seconds = 30
    async with connect(runtime_server.url) as provider:
        await place_one(provider, call_request())
        await provider.hang_up("att_test-0")
        after = await provider.call_status("att_test-0")
        # Hanging up an ended or unknown call is not an error: there is nothing to hang up.
        await provider.hang_up("att_test-0")
        await provider.hang_up("att_never")
    assert after is not None and (after.status, after.failure_reason) == (
        CallStatus.failed,
        "hung_up",
    )
    assert [r["path"] for r in rt.requests("POST", "/calls/")] == [
        "/calls/att_test-0/hangup",
        "/calls/att_test-0/hangup",
        "/calls/att_never/hangup",
    ]


@pytest.mark.anyio
async def test_calls_are_placed_concurrently_within_the_cap_and_answered_in_order(
    runtime_server: RuntimeServer, rt: Runtime
) -> None:
    rt.latency = 0.2
    outcomes = ["completed", "busy", "no_answer", "voicemail", "failed"] * 6
    requests = [call_request(n, outcome=outcome) for n, outcome in enumerate(outcomes)]
    # A timeout would retry a placement while the runtime still holds the first request, and
    # count both as in flight: on a loaded machine a 0.2 s answer can pass the short test
    # timeout, so this test gives the client time.
    async with connect(runtime_server.url) as provider:
        provider.timeout = 10.0
        started = time.monotonic()
        results = await provider.place_calls(requests)
        elapsed = time.monotonic() - started
    assert [r.status.value for r in results if isinstance(r, CallResult)] == outcomes
    assert elapsed < 2.0  # 30 calls of 0.2 s one after another would take 6 s
    assert 2 <= rt.max_in_flight <= 20
    assert len(rt.calls) == 30


@pytest.mark.anyio
async def test_one_refusal_does_not_spoil_the_others(
    runtime_server: RuntimeServer, rt: Runtime
) -> None:
    rt.faults = [None, "refuse", None]
    async with connect(runtime_server.url) as provider:
        # Sequential requests so the faults meet the placements in order.
        results = [await place_one(provider, call_request(n)) for n in range(3)]
    assert isinstance(results[0], CallResult) and isinstance(results[2], CallResult)
    assert isinstance(results[1], ProviderError) and not results[1].retryable


# --- faults -----------------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("fault", ["timeout", "500", "lost-timeout", "lost-drop"])
async def test_a_retried_placement_places_exactly_one_call(
    runtime_server: RuntimeServer, rt: Runtime, fault: str
) -> None:
    rt.faults = [fault]
    async with connect(runtime_server.url) as provider:
        result = await place_one(provider, call_request())
    assert isinstance(result, CallResult) and result.status == CallStatus.completed
    posts = rt.requests("POST")
    assert len(posts) == 2
    assert {p["headers"]["idempotency-key"] for p in posts} == {"att_test-0"}
    assert len(rt.calls) == 1  # the lost answer's call was found again, not placed twice


@pytest.mark.anyio
async def test_429_honours_retry_after(runtime_server: RuntimeServer, rt: Runtime) -> None:
    rt.faults = ["429"]
    async with connect(runtime_server.url) as provider:
        started = time.monotonic()
        result = await place_one(provider, call_request())
        elapsed = time.monotonic() - started
    assert isinstance(result, CallResult)
    assert elapsed >= 0.95  # Retry-After: 1, not the 20 ms backoff
    assert len(rt.requests("POST")) == 2 and len(rt.calls) == 1


@pytest.mark.anyio
async def test_a_slow_answer_within_the_timeout_is_not_retried(
    runtime_server: RuntimeServer, rt: Runtime
) -> None:
    rt.faults = ["slow"]
    async with connect(runtime_server.url) as provider:
        result = await place_one(provider, call_request())
    assert isinstance(result, CallResult)
    assert len(rt.requests("POST")) == 1


@pytest.mark.anyio
async def test_a_connection_reset_is_retried(runtime_server: RuntimeServer, rt: Runtime) -> None:
    rt.resets = 2
    async with connect(runtime_server.proxy_url) as provider:
        result = await place_one(provider, call_request())
        assert isinstance(result, CallResult)
        rt.resets = 1
        assert await provider.call_status("att_test-0") is not None
    assert rt.resets == 0
    assert len(rt.requests("POST")) == 1  # the reset requests never reached the runtime
    assert len(rt.calls) == 1


@pytest.mark.anyio
async def test_resets_to_the_end_give_a_retryable_error(
    runtime_server: RuntimeServer, rt: Runtime
) -> None:
    rt.resets = 10
    async with connect(runtime_server.proxy_url) as provider:
        result = await place_one(provider, call_request())
        with pytest.raises(ProviderError) as caught:
            await provider.call_status("att_test-0")
    assert isinstance(result, ProviderError) and result.retryable
    assert "asking about it failed too" in str(result)
    assert caught.value.retryable
    assert rt.resets == 10 - (4 + 1 + 4)  # 4 placement tries, 1 check, 4 status tries


@pytest.mark.anyio
async def test_answers_lost_to_the_end_still_find_the_call(
    runtime_server: RuntimeServer, rt: Runtime
) -> None:
    rt.faults = ["lost-timeout", "lost-drop", "lost-timeout", "lost-drop"]
    async with connect(runtime_server.url) as provider:
        result = await place_one(provider, call_request())
    # Every placement answer was lost, but the call exists: the one status check says so.
    assert isinstance(result, CallResult) and result.status == CallStatus.completed
    assert len(rt.requests("POST")) == 4 and len(rt.requests("GET")) == 1
    assert len(rt.calls) == 1


@pytest.mark.anyio
async def test_failures_to_the_end_without_a_call_give_an_error(
    runtime_server: RuntimeServer, rt: Runtime
) -> None:
    rt.faults = ["500", "timeout", "500", "500"]
    async with connect(runtime_server.url) as provider:
        result = await place_one(provider, call_request())
    assert isinstance(result, ProviderError) and result.retryable
    assert "answered 500" in str(result)
    assert len(rt.requests("POST")) == 4 and len(rt.requests("GET")) == 1
    assert rt.calls == {}


@pytest.mark.anyio
async def test_a_refusal_is_final(runtime_server: RuntimeServer, rt: Runtime) -> None:
    rt.faults = ["refuse"]
    async with connect(runtime_server.url) as provider:
        result = await place_one(provider, call_request())
    assert isinstance(result, ProviderError) and not result.retryable
    assert "422" in str(result) and "not a number we can dial" in str(result)
    assert len(rt.log) == 1  # no retry, no status check: nothing was created


@pytest.mark.anyio
async def test_status_retries_then_gives_up(runtime_server: RuntimeServer, rt: Runtime) -> None:
    rt.faults = ["500", "429"]
    async with connect(runtime_server.url) as provider:
        provider.max_tries = 2
        with pytest.raises(ProviderError) as caught:
            await provider.call_status("att_test-0")
    assert caught.value.retryable and "answered 429" in str(caught.value)
    assert len(rt.requests("GET")) == 2


@pytest.mark.anyio
async def test_default_backoff_grows(runtime_server: RuntimeServer, rt: Runtime) -> None:
    rt.faults = ["500", "500", "500"]
    async with connect(runtime_server.url, fast=False) as provider:
        started = time.monotonic()
        result = await place_one(provider, call_request())
        elapsed = time.monotonic() - started
    assert isinstance(result, CallResult)
    # 0.2 + 0.4 + 0.8 s, each jittered down to no less than half.
    assert 0.7 <= elapsed < 3


@pytest.mark.anyio
async def test_the_token_is_never_logged(
    runtime_server: RuntimeServer, rt: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    rt.faults = ["500", "timeout", "refuse"]
    async with connect(runtime_server.url) as provider:
        result = await place_one(provider, call_request())
        assert TOKEN not in repr(provider)
    assert isinstance(result, ProviderError)
    assert "retrying" in caplog.text
    assert TOKEN not in caplog.text and TOKEN not in str(result)


@pytest.mark.anyio
async def test_a_closed_provider_reconnects(runtime_server: RuntimeServer, rt: Runtime) -> None:
    async with connect(runtime_server.url) as provider:
        await place_one(provider, call_request())
        await provider.aclose()
        assert await provider.call_status("att_test-0") is not None


@pytest.mark.parametrize("url", ["", "ftp://runtime", "runtime.local/calls"])
def test_a_missing_or_odd_url_is_a_clear_error(url: str) -> None:
    with pytest.raises(ProviderError, match="BATCH_HTTP_PROVIDER_URL") as caught:
        HttpProvider(settings=make_settings(url))
    assert not caught.value.retryable


def test_the_registry_builds_it(runtime_server: RuntimeServer) -> None:
    from batch_dashboard.providers.registry import Registry

    provider = Registry(settings=make_settings(runtime_server.url + "/")).get("http")
    assert isinstance(provider, HttpProvider) and provider.base_url == runtime_server.url


# --- status events ----------------------------------------------------------------------------


@pytest.fixture
def events_secret(database: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("BATCH_HTTP_PROVIDER_SECRET", SECRET)
    reload_settings()
    yield SECRET
    monkeypatch.delenv("BATCH_HTTP_PROVIDER_SECRET")
    reload_settings()


def _dialing_attempt(tenant: Tenant) -> tuple[str, str]:
    """A batch of one recipient, claimed by a dialer: (batch id, attempt id)."""
    rows = recipients.from_json([{"phone": "+14155552671", "first_name": "Ada"}], max_recipients=10)
    batch, _ = batches.create_batch(
        workspace_id=tenant.workspace_id,
        fields={"name": "Events", "agent_id": tenant.agent_id},
        rows=rows,
    )
    with session_scope(write=True) as session:
        [claim] = dialing.claim_calls(
            session,
            limit=1,
            now=datetime.now(UTC),
            lease=timedelta(seconds=30),
            max_concurrent_calls=10,
            calls_per_second=0,
            default_provider="http",
        )
    return batch["id"], claim.attempt_id


def _signed(event: dict[str, Any], secret: str = SECRET) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(event)
    now = datetime.now(UTC)
    msg_id = f"msg_{time.monotonic_ns()}"
    return body.encode(), {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, now, body),
    }


def _post(client: TestClient, event: dict[str, Any], **kwargs: Any) -> Any:
    body, headers = _signed(event, **kwargs)
    return client.post("/v1/provider-events/http", content=body, headers=headers)


def _detail(client: TestClient, tenant: Tenant, batch_id: str) -> dict[str, Any]:
    response = client.get(f"/v1/batch-calls/{batch_id}", headers=tenant.headers)
    assert response.status_code == 200
    return response.json()


COMPLETED = {
    "status": "completed",
    "started_at": "2026-12-01T15:00:04Z",
    "ended_at": "2026-12-01T15:00:46Z",
    "duration_seconds": 42,
    "transcript": [{"role": "agent", "message": "Hi Ada!", "time_in_call_secs": 0}],
    "evaluations": {"confirmed": {"result": "success", "rationale": "Said yes."}},
    "data_collection": {"slot": {"value": "3pm", "rationale": "Stated."}},
}


def test_a_completed_event_records_the_call_once(
    client: TestClient, tenant: Tenant, events_secret: str
) -> None:
    batch_id, attempt_id = _dialing_attempt(tenant)
    assert _detail(client, tenant, batch_id)["batch_call"]["counts"]["dialing"] == 1

    event = {"type": "call.status", "data": {"attempt_id": attempt_id, **COMPLETED}}
    response = _post(client, event)
    assert response.status_code == 200, response.text
    assert response.json() == {"recorded": True}

    detail = _detail(client, tenant, batch_id)
    assert detail["batch_call"]["status"] == "completed"
    assert detail["batch_call"]["counts"] == {
        "pending": 0,
        "dialing": 0,
        "completed": 1,
        "failed": 0,
        "cancelled": 0,
    }
    [recipient] = detail["recipients"]
    assert recipient["status"] == "completed" and recipient["duration_seconds"] == 42
    with session_scope() as session:
        conversation = session.exec(
            select(Conversation).where(Conversation.id == recipient["conversation_id"])
        ).one()
    assert conversation.transcript == COMPLETED["transcript"]
    assert conversation.evaluations == COMPLETED["evaluations"]
    assert conversation.data_collection == COMPLETED["data_collection"]

    # At-least-once delivery: the same event again (freshly signed) changes nothing.
    again = _post(client, event)
    assert again.status_code == 200 and again.json() == {"recorded": False}
    assert _detail(client, tenant, batch_id) == detail
    with session_scope() as session:
        assert len(session.exec(select(Conversation)).all()) == 1


def test_failed_and_in_progress_events(
    client: TestClient, tenant: Tenant, events_secret: str
) -> None:
    batch_id, attempt_id = _dialing_attempt(tenant)
    ringing = _post(
        client, {"type": "call.status", "data": {"attempt_id": attempt_id, "status": "ringing"}}
    )
    assert ringing.status_code == 202 and ringing.json() == {"recorded": False}
    other = _post(client, {"type": "call.transcript", "data": {"anything": 1}})
    assert other.status_code == 202
    assert _detail(client, tenant, batch_id)["recipients"][0]["status"] == "dialing"

    busy = _post(
        client, {"type": "call.status", "data": {"attempt_id": attempt_id, "status": "busy"}}
    )
    assert busy.status_code == 200 and busy.json() == {"recorded": True}
    [recipient] = _detail(client, tenant, batch_id)["recipients"]
    assert (recipient["status"], recipient["failure_reason"]) == ("failed", "busy")

    unknown = _post(
        client, {"type": "call.status", "data": {"attempt_id": "att_unknown", "status": "busy"}}
    )
    assert unknown.status_code == 200 and unknown.json() == {"recorded": False}


def test_events_must_be_signed(client: TestClient, tenant: Tenant, events_secret: str) -> None:
    batch_id, attempt_id = _dialing_attempt(tenant)
    event = {"type": "call.status", "data": {"attempt_id": attempt_id, "status": "busy"}}
    body, headers = _signed(event)
    url = "/v1/provider-events/http"
    forged_secret = "whsec_" + base64.b64encode(b"x" * 32).decode()
    stale = int((datetime.now(UTC) - timedelta(minutes=10)).timestamp())
    attempts = [
        {"content-type": "application/json"},  # unsigned
        {**headers, "webhook-signature": _signed(event, forged_secret)[1]["webhook-signature"]},
        {**headers, "webhook-signature": "v1,not-base64!"},
        {**headers, "webhook-signature": "garbage"},
        {**headers, "webhook-timestamp": str(stale)},
        {k: v for k, v in headers.items() if k != "webhook-id"},
    ]
    for bad in attempts:
        response = client.post(url, content=body, headers=bad)
        assert response.status_code == 401, (bad, response.text)
        assert response.json()["error"]["code"] == "unauthorized"
    tampered = client.post(url, content=body.replace(b"busy", b"completed"), headers=headers)
    assert tampered.status_code == 401
    assert client.post(url, content=b"\xff\xfe", headers=headers).status_code == 401
    assert _detail(client, tenant, batch_id)["recipients"][0]["status"] == "dialing"


def test_a_signed_event_off_the_contract_is_refused(
    client: TestClient, tenant: Tenant, events_secret: str
) -> None:
    response = _post(client, {"type": "call.status", "data": {"attempt_id": "a", "status": "x"}})
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["loc"] == ["data", "status"]
    body = b"[1, 2]"
    _, headers = _signed({})
    now = datetime.now(UTC)
    headers["webhook-signature"] = Webhook(SECRET).sign(headers["webhook-id"], now, body.decode())
    headers["webhook-timestamp"] = str(int(now.timestamp()))
    response = client.post("/v1/provider-events/http", content=body, headers=headers)
    assert response.status_code == 422


def test_without_a_secret_there_is_no_event_route(client: TestClient) -> None:
    response = _post(client, {"type": "call.status", "data": {}})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_the_event_route_is_documented_without_api_key(client: TestClient) -> None:
    operation = client.get("/v1/openapi.json").json()["paths"]["/v1/provider-events/http"]["post"]
    assert operation["summary"] and "signature" in operation["description"]
    assert operation["security"] == []
    assert {"200", "202", "401", "404", "422"} <= set(operation["responses"])
    headers = {p["name"] for p in operation["parameters"] if p["in"] == "header"}
    assert headers == {"webhook-id", "webhook-timestamp", "webhook-signature"}
