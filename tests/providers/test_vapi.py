"""The Vapi adapter against a local fake of Vapi's documented API and server messages
(tests/fakes/vapi.py; sources in tests/fakes/VAPI_SOURCES.md): every field sent, every outcome,
the server credential, faults, settling without messages, hang-up, the account's lists."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from batch_dashboard.providers.base import (
    AgentSnapshot,
    CallRequest,
    CallResult,
    CallStatus,
    EventRefused,
    NotPlaced,
    ProviderError,
)
from batch_dashboard.providers.vapi import (
    ENDED_REASONS,
    VapiProvider,
    hmac_signature,
    parse_server_message,
)
from batch_dashboard.services.outcomes import Outcome
from tests.fakes.vapi import DeliveryBehaviour, MessageRecorder, VapiFake, vapi_hmac_signature

PUBLIC = "https://calls.example.com"
CONNECTION = "conn_01VAPITEST"
EVENTS_URL = f"{PUBLIC}/v1/provider-events/vapi/{CONNECTION}"
CALLER = "+14155550100"


@pytest.fixture
def recorder() -> Iterator[MessageRecorder]:
    with MessageRecorder() as receiver:
        yield receiver


@pytest.fixture
def fake(recorder: MessageRecorder) -> Iterator[VapiFake]:
    with VapiFake(
        time_scale=0.01, server_url=EVENTS_URL, server_target=lambda _url: recorder.url
    ) as account:
        yield account


@pytest.fixture
def ids(fake: VapiFake) -> dict[str, str]:
    return {
        "assistant": fake.add_assistant(
            name="Reminders",
            first_message="Hi {{ first_name }}!",
            prompt="Remind {{first_name}} of {{appointment_time}}.",
        ),
        "number": fake.add_phone_number(CALLER, "Main line"),
    }


def provider_for(fake: VapiFake, **kwargs: Any) -> VapiProvider:
    vapi = VapiProvider(
        connection_id=CONNECTION,
        credentials={"api_key": fake.api_key, "webhook_secret": fake.webhook_secret},
        base_url=fake.base_url,
        public_url=PUBLIC,
        **kwargs,
    )
    vapi.backoff_start = 0.01
    vapi.analysis_grace = 0.0
    return vapi


@pytest.fixture
def vapi(fake: VapiFake) -> VapiProvider:
    return provider_for(fake)


def request_for(
    ids: dict[str, str],
    to: str,
    *,
    attempt: str = "att_1-0",
    voicemail: dict[str, Any] | None = None,
    ringing_timeout_ms: int = 25_000,
) -> CallRequest:
    return CallRequest(
        attempt_id=attempt,
        attempt_number=1,
        workspace_id="ws_1",
        batch_id="bat_1",
        recipient_id="rcp_1",
        to=to,
        from_=CALLER,
        agent=AgentSnapshot(
            id="agt_1",
            name="Reminders",
            prompt="Remind {{first_name}} of {{appointment_time}}.",
            first_message="Hi {{ first_name }}!",
            evaluation_criteria=[],
            data_collection=[],
        ),
        variables={"first_name": "Ann", "appointment_time": "3pm", "visits": 2, "vip": True},
        ringing_timeout_ms=ringing_timeout_ms,
        connection_id=CONNECTION,
        from_external_id=ids["number"],
        external_agent_id=ids["assistant"],
        voicemail=voicemail,
    )


def place(vapi: VapiProvider, *requests: CallRequest) -> list[CallResult | ProviderError]:
    async def main() -> list[CallResult | ProviderError]:
        try:
            return await vapi.place_calls(list(requests))
        finally:
            await vapi.aclose()

    return asyncio.run(main())


def status(vapi: VapiProvider, attempt_id: str, call_id: str | None) -> CallResult | None:
    async def main() -> CallResult | None:
        try:
            return await vapi.call_status(attempt_id, call_id)
        finally:
            await vapi.aclose()

    return asyncio.run(main())


def now() -> datetime:
    return datetime.now(UTC)


def read(vapi: VapiProvider, headers: dict[str, str], body: bytes):
    return vapi.read_event(url=EVENTS_URL, headers=headers, body=body, now=now())


# --- placing ---------------------------------------------------------------------------------


def test_a_placement_sends_the_documented_fields(
    fake: VapiFake, vapi: VapiProvider, ids: dict[str, str]
) -> None:
    to = "+14155551001"
    voicemail = {"action": "leave_message", "message": "Hi {{first_name}}, call us back."}
    [placed] = place(vapi, request_for(ids, to, voicemail=voicemail))
    assert isinstance(placed, CallResult), placed
    [call] = fake.calls
    assert (placed.status, placed.call_id) == (CallStatus.in_progress, call.id)
    [sent] = fake.requests_for("create_call")
    assert sent.method == "POST" and sent.path == "/call"
    assert sent.header("authorization") == f"Bearer {fake.api_key}"
    assert sent.header("content-type") == "application/json"
    assert sent.json == {
        "assistantId": ids["assistant"],
        "phoneNumberId": ids["number"],
        "customer": {"number": to},
        "assistantOverrides": {
            "variableValues": {
                "first_name": "Ann",
                "appointment_time": "3pm",
                "visits": 2,
                "vip": True,
            },
            "metadata": {"attempt_id": "att_1-0", "batch_id": "bat_1", "recipient_id": "rcp_1"},
            "transportConfigurations": [{"provider": "twilio", "timeout": 25}],
            "voicemailDetection": {"provider": "vapi"},
            "voicemailMessage": "Hi Ann, call us back.",
        },
    }
    # The call object echoes the overrides: the attempt id travels with the call.
    assert fake.call_json(call)["assistantOverrides"]["metadata"]["attempt_id"] == "att_1-0"


def test_no_voicemail_choice_leaves_the_assistants_own(
    fake: VapiFake, vapi: VapiProvider, ids: dict[str, str]
) -> None:
    place(vapi, request_for(ids, "+14155551002", ringing_timeout_ms=900_000))
    place(vapi, request_for(ids, "+14155551003", voicemail={"action": "hang_up"}))
    first, second = (r.json["assistantOverrides"] for r in fake.requests_for("create_call"))
    assert "voicemailDetection" not in first and "voicemailMessage" not in first
    assert first["transportConfigurations"] == [{"provider": "twilio", "timeout": 600}]
    # hang_up: detection on, no message ("If unspecified, it will hang up").
    assert second["voicemailDetection"] == {"provider": "vapi"}
    assert "voicemailMessage" not in second


def test_a_request_without_platform_ids_is_refused_before_sending(
    fake: VapiFake, vapi: VapiProvider, ids: dict[str, str]
) -> None:
    request = request_for(ids, "+14155551004")
    bare = CallRequest(**{**request.__dict__, "external_agent_id": None})
    [refused] = place(vapi, bare)
    assert isinstance(refused, ProviderError) and not refused.retryable
    assert "assistantId" in str(refused)
    assert not fake.requests_for("create_call")


# --- outcomes --------------------------------------------------------------------------------

OUTCOMES = [
    ("customer-ended-call", CallStatus.completed, None),
    ("assistant-ended-call", CallStatus.completed, None),
    ("silence-timed-out", CallStatus.completed, None),
    ("exceeded-max-duration", CallStatus.completed, None),
    ("customer-busy", CallStatus.busy, "busy"),
    ("customer-did-not-answer", CallStatus.no_answer, "no_answer"),
    ("voicemail", CallStatus.voicemail, "voicemail"),
    ("twilio-reported-customer-misdialed", CallStatus.failed, "invalid_number"),
    ("twilio-failed-to-connect-call", CallStatus.failed, "provider_error"),
    ("call.in-progress.error-sip-outbound-call-failed-to-connect", CallStatus.failed, "provider_error"),
    ("call.in-progress.error-providerfault-outbound-sip-403-forbidden", CallStatus.failed, "provider_error"),
    ("call.in-progress.error-providerfault-outbound-sip-480-temporarily-unavailable", CallStatus.no_answer, "no_answer"),
    ("call.start.error-subscription-insufficient-credits", CallStatus.failed, "provider_error"),
]  # fmt: skip


@pytest.mark.parametrize(("reason", "expected", "failure"), OUTCOMES)
def test_each_ended_reason_maps_into_the_vocabulary(
    fake: VapiFake,
    vapi: VapiProvider,
    ids: dict[str, str],
    reason: str,
    expected: CallStatus,
    failure: str | None,
) -> None:
    to = "+14155552001"
    fake.script(to, reason, ring_seconds=1, duration=2, ended_message="carrier said no")
    [placed] = place(vapi, request_for(ids, to))
    assert isinstance(placed, CallResult)
    call_id = fake.calls[0].id
    fake.wait_for_status(call_id, "ended")
    result = status(vapi, "att_1-0", call_id)
    assert result is not None and result.terminal
    assert (result.status, result.failure_reason, result.call_id) == (expected, failure, call_id)
    if failure == "provider_error":
        assert reason in (result.message or "")
    if expected == CallStatus.completed:
        assert result.started_at and result.ended_at
        assert result.duration_seconds is not None and result.duration_seconds >= 0
        assert [turn["role"] for turn in result.transcript or []] == ["agent", "user"] * 2
        assert result.transcript and result.transcript[0] == {
            "role": "agent",
            "message": "Hi, this is the clinic calling.",
            "time_in_call_secs": 0.5,
        }
        assert result.evaluations == {
            "success_evaluation": {"result": "success", "rationale": "true"}
        }
    else:
        assert result.transcript is None


def test_a_connected_call_brings_its_analysis(
    fake: VapiFake, vapi: VapiProvider, ids: dict[str, str]
) -> None:
    to = "+14155552002"
    fake.script(
        to,
        success_evaluation="false",
        structured_data={"will_attend": True, "email": "ann@example.com"},
        transcript=(("bot", "Hi Ann!"), ("user", "Hi."), ("tool_calls", "")),
    )
    place(vapi, request_for(ids, to))
    call_id = fake.calls[0].id
    fake.wait_for_status(call_id, "ended")
    result = status(vapi, "att_1-0", call_id)
    assert result is not None and result.status == CallStatus.completed
    # "bot" turns read like "assistant" ones; system and tool messages are left out.
    assert result.transcript == [
        {"role": "agent", "message": "Hi Ann!", "time_in_call_secs": 0.5},
        {"role": "user", "message": "Hi.", "time_in_call_secs": 2.5},
    ]
    assert result.evaluations == {"success_evaluation": {"result": "failure", "rationale": "false"}}
    assert result.data_collection == {
        "will_attend": {"value": True, "rationale": ""},
        "email": {"value": "ann@example.com", "rationale": ""},
    }


def test_only_the_assistants_own_endings_count_as_completed() -> None:
    # Every key of the table is in Call.endedReason's enum (checked against VapiAI/docs'
    # openapi.json when written, VAPI_SOURCES.md). "assistant-*" is not a prefix rule: the
    # assistant-not-found / -request-failed / -join-timed-out reasons are errors.
    completed = {reason for reason, out in ENDED_REASONS.items() if out == Outcome.completed}
    assert {r for r in completed if r.startswith("assistant-")} == {
        "assistant-ended-call",
        "assistant-said-end-call-phrase",
        "assistant-ended-call-after-message-spoken",
        "assistant-ended-call-with-hangup-task",
        "assistant-forwarded-call",
    }
    for error in ("assistant-not-found", "assistant-request-failed", "assistant-join-timed-out"):
        assert error not in ENDED_REASONS
    assert (
        parse_server_message(
            b'{"message": {"type": "end-of-call-report", "endedReason": "assistant-not-found",'
            b' "call": {"id": "c1"}}}'
        )[0].result.failure_reason
        == "provider_error"
    )


def test_a_connected_call_polled_before_its_analysis_waits_for_it(
    fake: VapiFake, ids: dict[str, str]
) -> None:
    vapi = provider_for(fake)
    vapi.analysis_grace = 60.0
    to = "+14155552003"
    fake.script(to, success_evaluation=None, summary=None)
    place(vapi, request_for(ids, to))
    call_id = fake.calls[0].id
    fake.wait_for_status(call_id, "ended")
    early = status(vapi, "att_1-0", call_id)
    assert early is not None and early.status == CallStatus.in_progress
    assert early.expected_end is not None and early.expected_end > now()
    vapi.analysis_grace = 0.0
    late = status(vapi, "att_1-0", call_id)
    assert late is not None and late.status == CallStatus.completed


# --- server messages -------------------------------------------------------------------------


def _events(vapi: VapiProvider, recorder: MessageRecorder):
    return [
        event
        for message in recorder.received
        for event in read(vapi, message.headers, message.body)
    ]


def _terminal(events) -> list[CallResult]:
    return [event.result for event in events if event.result.terminal]


def test_authenticated_server_messages_are_read(
    fake: VapiFake, vapi: VapiProvider, ids: dict[str, str], recorder: MessageRecorder
) -> None:
    to = "+14155553001"
    fake.script(to, structured_data={"will_attend": True})
    [placed] = place(vapi, request_for(ids, to, attempt="att_9-3"))
    fake.wait_idle()
    assert isinstance(placed, CallResult)
    kinds = [d.kind for d in fake.deliveries]
    assert kinds.count("status-update") == 3 and kinds.count("end-of-call-report") == 1
    assert all(m.headers.get("X-Vapi-Secret") == fake.webhook_secret for m in recorder.received)
    events = _events(vapi, recorder)
    assert {(e.attempt_id, e.call_id) for e in events} == {("att_9-3", placed.call_id)}
    live = [e.result.status for e in events if not e.result.terminal]
    assert live == [CallStatus.in_progress, CallStatus.in_progress]  # ringing, in-progress
    [end] = _terminal(events)  # the status-update "ended" of a conversation waits for the report
    assert end.status == CallStatus.completed and end.transcript
    assert end.data_collection == {"will_attend": {"value": True, "rationale": ""}}
    assert end.evaluations == {"success_evaluation": {"result": "success", "rationale": "true"}}


def test_an_unconnected_call_ends_with_its_status_update(
    fake: VapiFake, vapi: VapiProvider, ids: dict[str, str], recorder: MessageRecorder
) -> None:
    to = "+14155553002"
    fake.script(to, "customer-busy")
    place(vapi, request_for(ids, to))
    fake.wait_idle()
    ends = _terminal(_events(vapi, recorder))
    assert [(r.status, r.failure_reason) for r in ends] == [(CallStatus.busy, "busy")] * 2
    # Its end-of-call report lost, the status-update alone settles it.
    other = "+14155553012"
    fake.script(
        other, "customer-did-not-answer", messages=DeliveryBehaviour(drop={"end-of-call-report"})
    )
    count = len(recorder.received)
    place(vapi, request_for(ids, other, attempt="att_1-1"))
    fake.wait_idle()
    [alone] = [
        event.result
        for message in recorder.received[count:]
        for event in read(vapi, message.headers, message.body)
        if event.result.terminal
    ]
    assert (alone.status, alone.failure_reason) == (CallStatus.no_answer, "no_answer")
    assert "customer-did-not-answer" in (alone.message or "")


@pytest.mark.parametrize("auth", ["secret", "bearer", "hmac"])
def test_each_form_of_the_server_credential_is_accepted(
    recorder: MessageRecorder, auth: str
) -> None:
    with VapiFake(
        time_scale=0.01, server_url=EVENTS_URL, server_target=lambda _u: recorder.url, auth=auth
    ) as fake:
        ids = {"assistant": fake.add_assistant(), "number": fake.add_phone_number(CALLER)}
        vapi = provider_for(fake)
        place(vapi, request_for(ids, "+14155553003"))
        fake.wait_idle()
        assert len(recorder.received) == 4
        assert _terminal(_events(vapi, recorder))[0].status == CallStatus.completed


def test_missing_or_wrong_credentials_are_refused(
    fake: VapiFake, vapi: VapiProvider, ids: dict[str, str], recorder: MessageRecorder
) -> None:
    place(vapi, request_for(ids, "+14155553004"))
    fake.wait_idle()
    message = recorder.received[-1]
    body = message.body
    assert read(vapi, {"X-Vapi-Secret": fake.webhook_secret}, body)
    assert read(vapi, {"x-vapi-secret": fake.webhook_secret}, body)  # any header case
    for headers in (
        {},
        {"Content-Type": "application/json"},
        {"X-Vapi-Secret": ""},
        {"X-Vapi-Secret": fake.webhook_secret + "x"},
        {"X-Vapi-Secret": fake.api_key},
        {"Authorization": f"Bearer {fake.api_key}"},
        {"Authorization": fake.webhook_secret},
    ):
        with pytest.raises(EventRefused):
            read(vapi, headers, body)
    unconfigured = VapiProvider(
        connection_id=CONNECTION,
        credentials={"api_key": fake.api_key},
        base_url=fake.base_url,
        public_url=PUBLIC,
    )
    with pytest.raises(EventRefused):
        read(unconfigured, {"X-Vapi-Secret": ""}, body)


def test_the_fakes_unauthenticated_and_wrong_deliveries_are_refused(
    fake: VapiFake, vapi: VapiProvider, ids: dict[str, str], recorder: MessageRecorder
) -> None:
    fake.set_delivery_behaviour(unauthenticated=True)
    place(vapi, request_for(ids, "+14155553005", attempt="att_a-1"))
    fake.wait_idle()
    fake.set_delivery_behaviour(unauthenticated=False, wrong_secret=True)
    place(vapi, request_for(ids, "+14155553006", attempt="att_a-2"))
    fake.wait_idle()
    assert len(recorder.received) == 8
    for message in recorder.received:
        with pytest.raises(EventRefused):
            read(vapi, message.headers, message.body)


def test_hmac_signatures_are_checked_body_and_time(fake: VapiFake, vapi: VapiProvider) -> None:
    secret = fake.webhook_secret
    body = b'{"message":{"type":"hang"}}'
    stamp = str(int(now().timestamp()))
    good = {"x-signature": vapi_hmac_signature(secret, stamp, body), "x-timestamp": stamp}
    assert read(vapi, good, body) == []  # authenticated, and a type that says nothing
    assert read(vapi, {**good, "x-signature": "sha256=" + good["x-signature"]}, body) == []
    millis = str(int(now().timestamp() * 1000))
    assert (
        read(
            vapi,
            {"x-signature": vapi_hmac_signature(secret, millis, body), "x-timestamp": millis},
            body,
        )
        == []
    )
    with pytest.raises(EventRefused):
        read(vapi, good, body.replace(b"hang", b"hung"))  # tampered
    with pytest.raises(EventRefused):
        read(vapi, {"x-signature": good["x-signature"]}, body)  # no timestamp
    old = str(int((now() - timedelta(minutes=6)).timestamp()))
    with pytest.raises(EventRefused):
        read(
            vapi, {"x-signature": vapi_hmac_signature(secret, old, body), "x-timestamp": old}, body
        )
    with pytest.raises(EventRefused):
        read(
            vapi,
            {"x-signature": vapi_hmac_signature("other", stamp, body), "x-timestamp": stamp},
            body,
        )


def test_the_hmac_scheme_matches_an_independent_vector() -> None:
    # Computed outside Python: `printf '%s' '1700000000.{"message":{"type":"hang"}}' |
    #   openssl dgst -sha256 -hmac 'vapi-test-secret'` (the default payloadFormat
    # "{timestamp}.{body}", sha256, hex). Vapi publishes no vector of its own.
    expected = "bbe85543c40cd6801ac7dd66817c8c15b82c82e5803f4ac2f668ebbbd4de9450"
    body = b'{"message":{"type":"hang"}}'
    assert hmac_signature("vapi-test-secret", "1700000000", body) == expected
    assert vapi_hmac_signature("vapi-test-secret", "1700000000", body) == expected


def test_duplicated_and_out_of_order_messages_read_the_same(
    fake: VapiFake, vapi: VapiProvider, ids: dict[str, str], recorder: MessageRecorder
) -> None:
    to = "+14155553007"
    place(vapi, request_for(ids, to, attempt="att_b-1"))
    fake.wait_idle()
    plain = _events(vapi, recorder)
    count = len(recorder.received)
    fake.set_delivery_behaviour(duplicate=True, out_of_order=True)
    place(vapi, request_for(ids, to, attempt="att_b-2"))
    fake.wait_idle()
    messy = [
        event
        for message in recorder.received[count:]
        for event in read(vapi, message.headers, message.body)
    ]
    assert len(messy) == 2 * len(plain)
    assert [e.result.status for e in messy][:2] == [CallStatus.completed] * 2  # report first

    def ends(events):
        return {
            (e.result.status, e.result.failure_reason, json.dumps(e.result.transcript))
            for e in events
            if e.result.terminal
        }

    assert ends(messy) == ends(plain)


def test_bodies_that_are_not_server_messages_are_refused(vapi: VapiProvider) -> None:
    for body in (
        b"not json",
        b"[]",
        b"{}",
        b'{"message": "x"}',
        b'{"message": {"status": "ended"}}',
        b'{"message": {"type": "status-update", "call": {"id": "c1"}}}',
        b'{"message": {"type": "end-of-call-report", "call": {"id": "c1"}}}',
        b'{"message": {"type": "end-of-call-report", "endedReason": "voicemail", "artifact": []}}',
        b'{"message": {"type": "status-update", "status": "ended", "call": {"status": "x"}}}',
    ):
        with pytest.raises(ValueError):
            parse_server_message(body)
    assert parse_server_message(b'{"message": {"type": "conversation-update"}}') == []
    assert parse_server_message(b'{"message": {"type": "status-update", "status": "ended"}}') == []


# --- faults ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("status_code", "retry_after"), [(429, 2.0), (429, None)])
def test_429_is_not_placed_with_its_retry_after(
    fake: VapiFake,
    vapi: VapiProvider,
    ids: dict[str, str],
    status_code: int,
    retry_after: float | None,
) -> None:
    fake.fail_next(1, status=status_code, retry_after=retry_after)
    [refused] = place(vapi, request_for(ids, "+14155554001"))
    assert isinstance(refused, NotPlaced) and refused.retryable
    assert refused.retry_after == retry_after
    assert not fake.calls


def test_the_concurrency_limit_is_not_placed(
    fake: VapiFake, vapi: VapiProvider, ids: dict[str, str]
) -> None:
    fake.concurrency_block_next(1)
    [refused] = place(vapi, request_for(ids, "+14155554002"))
    assert isinstance(refused, NotPlaced) and refused.retry_after is None
    assert "concurrency" in str(refused)
    [blocked] = fake.calls
    assert blocked.statuses == ["queued", "ended"]  # it never rang
    fake.fail_next(1, status=400, message="Over Concurrency Limit.", retry_after=None)
    [again] = place(vapi, request_for(ids, "+14155554002"))
    assert isinstance(again, NotPlaced)


def test_an_account_at_its_limit_refuses_the_extra_calls(
    recorder: MessageRecorder,
) -> None:
    with VapiFake(time_scale=0.01, mode="manual", concurrency_limit=2) as fake:
        ids = {"assistant": fake.add_assistant(), "number": fake.add_phone_number(CALLER)}
        vapi = provider_for(fake)
        results = place(
            vapi, *(request_for(ids, f"+1415555410{i}", attempt=f"att_c-{i}") for i in range(3))
        )
        placed = [r for r in results if isinstance(r, CallResult)]
        refused = [r for r in results if isinstance(r, NotPlaced)]
        assert (len(placed), len(refused)) == (2, 1)


@pytest.mark.parametrize("status_code", [500, 503])
def test_5xx_is_a_retryable_error(
    fake: VapiFake, vapi: VapiProvider, ids: dict[str, str], status_code: int
) -> None:
    fake.fail_next(1, status=status_code, retry_after=None)
    [failed] = place(vapi, request_for(ids, "+14155554003"))
    assert isinstance(failed, ProviderError) and not isinstance(failed, NotPlaced)
    assert failed.retryable and str(status_code) in str(failed)


def test_a_lost_answer_is_retryable_and_settled_by_the_attempt_id(
    fake: VapiFake, vapi: VapiProvider, ids: dict[str, str]
) -> None:
    fake.lose_next(1)
    fake.set_delivery_behaviour(drop=True)
    [lost] = place(vapi, request_for(ids, "+14155554004", attempt="att_lost-0"))
    assert isinstance(lost, ProviderError) and lost.retryable
    [call] = fake.calls  # it exists, and rings
    fake.wait_for_status(call.id, "ended")
    found = status(vapi, "att_lost-0", None)
    assert found is not None and found.status == CallStatus.completed
    assert found.call_id == call.id
    listing = fake.requests_for("list_calls")[0]
    assert listing.param("limit") == "100" and listing.param("createdAtGt")
    with pytest.raises(ProviderError) as unknown:
        status(vapi, "att_never-0", None)
    assert not unknown.value.retryable
    assert len(fake.calls_to("+14155554004")) == 1


def test_the_lookup_by_attempt_id_follows_pages(fake: VapiFake, ids: dict[str, str]) -> None:
    vapi = provider_for(fake)
    vapi.page_size = 2
    for i in range(5):
        place(vapi, request_for(ids, f"+1415555420{i}", attempt=f"att_p-{i}"))
    oldest = fake.calls[0]
    found = status(vapi, "att_p-0", None)
    assert found is not None and found.call_id == oldest.id
    assert len(fake.requests_for("list_calls")) >= 3


def test_a_slow_answer_is_a_retryable_timeout(fake: VapiFake, ids: dict[str, str]) -> None:
    vapi = provider_for(fake, timeout=0.3)
    fake.slow_next(1, seconds=1.0)
    [slow] = place(vapi, request_for(ids, "+14155554005"))
    assert isinstance(slow, ProviderError) and slow.retryable and "0.3 s" in str(slow)


def test_other_4xx_are_final_and_name_what_vapi_said(fake: VapiFake, ids: dict[str, str]) -> None:
    vapi = provider_for(fake)
    wrong = request_for(ids, "+14155554006")
    [refused] = place(vapi, CallRequest(**{**wrong.__dict__, "external_agent_id": "nope"}))
    assert isinstance(refused, ProviderError) and not refused.retryable
    assert "400" in str(refused) and "Does Not Exist" in str(refused)
    bad_key = VapiProvider(
        connection_id=CONNECTION,
        credentials={"api_key": "sk-wrong-key-0000", "webhook_secret": "s"},
        base_url=fake.base_url,
        public_url=PUBLIC,
    )
    [unauthorized] = place(bad_key, request_for(ids, "+14155554006"))
    assert isinstance(unauthorized, ProviderError) and not unauthorized.retryable
    assert "401" in str(unauthorized) and "sk-wrong-key" not in str(unauthorized)
    assert unauthorized.account == "authentication_refused"  # the breaker pauses the connection
    assert refused.account is None  # one call refused, not the account
    assert "sk-wrong-key" not in repr(bad_key) and fake.webhook_secret not in repr(vapi)


def test_status_polls_survive_a_passing_fault_and_refuse_unknown_calls(
    fake: VapiFake, vapi: VapiProvider, ids: dict[str, str]
) -> None:
    fake.set_delivery_behaviour(drop=True)  # no message ever comes: only asking settles it
    to = "+14155554007"
    fake.script(to, "customer-did-not-answer")
    [placed] = place(vapi, request_for(ids, to))
    assert isinstance(placed, CallResult) and placed.call_id
    fake.wait_for_status(placed.call_id, "ended")
    fake.fail_next(1, status=503, retry_after=0, operation="get_call")
    settled = status(vapi, "att_1-0", placed.call_id)
    assert settled is not None and (settled.status, settled.failure_reason) == (
        CallStatus.no_answer,
        "no_answer",
    )
    assert fake.requests_for("get_call")[-1].path == f"/call/{placed.call_id}"
    with pytest.raises(ProviderError) as missing:
        status(vapi, "att_1-0", "00000000-0000-0000-0000-000000000000")
    assert not missing.value.retryable and "404" in str(missing.value)


def test_wait_settles_a_call_whose_messages_never_came(fake: VapiFake, ids: dict[str, str]) -> None:
    fake.set_delivery_behaviour(drop=True)
    vapi = provider_for(fake)
    vapi.poll_interval = 0.05
    [placed] = place(vapi, request_for(ids, "+14155554008"))
    assert isinstance(placed, CallResult)

    async def main() -> CallResult:
        try:
            return await vapi.wait("att_1-0", placed)
        finally:
            await vapi.aclose()

    result = asyncio.run(main())
    assert result.status == CallStatus.completed and result.transcript


# --- hanging up ------------------------------------------------------------------------------


def test_hang_up_ends_a_live_call_through_its_control_url(
    fake: VapiFake, vapi: VapiProvider, ids: dict[str, str]
) -> None:
    to = "+14155555001"
    fake.script(to, duration=3000)
    [placed] = place(vapi, request_for(ids, to))
    assert isinstance(placed, CallResult) and placed.call_id
    fake.wait_for_status(placed.call_id, "in-progress")

    async def main() -> None:
        try:
            await vapi.hang_up("att_1-0", placed.call_id)
            await vapi.hang_up("att_1-0", placed.call_id)  # ended already: nothing to do
            await vapi.hang_up("att_1-0", None)  # no call id: nothing to hang up
        finally:
            await vapi.aclose()

    asyncio.run(main())
    call = fake.call(placed.call_id)
    assert call.control == [{"type": "end-call"}] and call.ended_by == "control"
    [control] = fake.requests_for("control")
    assert control.header("authorization") is None  # the API key stays with the API
    result = status(vapi, "att_1-0", placed.call_id)
    assert result is not None and (result.status, result.failure_reason) == (
        CallStatus.failed,
        Outcome.hung_up.value,
    )


# --- the account -----------------------------------------------------------------------------


def test_check_reads_once_and_says_what_is_wrong(fake: VapiFake, vapi: VapiProvider) -> None:
    vapi.check()
    [read_once] = fake.requests
    assert (read_once.path, read_once.param("limit")) == ("/assistant", "1")
    bad = VapiProvider(
        connection_id=CONNECTION,
        credentials={"api_key": "nope", "webhook_secret": "s"},
        base_url=fake.base_url,
        public_url=PUBLIC,
    )
    with pytest.raises(ProviderError) as refused:
        bad.check()
    assert "401" in str(refused.value) and "Unauthorized" in str(refused.value)


def test_list_agents_follows_pages_and_reads_the_system_prompt(
    fake: VapiFake, vapi: VapiProvider
) -> None:
    made = [
        fake.add_assistant(f"Agent {i}", f"Hi {{{{name}}}} #{i}", f"Prompt {i} for {{{{ name }}}}")
        for i in range(5)
    ]
    fake.add_assistant(None, None, None, id="bare")
    fake.add_assistant(
        "Two parts",
        "Hello",
        "Part one.",
        extra_messages=[
            {"role": "user", "content": "not the prompt"},
            {"role": "system", "content": "Part two."},
        ],
    )
    vapi.page_size = 2
    agents = {agent.external_agent_id: agent for agent in vapi.list_agents()}
    assert set(agents) == {*made, "bare", fake._assistants[-1]["id"]}
    first = agents[made[0]]
    assert (first.name, first.first_message, first.prompt) == (
        "Agent 0",
        "Hi {{name}} #0",
        "Prompt 0 for {{ name }}",
    )
    assert (agents["bare"].name, agents["bare"].first_message, agents["bare"].prompt) == (
        "bare",
        "",
        "",
    )
    assert agents[fake._assistants[-1]["id"]].prompt == "Part one.\n\nPart two."
    pages = fake.requests_for("list_assistants")
    assert len(pages) >= 4 and all(p.param("limit") == "2" for p in pages)
    assert pages[1].param("createdAtLe")


def test_incoming_numbers_lists_the_numbers_with_a_number(
    fake: VapiFake, vapi: VapiProvider
) -> None:
    main = fake.add_phone_number(CALLER, "Main line")
    fake.add_phone_number("+14155550199", provider="vapi", status="activating")
    fake.add_phone_number(None, "SIP only", provider="vapi")
    assert vapi.incoming_numbers() == [
        {"phone_number": "+14155550199", "external_id": fake._numbers[1]["id"],
         "label": "+14155550199", "voice": False},
        {"phone_number": CALLER, "external_id": main, "label": "Main line", "voice": True},
    ]  # fmt: skip


def test_events_url_is_the_connections(vapi: VapiProvider) -> None:
    assert vapi.events_url == EVENTS_URL


def test_the_fake_records_every_create_exactly_once(
    fake: VapiFake, vapi: VapiProvider, ids: dict[str, str]
) -> None:
    started = time.monotonic()
    results = place(
        vapi, *(request_for(ids, f"+1415555600{i}", attempt=f"att_d-{i}") for i in range(6))
    )
    assert all(isinstance(r, CallResult) for r in results)
    assert len(fake.calls) == len(fake.requests_for("create_call")) == 6
    assert {c.metadata["attempt_id"] for c in fake.calls} == {f"att_d-{i}" for i in range(6)}
    assert time.monotonic() - started < 5
