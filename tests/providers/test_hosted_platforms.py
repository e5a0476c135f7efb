"""Hosted voice-agent platforms end to end, each against its local fake (tests/fakes/): a
connection made through the API, its numbers and agents imported, a batch of 20 recipients
dialed by the real dialer, the platform's signed webhooks received by the real API, and the
outcomes, transcripts and collected data as the API, the export and the webhook show them
(SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from batch_dashboard.db import session_scope
from batch_dashboard.services import agents, batches
from batch_dashboard.settings import get_settings, reload_settings
from batch_dashboard.worker.dialer import Dialer
from tests.conftest import Tenant
from tests.providers.twilio_setup import PUBLIC, ApiServer

CALLER = "+14155550177"
KINDS = ("completed", "busy", "no_answer", "voicemail", "invalid", "error")
EXPECTED = {
    "completed": ("completed", None),
    "busy": ("failed", "busy"),
    "no_answer": ("failed", "no_answer"),
    "voicemail": ("failed", "voicemail"),
    "invalid": ("failed", "invalid_number"),
    "error": ("failed", "provider_error"),
}
COLLECTED = {"confirmed": True, "preferred_time": "3pm"}


@dataclass
class Platform:
    provider: str
    fake: Any
    credentials: dict[str, str]
    script: Callable[[str, str], None]
    point_events_at: Callable[[str], None]


@contextmanager
def retell(api: ApiServer) -> Iterator[Platform]:
    from tests.fakes.retell import RetellFake

    reasons = {
        "completed": "user_hangup",
        "busy": "dial_busy",
        "no_answer": "dial_no_answer",
        "voicemail": "voicemail_reached",
        "invalid": "invalid_destination",
        "error": "dial_failed",
    }
    fake = RetellFake(
        numbers=[{"phone_number": CALLER, "nickname": "Main line"}],
        agents=[
            {
                "agent_id": "agent_reminders",
                "agent_name": "Reminders",
                "llm": {
                    "general_prompt": "Remind {{first_name}} of the visit at {{appointment_time}}.",
                    "begin_message": "Hi {{first_name}}!",
                },
            }
        ],
        time_scale=0.01,
        callback_target=lambda url: url.replace(PUBLIC, api.url),
    )

    def script(phone: str, kind: str) -> None:
        fake.script(
            phone, reasons[kind], duration=20, analysis_seconds=0.5, custom_analysis_data=COLLECTED
        )

    def point(url: str) -> None:
        fake.callback_url = url

    with fake:
        yield Platform("retell", fake, {"api_key": fake.api_key}, script, point)


@contextmanager
def vapi(api: ApiServer) -> Iterator[Platform]:
    from tests.fakes.vapi import VapiFake

    reasons = {
        "completed": "customer-ended-call",
        "busy": "customer-busy",
        "no_answer": "customer-did-not-answer",
        "voicemail": "voicemail",
        "invalid": "twilio-reported-customer-misdialed",
        "error": "twilio-failed-to-connect-call",
    }
    fake = VapiFake(
        time_scale=0.01,
        server_target=lambda url: url.replace(PUBLIC, api.url),
        concurrency_limit=50,
    )
    fake.add_phone_number(CALLER, "Main line")
    fake.add_assistant(
        "Reminders",
        "Hi {{first_name}}!",
        "Remind {{first_name}} of the visit at {{appointment_time}}.",
    )

    def script(phone: str, kind: str) -> None:
        fake.script(phone, reasons[kind], duration=20, structured_data=COLLECTED)

    def point(url: str) -> None:
        fake.server_url = url

    with fake:
        credentials = {"api_key": fake.api_key, "webhook_secret": fake.webhook_secret}
        yield Platform("vapi", fake, credentials, script, point)


@contextmanager
def elevenlabs(api: ApiServer) -> Iterator[Platform]:
    from tests.fakes.elevenlabs import ElevenLabsFake

    outcomes = {
        "completed": "completed",
        "busy": "busy",
        "no_answer": "no-answer",
        "voicemail": "voicemail",
        "invalid": "invalid",
        "error": "unknown",
    }
    fake = ElevenLabsFake(time_scale=0.01)
    fake.add_number(CALLER, label="Main line")
    fake.add_agent(
        "Reminders",
        first_message="Hi {{first_name}}!",
        prompt="Remind {{first_name}} of the visit at {{appointment_time}}.",
    )

    def script(phone: str, kind: str) -> None:
        fake.script(
            phone,
            outcomes[kind],
            duration=20,
            data_collection={name: (value, "Said so.") for name, value in COLLECTED.items()},
            evaluations={"appointment_confirmed": ("success", "She confirmed the visit.")},
        )

    def point(url: str) -> None:
        # Signed over the body, not the URL: delivered straight to the API on loopback.
        fake.callback_url = url.replace(PUBLIC, api.url)

    with fake:
        credentials = {"api_key": fake.api_key, "webhook_secret": fake.webhook_secret}
        yield Platform("elevenlabs", fake, credentials, script, point)


PLATFORMS = {"elevenlabs": elevenlabs, "retell": retell, "vapi": vapi}


@pytest.fixture(params=sorted(PLATFORMS))
def platform(
    request: pytest.FixtureRequest, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Platform, ApiServer]]:
    monkeypatch.setenv("BATCH_PUBLIC_URL", PUBLIC)
    monkeypatch.setenv("BATCH_LEASE_SECONDS", "2")
    monkeypatch.setenv("BATCH_WEBHOOK_ALLOW_PRIVATE_TARGETS", "true")
    reload_settings()
    with ApiServer() as api, PLATFORMS[request.param](api) as made:
        yield made, api


def _api(api: ApiServer, tenant: Tenant, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(method, f"{api.url}{path}", headers=tenant.headers, timeout=30, **kwargs)


def _run_until(done: Callable[[], bool], timeout: float = 60) -> None:
    async def main() -> None:
        dialer = Dialer(settings=get_settings())
        stop = asyncio.Event()
        task = asyncio.create_task(dialer.run(stop))
        deadline = time.monotonic() + timeout
        while not await asyncio.to_thread(done):
            assert time.monotonic() < deadline, "the batch did not end in time"
            await dialer.recover_expired()
            await asyncio.sleep(0.1)
        stop.set()
        await task
        await dialer.registry.aclose()

    asyncio.run(main())


def test_a_batch_of_twenty_through_the_platform(
    platform: tuple[Platform, ApiServer], tenant: Tenant
) -> None:
    made, api = platform
    answer = _api(
        api,
        tenant,
        "POST",
        "/v1/connections",
        json={
            "provider": made.provider,
            "name": made.provider.capitalize(),
            "base_url": made.fake.base_url,
            "calls_per_second": 100,
            "credentials": made.credentials,
        },
    )
    assert answer.status_code == 201, answer.text
    connection = answer.json()
    made.point_events_at(connection["events_url"])
    assert _api(api, tenant, "POST", f"/v1/connections/{connection['id']}/test").json() == {
        "ok": True
    }
    numbers = _api(api, tenant, "POST", f"/v1/connections/{connection['id']}/import-numbers")
    assert numbers.status_code == 200, numbers.text
    [number] = [n for n in numbers.json()["added"] if n["phone_number"] == CALLER]
    imported = _api(api, tenant, "POST", f"/v1/connections/{connection['id']}/import-agents")
    assert imported.status_code == 200, imported.text
    [agent] = imported.json()["added"]
    assert agent["placeholders"] == ["first_name", "appointment_time"]
    assert agent["connection_id"] == connection["id"] and agent["external_agent_id"]
    again = _api(api, tenant, "POST", f"/v1/connections/{connection['id']}/import-agents")
    assert again.json()["added"] == [] and len(again.json()["refreshed"]) == 1
    with session_scope(write=True) as session:
        agents.set_webhook_url(
            session,
            workspace_id=tenant.workspace_id,
            agent_id=agent["id"],
            webhook_url="http://127.0.0.1:9/hooks",
        )

    phones = [f"+1415555{4000 + i:04d}" for i in range(20)]
    kinds = {phone: KINDS[i % len(KINDS)] for i, phone in enumerate(phones)}
    for phone, kind in kinds.items():
        made.script(phone, kind)
    created = _api(
        api,
        tenant,
        "POST",
        "/v1/batch-calls",
        json={
            "name": f"{made.provider} reminders",
            "agent_id": agent["id"],
            "phone_number_id": number["id"],
            "recipients": [
                {"phone": phone, "first_name": f"P{i}", "appointment_time": "3pm"}
                for i, phone in enumerate(phones)
            ],
        },
    )
    assert created.status_code == 202, created.text
    batch_id = created.json()["id"]

    def detail() -> dict[str, Any]:
        return _api(api, tenant, "GET", f"/v1/batch-calls/{batch_id}").json()

    def ended_with_analysis() -> bool:
        shown = detail()
        if shown["batch_call"]["status"] != "completed":
            return False
        with session_scope() as session:
            collected = session.execute(text("SELECT data_collection FROM conversation")).all()
        return all(json.loads(row[0]) if isinstance(row[0], str) else row[0] for row in collected)

    _run_until(ended_with_analysis)
    shown = detail()
    got = {r["phone"]: (r["status"], r["failure_reason"]) for r in shown["recipients"]}
    assert got == {phone: EXPECTED[kind] for phone, kind in kinds.items()}
    assert all(len(made.fake.calls_to(phone)) == 1 for phone in phones)  # each dialed once

    completed = [r for r in shown["recipients"] if r["status"] == "completed"]
    with session_scope() as session:
        conversation = batches.get_conversation(
            session,
            workspace_id=tenant.workspace_id,
            conversation_id=completed[0]["conversation_id"],
        )
        export = batches.export_results_csv(
            session, workspace_id=tenant.workspace_id, batch_id=batch_id
        )
        payloads = [
            json.loads(row[0])
            for row in session.execute(
                text("SELECT payload FROM webhook_delivery ORDER BY created_at")
            )
        ]
    assert conversation["transcript"] and {t["role"] for t in conversation["transcript"]} == {
        "agent",
        "user",
    }
    assert conversation["data_collection"]["confirmed"]["value"] is True
    assert conversation["evaluations"]
    rows = list(csv.DictReader(io.StringIO(export)))
    answered = [row for row in rows if row["status"] == "completed"]
    # Written as the console's panel shows them: Yes/No, and the agent's first evaluation.
    assert answered and all(row["collected_confirmed"] == "Yes" for row in answered)
    assert all(row["outcome"].endswith(": success") for row in answered)
    assert {row["outcome"] for row in rows} >= {"Busy", "No answer", "Voicemail"}
    completed_events = [p for p in payloads if p["type"] == "conversation.completed"]
    failed_events = [p for p in payloads if p["type"] == "call.failed"]
    assert len(completed_events) == len(completed) and len(failed_events) == 20 - len(completed)
    assert all(p["data"]["transcript"] for p in completed_events)
    assert all(p["data"]["data_collection"]["confirmed"]["value"] for p in completed_events)
    print(
        f"\n{made.provider}: {len(phones)} recipients",
        json.dumps(
            {
                "api": {
                    r["phone"]: [r["status"], r["failure_reason"]] for r in shown["recipients"]
                },
                "export_header": export.splitlines()[0],
                "export_first_completed": next(
                    line for line in export.splitlines() if ",completed," in line
                ),
                "webhook": completed_events[0],
            },
            indent=1,
        ),
    )
