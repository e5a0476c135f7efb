"""Twilio end to end against a local fake of its documented API (tests/fakes/twilio.py), driven
through the real `twilio` client: connection, import of numbers, a batch dialed by the real
dialer, status callbacks signed as Twilio signs them and recorded by the real API (SQLite and
PostgreSQL)."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import select, text
from standardwebhooks import Webhook
from twilio.request_validator import RequestValidator

from batch_dashboard.db import session_scope
from batch_dashboard.models import Connection, Recipient
from batch_dashboard.providers.twilio import TwilioProvider
from batch_dashboard.services import agents
from batch_dashboard.settings import get_settings, reload_settings
from batch_dashboard.worker.dialer import Dialer
from tests.conftest import Tenant
from tests.fakes.twilio import Script, twilio_signature
from tests.providers.twilio_setup import (
    CALLER,
    PUBLIC,
    STREAM,
    ApiServer,
    Setup,
    batch_status,
    connect,
    create_batch,
    fake_account,
)


@pytest.fixture
def twilio(tenant: Tenant, monkeypatch: pytest.MonkeyPatch) -> Iterator[Setup]:
    monkeypatch.setenv("BATCH_PUBLIC_URL", PUBLIC)
    monkeypatch.setenv("BATCH_LEASE_SECONDS", "2")
    reload_settings()
    # Callbacks do the work; the fallback poll is quick here so a lost callback settles fast.
    monkeypatch.setattr(TwilioProvider, "poll_interval", 0.3)
    with ApiServer() as api, fake_account(api, time_scale=0.01) as fake:
        yield connect(tenant, fake, api)


def run_dialer(until, timeout: float = 20.0) -> Dialer:
    """The real dialer loop until `until()` holds (checked between its passes)."""

    async def main() -> Dialer:
        dialer = Dialer(settings=get_settings())
        stop = asyncio.Event()
        task = asyncio.create_task(dialer.run(stop))
        deadline = time.monotonic() + timeout
        while not await asyncio.to_thread(until):
            assert time.monotonic() < deadline, "the batch did not end in time"
            await dialer.recover_expired()
            await asyncio.sleep(0.1)
        stop.set()
        await task
        await dialer.registry.aclose()
        return dialer

    return asyncio.run(main())


def finished(setup: Setup, batch_id: str):
    return lambda: batch_status(setup, batch_id)["batch_call"]["status"] == "completed"


def test_a_batch_on_twilio_ends_with_the_right_outcomes(twilio: Setup) -> None:
    fake = twilio.fake
    outcomes = {
        "+14155552001": Script(outcome="completed", duration=30),
        "+14155552002": Script(outcome="busy"),
        "+14155552003": Script(outcome="no-answer", ring_seconds=5),
        "+14155552004": Script(outcome="failed", error_code=13224),
        "+14155552005": Script(outcome="completed", answered_by="machine_end_beep"),
        "+14155552006": Script(outcome="failed", error_code=30005),
    }
    for phone, script in outcomes.items():
        fake.script(phone, **script.__dict__)
    batch = create_batch(
        twilio, list(outcomes), ringing_timeout_ms=25_000, voicemail={"action": "hang_up"}
    )
    run_dialer(finished(twilio, batch["id"]))
    detail = batch_status(twilio, batch["id"])
    got = {r["phone"]: (r["status"], r["failure_reason"]) for r in detail["recipients"]}
    assert got == {
        "+14155552001": ("completed", None),
        "+14155552002": ("failed", "busy"),
        "+14155552003": ("failed", "no_answer"),
        "+14155552004": ("failed", "invalid_number"),
        "+14155552005": ("failed", "voicemail"),
        "+14155552006": ("failed", "provider_error"),
    }
    assert detail["batch_call"]["counts"]["completed"] == 1
    # What the adapter sent, field by field, against Twilio's documented names.
    creates = fake.create_attempts
    assert len(creates) == len(outcomes) == len(fake.calls)  # each number dialed once
    with session_scope() as session:
        stored = dict(session.execute(select(Recipient.phone, Recipient.provider_call_id)).all())
    for call in fake.calls:
        assert stored[call.to] == call.sid  # the sid was stored against the attempt
        assert call.param("From") == CALLER
        assert call.param("Timeout") == "25"
        assert call.status_callback_method == "POST"
        assert call.status_callback_events == ["initiated", "ringing", "answered", "completed"]
        assert call.machine_detection == "Enable"
        callback = urlsplit(call.status_callback)
        assert f"{callback.scheme}://{callback.netloc}" == PUBLIC
        assert callback.path == f"/v1/provider-events/twilio/{twilio.connection['id']}"
        attempt_id = parse_qs(callback.query)["attempt_id"][0]
        twiml = call.twiml
        assert f'<Stream url="{STREAM}">' in twiml
        assert f'<Parameter name="attempt_id" value="{attempt_id}"/>' in twiml
        assert '<Parameter name="appointment_time" value="3pm"/>' in twiml
        assert '<Parameter name="voicemail_action" value="hang_up"/>' in twiml
    first = fake.calls_to("+14155552001")[0]
    assert '<Parameter name="first_message" value="Hi P0!"/>' in first.twiml
    assert '<Parameter name="prompt" value="Remind P0 of 3pm."/>' in first.twiml
    # Every callback was signed as Twilio signs them and accepted.
    delivered = [d for d in fake.deliveries if not d.dropped]
    assert delivered and all(d.status == 200 for d in delivered)
    for delivery in delivered[:3]:
        assert RequestValidator(fake.auth_token).validate(
            delivery.url, delivery.form, delivery.signature
        )


def test_bad_callbacks_change_nothing(twilio: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    # The dialer places the call and leaves at once: only the callbacks below may settle it.
    monkeypatch.setattr(TwilioProvider, "poll_interval", 600)
    monkeypatch.setenv("BATCH_SHUTDOWN_GRACE_SECONDS", "0")
    monkeypatch.setenv("BATCH_LEASE_SECONDS", "600")
    reload_settings()
    fake = twilio.fake
    fake.script("+14155552011", outcome="busy")
    batch = create_batch(twilio, ["+14155552011"])
    fake.set_callback_behaviour(drop=True)
    run_dialer(lambda: bool(fake.calls))
    [call] = fake.calls
    fake.wait_for_status(call.sid, "busy")
    path = urlsplit(call.status_callback)
    url = f"{twilio.api.url}{path.path}?{path.query}"
    form = {"CallSid": call.sid, "AccountSid": fake.account_sid, "CallStatus": "busy"}

    def send(signature: str | None) -> httpx.Response:
        headers = {"X-Twilio-Signature": signature} if signature else {}
        return httpx.post(url, data=form, headers=headers, timeout=10)

    signed_url = f"{PUBLIC}{path.path}?{path.query}"
    assert send(None).status_code == 401
    assert send("bm90IGEgc2lnbmF0dXJl").status_code == 401
    wrong_url = twilio_signature(fake.auth_token, f"{PUBLIC}/elsewhere?{path.query}", form.items())
    assert send(wrong_url).status_code == 401
    wrong_token = twilio_signature("0" * 32, signed_url, form.items())
    assert send(wrong_token).status_code == 401
    assert batch_status(twilio, batch["id"])["recipients"][0]["status"] == "dialing"
    good = twilio_signature(fake.auth_token, signed_url, form.items())
    first, again = send(good), send(good)
    assert (first.status_code, first.json()) == (200, {"recorded": True})
    assert (again.status_code, again.json()) == (200, {"recorded": False})
    late = {**form, "CallStatus": "ringing"}
    answer = httpx.post(
        url,
        data=late,
        headers={"X-Twilio-Signature": twilio_signature(fake.auth_token, signed_url, late.items())},
        timeout=10,
    )
    assert answer.json() == {"recorded": False}  # an earlier event arriving last
    assert batch_status(twilio, batch["id"])["recipients"][0]["failure_reason"] == "busy"
    unknown = "/v1/provider-events/twilio/conn_nope"
    assert httpx.post(f"{twilio.api.url}{unknown}", data=form, timeout=10).status_code == 404


def test_duplicated_and_out_of_order_callbacks_record_each_call_once(twilio: Setup) -> None:
    fake = twilio.fake
    fake.set_callback_behaviour(duplicate=True, out_of_order=True)
    phones = [f"+141555520{20 + i}" for i in range(4)]
    batch = create_batch(twilio, phones)
    run_dialer(finished(twilio, batch["id"]))
    detail = batch_status(twilio, batch["id"])
    assert {r["status"] for r in detail["recipients"]} == {"completed"}
    assert detail["batch_call"]["counts"]["completed"] == 4
    with session_scope() as session:
        conversations = session.execute(text("SELECT count(*) FROM conversation")).scalar_one()
    assert conversations == 4


def test_a_callback_that_never_comes_is_settled_by_asking_twilio(twilio: Setup) -> None:
    fake = twilio.fake
    fake.set_callback_behaviour(drop=True)
    fake.script("+14155552031", outcome="no-answer")
    batch = create_batch(twilio, ["+14155552031"])
    run_dialer(finished(twilio, batch["id"]))
    [recipient] = batch_status(twilio, batch["id"])["recipients"]
    assert (recipient["status"], recipient["failure_reason"]) == ("failed", "no_answer")
    assert fake.requests_for("fetch_call")


@pytest.mark.parametrize("status", [429, 503])
def test_429_and_503_slow_the_account_down_without_failing_anyone(
    twilio: Setup, status: int
) -> None:
    fake = twilio.fake
    fake.fail_next(2, status=status, retry_after=1, operation="create_call")
    batch = create_batch(twilio, ["+14155552041", "+14155552042"])
    started = time.monotonic()
    run_dialer(finished(twilio, batch["id"]))
    detail = batch_status(twilio, batch["id"])
    assert {r["status"] for r in detail["recipients"]} == {"completed"}
    assert all(r["attempts"] == 1 for r in detail["recipients"])  # the refusals spent nothing
    assert len(fake.calls) == 2
    assert time.monotonic() - started >= 0.9  # Retry-After was honoured
    with session_scope() as session:
        account = session.get(Connection, twilio.connection["id"])
        assert account is not None and account.next_call_at is not None


def test_a_lost_answer_is_never_dialed_twice(twilio: Setup) -> None:
    fake = twilio.fake
    fake.lose_next(1, operation="create_call")
    fake.set_callback_behaviour(drop=True)
    batch = create_batch(twilio, ["+14155552051"])
    run_dialer(finished(twilio, batch["id"]))
    [recipient] = batch_status(twilio, batch["id"])["recipients"]
    # The call exists at Twilio, but its sid never reached us: nobody can say how it ended.
    assert (recipient["status"], recipient["failure_reason"]) == ("failed", "outcome_unknown")
    assert len(fake.calls_to("+14155552051")) == 1


def test_stop_with_hang_up_ends_live_twilio_calls(twilio: Setup) -> None:
    fake = twilio.fake
    fake.script("+14155552061", outcome="completed", duration=3000)
    batch = create_batch(twilio, ["+14155552061", "+14155552062"], max_concurrency=1)

    def live() -> bool:
        return bool(fake.calls) and fake.calls[0].status == "in-progress"

    async def main() -> None:
        dialer = Dialer(settings=get_settings())
        stop = asyncio.Event()
        task = asyncio.create_task(dialer.run(stop))
        deadline = time.monotonic() + 20
        while not await asyncio.to_thread(live):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        answer = await asyncio.to_thread(
            twilio.post, f"/v1/batch-calls/{batch['id']}/stop", json={"hang_up": True}
        )
        assert answer.status_code == 200 and answer.json()["stopping"] is True
        while batch_status(twilio, batch["id"])["batch_call"]["status"] != "cancelled":
            assert time.monotonic() < deadline, "the stopped batch did not end"
            await asyncio.sleep(0.1)
        stop.set()
        await task
        await dialer.registry.aclose()

    asyncio.run(main())
    assert [h.call_sid for h in fake.hangups] == [fake.calls[0].sid]
    assert len(fake.calls) == 1  # the second recipient was never dialed
    counts = batch_status(twilio, batch["id"])["batch_call"]["counts"]
    assert counts["cancelled"] == 1 and counts["dialing"] == 0


def test_credentials_never_reach_a_log_line_or_a_table(
    twilio: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    batch = create_batch(twilio, ["+14155552071"])
    run_dialer(finished(twilio, batch["id"]))
    assert twilio.post(f"/v1/connections/{twilio.connection['id']}/test").json() == {"ok": True}
    token = twilio.fake.auth_token
    assert token not in caplog.text
    with session_scope() as session:
        for table in ("connection", "phone_number", "agent", "recipient", "batch"):
            rows = session.execute(text(f"SELECT * FROM {table}")).all()
            assert token not in json.dumps([list(map(str, row)) for row in rows]), table


BOT_SECRET = "whsec_" + base64.b64encode(b"b" * 32).decode()


def _with_bot(twilio: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    """The connection takes its bot's results; the agent has a webhook (never sent here)."""
    monkeypatch.setenv("BATCH_WEBHOOK_ALLOW_PRIVATE_TARGETS", "true")
    reload_settings()
    answer = httpx.patch(
        f"{twilio.api.url}/v1/connections/{twilio.connection['id']}",
        headers=twilio.tenant.headers,
        json={"credentials": {"bot_secret": BOT_SECRET}},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["credentials"]["bot_secret"].startswith("…")
    with session_scope(write=True) as session:
        agents.set_webhook_url(
            session,
            workspace_id=twilio.tenant.workspace_id,
            agent_id=twilio.agent_id,
            webhook_url="http://127.0.0.1:9/hooks",
        )


def _post_result(twilio: Setup, attempt_id: str, *, signed: bool = True) -> httpx.Response:
    body = json.dumps(
        {
            "type": "call.status",
            "data": {
                "attempt_id": attempt_id,
                "status": "completed",
                "duration_seconds": 42,
                "transcript": [{"role": "agent", "message": "Hi P0!", "time_in_call_secs": 0}],
                "evaluations": {"confirmed": {"result": "success", "rationale": "Said yes."}},
                "data_collection": {"will_attend": {"value": True, "rationale": "Yes."}},
            },
        }
    )
    headers = {"content-type": "application/json"}
    if signed:
        message_id, moment = "msg_bot_1", datetime.now(UTC)
        headers |= {
            "webhook-id": message_id,
            "webhook-timestamp": str(int(moment.timestamp())),
            "webhook-signature": Webhook(BOT_SECRET).sign(message_id, moment, body),
        }
    url = f"{twilio.api.url}/v1/provider-events/twilio/{twilio.connection['id']}"
    return httpx.post(url, content=body, headers=headers, timeout=10)


def _attempt_of(phone: str) -> str:
    with session_scope() as session:
        return session.execute(
            select(Recipient.attempt_id).where(Recipient.phone == phone)
        ).scalar_one()


def test_the_bots_result_after_the_end_reaches_the_conversation_and_its_webhook(
    twilio: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    _with_bot(twilio, monkeypatch)
    phone = "+14155552081"
    batch = create_batch(twilio, [phone])
    run_dialer(finished(twilio, batch["id"]))
    attempt_id = _attempt_of(phone)
    with session_scope() as session:
        waiting = session.execute(
            text("SELECT next_attempt_at, payload FROM webhook_delivery")
        ).one()
    assert json.loads(waiting.payload)["data"]["transcript"] == []
    assert _post_result(twilio, attempt_id, signed=False).status_code == 401
    answer = _post_result(twilio, attempt_id)
    assert (answer.status_code, answer.json()) == (200, {"recorded": True})
    assert _post_result(twilio, attempt_id).json() == {"recorded": False}  # once only
    with session_scope() as session:
        conversation = session.execute(
            text("SELECT transcript, data_collection FROM conversation")
        ).one()
        payload = json.loads(
            session.execute(text("SELECT payload FROM webhook_delivery")).scalar_one()
        )
    assert "Hi P0!" in str(conversation.transcript)
    assert payload["type"] == "conversation.completed"
    assert payload["data"]["transcript"][0]["message"] == "Hi P0!"
    assert payload["data"]["data_collection"]["will_attend"]["value"] is True


def test_the_bots_result_before_twilios_end_records_the_call(
    twilio: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    _with_bot(twilio, monkeypatch)
    phone = "+14155552091"
    twilio.fake.script(phone, outcome="completed", duration=300)
    batch = create_batch(twilio, [phone])

    def live() -> bool:
        calls = twilio.fake.calls
        return bool(calls) and calls[0].status == "in-progress"

    async def main() -> None:
        dialer = Dialer(settings=get_settings())
        stop = asyncio.Event()
        task = asyncio.create_task(dialer.run(stop))
        deadline = time.monotonic() + 20
        while not await asyncio.to_thread(live):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        answer = await asyncio.to_thread(_post_result, twilio, _attempt_of(phone))
        assert answer.json() == {"recorded": True}
        while batch_status(twilio, batch["id"])["batch_call"]["status"] != "completed":
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        stop.set()
        await task
        await dialer.registry.aclose()

    asyncio.run(main())
    [recipient] = batch_status(twilio, batch["id"])["recipients"]
    assert recipient["status"] == "completed" and recipient["duration_seconds"] == 42
    twilio.fake.wait_for_status(twilio.fake.calls[0].sid, "completed", timeout=20)
    with session_scope() as session:
        payload = json.loads(
            session.execute(text("SELECT payload FROM webhook_delivery")).scalar_one()
        )
    assert payload["data"]["evaluations"]["confirmed"]["result"] == "success"


def test_a_connection_without_a_bot_secret_takes_no_results(twilio: Setup) -> None:
    assert _post_result(twilio, "att_x-0").status_code == 404
