"""Signed webhooks delivered at least once to a real receiver on loopback: signatures verified
with standardwebhooks, retries, 3xx, 410, 429, rotation, SSRF, and a crash before the send."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import select
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from batch_dashboard.clock import FrozenClock
from batch_dashboard.db import session_scope
from batch_dashboard.models import Agent, WebhookDelivery
from batch_dashboard.providers.base import CallResult, CallStatus
from batch_dashboard.services import agents, dialing, webhooks
from batch_dashboard.services.errors import ValidationFailed
from batch_dashboard.services.webhooks import TargetRefused, resolve_target
from batch_dashboard.settings import reload_settings
from batch_dashboard.worker import sender as sender_module
from batch_dashboard.worker.main import run_worker
from batch_dashboard.worker.sender import Sender, pinned_request
from tests.conftest import Tenant
from tests.worker import helpers
from tests.worker.helpers import batch_row
from tests.worker.processes import kill, start_worker, stop, wait_for
from tests.worker.receiver import Answer, Receiver

# Receivers verify webhook-timestamp against their own clock (5 minutes' tolerance), so these
# tests run at the real time: each test's own start, not the module's import (a long suite
# would otherwise reach these tests more than 5 minutes after collecting them).
START = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(autouse=True)
def start_now() -> None:
    global START
    START = datetime.now(UTC).replace(microsecond=0)


def make_batch(tenant: Tenant, count: int) -> dict:
    return helpers.make_batch(tenant, count, now=START)


def claim(limit: int) -> list[dialing.Claim]:
    return helpers.claim(limit=limit, now=START)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


@pytest.fixture
def private_targets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATCH_WEBHOOK_ALLOW_PRIVATE_TARGETS", "true")
    monkeypatch.setenv("BATCH_WEBHOOK_RETRY_SCHEDULE", "5,300,1800")
    reload_settings()


def hook_agent(tenant: Tenant, url: str) -> str:
    """Point the tenant's agent at `url`; returns its signing secret."""
    with session_scope(write=True) as session:
        agents.set_webhook_url(
            session, workspace_id=tenant.workspace_id, agent_id=tenant.agent_id, webhook_url=url
        )
        return agents.rotate_webhook_secret(
            session,
            workspace_id=tenant.workspace_id,
            agent_id=tenant.agent_id,
            now=START - timedelta(days=2),
        )


def end_calls(count: int, *, connected: bool = True) -> list[str]:
    claims = claim(limit=count)
    result = CallResult(
        status=CallStatus.completed if connected else CallStatus.busy,
        failure_reason=None if connected else "busy",
        started_at=START,
        ended_at=START + timedelta(seconds=12),
        duration_seconds=12.0 if connected else None,
        transcript=[{"role": "agent", "message": "Hi", "time_in_call_secs": 0}]
        if connected
        else None,
        evaluations={"ok": {"result": "success", "rationale": "yes"}} if connected else None,
        data_collection={"x": {"value": 1, "rationale": "said"}} if connected else None,
    )
    with session_scope(write=True) as session:
        dialing.record_outcomes(
            session, outcomes=[(c.attempt_id, result) for c in claims], now=START
        )
    return [c.recipient_id for c in claims]


def deliveries() -> list[WebhookDelivery]:
    with session_scope() as session:
        return list(session.exec(select(WebhookDelivery).order_by(WebhookDelivery.id)))


def send_due(clock: FrozenClock) -> list[str]:
    sender = Sender(clock=clock)

    async def run() -> list[str]:
        jobs = await asyncio.to_thread(sender._claim, 100)
        try:
            return list(await asyncio.gather(*(sender.deliver(job) for job in jobs)))
        finally:
            if sender._client is not None:
                await sender._client.aclose()

    return asyncio.run(run())


def test_each_ended_call_fires_one_signed_event(tenant, receiver, private_targets):
    secret = hook_agent(tenant, f"{receiver.url}/hooks")
    batch = make_batch(tenant, 3)
    completed_ids = end_calls(2)
    failed_ids = end_calls(1, connected=False)
    assert send_due(FrozenClock(START)) == ["delivered"] * 3
    got = receiver.received("/hooks")
    assert len(got) == 3
    events = []
    for request in got:
        payload = Webhook(secret).verify(request.body, request.headers)
        assert request.headers["webhook-id"].startswith("msg_")
        assert abs(int(request.headers["webhook-timestamp"]) - int(START.timestamp())) < 5
        events.append(payload)
    by_recipient = {e["data"]["recipient_id"]: e for e in events}
    for recipient_id in completed_ids:
        event = by_recipient[recipient_id]
        assert event["type"] == "conversation.completed"
        data = event["data"]
        assert data["conversation_id"].startswith("conv_")
        assert data["batch_id"] == batch["id"] and data["agent_id"] == tenant.agent_id
        assert data["phone"].startswith("+1415555")
        assert data["dynamic_vars"]["first_name"].startswith("P")
        assert data["duration_seconds"] == 12.0
        assert data["transcript"][0]["message"] == "Hi"
        assert data["evaluations"]["ok"]["result"] == "success"
        assert data["data_collection"]["x"]["value"] == 1
        assert data["started_at"].endswith("Z") and data["ended_at"].endswith("Z")
    failed = by_recipient[failed_ids[0]]
    assert failed["type"] == "call.failed"
    assert failed["data"]["failure_reason"] == "busy"
    assert "transcript" not in failed["data"] and failed["data"]["conversation_id"] is None
    assert send_due(FrozenClock(START + timedelta(hours=1))) == []  # nothing is sent twice


def test_no_webhook_url_means_no_deliveries(tenant, private_targets):
    make_batch(tenant, 2)
    end_calls(2)
    assert deliveries() == []


def test_a_failure_is_retried_with_the_same_webhook_id(tenant, receiver, private_targets):
    secret = hook_agent(tenant, f"{receiver.url}/flaky")
    make_batch(tenant, 1)
    end_calls(1)
    receiver.answer("/flaky", Answer(500), Answer(200))
    clock = FrozenClock(START)
    assert send_due(clock) == ["pending"]
    [delivery] = deliveries()
    assert delivery.attempt_count == 1 and delivery.attempts[0]["status_code"] == 500
    assert timedelta(seconds=5) <= delivery.next_attempt_at - START <= timedelta(seconds=5.5)
    assert send_due(clock) == []  # not due yet
    clock.advance(seconds=6)
    assert send_due(clock) == ["delivered"]
    first, second = receiver.received("/flaky")
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert first.headers["webhook-timestamp"] != second.headers["webhook-timestamp"]
    for request in (first, second):
        Webhook(secret).verify(request.body, request.headers)


def test_the_last_retry_leaves_a_visible_failure(tenant, receiver, private_targets):
    hook_agent(tenant, f"{receiver.url}/down")
    make_batch(tenant, 1)
    end_calls(1)
    receiver.answer("/down", *[Answer(503)] * 4)
    clock = FrozenClock(START)
    states = []
    for _ in range(4):
        states += send_due(clock)
        clock.advance(hours=1)
    assert states == ["pending", "pending", "pending", "failed"]
    [delivery] = deliveries()
    assert delivery.status == "failed" and delivery.attempt_count == 4


def test_3xx_is_a_failure_and_is_not_followed(tenant, receiver, private_targets):
    hook_agent(tenant, f"{receiver.url}/moved")
    make_batch(tenant, 1)
    end_calls(1)
    receiver.answer("/moved", Answer(302, {"location": f"{receiver.url}/elsewhere"}))
    assert send_due(FrozenClock(START)) == ["pending"]
    assert receiver.received("/elsewhere") == []
    [delivery] = deliveries()
    assert delivery.attempts[0]["status_code"] == 302
    assert "not followed" in delivery.attempts[0]["error"]


def test_410_disables_the_agents_webhook(tenant, receiver, private_targets):
    hook_agent(tenant, f"{receiver.url}/gone")
    make_batch(tenant, 3)
    end_calls(3)
    receiver.answer("/gone", Answer(410))
    clock = FrozenClock(START)
    sender = Sender(clock=clock)

    async def one() -> str:
        [job, *_rest] = await asyncio.to_thread(sender._claim, 1)
        return await sender.deliver(job)

    assert asyncio.run(one()) == "failed"
    assert {d.status for d in deliveries()} == {"failed"}  # the others are not sent either
    with session_scope() as session:
        agent = session.get(Agent, tenant.agent_id)
        assert "410" in agent.webhook_disabled_reason
    make_batch(tenant, 1)
    end_calls(1)
    assert len(deliveries()) == 3  # no new events for a disabled webhook
    hook_agent(tenant, f"{receiver.url}/back")  # setting the URL again re-enables it
    with session_scope() as session:
        assert session.get(Agent, tenant.agent_id).webhook_disabled_reason is None


def test_retry_after_is_honoured_on_429(tenant, receiver, private_targets):
    hook_agent(tenant, f"{receiver.url}/busy")
    make_batch(tenant, 1)
    end_calls(1)
    receiver.answer("/busy", Answer(429, {"retry-after": "120"}))
    send_due(FrozenClock(START))
    [delivery] = deliveries()
    assert delivery.next_attempt_at - START >= timedelta(seconds=120)


def test_a_timeout_is_a_failed_attempt(tenant, receiver, private_targets, monkeypatch):
    monkeypatch.setattr(webhooks, "SEND_TIMEOUT_SECONDS", 0.3)
    hook_agent(tenant, f"{receiver.url}/slow")
    make_batch(tenant, 1)
    end_calls(1)
    receiver.answer("/slow", Answer(200, delay=1.0))
    assert send_due(FrozenClock(START)) == ["pending"]
    [delivery] = deliveries()
    assert delivery.attempts[0]["status_code"] is None
    assert "no answer" in delivery.attempts[0]["error"]


def test_during_a_rotation_both_secrets_sign(tenant, receiver, private_targets):
    old = hook_agent(tenant, f"{receiver.url}/rotating")
    with session_scope(write=True) as session:
        new = agents.rotate_webhook_secret(
            session,
            workspace_id=tenant.workspace_id,
            agent_id=tenant.agent_id,
            now=START - timedelta(hours=23),
        )
    make_batch(tenant, 1)
    end_calls(1)
    send_due(FrozenClock(START))
    [request] = receiver.received("/rotating")
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    Webhook(old).verify(request.body, request.headers)
    Webhook(new).verify(request.body, request.headers)
    # 24 hours after the rotation only the new secret signs.
    with session_scope(write=True) as session:
        agent = session.get(Agent, tenant.agent_id)
        agent.webhook_secret_rotated_at = START - timedelta(hours=25)
        session.add(agent)
    helpers.make_batch(tenant, 1, now=START)
    end_calls(1)
    send_due(FrozenClock(START))
    later = receiver.received("/rotating")[-1]
    assert len(later.headers["webhook-signature"].split(" ")) == 1
    Webhook(new).verify(later.body, later.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(later.body, later.headers)


def test_one_slow_endpoint_does_not_delay_another(tenant, other_tenant, receiver, private_targets):
    hook_agent(tenant, f"{receiver.url}/slow")
    hook_agent(other_tenant, f"{receiver.url}/fast")
    receiver.answer("/slow", Answer(200, delay=2.0))
    make_batch(tenant, 1)
    make_batch(other_tenant, 1)
    end_calls(2)

    async def run() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(Sender().run(stop))
        deadline = time.monotonic() + 10
        while len(receiver.received()) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)
        fast_done = [d.status for d in deliveries() if d.url.endswith("/fast")]
        assert fast_done == ["delivered"]  # while /slow is still answering
        stop.set()
        await task

    asyncio.run(run())
    assert {d.status for d in deliveries()} == {"delivered"}


# --- SSRF -------------------------------------------------------------------------------------

REFUSED = [
    "http://example.com/hook",
    "https://127.0.0.1/hook",
    "https://localhost/hook",
    "https://10.0.0.8/hook",
    "https://172.16.5.4/hook",
    "https://192.168.1.1/hook",
    "https://169.254.169.254/latest/meta-data",
    "https://100.64.0.1/hook",
    "https://[::1]/hook",
    "https://[fc00::1]/hook",
    "https://[fd12:3456::1]/hook",
    "https://[::ffff:127.0.0.1]/hook",
    "https://[::ffff:10.0.0.1]/hook",
    "https://2130706433/hook",  # 127.0.0.1 written as one decimal number
    "https://0x7f000001/hook",
    "https://0/hook",
    "https://user:pw@example.com/hook",
    "ftp://example.com/hook",
    "https://[fe80::1]/hook",
    # IPv6 forms that reach a blocked IPv4 host: 6to4, NAT64, Teredo, IPv4-compatible.
    "https://[2002:7f00:1::]/h",
    "https://[2002:a9fe:a9fe::1]/h",
    "https://[64:ff9b::7f00:1]/h",
    "https://[64:ff9b::a00:8]/h",
    "https://[2001:0:4136:e378:8000:63bf:80ff:fffe]/h",
    "https://[::127.0.0.1]/h",
    "https://[::ffff:169.254.169.254]/h",
    "https://[64:ff9b:1::1]/h",
]


@pytest.mark.parametrize("url", REFUSED)
def test_private_and_odd_targets_are_refused(url):
    with pytest.raises(TargetRefused):
        resolve_target(url, allow_private=False)


def test_public_targets_pass_and_private_ones_can_be_allowed():
    assert resolve_target("https://8.8.8.8/hook", allow_private=False)[2] == ["8.8.8.8"]
    assert resolve_target("http://127.0.0.1:9/hook", allow_private=True)[2] == ["127.0.0.1"]


def test_registration_refuses_private_targets(tenant):
    with session_scope(write=True) as session, pytest.raises(ValidationFailed) as refused:
        agents.set_webhook_url(
            session,
            workspace_id=tenant.workspace_id,
            agent_id=tenant.agent_id,
            webhook_url="https://169.254.169.254/x",
        )
    [detail] = refused.value.details
    assert detail["loc"] == ["webhook_url"]
    assert (
        "link-local" in detail["message"]
        and "BATCH_WEBHOOK_ALLOW_PRIVATE_TARGETS" in detail["message"]
    )


def test_send_time_check_refuses_a_target_that_became_private(
    tenant, receiver, private_targets, monkeypatch
):
    hook_agent(tenant, f"{receiver.url}/hook")
    make_batch(tenant, 1)
    end_calls(1)
    monkeypatch.setenv("BATCH_WEBHOOK_ALLOW_PRIVATE_TARGETS", "false")
    reload_settings()
    # A refused address is final: the delivery ends at once, not on the retry schedule.
    assert send_due(FrozenClock(START)) == ["failed"]
    assert receiver.received() == []
    [delivery] = deliveries()
    assert delivery.attempt_count == 1 and delivery.next_attempt_at is None
    assert delivery.attempts[0]["error"] == "refused: must use https://"


def test_send_time_check_judges_an_ipv6_form_as_the_ipv4_host_it_reaches(
    tenant, private_targets, monkeypatch
):
    hook_agent(tenant, "https://[2002:7f00:1::]/hook")  # 6to4 of 127.0.0.1
    make_batch(tenant, 1)
    end_calls(1)
    monkeypatch.setenv("BATCH_WEBHOOK_ALLOW_PRIVATE_TARGETS", "false")
    reload_settings()
    assert send_due(FrozenClock(START)) == ["failed"]
    [delivery] = deliveries()
    assert delivery.next_attempt_at is None
    assert "loopback address (a 6to4 form of 127.0.0.1)" in delivery.attempts[0]["error"]


def test_the_request_goes_to_the_checked_address():
    url, headers, extensions = pinned_request(
        "https://hooks.example.com/in?x=1", "93.184.216.34", 443
    )
    assert url == "https://93.184.216.34:443/in?x=1"
    assert headers == {"host": "hooks.example.com"}
    assert extensions == {"sni_hostname": "hooks.example.com"}
    url, headers, _ = pinned_request("https://h.example:8443/", "2606:2800::1", 8443)
    assert url == "https://[2606:2800::1]:8443/" and headers == {"host": "h.example:8443"}
    assert sender_module.MAX_IN_FLIGHT >= 10


# --- the whole path, and a crash before the send ---------------------------------------------


def test_the_worker_delivers_every_event(tenant, receiver, private_targets, monkeypatch):
    for name, value in {
        "BATCH_SIM_CALL_SECONDS": "0",
        "BATCH_CALLS_PER_SECOND": "0",
        "BATCH_SIM_OUTCOMES": "completed=0.5,busy=0.5",
    }.items():
        monkeypatch.setenv(name, value)
    reload_settings()
    secret = hook_agent(tenant, f"{receiver.url}/all")
    batch = make_batch(tenant, 10)

    async def run() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(run_worker(stop))
        deadline = time.monotonic() + 30
        while len(receiver.received("/all")) < 10 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        stop.set()
        await task

    asyncio.run(run())
    got = receiver.received("/all")
    assert len(got) == 10
    types = [Webhook(secret).verify(r.body, r.headers)["type"] for r in got]
    row = batch_row(batch["id"])
    assert types.count("conversation.completed") == row.completed_count
    assert types.count("call.failed") == row.failed_count
    assert len({r.headers["webhook-id"] for r in got}) == 10


@pytest.mark.slow
@pytest.mark.xdist_group("processes")
def test_a_crash_between_the_call_and_the_send_still_delivers(
    tenant, receiver, database, tmp_path: Path
):
    import os

    os.environ["BATCH_WEBHOOK_ALLOW_PRIVATE_TARGETS"] = "true"
    try:
        reload_settings()
        secret = hook_agent(tenant, f"{receiver.url}/after-crash")
    finally:
        del os.environ["BATCH_WEBHOOK_ALLOW_PRIVATE_TARGETS"]
        reload_settings()
    make_batch(tenant, 5)
    log = tmp_path / "worker.log"
    env = {
        "BATCH_SIM_CALL_SECONDS": "0",
        "BATCH_CALLS_PER_SECOND": "0",
        "BATCH_WEBHOOK_ALLOW_PRIVATE_TARGETS": "true",
    }
    crashing = start_worker(database, log, BATCH_CRASH_AT="after_record", **env)
    crashing.wait(timeout=60)
    assert crashing.returncode == -9
    assert receiver.received() == []
    assert {d.status for d in deliveries()} == {"pending"}
    survivor = start_worker(database, log, **env)
    try:
        wait_for(lambda: len(receiver.received()) >= 5, timeout=60, what="deliveries", log=log)
    finally:
        assert stop(survivor) == 0
        kill(survivor)
    ids = [r.headers["webhook-id"] for r in receiver.received()]
    assert len(ids) == len(set(ids)) == 5
    for request in receiver.received():
        Webhook(secret).verify(request.body, request.headers)
    assert json.loads(receiver.received()[0].body)["type"] in (
        "conversation.completed",
        "call.failed",
    )
