"""Self-tests of the Twilio fake, driven through the real `twilio` client (pointed at the fake by
BaseUrlHttpClient) and a local callback receiver whose requests are checked with the library's
own RequestValidator."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import requests
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from tests.fakes.twilio import (
    BaseUrlHttpClient,
    CallbackBehaviour,
    CallbackRecorder,
    TwilioFake,
    twilio_signature,
)

CALLER = "+15005550006"
ALL_EVENTS = ["initiated", "ringing", "answered", "completed"]
STREAM_TWIML = (
    "<Response><Connect>"
    '<Stream url="wss://dialer.example.com/media/stream">'
    '<Parameter name="attempt_id" value="att_0001"/>'
    "</Stream></Connect></Response>"
)
SID = re.compile(r"^(AC|CA|PN)[0-9a-f]{32}$")


@pytest.fixture
def fake() -> Iterator[TwilioFake]:
    with TwilioFake(numbers=[CALLER], time_scale=0.01) as running:
        yield running


@pytest.fixture
def manual() -> Iterator[TwilioFake]:
    with TwilioFake(numbers=[CALLER], mode="manual") as running:
        yield running


@pytest.fixture
def receiver() -> Iterator[CallbackRecorder]:
    with CallbackRecorder() as recorder:
        yield recorder


def client_for(fake: TwilioFake, token: str | None = None, timeout: float = 5) -> Client:
    if token is None:
        return fake.client(timeout=timeout)
    return Client(
        fake.account_sid, token, http_client=BaseUrlHttpClient(fake.base_url, timeout=timeout)
    )


def create(client: Client, to: str = "+15551230001", **kwargs: object):
    kwargs.setdefault("twiml", STREAM_TWIML)
    return client.calls.create(to=to, from_=CALLER, **kwargs)


def valid(fake: TwilioFake, received) -> bool:
    return RequestValidator(fake.auth_token).validate(
        received.url, received.form, received.signature
    )


# ---- the signature scheme ---------------------------------------------------------------------


def test_own_signature_is_accepted_by_the_library_validator() -> None:
    validator = RequestValidator("12345")
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+12349013030",
        "Digits": "1234",
        "From": "+12349013030",
        "To": "+18005551212",
    }
    for url in (
        "https://mycompany.com/myapp.php?foo=1&bar=2",
        "http://127.0.0.1:8080/twilio/status",
        "https://dialer.example.com/twilio/status?tenant=7&attempt=a%20b",
    ):
        signature = twilio_signature("12345", url, params.items())
        assert validator.validate(url, params, signature)
        assert not validator.validate(url + "x", params, signature)
    # the worked example that circulates with Twilio's "validating requests" section
    assert (
        twilio_signature("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", params.items())
        == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    )


# ---- REST: create, fetch, hang up, account, numbers ---------------------------------------------


def test_create_answers_201_with_a_queued_call_and_records_every_field(manual: TwilioFake) -> None:
    client = client_for(manual)
    call = create(
        client,
        timeout=25,
        status_callback="http://127.0.0.1:9/twilio/status?tenant=7",
        status_callback_event=ALL_EVENTS,
        status_callback_method="POST",
        machine_detection="DetectMessageEnd",
        async_amd="true",
        async_amd_status_callback="http://127.0.0.1:9/twilio/amd",
        time_limit=600,
    )
    assert client.http_client.last_response.status_code == 201
    assert SID.match(call.sid) and call.sid.startswith("CA")
    assert call.account_sid == manual.account_sid
    assert (call.to, call._from, call.status) == ("+15551230001", CALLER, "queued")
    assert call.direction == "outbound-api"
    assert call.api_version == "2010-04-01"
    assert call.uri == f"/2010-04-01/Accounts/{manual.account_sid}/Calls/{call.sid}.json"
    assert isinstance(call.date_created, datetime) and call.date_created.tzinfo == UTC
    assert call.duration is None and call.answered_by is None and call.start_time is None

    [request] = manual.create_attempts
    assert request.auth == (manual.account_sid, manual.auth_token)
    assert request.getall("StatusCallbackEvent") == ALL_EVENTS
    assert request.get("Twiml") == STREAM_TWIML
    recorded = manual.call(call.sid)
    assert recorded.twiml == STREAM_TWIML
    assert recorded.param("Timeout") == "25"
    assert recorded.param("TimeLimit") == "600"
    assert recorded.machine_detection == "DetectMessageEnd" and recorded.async_amd
    assert recorded.status_callback_events == ALL_EVENTS
    assert call.phone_number_sid == recorded.phone_number_sid
    assert SID.match(call.phone_number_sid or "") and call.phone_number_sid.startswith("PN")


def test_fetch_follows_the_call_to_its_end(manual: TwilioFake) -> None:
    client = client_for(manual)
    manual.script("+15551230001", duration=42)
    sid = create(client).sid
    assert manual.advance(sid) == "initiated"
    fetched = client.calls(sid).fetch()
    assert fetched.status == "queued" and fetched.start_time is not None
    assert manual.advance(sid) == "ringing"
    assert client.calls(sid).fetch().status == "ringing"
    assert manual.advance(sid) == "answered"
    assert client.calls(sid).fetch().status == "in-progress"
    assert manual.advance(sid) == "completed"
    assert manual.advance(sid) is None
    done = client.calls(sid).fetch()
    assert (done.status, done.duration, done.answered_by) == ("completed", "42", None)
    assert (done.end_time - done.start_time).total_seconds() >= 42


def test_hang_up_and_cancel(manual: TwilioFake) -> None:
    client = client_for(manual)
    talking, ringing, queued, busy = (create(client).sid for _ in range(4))
    for _ in range(3):
        manual.advance(talking)
    manual.advance(ringing)
    manual.advance(ringing)

    assert client.calls(talking).update(status="canceled").status == "in-progress"
    assert client.calls(talking).update(status="completed").status == "completed"
    assert client.calls(ringing).update(status="canceled").status == "canceled"
    assert client.calls(queued).update(status="completed").status == "canceled"
    manual.finish(busy, "busy")
    assert client.calls(busy).update(status="completed").status == "busy"

    assert [(h.call_sid, h.requested, h.status_before, h.status_after) for h in manual.hangups] == [
        (talking, "canceled", "in-progress", "in-progress"),
        (talking, "completed", "in-progress", "completed"),
        (ringing, "canceled", "ringing", "canceled"),
        (queued, "completed", "queued", "canceled"),
        (busy, "completed", "busy", "busy"),
    ]
    assert manual.call(talking).ended_by == "api"
    with pytest.raises(TwilioRestException) as raised:
        client.calls(busy).update(twiml="<Response/>")
    assert (raised.value.status, raised.value.code) == (400, 21220)


def test_unknown_call_is_404_with_twilio_error_body(fake: TwilioFake) -> None:
    client = client_for(fake)
    with pytest.raises(TwilioRestException) as raised:
        client.calls("CA" + "0" * 32).fetch()
    assert (raised.value.status, raised.value.code) == (404, 20404)
    body = client.http_client.last_response.text
    assert '"more_info": "https://www.twilio.com/docs/errors/20404"' in body


def test_wrong_credentials_are_401_20003(fake: TwilioFake) -> None:
    with pytest.raises(TwilioRestException) as raised:
        create(client_for(fake, token="not-the-token"))
    assert (raised.value.status, raised.value.code) == (401, 20003)
    assert "Authenticate" in raised.value.msg
    other = Client("AC" + "1" * 32, fake.auth_token, http_client=BaseUrlHttpClient(fake.base_url))
    with pytest.raises(TwilioRestException) as raised:
        other.api.v2010.accounts("AC" + "1" * 32).fetch()
    assert raised.value.code == 20003
    assert fake.calls == []


def test_account_fetch(fake: TwilioFake) -> None:
    account = client_for(fake).api.v2010.accounts(fake.account_sid).fetch()
    assert account.sid == fake.account_sid and account.status == "active"
    assert account.friendly_name == fake.friendly_name
    assert account.subresource_uris["calls"].endswith(f"/Accounts/{fake.account_sid}/Calls.json")


def test_incoming_numbers_list_reads_two_pages(fake: TwilioFake) -> None:
    fake.add_number("+15005550007", friendly_name="Sales line")
    fake.add_number("+442071838750", capabilities={"voice": True, "sms": False, "mms": False})
    client = client_for(fake)

    numbers = client.incoming_phone_numbers.list(page_size=2)
    assert [n.phone_number for n in numbers] == [CALLER, "+15005550007", "+442071838750"]
    assert all(SID.match(n.sid) and n.sid.startswith("PN") for n in numbers)
    assert numbers[0].friendly_name == "(500) 555-0006"
    assert numbers[1].friendly_name == "Sales line"
    assert numbers[2].capabilities == {"voice": True, "sms": False, "mms": False}
    first, second = fake.requests_for("list_numbers")
    assert first.query == {"PageSize": ["2"]}
    assert second.query["Page"] == ["1"] and second.query["PageToken"] == ["PA" + numbers[1].sid]

    page = client.incoming_phone_numbers.page(page_size=2)
    assert page.next_page_url is not None and page.previous_page_url is None
    following = page.next_page()
    assert [n.phone_number for n in following] == ["+442071838750"]
    assert following.next_page_url is None and following.previous_page_url is not None


# ---- faults ------------------------------------------------------------------------------------


def test_429_carries_retry_after_and_creates_nothing(fake: TwilioFake) -> None:
    client = client_for(fake)
    fake.fail_next(2, status=429, retry_after=3)
    for _ in range(2):
        with pytest.raises(TwilioRestException) as raised:
            create(client)
        assert (raised.value.status, raised.value.code) == (429, 20429)
        assert client.http_client.last_response.headers["Retry-After"] == "3"
    create(client)
    assert len(fake.calls) == 1
    assert [r.status for r in fake.create_attempts] == [429, 429, 201]
    assert [r.fault for r in fake.create_attempts] == ["error", "error", None]


@pytest.mark.parametrize(("status", "code"), [(500, 20500), (503, 20503)])
def test_server_errors_with_retry_after(fake: TwilioFake, status: int, code: int) -> None:
    client = client_for(fake)
    fake.fail_next(1, status=status, retry_after=7, operation=None)
    with pytest.raises(TwilioRestException) as raised:
        client.api.v2010.accounts(fake.account_sid).fetch()
    assert (raised.value.status, raised.value.code) == (status, code)
    assert client.http_client.last_response.headers["Retry-After"] == "7"


def test_lost_answer_still_places_the_call(fake: TwilioFake, receiver: CallbackRecorder) -> None:
    client = client_for(fake)
    fake.lose_next()
    with pytest.raises(requests.exceptions.ConnectionError):
        create(client, status_callback=receiver.url())
    assert client.http_client.last_response is None
    [call] = fake.calls
    assert fake.create_attempts[0].status is None and fake.create_attempts[0].call_sid == call.sid
    [completed] = receiver.wait_for(1)
    assert completed.form["CallSid"] == call.sid and completed.form["CallStatus"] == "completed"


def test_slow_answer_trips_the_client_timeout(fake: TwilioFake) -> None:
    client = client_for(fake, timeout=0.3)
    fake.slow_next(seconds=1.0)
    with pytest.raises(requests.exceptions.Timeout):
        create(client)
    assert len(fake.calls) == 1  # the call was placed all the same


# ---- status callbacks ---------------------------------------------------------------------------


def test_callbacks_follow_the_call_and_are_signed(
    fake: TwilioFake, receiver: CallbackRecorder
) -> None:
    client = client_for(fake)
    fake.script("+15551230001", duration=12, answered_by="machine_start")
    url = receiver.url("/twilio/status?tenant=7")
    sid = create(
        client, status_callback=url, status_callback_event=ALL_EVENTS, machine_detection="Enable"
    ).sid
    got = receiver.wait_for(4)
    fake.wait_idle()

    assert [r.form["CallStatus"] for r in got] == [
        "initiated",
        "ringing",
        "in-progress",
        "completed",
    ]
    assert [r.form["SequenceNumber"] for r in got] == ["0", "1", "2", "3"]
    for received in got:
        form = received.form
        assert received.url == url and valid(fake, received)
        assert form["CallSid"] == sid and form["AccountSid"] == fake.account_sid
        assert (form["From"], form["To"]) == (CALLER, "+15551230001")
        assert (form["Direction"], form["ApiVersion"]) == ("outbound-api", "2010-04-01")
        assert form["CallbackSource"] == "call-progress-events"
        assert datetime.strptime(form["Timestamp"], "%a, %d %b %Y %H:%M:%S %z")
    assert "CallDuration" not in got[2].form and got[3].form["CallDuration"] == "12"
    assert "AnsweredBy" not in got[1].form
    assert got[2].form["AnsweredBy"] == got[3].form["AnsweredBy"] == "machine_start"
    fetched = client.calls(sid).fetch()
    assert (fetched.answered_by, fetched.duration) == ("machine_start", "12")


def test_status_callback_alone_sends_only_completed(
    fake: TwilioFake, receiver: CallbackRecorder
) -> None:
    fake.script("+15551230001", answered_by="fax")  # no MachineDetection asked: not reported
    sid = create(client_for(fake), status_callback=receiver.url()).sid
    fake.wait_idle()
    [only] = receiver.received
    assert only.form["CallStatus"] == "completed" and only.form["SequenceNumber"] == "0"
    assert "AnsweredBy" not in only.form
    assert fake.call(sid).answered_by is None


def test_async_amd_result_goes_to_its_own_callback(
    fake: TwilioFake, receiver: CallbackRecorder
) -> None:
    fake.script("+15551230001", answered_by="machine_end_beep", amd_seconds=2.5)
    create(
        client_for(fake),
        machine_detection="DetectMessageEnd",
        async_amd="true",
        async_amd_status_callback=receiver.url("/twilio/amd"),
    )
    [amd] = receiver.wait_for(1)
    assert amd.path == "/twilio/amd" and valid(fake, amd)
    assert amd.form["AnsweredBy"] == "machine_end_beep"
    assert amd.form["MachineDetectionDuration"] == "2500"


@pytest.mark.parametrize(
    ("outcome", "extra", "error_code"),
    [
        ("busy", {}, None),
        ("no-answer", {}, None),
        ("canceled", {}, None),
        ("failed", {}, 21214),
        ("failed", {"error_code": 13224}, 13224),
    ],
)
def test_unanswered_outcomes(
    manual: TwilioFake,
    receiver: CallbackRecorder,
    outcome: str,
    extra: dict,
    error_code: int | None,
) -> None:
    client = client_for(manual)
    manual.script("+15551230009", outcome=outcome, **extra)
    sid = create(
        client, to="+15551230009", status_callback=receiver.url(), status_callback_event=ALL_EVENTS
    ).sid
    manual.finish(sid)
    events = [r.form["CallStatus"] for r in receiver.received]
    assert events[-1] == outcome
    assert "in-progress" not in events
    assert receiver.received[-1].form["CallDuration"] == "0"
    fetched = client.calls(sid).fetch()
    assert (fetched.status, fetched.duration, fetched.end_time) == (outcome, None, None)
    notes = client.calls(sid).notifications.list()
    assert [n.error_code for n in notes] == ([str(error_code)] if error_code else [])


def test_duplicated_callbacks(manual: TwilioFake, receiver: CallbackRecorder) -> None:
    manual.set_callback_behaviour(duplicate=True)
    sid = create(
        client_for(manual), status_callback=receiver.url(), status_callback_event=ALL_EVENTS
    ).sid
    manual.finish(sid)
    got = receiver.received
    assert [r.form["SequenceNumber"] for r in got] == ["0", "0", "1", "1", "2", "2", "3", "3"]
    assert all(valid(manual, r) for r in got)
    assert got[0].form == got[1].form and got[0].signature == got[1].signature


def test_out_of_order_callbacks(manual: TwilioFake, receiver: CallbackRecorder) -> None:
    manual.script("+15551230002", callbacks=CallbackBehaviour(out_of_order=True))
    sid = create(
        client_for(manual),
        to="+15551230002",
        status_callback=receiver.url(),
        status_callback_event=ALL_EVENTS,
    ).sid
    for _ in range(3):
        manual.advance(sid)
    assert receiver.received == []  # held back until the call ends
    manual.advance(sid)
    got = receiver.wait_for(4)
    assert [r.form["CallStatus"] for r in got] == [
        "completed",
        "in-progress",
        "ringing",
        "initiated",
    ]
    assert [r.form["SequenceNumber"] for r in got] == ["3", "2", "1", "0"]


def test_unsigned_and_wrongly_signed_callbacks(
    manual: TwilioFake, receiver: CallbackRecorder
) -> None:
    client = client_for(manual)
    manual.set_callback_behaviour(unsigned=True)
    manual.finish(create(client, status_callback=receiver.url()).sid)
    manual.set_callback_behaviour(unsigned=False, sign_for_url="https://elsewhere.example.com/x")
    manual.finish(create(client, status_callback=receiver.url()).sid)
    unsigned, wrong = receiver.received
    assert unsigned.signature is None
    assert wrong.signature is not None and not valid(manual, wrong)
    assert RequestValidator(manual.auth_token).validate(
        "https://elsewhere.example.com/x", wrong.form, wrong.signature
    )


def test_dropped_callbacks_leave_only_the_fetch(
    fake: TwilioFake, receiver: CallbackRecorder
) -> None:
    client = client_for(fake)
    fake.set_callback_behaviour(drop={"completed"})
    sid = create(client, status_callback=receiver.url(), status_callback_event=ALL_EVENTS).sid
    fake.wait_idle()
    assert [r.form["CallStatus"] for r in receiver.received] == [
        "initiated",
        "ringing",
        "in-progress",
    ]
    assert [d.dropped for d in fake.deliveries_for(sid)] == [False, False, False, True]
    assert client.calls(sid).fetch().status == "completed"


def test_get_status_callbacks_are_signed_over_the_query(
    manual: TwilioFake, receiver: CallbackRecorder
) -> None:
    sid = create(
        client_for(manual), status_callback=receiver.url("/cb?x=1"), status_callback_method="GET"
    ).sid
    manual.finish(sid)
    [got] = receiver.received
    assert got.method == "GET" and got.form["x"] == "1" and got.form["CallSid"] == sid
    assert RequestValidator(manual.auth_token).validate(got.url, {}, got.signature)


def test_public_callback_urls_are_signed_as_given_and_sent_to_loopback(
    receiver: CallbackRecorder,
) -> None:
    public = "https://dialer.example.com/twilio/status?tenant=7"
    local = receiver.url("/twilio/status?tenant=7")
    with TwilioFake(mode="manual", callback_target=lambda url: url.replace(public, local)) as fake:
        sid = create(client_for(fake), status_callback=public).sid
        fake.finish(sid)
        [got] = receiver.received
        assert RequestValidator(fake.auth_token).validate(public, got.form, got.signature)
    with TwilioFake(mode="manual") as fake:
        sid = create(client_for(fake), status_callback=public).sid
        fake.finish(sid)
        [delivery] = fake.deliveries_for(sid)
        assert delivery.status is None and "loopback" in (delivery.error or "")
    assert len(receiver.received) == 1


def test_callee_hang_up_and_scaled_duration(fake: TwilioFake, receiver: CallbackRecorder) -> None:
    fake.script("+15551230003", duration=300)  # 3 s real at time_scale 0.01
    sid = create(client_for(fake), to="+15551230003", status_callback=receiver.url()).sid
    fake.wait_for_status(sid, "in-progress", timeout=5)
    ended = fake.hang_up(sid, duration=17)
    assert (ended.status, ended.duration, ended.ended_by) == ("completed", 17, "test")
    assert receiver.wait_for(1)[0].form["CallDuration"] == "17"


# ---- validation, pacing, concurrency ------------------------------------------------------------


def test_create_is_validated_like_the_calls_resource(fake: TwilioFake) -> None:
    client = client_for(fake)
    cases = [
        ({"twiml": None, "url": None}, 21200),
        ({"url": "not a url", "twiml": None}, 21205),
        ({"status_callback_event": ["answered", "hungup"]}, 21626),
        ({"status_callback_method": "PUT"}, 21200),
    ]
    for kwargs, code in cases:
        with pytest.raises(TwilioRestException) as raised:
            client.calls.create(
                to="+15551230001", from_=CALLER, **{"twiml": STREAM_TWIML, **kwargs}
            )
        assert (raised.value.status, raised.value.code) == (400, code)
    assert fake.calls == []


def test_create_times_record_pacing(fake: TwilioFake) -> None:
    client = client_for(fake)
    for _ in range(3):
        create(client)
    times = fake.create_times()
    assert len(times) == 3
    assert [m for m, _ in times] == sorted(m for m, _ in times)
    assert all(w.tzinfo == UTC for _, w in times)
    assert [r.monotonic for r in fake.create_attempts] == [m for m, _ in times]


def test_concurrent_creates_from_many_threads(fake: TwilioFake, receiver: CallbackRecorder) -> None:
    client = client_for(fake)
    sids: list[str] = []
    lock = threading.Lock()

    def place(index: int) -> None:
        sid = create(client, to=f"+1555123{index:04d}", status_callback=receiver.url()).sid
        with lock:
            sids.append(sid)

    threads = [threading.Thread(target=place, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(sids)) == 16
    receiver.wait_for(16)
    fake.wait_idle()
    assert {r.form["CallSid"] for r in receiver.received} == set(sids)
    assert all(valid(fake, r) for r in receiver.received)


def test_base_url_client_rewrites_only_twilio_hosts() -> None:
    http = BaseUrlHttpClient("http://127.0.0.1:8123/prefix/")
    assert (
        http.rewrite("https://api.twilio.com/2010-04-01/Accounts/AC1.json?Page=1")
        == "http://127.0.0.1:8123/prefix/2010-04-01/Accounts/AC1.json?Page=1"
    )
    assert http.rewrite("https://api.us1.twilio.com/x") == "http://127.0.0.1:8123/prefix/x"
    assert http.rewrite("https://example.com/x") == "https://example.com/x"
    with pytest.raises(ValueError):
        BaseUrlHttpClient("127.0.0.1:8123")
