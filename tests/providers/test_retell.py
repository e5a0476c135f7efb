"""The Retell adapter against a local fake of Retell's documented API and webhooks
(tests/fakes/retell.py; sources in tests/fakes/RETELL_SOURCES.md). No database: the adapter is
called directly."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from batch_dashboard.providers import retell as retell_module
from batch_dashboard.providers.base import (
    AgentSnapshot,
    CallRequest,
    CallResult,
    CallStatus,
    EventRefused,
    NotPlaced,
    ProviderError,
)
from batch_dashboard.providers.retell import (
    DISCONNECTION_OUTCOMES,
    RetellProvider,
    retell_signature,
    verify_signature,
)
from batch_dashboard.services.outcomes import Outcome
from tests.fakes.retell import (
    CONNECTED_REASONS,
    ERROR_REASONS,
    NOT_CONNECTED_REASONS,
    RetellFake,
    WebhookBehaviour,
    WebhookRecorder,
    compact_json,
    retell_sign,
)

CALLER = "+14155550100"
PUBLIC = "https://calls.example.com"
AGENT_ID = "agent_reminders"

# The SDK's published test vector: RetellAI/retell-python-sdk tests/test_webhook_auth.py
# @ a14e5119692c (hardened in 6ec8602, 2026-07-30).
SDK_BODY = '{"event":"call_ended"}'
SDK_KEY = "test-api-key"
SDK_TIMESTAMP = 1_700_000_000_000
SDK_DIGEST = "07024cabe7dd8f6d1c6e4a8324ca92c812e6ad4a7ee506c04f7e462e3321823e"


def sdk_sign(input_str: str, secret: str, timestamp: int) -> str:
    """The SDK's own `symmetric["sign"]`, transcribed from src/retell/lib/webhook_auth.py
    @ a14e5119692c (make_secure_webhooks + symmetric_get_signer), as the reference."""
    h = hmac.new(secret.encode(), digestmod=hashlib.sha256)
    h.update((input_str + str(timestamp)).encode())
    return f"v={timestamp},d={h.hexdigest()}"


def at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


# --------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------


@pytest.fixture
def recorder() -> Iterator[WebhookRecorder]:
    with WebhookRecorder() as receiver:
        yield receiver


@pytest.fixture
def fake(recorder: WebhookRecorder) -> Iterator[RetellFake]:
    agents = [
        {
            "agent_id": AGENT_ID,
            "agent_name": "Reminders",
            "llm": {
                "general_prompt": "Remind {{first_name}} of {{appointment_time}}.",
                "begin_message": "Hi {{first_name}}!",
            },
        }
    ]
    with RetellFake(
        numbers=[CALLER], agents=agents, mode="manual", callback_url=recorder.url()
    ) as server:
        yield server


def provider_for(fake: RetellFake, **kwargs: Any) -> RetellProvider:
    return RetellProvider(
        connection_id="conn_01TEST",
        credentials={"api_key": kwargs.pop("api_key", fake.api_key)},
        base_url=fake.base_url,
        public_url=PUBLIC,
        **kwargs,
    )


def request(
    to: str = "+14155552001",
    attempt_id: str = "att_01",
    *,
    voicemail: dict[str, Any] | None = None,
    ringing_timeout_ms: int = 25_000,
    variables: dict[str, Any] | None = None,
    external_agent_id: str | None = AGENT_ID,
) -> CallRequest:
    return CallRequest(
        attempt_id=attempt_id,
        attempt_number=1,
        workspace_id="ws_01",
        batch_id="bc_01",
        recipient_id="rc_01",
        to=to,
        from_=CALLER,
        agent=AgentSnapshot(
            id="ag_01",
            name="Reminders",
            prompt="Remind {{first_name}} of {{appointment_time}}.",
            first_message="Hi {{first_name}}!",
            evaluation_criteria=[],
            data_collection=[],
        ),
        variables=variables
        if variables is not None
        else {"first_name": "Ada", "appointment_time": "3pm"},
        ringing_timeout_ms=ringing_timeout_ms,
        connection_id="conn_01TEST",
        external_agent_id=external_agent_id,
        voicemail=voicemail,
    )


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def place(provider: RetellProvider, *requests: CallRequest) -> list[CallResult | ProviderError]:
    async def main() -> list[CallResult | ProviderError]:
        try:
            return await provider.place_calls(list(requests))
        finally:
            await provider.aclose()

    return run(main())


def ask(provider: RetellProvider, attempt_id: str, call_id: str | None) -> CallResult | None:
    async def main() -> CallResult | None:
        try:
            return await provider.call_status(attempt_id, call_id)
        finally:
            await provider.aclose()

    return run(main())


def placed(provider: RetellProvider, req: CallRequest) -> str:
    [result] = place(provider, req)
    assert isinstance(result, CallResult), result
    assert result.status == CallStatus.in_progress and result.call_id
    return result.call_id


def events(provider: RetellProvider, recorder: WebhookRecorder, count: int) -> list[Any]:
    received = recorder.wait_for(count)
    out = []
    for hook in received:
        out += provider.read_event(
            url=hook.url, headers=hook.headers, body=hook.body, now=datetime.now(UTC)
        )
    return out


# --------------------------------------------------------------------------------------------
# The signature
# --------------------------------------------------------------------------------------------


def test_the_sdk_test_vector() -> None:
    expected = f"v={SDK_TIMESTAMP},d={SDK_DIGEST}"
    assert retell_signature(SDK_BODY.encode(), SDK_KEY, SDK_TIMESTAMP) == expected
    assert sdk_sign(SDK_BODY, SDK_KEY, SDK_TIMESTAMP) == expected
    assert retell_sign(SDK_BODY.encode(), SDK_KEY, SDK_TIMESTAMP) == expected  # the fake agrees
    verify_signature(SDK_BODY.encode(), SDK_KEY, expected, at(SDK_TIMESTAMP))


def test_signing_matches_the_sdk_source_for_any_body() -> None:
    bodies = [
        compact_json({"event": "call_ended", "call": {"transcript": "Agent: ¿Qué tal? 日本\n"}}),
        b"{}",
        json.dumps({"event": "call_started", "call": {"call_id": "x"}}, indent=2).encode(),
    ]
    for body in bodies:
        stamp = 1_760_000_000_123
        ours = retell_signature(body, "key_abc", stamp)
        assert ours == sdk_sign(body.decode(), "key_abc", stamp)
        verify_signature(body, "key_abc", ours, at(stamp))


def test_the_5_minute_tolerance_is_inclusive_either_way() -> None:
    body, signature = SDK_BODY.encode(), f"v={SDK_TIMESTAMP},d={SDK_DIGEST}"
    for delta in (300_000, -300_000):
        verify_signature(body, SDK_KEY, signature, at(SDK_TIMESTAMP + delta))
    for delta in (300_001, -300_001):
        with pytest.raises(EventRefused, match="tolerance"):
            verify_signature(body, SDK_KEY, signature, at(SDK_TIMESTAMP + delta))


@pytest.mark.parametrize(
    "signature",
    [  # the SDK's malformed cases (tests/test_webhook_auth.py)
        "",
        f"v={SDK_TIMESTAMP}",
        f"d={SDK_DIGEST},v={SDK_TIMESTAMP}",
        f"prefix-v={SDK_TIMESTAMP},d={SDK_DIGEST}",
        f"v={SDK_TIMESTAMP},d={SDK_DIGEST}-suffix",
        f"v={SDK_TIMESTAMP},d=not-hex",
        f"v={SDK_TIMESTAMP},d={SDK_DIGEST[2:]}",
        f"v=-{SDK_TIMESTAMP},d={SDK_DIGEST}",
        f"v={SDK_TIMESTAMP},d={SDK_DIGEST},extra=value",
    ],
)
def test_malformed_signatures_are_refused(signature: str) -> None:
    with pytest.raises(EventRefused):
        verify_signature(SDK_BODY.encode(), SDK_KEY, signature, at(SDK_TIMESTAMP))


def test_tampered_body_and_wrong_key_are_refused() -> None:
    signature = f"v={SDK_TIMESTAMP},d={SDK_DIGEST}"
    with pytest.raises(EventRefused, match="does not match"):
        verify_signature(SDK_BODY.encode() + b" ", SDK_KEY, signature, at(SDK_TIMESTAMP))
    with pytest.raises(EventRefused, match="does not match"):
        verify_signature(SDK_BODY.encode(), "wrong-api-key", signature, at(SDK_TIMESTAMP))


# --------------------------------------------------------------------------------------------
# Placing a call: every field
# --------------------------------------------------------------------------------------------


def test_a_call_sends_every_documented_field(fake: RetellFake) -> None:
    provider = provider_for(fake)
    variables = {"first_name": "Zoë", "visits": 3, "vip": True, "note": None, "fee": 12.5}
    call_id = placed(provider, request(variables=variables, voicemail={"action": "hang_up"}))
    [sent] = fake.requests_for("create_phone_call")
    assert sent.method == "POST" and sent.path == "/v2/create-phone-call"
    assert sent.bearer == fake.api_key  # Authorization: Bearer <api_key>
    assert sent.headers["Content-Type"] == "application/json"
    assert sent.json == {
        "from_number": CALLER,
        "to_number": "+14155552001",
        "override_agent_id": AGENT_ID,
        "metadata": {"attempt_id": "att_01", "batch_id": "bc_01", "recipient_id": "rc_01"},
        "retell_llm_dynamic_variables": {
            "first_name": "Zoë",
            "visits": "3",
            "vip": "yes",
            "note": "",
            "fee": "12.5",
        },
        "agent_override": {
            "agent": {
                "ring_duration_ms": 25_000,
                "voicemail_option": {"action": {"type": "hangup"}},
            }
        },
    }
    assert fake.call(call_id).to == "+14155552001"


@pytest.mark.parametrize(
    ("voicemail", "option"),
    [
        (None, None),
        ({"action": "hang_up"}, {"action": {"type": "hangup"}}),
        (
            {"action": "leave_message", "message": "Hi {{first_name}}, call us back."},
            {"action": {"type": "static_text", "text": "Hi Ada, call us back."}},
        ),
        (
            {"action": "leave_message"},
            {
                "action": {
                    "type": "prompt",
                    "text": "Leave a short voicemail: who is calling and why, then end the call.",
                }
            },
        ),
    ],
)
def test_the_voicemail_choice_becomes_voicemail_option(
    fake: RetellFake, voicemail: dict[str, Any] | None, option: dict[str, Any] | None
) -> None:
    call_id = placed(provider_for(fake), request(voicemail=voicemail))
    assert fake.call(call_id).voicemail_option == option


@pytest.mark.parametrize(
    ("timeout_ms", "sent"), [(1_000, 5_000), (45_500, 45_500), (900_000, 300_000)]
)
def test_the_ringing_timeout_is_kept_in_retells_range(
    fake: RetellFake, timeout_ms: int, sent: int
) -> None:
    call_id = placed(provider_for(fake), request(ringing_timeout_ms=timeout_ms))
    assert fake.call(call_id).ring_duration_ms == sent


def test_an_agent_without_a_retell_agent_id_is_not_placed(fake: RetellFake) -> None:
    [result] = place(provider_for(fake), request(external_agent_id=None))
    assert isinstance(result, ProviderError) and not result.retryable
    assert not fake.requests_for("create_phone_call")


def test_many_calls_are_placed_concurrently_one_each_in_order(fake: RetellFake) -> None:
    requests = [request(f"+1415555{3000 + i}", f"att_{i:02}") for i in range(12)]
    results = place(provider_for(fake), *requests)
    assert all(isinstance(r, CallResult) for r in results)
    assert len(fake.calls) == 12
    by_id = {c.call_id: c for c in fake.calls}
    for req, result in zip(requests, results, strict=True):
        assert isinstance(result, CallResult)
        assert by_id[result.call_id or ""].metadata["attempt_id"] == req.attempt_id


# --------------------------------------------------------------------------------------------
# Outcomes
# --------------------------------------------------------------------------------------------

EXPECTED = {
    "user_hangup": (CallStatus.completed, None),
    "agent_hangup": (CallStatus.completed, None),
    "inactivity": (CallStatus.completed, None),
    "max_duration_reached": (CallStatus.completed, None),
    "call_transfer": (CallStatus.completed, None),
    "transfer_bridged": (CallStatus.completed, None),
    "voicemail_reached": (CallStatus.voicemail, "voicemail"),
    "dial_busy": (CallStatus.busy, "busy"),
    "dial_no_answer": (CallStatus.no_answer, "no_answer"),
    "user_declined": (CallStatus.failed, "declined"),
    "invalid_destination": (CallStatus.failed, "invalid_number"),
    "dial_failed": (CallStatus.failed, "provider_error"),
    "telephony_provider_unavailable": (CallStatus.failed, "provider_error"),
    "sip_routing_error": (CallStatus.failed, "provider_error"),
    "marked_as_spam": (CallStatus.failed, "provider_error"),
    "scam_detected": (CallStatus.failed, "provider_error"),
    "no_valid_payment": (CallStatus.failed, "provider_error"),
    "error_llm_websocket_open": (CallStatus.failed, "provider_error"),
    "error_retell": (CallStatus.failed, "provider_error"),
    "concurrency_limit_reached": (CallStatus.failed, "provider_error"),
    "no_concurrency_fallback": (CallStatus.failed, "provider_error"),
}


def test_every_reason_of_the_sdk_enum_is_mapped() -> None:
    # The fake's three lists are the SDK's enum (less manual_stopped, mapped below).
    enum = CONNECTED_REASONS | NOT_CONNECTED_REASONS | ERROR_REASONS
    assert enum <= set(DISCONNECTION_OUTCOMES)
    assert DISCONNECTION_OUTCOMES["manual_stopped"] is Outcome.hung_up
    assert all(isinstance(v, Outcome) for v in DISCONNECTION_OUTCOMES.values())


@pytest.mark.parametrize("reason", sorted(EXPECTED))
def test_each_outcome_from_get_call_and_from_call_ended(
    fake: RetellFake, recorder: WebhookRecorder, reason: str
) -> None:
    provider = provider_for(fake)
    fake.script("+14155552001", reason)
    call_id = placed(provider, request())
    fake.finish(call_id)
    status, failure = EXPECTED[reason]
    polled = ask(provider, "att_01", call_id)
    assert polled is not None and polled.terminal
    assert (polled.status, polled.failure_reason) == (status, failure)
    assert polled.call_id == call_id
    if failure == "provider_error":
        assert reason in (polled.message or "")  # Retell's reason is kept in the message
    # The same from the webhooks: call_ended, then call_analyzed (call_started if it connected).
    count = 3 if reason in CONNECTED_REASONS else 2
    read = events(provider, recorder, count)
    ended = [e for e in read if e.result.terminal]
    assert len(ended) == 2
    for event in ended:
        assert (event.attempt_id, event.call_id) == ("att_01", call_id)
        assert (event.result.status, event.result.failure_reason) == (status, failure)


def test_a_completed_call_brings_its_conversation(
    fake: RetellFake, recorder: WebhookRecorder
) -> None:
    provider = provider_for(fake)
    fake.script("+14155552001", "agent_hangup", duration=42)
    call_id = placed(provider, request())
    fake.finish(call_id)
    result = ask(provider, "att_01", call_id)
    assert result is not None and result.status == CallStatus.completed
    assert result.failure_reason is None
    call = fake.call(call_id)
    assert result.started_at == at(call.start_timestamp or 0)
    assert result.ended_at == at(call.end_timestamp or 0)
    assert result.duration_seconds == 42.0
    assert result.transcript is not None and [t["role"] for t in result.transcript] == [
        "agent",
        "user",
        "agent",
        "user",
    ]
    assert result.transcript[1]["message"] == "Oh hi, yes?"
    assert result.transcript[0]["time_in_call_secs"] == 0
    assert result.transcript[2]["time_in_call_secs"] == 21.0
    assert result.evaluations == {
        "call_successful": {
            "result": "success",
            "rationale": "The user confirmed the appointment.",
        },
        "in_voicemail": {"result": "failure", "rationale": "The user confirmed the appointment."},
        "user_sentiment": {"result": "success", "rationale": "User sentiment: Positive"},
    }
    assert result.data_collection == {
        "confirmed": {"value": True, "rationale": ""},
        "preferred_time": {"value": "3pm", "rationale": ""},
    }
    # call_ended carries the conversation but not the analysis; call_analyzed carries both.
    started, ended, analyzed = events(provider, recorder, 3)
    assert started.result.status == CallStatus.in_progress
    assert started.result.started_at == result.started_at
    assert ended.result.transcript == result.transcript
    assert ended.result.duration_seconds == 42.0
    assert ended.result.evaluations is None and ended.result.data_collection is None
    assert analyzed.result == result


def test_a_live_call_is_in_progress(fake: RetellFake) -> None:
    provider = provider_for(fake)
    call_id = placed(provider, request())
    assert ask(provider, "att_01", call_id) == CallResult(
        status=CallStatus.in_progress, call_id=call_id
    )
    fake.advance(call_id)  # connected
    live = ask(provider, "att_01", call_id)
    assert live is not None and live.status == CallStatus.in_progress and live.started_at


# --------------------------------------------------------------------------------------------
# Webhooks
# --------------------------------------------------------------------------------------------


def test_bad_webhooks_are_refused(fake: RetellFake, recorder: WebhookRecorder) -> None:
    provider = provider_for(fake)
    behaviours = [
        ({"unsigned": True}, "missing"),
        ({"tamper": True}, "does not match"),
        ({"wrong_key": "key_someone_else"}, "does not match"),
        ({"stale_ms": 301_000}, "tolerance"),
    ]
    for i, (behaviour, refusal) in enumerate(behaviours):
        fake.webhook_behaviour = WebhookBehaviour(**behaviour)
        attempt = f"att_bad{i}"
        call_id = placed(provider, request(f"+1415555{4000 + i}", attempt))
        fake.finish(call_id)
        hooks = [h for h in recorder.wait_for(3 * (i + 1)) if call_id in h.body.decode()]
        assert len(hooks) == 3
        for hook in hooks:
            with pytest.raises(EventRefused, match=refusal):
                provider.read_event(
                    url=hook.url, headers=hook.headers, body=hook.body, now=datetime.now(UTC)
                )
    # A good event replayed after its 5 minutes is refused too.
    fake.webhook_behaviour = WebhookBehaviour()
    call_id = placed(provider, request("+14155554100", "att_replay"))
    fake.finish(call_id)
    hook = next(h for h in recorder.wait_for(15) if call_id in h.body.decode())
    provider.read_event(url=hook.url, headers=hook.headers, body=hook.body, now=datetime.now(UTC))
    later = datetime.now(UTC) + timedelta(minutes=5, seconds=2)
    with pytest.raises(EventRefused, match="tolerance"):
        provider.read_event(url=hook.url, headers=hook.headers, body=hook.body, now=later)


def test_signed_bodies_that_are_not_retells_shape(fake: RetellFake) -> None:
    provider = provider_for(fake)
    now = datetime.now(UTC)

    def signed(body: bytes) -> dict[str, str]:
        return {"X-Retell-Signature": retell_sign(body, fake.api_key, int(now.timestamp() * 1000))}

    for body in (b"not json", b"[1,2]", b'{"call":{}}', b'{"event":"call_ended"}'):
        with pytest.raises(ValueError):
            provider.read_event(url=PUBLIC, headers=signed(body), body=body, now=now)
    no_id = b'{"event":"call_ended","call":{"call_status":"ended"}}'
    with pytest.raises(ValueError, match="call_id"):
        provider.read_event(url=PUBLIC, headers=signed(no_id), body=no_id, now=now)
    for ignored in ("transcript_updated", "transfer_started", "chat_ended"):
        body = compact_json({"event": ignored, "call": {"call_id": "call_x"}})
        assert provider.read_event(url=PUBLIC, headers=signed(body), body=body, now=now) == []
    # Another system's call (no attempt_id in its metadata) still parses, for the route to ignore.
    body = compact_json({"event": "call_started", "call": {"call_id": "call_y"}})
    [event] = provider.read_event(url=PUBLIC, headers=signed(body), body=body, now=now)
    assert (event.attempt_id, event.call_id) == (None, "call_y")


def test_duplicated_and_reordered_webhooks_read_the_same(
    fake: RetellFake, recorder: WebhookRecorder
) -> None:
    provider = provider_for(fake)
    fake.set_webhooks(duplicate=True, out_of_order=True)
    call_id = placed(provider, request())
    fake.finish(call_id)
    received = recorder.wait_for(6)
    assert [h.event for h in received] == [
        "call_analyzed",
        "call_analyzed",
        "call_ended",
        "call_ended",
        "call_started",
        "call_started",
    ]
    read = events(provider, recorder, 6)
    assert read[0] == read[1] and read[2] == read[3] and read[4] == read[5]
    final = [e.result for e in read if e.result.terminal]
    assert {(r.status, r.failure_reason, r.call_id, r.ended_at) for r in final} == {
        (CallStatus.completed, None, call_id, final[0].ended_at)
    }
    assert read[-1].result.status == CallStatus.in_progress  # a late start changes nothing


# --------------------------------------------------------------------------------------------
# Faults
# --------------------------------------------------------------------------------------------


def test_429_is_not_placed_and_says_how_long_to_wait(fake: RetellFake) -> None:
    provider = provider_for(fake)
    fake.fail_next(1, status=429, retry_after=2)
    fake.fail_next(1, status=429, retry_after=None)
    first, second = (place(provider, request(attempt_id=a))[0] for a in ("att_a", "att_b"))
    assert isinstance(first, NotPlaced) and first.retry_after == 2.0
    assert isinstance(second, NotPlaced) and second.retry_after is None
    assert "Account rate limited" in str(first)
    assert not fake.calls  # nothing was created


@pytest.mark.parametrize("as_call", [False, True])
def test_the_concurrency_limit_is_not_placed(fake: RetellFake, as_call: bool) -> None:
    fake.concurrency_next(1, as_call=as_call, retry_after=None if as_call else 5)
    [result] = place(provider_for(fake), request())
    assert isinstance(result, NotPlaced)
    assert result.retry_after == (None if as_call else 5.0)
    assert "concurrency" in str(result).lower()


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_may_have_created_the_call(fake: RetellFake, status: int) -> None:
    fake.fail_next(1, status=status, retry_after=None)
    [result] = place(provider_for(fake), request())
    assert isinstance(result, ProviderError) and not isinstance(result, NotPlaced)
    assert result.retryable


def test_4xx_is_refused_for_good_in_retells_words_without_the_key(fake: RetellFake) -> None:
    provider = provider_for(fake)
    [bad_from] = place(provider, request(to="4155552001"))
    assert isinstance(bad_from, ProviderError) and not bad_from.retryable
    assert "400" in str(bad_from) and "E.164" in str(bad_from)
    wrong = provider_for(fake, api_key="key_wrong_and_secret")
    [unauthorised] = place(wrong, request())
    assert isinstance(unauthorised, ProviderError) and not unauthorised.retryable
    assert "API key is missing or invalid." in str(unauthorised)
    assert "key_wrong_and_secret" not in str(unauthorised)
    assert unauthorised.account == "authentication_refused"  # the breaker pauses the connection
    fake.fail_next(1, status=402, message=f"Trial has ended for {fake.api_key}", retry_after=None)
    [payment] = place(provider, request())
    assert isinstance(payment, ProviderError) and not payment.retryable
    assert fake.api_key not in str(payment)
    assert payment.account == "account_suspended"


def test_a_lost_answer_is_retryable_and_settled_by_our_metadata(fake: RetellFake) -> None:
    provider = provider_for(fake)
    fake.script("+14155552001", "dial_no_answer")
    fake.lose_next(1)
    [result] = place(provider, request(attempt_id="att_lost"))
    assert isinstance(result, ProviderError) and result.retryable
    [call] = fake.calls  # the call exists at Retell
    fake.finish(call.call_id)
    settled = ask(provider, "att_lost", None)
    assert settled is not None
    assert (settled.status, settled.failure_reason, settled.call_id) == (
        CallStatus.no_answer,
        "no_answer",
        call.call_id,
    )
    [listed] = fake.requests_for("list_calls")
    assert listed.json["filter_criteria"] == {
        "metadata": [{"key": "attempt_id", "type": "string", "op": "eq", "value": "att_lost"}]
    }


def test_a_slow_answer_times_out_retryable(fake: RetellFake) -> None:
    fake.slow_next(1, seconds=1.5)
    started = time.monotonic()
    [result] = place(provider_for(fake, timeout=0.3), request())
    assert isinstance(result, ProviderError) and result.retryable
    assert "did not answer" in str(result)
    assert time.monotonic() - started < 1.4
    assert len(fake.calls) == 1


def test_an_attempt_retell_never_saw_cannot_be_known(fake: RetellFake) -> None:
    with pytest.raises(ProviderError) as refused:
        ask(provider_for(fake), "att_never", None)
    assert not refused.value.retryable


def test_an_unknown_call_id_is_not_retried(fake: RetellFake) -> None:
    with pytest.raises(ProviderError) as refused:
        ask(provider_for(fake), "att_01", "call_doesnotexist")
    assert not refused.value.retryable


def test_get_call_5xx_is_retryable(fake: RetellFake) -> None:
    provider = provider_for(fake)
    call_id = placed(provider, request())
    fake.fail_next(1, status=500, retry_after=None, operation="get_call")
    with pytest.raises(ProviderError) as failed:
        ask(provider, "att_01", call_id)
    assert failed.value.retryable and not isinstance(failed.value, NotPlaced)


def test_a_webhook_that_never_comes_is_settled_by_get_call(
    fake: RetellFake, recorder: WebhookRecorder
) -> None:
    provider = provider_for(fake)
    fake.set_webhooks(drop=True)
    fake.script("+14155552001", "dial_busy")
    call_id = placed(provider, request())
    fake.finish(call_id)
    assert not recorder.received
    assert all(d.dropped for d in fake.deliveries_for(call_id))

    result = ask(provider, "att_01", call_id)
    assert result is not None and (result.status, result.failure_reason) == (
        CallStatus.busy,
        "busy",
    )
    assert fake.requests_for("get_call")[-1].path == f"/v2/get-call/{call_id}"


def test_the_dialers_wait_settles_a_silent_call(
    fake: RetellFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(RetellProvider, "poll_interval", 0.05)
    provider = provider_for(fake)
    fake.set_webhooks(drop=True)
    fake.script("+14155552001", "voicemail_reached")
    call_id = placed(provider, request())

    async def main() -> CallResult:
        waiting = asyncio.create_task(
            provider.wait("att_01", CallResult(CallStatus.in_progress, call_id=call_id))
        )
        await asyncio.sleep(0.2)
        await asyncio.to_thread(fake.finish, call_id)
        try:
            return await asyncio.wait_for(waiting, 5)
        finally:
            await provider.aclose()

    result = run(main())
    assert (result.status, result.failure_reason) == (CallStatus.voicemail, "voicemail")


# --------------------------------------------------------------------------------------------
# Hang up, check, agents, numbers
# --------------------------------------------------------------------------------------------


def test_hang_up_stops_the_call(fake: RetellFake, recorder: WebhookRecorder) -> None:
    provider = provider_for(fake)
    fake.script("+14155552001", "user_hangup", duration=600)
    call_id = placed(provider, request())
    fake.advance(call_id)  # connected

    async def main(call: str | None) -> None:
        try:
            await provider.hang_up("att_01", call)
        finally:
            await provider.aclose()

    run(main(call_id))
    [stop] = fake.requests_for("stop_call")
    assert (stop.method, stop.path, stop.status) == ("POST", f"/v2/stop-call/{call_id}", 204)
    assert stop.bearer == fake.api_key
    fake.wait_for(lambda: fake.call(call_id).ended)
    result = ask(provider, "att_01", call_id)
    assert result is not None
    assert (result.status, result.failure_reason) == (CallStatus.failed, "hung_up")
    # Hanging up a call that has ended already, or by attempt id alone, is harmless.
    run(main(call_id))
    run(main(None))
    assert [r.status for r in fake.requests_for("stop_call")] == [204, 400, 400]


def test_check_reads_the_account_once(fake: RetellFake) -> None:
    provider_for(fake).check()
    [read] = fake.requests
    assert (read.method, read.path, read.bearer) == ("GET", "/get-concurrency", fake.api_key)
    with pytest.raises(ProviderError, match="API key is missing or invalid") as refused:
        provider_for(fake, api_key="key_not_this_one").check()
    assert "key_not_this_one" not in str(refused.value)
    fake.fail_next(1, status=500, retry_after=None, operation="get_concurrency")
    with pytest.raises(ProviderError):
        provider_for(fake).check()


def test_list_agents_follows_pages_and_reads_each_llm(
    fake: RetellFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retell_module, "PAGE_LIMIT", 2)
    fake.add_agent(
        "agent_b", "Surveys", llm={"general_prompt": "Ask {{name}}.", "begin_message": ""}
    )
    fake.add_agent(
        "agent_c", "Own LLM", engine={"type": "custom-llm", "llm_websocket_url": "wss://x"}
    )
    fake.add_agent(
        "agent_d",
        "Flow",
        engine={"type": "conversation-flow", "conversation_flow_id": "cf_1", "version": 2},
    )
    fake.add_agent("agent_e", "Chat", channel="chat")
    agents = provider_for(fake).list_agents()
    assert [(a.external_agent_id, a.name, a.first_message, a.prompt) for a in agents] == [
        (
            AGENT_ID,
            "Reminders",
            "Hi {{first_name}}!",
            "Remind {{first_name}} of {{appointment_time}}.",
        ),
        ("agent_b", "Surveys", "", "Ask {{name}}."),
        ("agent_c", "Own LLM", "", ""),
        ("agent_d", "Flow", "", ""),
    ]
    pages = fake.requests_for("list_agents")
    assert [(p.method, p.param("limit"), p.param("pagination_key")) for p in pages] == [
        ("POST", "2", None),
        ("POST", "2", "2"),
        ("POST", "2", "4"),
    ]
    assert [r.path for r in fake.requests_for("get_agent")] == [
        f"/get-agent/{a}" for a in (AGENT_ID, "agent_b", "agent_c", "agent_d")
    ]
    llm_reads = fake.requests_for("get_retell_llm")
    assert len(llm_reads) == 2 and all(r.param("version") == "0" for r in llm_reads)


def test_incoming_numbers_follow_pages(fake: RetellFake, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retell_module, "PAGE_LIMIT", 2)
    fake.add_number("+14155550101", nickname="Front desk")
    fake.add_number("+14155550102")
    numbers = provider_for(fake).incoming_numbers()
    assert numbers == [
        {"phone_number": CALLER, "external_id": CALLER, "label": "", "voice": True},
        {
            "phone_number": "+14155550101",
            "external_id": "+14155550101",
            "label": "Front desk",
            "voice": True,
        },
        {"phone_number": "+14155550102", "external_id": "+14155550102", "label": "", "voice": True},
    ]
    assert [r.param("pagination_key") for r in fake.requests_for("list_phone_numbers")] == [
        None,
        "2",
    ]


def test_the_key_never_shows(fake: RetellFake) -> None:
    provider = provider_for(fake)
    assert fake.api_key not in repr(provider)
    assert provider.events_url == f"{PUBLIC}/v1/provider-events/retell/conn_01TEST"
