"""The ElevenLabs adapter against a local fake of ElevenLabs' documented API and webhooks
(tests/fakes/elevenlabs.py, sources in tests/fakes/elevenlabs_SOURCES.md). No database: the
adapter is called directly, as the dialer and the events route call it."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import socket
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
import pytest

from batch_dashboard.providers.base import (
    AgentSnapshot,
    CallRequest,
    CallResult,
    CallStatus,
    EventRefused,
    ImportedAgent,
    NotPlaced,
    PlatformEvent,
    ProviderError,
)
from batch_dashboard.providers.elevenlabs import (
    ATTEMPT_VARIABLE,
    ElevenLabsProvider,
    parse_event,
    verify_signature,
)
from batch_dashboard.services.outcomes import Outcome
from tests.fakes.elevenlabs import (
    ElevenLabsFake,
    WebhookBehaviour,
    WebhookRecorder,
    sign,
    signature_header,
)

PUBLIC = "https://calls.example.com"
CONNECTION = "conn_01JEL"
EVENTS_URL = f"{PUBLIC}/v1/provider-events/elevenlabs/{CONNECTION}"
CALLER = "+14155550100"
SIP_CALLER = "+14155550101"
_ids = itertools.count(1)
T = TypeVar("T")

# The SDK's scheme, pinned by a vector computed with the SDK's own function: construct_event of
# elevenlabs/elevenlabs-python@54e58995d57669c7807be998f755519dbb05211a
# (src/elevenlabs/webhooks_custom.py), run on the inputs of its test
# tests/test_webhooks.py::test_construct_event_mocked_time (time.time() = 1600000000).
SDK_SECRET = "test_secret"
SDK_BODY = b'{"event_type": "speech.completed", "id": "123456"}'
SDK_TIMESTAMP = 1600000000
SDK_HEADER = "t=1600000000,v0=f8a0d1dc33ee963cb54d2f31514555995e93313c9d2042c030adbb82b87fae13"
SDK_NOW = datetime.fromtimestamp(SDK_TIMESTAMP, UTC)


def now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Account:
    fake: ElevenLabsFake
    hooks: WebhookRecorder
    agent_id: str
    number_id: str
    sip_number_id: str

    def provider(self, **kwargs: Any) -> ElevenLabsProvider:
        credentials = kwargs.pop(
            "credentials",
            {"api_key": self.fake.api_key, "webhook_secret": self.fake.webhook_secret},
        )
        return ElevenLabsProvider(
            connection_id=CONNECTION,
            credentials=credentials,
            base_url=kwargs.pop("base_url", self.fake.base_url),
            public_url=PUBLIC,
            **kwargs,
        )

    def request(
        self,
        to: str,
        *,
        sip: bool = False,
        variables: dict[str, Any] | None = None,
        ringing_timeout_ms: int = 25_000,
        voicemail: dict[str, Any] | None = None,
        agent_id: str | None = None,
        number_id: str | None = None,
    ) -> CallRequest:
        n = next(_ids)
        return CallRequest(
            attempt_id=f"att_01JEL{n:04d}-0",
            attempt_number=1,
            workspace_id="ws_1",
            batch_id="bc_1",
            recipient_id=f"rcp_{n}",
            to=to,
            from_=SIP_CALLER if sip else CALLER,
            agent=AgentSnapshot(
                id="ag_local",
                name="Reminders",
                prompt="Remind {{first_name}} of {{appointment_time}}.",
                first_message="Hi {{first_name}}!",
                evaluation_criteria=[],
                data_collection=[],
            ),
            variables={"first_name": "Ann", "appointment_time": "3pm"}
            if variables is None
            else variables,
            ringing_timeout_ms=ringing_timeout_ms,
            connection_id=CONNECTION,
            from_external_id=number_id or (self.sip_number_id if sip else self.number_id),
            external_agent_id=agent_id or self.agent_id,
            voicemail=voicemail,
        )

    def events(self, provider: ElevenLabsProvider, count: int) -> list[PlatformEvent]:
        """Every webhook received so far (at least `count`), read by the adapter."""
        out: list[PlatformEvent] = []
        for item in self.hooks.wait_for(count):
            out += provider.read_event(
                url=EVENTS_URL, headers=item.headers, body=item.body, now=now()
            )
        return out


@pytest.fixture
def account() -> Iterator[Account]:
    with (
        WebhookRecorder() as hooks,
        ElevenLabsFake(callback_url=hooks.url(), time_scale=0.001) as fake,
    ):
        agent_id = fake.add_agent(
            "Reminders",
            first_message="Hi {{first_name}}!",
            prompt="Remind {{first_name}} of {{appointment_time}}.",
        )
        yield Account(
            fake,
            hooks,
            agent_id,
            fake.add_number(CALLER, label="Main line"),
            fake.add_number(SIP_CALLER, label="Trunk", provider="sip_trunk"),
        )


def run(provider: ElevenLabsProvider, work: Callable[[], Awaitable[T]]) -> T:
    """`work()` on a fresh event loop, then the adapter's client closed on that loop."""

    async def main() -> T:
        try:
            return await work()
        finally:
            await provider.aclose()

    return asyncio.run(main())


def place(provider: ElevenLabsProvider, *requests: CallRequest) -> list[CallResult | ProviderError]:
    return run(provider, lambda: provider.place_calls(list(requests)))


def status(provider: ElevenLabsProvider, attempt_id: str, call_id: str | None) -> CallResult | None:
    return run(provider, lambda: provider.call_status(attempt_id, call_id))


# --- placing: what is sent -------------------------------------------------------------------


def test_a_placement_sends_every_documented_field(account: Account) -> None:
    provider = account.provider()
    twilio = account.request("+14155552001")
    again = account.request("+14155552002")
    trunk = account.request("+14155552003", sip=True)
    results = place(provider, twilio, again, trunk)
    assert all(isinstance(r, CallResult) for r in results), results
    fake = account.fake
    by_attempt = {
        p.json["conversation_initiation_client_data"]["user_id"]: p for p in fake.placements
    }
    for request, result in zip((twilio, again, trunk), results, strict=True):
        assert isinstance(result, CallResult)
        sent = by_attempt[request.attempt_id]
        # Twilio numbers go through the Twilio endpoint, SIP trunk numbers through theirs.
        kind = "sip-trunk" if request is trunk else "twilio"
        assert (sent.method, sent.path) == ("POST", f"/v1/convai/{kind}/outbound-call")
        assert sent.header("xi-api-key") == fake.api_key
        assert sent.header("content-type") == "application/json"
        assert sent.json == {
            "agent_id": account.agent_id,
            "agent_phone_number_id": request.from_external_id,
            "to_number": request.to,
            "conversation_initiation_client_data": {
                "user_id": request.attempt_id,
                "dynamic_variables": {
                    "first_name": "Ann",
                    "appointment_time": "3pm",
                    ATTEMPT_VARIABLE: request.attempt_id,
                },
            },
            "telephony_call_config": {"ringing_timeout_secs": 25},
        }
        call = fake.call(sent.conversation_id)
        assert (result.status, result.call_id) == (CallStatus.in_progress, call.conversation_id)
        assert result.failure_reason is None and not result.warnings
    # Each number's kind is read from ElevenLabs once, then remembered.
    reads = fake.requests_for("get_number")
    assert sorted(r.path.rsplit("/", 1)[1] for r in reads) == sorted(
        [account.number_id, account.sip_number_id]
    )


def test_variables_are_sent_as_elevenlabs_takes_them(account: Account) -> None:
    provider = account.provider()
    request = account.request(
        "+14155552011",
        variables={
            "first_name": "Zoë",
            "visits": 3,
            "balance": 12.5,
            "vip": True,
            "note": None,
            "tags": ["a", "b"],
            "nan": float("nan"),
            "system__caller_id": "+1555",
            ATTEMPT_VARIABLE: "forged",
        },
        ringing_timeout_ms=0,
        voicemail={"action": "hang_up"},
    )
    [result] = place(provider, request)
    assert isinstance(result, CallResult)
    [sent] = account.fake.placements
    assert "telephony_call_config" not in sent.json  # no ringing timeout asked for
    assert sent.json["conversation_initiation_client_data"]["dynamic_variables"] == {
        "first_name": "Zoë",
        "visits": 3,
        "balance": 12.5,
        "vip": True,
        "note": "",
        "tags": '["a", "b"]',
        "nan": "nan",
        ATTEMPT_VARIABLE: request.attempt_id,  # ours wins over a column of the same name
    }
    assert any("system__caller_id" in w for w in result.warnings)
    assert any("voicemail" in w for w in result.warnings)


def test_ringing_timeout_is_whole_seconds_at_least_one(account: Account) -> None:
    provider = account.provider()
    place(provider, account.request("+14155552012", ringing_timeout_ms=400))
    place(provider, account.request("+14155552013", ringing_timeout_ms=59_600))
    sent = [
        p.json["telephony_call_config"]["ringing_timeout_secs"] for p in account.fake.placements
    ]
    assert sorted(sent) == [1, 60]


def test_a_request_without_platform_ids_is_refused_before_anything_is_sent(
    account: Account,
) -> None:
    provider = account.provider()
    no_agent = account.request("+14155552014")
    no_agent = CallRequest(**{**no_agent.__dict__, "external_agent_id": None})
    no_number = account.request("+14155552015")
    no_number = CallRequest(**{**no_number.__dict__, "from_external_id": None})
    results = place(provider, no_agent, no_number)
    assert all(isinstance(r, ProviderError) and not r.retryable for r in results)
    assert "external_agent_id" in str(results[0]) and "agent_phone_number_id" in str(results[1])
    assert account.fake.requests == []


def test_an_exotel_number_is_refused(account: Account) -> None:
    exotel = account.fake.add_number("+919999900000", provider="exotel")
    [result] = place(account.provider(), account.request("+14155552016", number_id=exotel))
    assert isinstance(result, ProviderError) and not result.retryable
    assert "exotel" in str(result) and account.fake.placements == []


# --- outcomes ----------------------------------------------------------------------------------

OUTCOMES = [
    # (scripted outcome, CallStatus, failure_reason)
    ("completed", CallStatus.completed, None),
    ("voicemail", CallStatus.voicemail, Outcome.voicemail),
    ("busy", CallStatus.busy, Outcome.busy),
    ("no-answer", CallStatus.no_answer, Outcome.no_answer),
    ("declined", CallStatus.failed, Outcome.declined),
    ("invalid", CallStatus.failed, Outcome.invalid_number),
    ("unknown", CallStatus.failed, Outcome.provider_error),
    ("failed", CallStatus.failed, Outcome.provider_error),
]


@pytest.mark.parametrize("sip", [False, True], ids=["twilio", "sip_trunk"])
@pytest.mark.parametrize(("outcome", "expected", "reason"), OUTCOMES, ids=[o[0] for o in OUTCOMES])
def test_each_ending_maps_into_the_vocabulary(
    account: Account, outcome: str, expected: CallStatus, reason: Outcome | None, sip: bool
) -> None:
    to = "+14155552101"
    account.fake.script(
        to,
        outcome,
        duration=42,
        transcript=(("agent", "Hi Ann!"), ("user", "Yes, I'll be there.")),
        evaluations={"confirmed": ("success", "She said she would come.")},
        data_collection={
            "will_attend": (True, "She said yes."),
            "email": ("ann@example.com", "Spelled out."),
        },
        error_reason="LLM provider failed",
    )
    provider = account.provider()
    request = account.request(to, sip=sip)
    [placed] = place(provider, request)
    assert isinstance(placed, CallResult)
    account.fake.wait_idle()
    [event] = account.events(provider, 1)
    result = event.result
    assert event.call_id == placed.call_id == result.call_id
    assert (result.status, result.failure_reason) == (expected, reason and reason.value)
    assert result.terminal
    connected = outcome in ("completed", "voicemail", "failed")
    # Our attempt id comes back in the transcription's dynamic variables; an initiation failure
    # carries only the conversation id (the call id we stored).
    assert event.attempt_id == (request.attempt_id if connected else None)
    if outcome == "completed":
        assert result.transcript == [
            {"role": "agent", "message": "Hi Ann!", "time_in_call_secs": 0},
            {"role": "user", "message": "Yes, I'll be there.", "time_in_call_secs": 3},
        ]
        assert result.evaluations == {
            "confirmed": {"result": "success", "rationale": "She said she would come."}
        }
        assert result.data_collection == {
            "will_attend": {"value": True, "rationale": "She said yes."},
            "email": {"value": "ann@example.com", "rationale": "Spelled out."},
        }
        assert result.duration_seconds == 42
        assert result.ended_at - result.started_at == timedelta(seconds=42)
    else:
        assert result.transcript is None and result.evaluations is None
        assert result.message
    if outcome == "failed":
        assert "LLM provider failed" in result.message


def test_a_call_whose_webhook_never_came_is_settled_by_asking(account: Account) -> None:
    account.fake.set_webhooks(drop=True)
    account.fake.script("+14155552201", evaluations={"confirmed": ("failure", "No.")})
    account.fake.script("+14155552202", "voicemail")
    account.fake.script("+14155552203", "busy")
    provider = account.provider()
    requests = [account.request(to) for to in ("+14155552201", "+14155552202", "+14155552203")]
    placed = place(provider, *requests)
    account.fake.wait_idle()
    assert account.hooks.received == []
    done, voicemail, busy = (
        status(provider, r.attempt_id, p.call_id)  # type: ignore[union-attr]
        for r, p in zip(requests, placed, strict=True)
    )
    assert done is not None and done.status == CallStatus.completed
    assert done.evaluations == {"confirmed": {"result": "failure", "rationale": "No."}}
    assert done.transcript and done.transcript[0]["message"] == "Hi Ann!"
    assert voicemail is not None and voicemail.failure_reason == "voicemail"
    # The conversation of a call that never connected only says `failed`: without its
    # call_initiation_failure webhook, a busy line ends provider_error (docs: Outcomes).
    assert busy is not None and (busy.status, busy.failure_reason) == (
        CallStatus.failed,
        "provider_error",
    )
    assert len(account.fake.requests_for("get_conversation")) == 3


def test_a_live_call_is_in_progress_until_analysed(account: Account) -> None:
    account.fake.mode = "manual"
    provider = account.provider()
    request = account.request("+14155552211")
    [placed] = place(provider, request)
    assert isinstance(placed, CallResult) and placed.call_id
    live = status(provider, request.attempt_id, placed.call_id)
    assert live is not None and live.status == CallStatus.in_progress and not live.terminal
    account.fake.finish(placed.call_id)
    ended = status(provider, request.attempt_id, placed.call_id)
    assert ended is not None and ended.status == CallStatus.completed


def test_wait_polls_until_the_end(account: Account) -> None:
    account.fake.set_webhooks(drop=True)
    provider = account.provider()
    provider.poll_interval = 0.02
    request = account.request("+14155552212")

    async def work() -> CallResult:
        [placed] = await provider.place_calls([request])
        assert isinstance(placed, CallResult)
        return await provider.wait(request.attempt_id, placed)

    assert run(provider, work).status == CallStatus.completed


# --- asking about a call we hold no id for -----------------------------------------------------


def test_a_lost_answer_is_found_again_by_the_attempt_id(account: Account) -> None:
    fake = account.fake
    fake.lose_next(1)
    provider = account.provider()
    request = account.request("+14155552301")
    [lost] = place(provider, request)
    assert isinstance(lost, ProviderError) and lost.retryable  # the call may exist…
    [call] = fake.calls  # …and it does
    fake.wait_idle()
    found = status(provider, request.attempt_id, None)
    assert found is not None and found.status == CallStatus.completed
    assert found.call_id == call.conversation_id
    [lookup] = fake.requests_for("list_conversations")
    assert lookup.param("user_id") == request.attempt_id


def test_an_attempt_nobody_knows_is_unknown_not_redialed(account: Account) -> None:
    provider = account.provider()
    account.fake.wait_idle()
    with pytest.raises(ProviderError) as raised:
        status(provider, "att_01JELNOPE-0", None)
    assert not raised.value.retryable  # outcome_unknown; None would dial it again


def test_a_conversation_elevenlabs_does_not_know_is_not_retried(account: Account) -> None:
    with pytest.raises(ProviderError) as raised:
        status(account.provider(), "att_01JELX-0", "conv_missing")
    assert not raised.value.retryable and "conv_missing" in str(raised.value)


def test_a_conversation_of_another_attempt_is_refused(account: Account) -> None:
    provider = account.provider()
    request = account.request("+14155552302")
    [placed] = place(provider, request)
    assert isinstance(placed, CallResult)
    with pytest.raises(ProviderError) as raised:
        status(provider, "att_01JELOTHER-0", placed.call_id)
    assert not raised.value.retryable


def test_reads_are_tried_again_on_transient_faults(account: Account) -> None:
    provider = account.provider()
    provider.read_backoff = 0.01
    request = account.request("+14155552303")
    [placed] = place(provider, request)
    assert isinstance(placed, CallResult)
    account.fake.wait_idle()
    account.fake.fail_next(2, 503, operation="get_conversation")
    result = status(provider, request.attempt_id, placed.call_id)
    assert result is not None and result.status == CallStatus.completed
    account.fake.fail_next(3, 500, operation="get_conversation")
    with pytest.raises(ProviderError) as raised:
        status(provider, request.attempt_id, placed.call_id)
    assert raised.value.retryable


# --- faults when placing ----------------------------------------------------------------------


def test_429_is_not_placed_and_says_how_long_to_wait(account: Account) -> None:
    account.fake.fail_next(1, 429, retry_after=7)
    [result] = place(account.provider(), account.request("+14155552401"))
    assert isinstance(result, NotPlaced) and result.retryable
    assert result.retry_after == 7
    assert account.fake.calls == []  # nothing was created


@pytest.mark.parametrize("http_status", [429, 400])
def test_the_concurrency_limit_is_not_placed(account: Account, http_status: int) -> None:
    account.fake.concurrency_limit_next(1, status=http_status)
    [result] = place(account.provider(), account.request("+14155552402"))
    assert isinstance(result, NotPlaced) and result.retry_after is None
    assert "too_many_concurrent_requests" in str(result)
    assert account.fake.calls == []


def test_success_false_is_a_refusal_or_a_wait(account: Account) -> None:
    fake = account.fake
    fake.fail_next(1, 200, message="Concurrency limit reached for this workspace")
    fake.fail_next(1, 200, message="Phone number is not configured for outbound calls")
    provider = account.provider()
    first, second = (
        place(provider, account.request(to))[0] for to in ("+14155552403", "+14155552404")
    )
    assert isinstance(first, NotPlaced)
    assert isinstance(second, ProviderError) and not isinstance(second, NotPlaced)
    assert not second.retryable and "not configured for outbound" in str(second)


@pytest.mark.parametrize("http_status", [500, 502, 503])
def test_5xx_may_have_created_the_call(account: Account, http_status: int) -> None:
    account.fake.fail_next(1, http_status)
    [result] = place(account.provider(), account.request("+14155552405"))
    assert isinstance(result, ProviderError) and not isinstance(result, NotPlaced)
    assert result.retryable and str(http_status) in str(result)


def test_a_slow_answer_is_a_retryable_error_and_the_call_exists(account: Account) -> None:
    account.fake.slow_next(1, seconds=1.5)
    [result] = place(account.provider(timeout=0.3), account.request("+14155552406"))
    assert isinstance(result, ProviderError) and not isinstance(result, NotPlaced)
    assert result.retryable and "may exist" in str(result)
    account.fake.wait_for(lambda: len(account.fake.calls) == 1)


def test_a_closed_port_is_not_placed(account: Account) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    provider = account.provider(base_url=closed)
    provider.read_backoff = 0.01
    [result] = place(provider, account.request("+14155552407"))
    assert isinstance(result, NotPlaced)  # nothing ever left this machine


def test_4xx_refusals_say_what_elevenlabs_said(account: Account) -> None:
    fake = account.fake
    provider = account.provider()
    [unknown_agent] = place(provider, account.request("+14155552408", agent_id="agent_nope"))
    assert isinstance(unknown_agent, ProviderError) and not unknown_agent.retryable
    assert "404 agent_not_found" in str(unknown_agent)
    fake.fail_next(1, 422, detail_status="validation_error", message="to_number is invalid")
    [invalid] = place(provider, account.request("+14155552409"))
    assert isinstance(invalid, ProviderError) and not invalid.retryable
    assert "to_number is invalid" in str(invalid)
    assert fake.calls == []


def test_a_wrong_api_key_is_refused_without_repeating_it(account: Account) -> None:
    key = "sk_wrong_0123456789abcdef"
    provider = account.provider(credentials={"api_key": key, "webhook_secret": "x"})
    [result] = place(provider, account.request("+14155552410"))
    assert isinstance(result, ProviderError) and not result.retryable
    assert "invalid_api_key" in str(result) and key not in str(result)
    assert result.account == "authentication_refused"  # the breaker pauses the connection


# --- hang up, check, agents, numbers ------------------------------------------------------------


def test_hang_up_is_a_logged_no_op(account: Account, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="batch_dashboard.providers.elevenlabs")
    provider = account.provider()
    run(provider, lambda: provider.hang_up("att_01JELH-0", "conv_123"))
    assert account.fake.requests == []
    assert "cannot hang up att_01JELH-0" in caplog.text


def test_check_reads_the_account_once(account: Account) -> None:
    account.provider().check()
    [read] = account.fake.requests
    assert (read.path, read.param("page_size")) == ("/v1/convai/agents", "1")
    assert read.header("xi-api-key") == account.fake.api_key
    key = "sk_wrong_0123456789abcdef"
    with pytest.raises(ProviderError) as raised:
        account.provider(credentials={"api_key": key}).check()
    assert "Invalid API key" in str(raised.value) and key not in str(raised.value)
    assert not raised.value.retryable


def test_list_agents_follows_the_cursor_and_reads_each_agent(account: Account) -> None:
    fake = account.fake
    for n in range(104):
        fake.add_agent(
            f"Agent {n}", first_message=f"Hello {{{{name}}}} #{n}", prompt=f"Be nice {n}"
        )
    fake.add_agent("Old", first_message="x", prompt="y", archived=True)
    agents = account.provider().list_agents()
    assert len(agents) == 105  # the fixture's, the 104, not the archived one
    assert agents[0] == ImportedAgent(
        account.agent_id,
        "Reminders",
        "Hi {{first_name}}!",
        "Remind {{first_name}} of {{appointment_time}}.",
    )
    assert agents[-1] == ImportedAgent(
        agents[-1].external_agent_id, "Agent 103", "Hello {{name}} #103", "Be nice 103"
    )
    pages = fake.requests_for("list_agents")
    assert [p.param("page_size") for p in pages] == ["100", "100"]
    assert pages[0].param("cursor") is None and pages[1].param("cursor")
    assert len(fake.requests_for("get_agent")) == 105


def test_incoming_numbers(account: Account) -> None:
    fake = account.fake
    exotel = fake.add_number("+919999900001", provider="exotel", label="India")
    inbound = fake.add_number("+14155550199", supports_outbound=False, label="Inbound only")
    numbers = account.provider().incoming_numbers()
    assert numbers == [
        {
            "phone_number": CALLER,
            "external_id": account.number_id,
            "label": "Main line",
            "voice": True,
        },
        {
            "phone_number": SIP_CALLER,
            "external_id": account.sip_number_id,
            "label": "Trunk",
            "voice": True,
        },
        {"phone_number": "+919999900001", "external_id": exotel, "label": "India", "voice": False},
        {
            "phone_number": "+14155550199",
            "external_id": inbound,
            "label": "Inbound only",
            "voice": False,
        },
    ]


# --- the webhook signature ----------------------------------------------------------------------


def test_the_scheme_agrees_with_the_sdks_vector() -> None:
    assert signature_header(SDK_SECRET, SDK_BODY, SDK_TIMESTAMP) == SDK_HEADER  # the fake's
    verify_signature(SDK_SECRET, SDK_HEADER, SDK_BODY, SDK_NOW)  # the adapter's
    # The SDK's rules: parts in any order; 30 minutes old is still in, one second more is out;
    # a timestamp in the future is accepted (construct_event sets no bound there).
    t, v0 = SDK_HEADER.split(",")
    verify_signature(SDK_SECRET, f"{v0},{t}", SDK_BODY, SDK_NOW)
    verify_signature(SDK_SECRET, SDK_HEADER, SDK_BODY, SDK_NOW + timedelta(minutes=30))
    verify_signature(SDK_SECRET, SDK_HEADER, SDK_BODY, SDK_NOW - timedelta(days=1))
    refused = [
        (SDK_SECRET, SDK_HEADER, SDK_BODY, SDK_NOW + timedelta(minutes=30, seconds=1)),
        (SDK_SECRET, None, SDK_BODY, SDK_NOW),
        (SDK_SECRET, "", SDK_BODY, SDK_NOW),
        (SDK_SECRET, "invalid_format", SDK_BODY, SDK_NOW),
        (SDK_SECRET, f"{t},v0=invalid_signature", SDK_BODY, SDK_NOW),
        (SDK_SECRET, t, SDK_BODY, SDK_NOW),
        (SDK_SECRET, "t=soon," + v0, SDK_BODY, SDK_NOW),
        ("", SDK_HEADER, SDK_BODY, SDK_NOW),
        ("other_secret", SDK_HEADER, SDK_BODY, SDK_NOW),
        (SDK_SECRET, SDK_HEADER, SDK_BODY.replace(b"123456", b"123457"), SDK_NOW),
        (SDK_SECRET, f"t={SDK_TIMESTAMP + 1},{v0}", SDK_BODY, SDK_NOW),
    ]
    for secret, header, body, moment in refused:
        with pytest.raises(EventRefused):
            verify_signature(secret, header, body, moment)


def test_the_sdk_itself_agrees_when_installed() -> None:
    webhooks = pytest.importorskip("elevenlabs.webhooks_custom")
    from unittest import mock

    with mock.patch("time.time", return_value=SDK_TIMESTAMP):
        event = webhooks.WebhooksClient.construct_event(
            None, SDK_BODY.decode(), SDK_HEADER, SDK_SECRET
        )
    assert event == json.loads(SDK_BODY)


def test_read_event_accepts_the_fakes_signed_webhooks(account: Account) -> None:
    provider = account.provider()
    request = account.request("+14155552501")
    place(provider, request)
    account.fake.wait_idle()
    [received] = account.hooks.wait_for(1)
    [delivery] = account.fake.deliveries
    assert received.signature == delivery.signature
    assert received.signature == signature_header(
        account.fake.webhook_secret, received.body, delivery.timestamp
    )
    assert (
        sign(account.fake.webhook_secret, received.body, delivery.timestamp) in received.signature
    )
    # Header names are case-insensitive; the URL is not signed.
    lower = {k.lower(): v for k, v in received.headers.items()}
    [event] = provider.read_event(
        url="http://elsewhere/", headers=lower, body=received.body, now=now()
    )
    assert event.attempt_id == request.attempt_id and event.result.status == CallStatus.completed


@pytest.mark.parametrize(
    "behaviour",
    [
        WebhookBehaviour(unsigned=True),
        WebhookBehaviour(wrong_secret=True),
        WebhookBehaviour(stale=True),
    ],
    ids=["unsigned", "wrong-secret", "replayed-outside-tolerance"],
)
def test_bad_webhooks_are_refused(account: Account, behaviour: WebhookBehaviour) -> None:
    account.fake.set_webhooks(**behaviour.__dict__)
    provider = account.provider()
    place(provider, account.request("+14155552502"))
    account.fake.wait_idle()
    [received] = account.hooks.wait_for(1)
    with pytest.raises(EventRefused):
        provider.read_event(url=EVENTS_URL, headers=received.headers, body=received.body, now=now())


def test_a_tampered_body_or_another_connections_secret_is_refused(account: Account) -> None:
    provider = account.provider()
    place(provider, account.request("+14155552503"))
    account.fake.wait_idle()
    [received] = account.hooks.wait_for(1)
    tampered = received.body.replace(b'"status": "done"', b'"status": "failed"')
    assert tampered != received.body
    with pytest.raises(EventRefused):
        provider.read_event(url=EVENTS_URL, headers=received.headers, body=tampered, now=now())
    other = account.provider(
        credentials={"api_key": account.fake.api_key, "webhook_secret": "wsec_other"}
    )
    with pytest.raises(EventRefused):
        other.read_event(url=EVENTS_URL, headers=received.headers, body=received.body, now=now())
    later = now() + timedelta(minutes=31)  # the same event replayed half an hour later
    with pytest.raises(EventRefused):
        provider.read_event(url=EVENTS_URL, headers=received.headers, body=received.body, now=later)


def test_duplicated_and_reordered_webhooks_read_the_same(account: Account) -> None:
    fake = account.fake
    fake.set_webhooks(duplicate=True, reverse=True, hold=True)
    fake.script("+14155552602", "busy")
    provider = account.provider()
    requests = [account.request(to) for to in ("+14155552601", "+14155552602", "+14155552603")]
    placed = place(provider, *requests)
    fake.wait_idle()
    # Each answered call: post_call_audio then the transcription, each twice; the busy one: its
    # failure twice. All held, then released last-first (the busy line's may come first).
    held = fake.release_held(reverse=True)
    assert len(held) == 2 * 2 + 2 + 2 * 2
    received = account.hooks.wait_for(len(held))
    events: dict[str, list[PlatformEvent]] = {}
    for item in received:
        for event in provider.read_event(
            url=EVENTS_URL, headers=item.headers, body=item.body, now=now()
        ):
            events.setdefault(event.call_id or "", []).append(event)
    assert set(events) == {p.call_id for p in placed if isinstance(p, CallResult)}
    for copies in events.values():
        assert len(copies) == 2 and copies[0] == copies[1]  # the same event twice reads the same
    outcome = {e[0].call_id: e[0].result.status for e in events.values()}
    assert sorted(outcome.values()) == sorted(
        [CallStatus.completed, CallStatus.busy, CallStatus.completed]
    )


def test_bodies_that_are_not_the_documented_shape(account: Account) -> None:
    provider = account.provider()

    def read(payload: Any) -> list[PlatformEvent]:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        stamp = int(now().timestamp())
        headers = {
            "ElevenLabs-Signature": signature_header(account.fake.webhook_secret, body, stamp)
        }
        return provider.read_event(url=EVENTS_URL, headers=headers, body=body, now=now())

    for bad in (
        b"not json",
        b"\xff\xfe",
        [],
        {"type": "post_call_transcription"},
        {"type": "post_call_transcription", "data": [1]},
        {"type": "post_call_transcription", "data": {"status": "done"}},
        {"type": "call_initiation_failure", "data": {"failure_reason": "busy"}},
        {"data": {}},
    ):
        with pytest.raises(ValueError):
            read(bad)
    audio = {
        "type": "post_call_audio",
        "event_timestamp": 1,
        "data": {"agent_id": "a", "conversation_id": "c", "full_audio": "SUQz"},
    }
    assert read(audio) == []
    assert read({"type": "something_new", "data": {}}) == []


def test_the_docs_examples_parse() -> None:
    """The example payloads of the post-call webhooks page, as published."""
    busy = {
        "type": "call_initiation_failure",
        "event_timestamp": 1759931652,
        "data": {
            "agent_id": "xyz",
            "conversation_id": "abc",
            "failure_reason": "busy",
            "metadata": {
                "type": "twilio",
                "body": {
                    "CallSid": "CA8367245817625617832576245724",
                    "CallStatus": "busy",
                    "SipResponseCode": "487",
                    "Direction": "outbound-api",
                },
            },
        },
    }
    sip = {
        "type": "call_initiation_failure",
        "event_timestamp": 1759931652,
        "data": {
            "agent_id": "xyz",
            "conversation_id": "abc",
            "failure_reason": "busy",
            "metadata": {
                "type": "sip",
                "body": {
                    "from_number": "+441111111111",
                    "to_number": "+11111111111",
                    "sip_status_code": 486,
                    "error_reason": "INVITE failed: sip status: 486: Busy here (SIP 486)",
                    "call_sid": "d8e7f6a5-b4c3-4d5e-8f9a-0b1c2d3e4f5a",
                    "sip_status": "Busy here",
                    "twirp_code": "unavailable",
                },
            },
        },
    }
    transcription = {
        "type": "post_call_transcription",
        "event_timestamp": 1739537297,
        "data": {
            "agent_id": "xyz",
            "conversation_id": "abc",
            "status": "done",
            "user_id": "user123",
            "transcript": [
                {
                    "role": "agent",
                    "message": "Hey there angelo. How are you?",
                    "tool_calls": None,
                    "tool_results": None,
                    "feedback": None,
                    "time_in_call_secs": 0,
                    "conversation_turn_metrics": None,
                },
                {
                    "role": "user",
                    "message": "Hey, can you tell me, like, a fun fact about 11 Labs?",
                    "tool_calls": None,
                    "tool_results": None,
                    "feedback": None,
                    "time_in_call_secs": 2,
                    "conversation_turn_metrics": None,
                },
            ],
            "metadata": {
                "start_time_unix_secs": 1739537297,
                "call_duration_secs": 22,
                "cost": 296,
                "termination_reason": "",
            },
            "analysis": {
                "evaluation_criteria_results": {},
                "data_collection_results": {},
                "call_successful": "success",
                "transcript_summary": "…",
            },
            "conversation_initiation_client_data": {
                "conversation_config_override": {
                    "agent": {"prompt": None, "first_message": None, "language": "en"},
                    "tts": {"voice_id": None},
                },
                "custom_llm_extra_body": {},
                "dynamic_variables": {"user_name": "angelo"},
            },
        },
    }
    [twilio_busy] = parse_event(json.dumps(busy).encode())
    [sip_busy] = parse_event(json.dumps(sip).encode())
    [done] = parse_event(json.dumps(transcription).encode())
    for event in (twilio_busy, sip_busy):
        assert (event.attempt_id, event.call_id) == (None, "abc")
        assert (event.result.status, event.result.failure_reason) == (CallStatus.busy, "busy")
    assert "Busy here" in (sip_busy.result.message or "")
    assert twilio_busy.result.ended_at == datetime.fromtimestamp(1759931652, UTC)
    # The workspace webhooks page types event_timestamp as a string: read either way.
    as_text = {**busy, "event_timestamp": "1759931652"}
    [event] = parse_event(json.dumps(as_text).encode())
    assert event.result.ended_at == twilio_busy.result.ended_at
    [event] = parse_event(json.dumps({**busy, "event_timestamp": "2025-10-08T13:54:12Z"}).encode())
    assert event.result.ended_at is None and event.result.failure_reason == "busy"
    # No batch_attempt_id: the conversation's user_id is all there is.
    assert (done.attempt_id, done.call_id, done.result.status) == (
        "user123",
        "abc",
        CallStatus.completed,
    )
    assert done.result.duration_seconds == 22 and len(done.result.transcript or []) == 2


@pytest.mark.parametrize(
    ("reason", "meta_type", "body", "outcome"),
    [
        ("busy", "twilio", {"CallStatus": "busy", "SipResponseCode": "603"}, Outcome.declined),
        ("unknown", "sip", {"sip_status_code": 603}, Outcome.declined),
        ("unknown", "sip", {"sip_status_code": 486}, Outcome.busy),
        ("unknown", "sip", {"sip_status_code": 480}, Outcome.no_answer),
        (
            "unknown",
            "twilio",
            {"CallStatus": "failed", "SipResponseCode": "404"},
            Outcome.invalid_number,
        ),
        ("unknown", "sip", {"sip_status_code": 503}, Outcome.provider_error),
        ("unknown", None, None, Outcome.provider_error),
        (
            "no-answer",
            "twilio",
            {"CallStatus": "no-answer", "SipResponseCode": "487"},
            Outcome.no_answer,
        ),
    ],
)
def test_sip_codes_refine_an_initiation_failure(
    reason: str, meta_type: str | None, body: dict[str, Any] | None, outcome: Outcome
) -> None:
    data: dict[str, Any] = {"agent_id": "a", "conversation_id": "c", "failure_reason": reason}
    if meta_type:
        data["metadata"] = {"type": meta_type, "body": body}
    [event] = parse_event(json.dumps({"type": "call_initiation_failure", "data": data}).encode())
    assert event.result.failure_reason == outcome.value


# --- credentials -------------------------------------------------------------------------------


def test_credentials_never_reach_a_message_or_a_log_line(
    account: Account, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake = account.fake
    provider = account.provider()
    fake.fail_next(1, 500)
    fake.fail_next(1, 429)
    fake.lose_next(1)
    results = [place(provider, account.request(f"+1415555270{n}"))[0] for n in range(4)]
    texts = [str(r) for r in results] + [repr(provider), caplog.text]
    for secret in (fake.api_key, fake.webhook_secret):
        assert all(secret not in text for text in texts)


def test_the_fake_checks_what_it_is_sent(account: Account) -> None:
    """The fake refuses what ElevenLabs would (or what the docs do not describe), so the field
    assertions above are made against a strict reader."""
    fake = account.fake
    good = {
        "agent_id": account.agent_id,
        "agent_phone_number_id": account.number_id,
        "to_number": "+14155552801",
        "conversation_initiation_client_data": {"dynamic_variables": {"a": 1}},
    }
    url = f"{fake.base_url}/v1/convai/twilio/outbound-call"
    headers = {"xi-api-key": fake.api_key}

    def post(body: Any, **extra: Any) -> httpx.Response:
        return httpx.post(url, json=body, headers=extra.pop("headers", headers), timeout=5, **extra)

    assert post(good).status_code == 200
    assert post(good, headers={}).json() == {
        "detail": {"status": "invalid_api_key", "message": "Invalid API key"}
    }
    cases = [
        ({k: v for k, v in good.items() if k != "to_number"}, ["body", "to_number"]),
        ({**good, "metadata": {"attempt": "x"}}, ["body", "metadata"]),
        (
            {
                **good,
                "conversation_initiation_client_data": {"dynamic_variables": {"system__x": "1"}},
            },
            ["body", "conversation_initiation_client_data", "dynamic_variables", "system__x"],
        ),
        (
            {**good, "conversation_initiation_client_data": {"dynamic_variables": {"v": [1]}}},
            ["body", "conversation_initiation_client_data", "dynamic_variables", "v"],
        ),
        (
            {**good, "telephony_call_config": {"ringing_timeout_secs": 2.5}},
            ["body", "telephony_call_config", "ringing_timeout_secs"],
        ),
    ]
    for body, loc in cases:
        answer = post(body)
        assert answer.status_code == 422, body
        assert [e["loc"] for e in answer.json()["detail"]] == [loc]
    sip_from_twilio_endpoint = post({**good, "agent_phone_number_id": account.sip_number_id})
    assert sip_from_twilio_endpoint.status_code == 400
    assert len(fake.calls) == 1
