"""A Twilio account faked on loopback, connected to a workspace through the real API: shared by
the Twilio tests of the adapter and of the worker processes."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from dataclasses import dataclass

import httpx
import uvicorn

from batch_dashboard.db import session_scope
from batch_dashboard.services import agents
from tests.conftest import Tenant
from tests.fakes.twilio import TwilioFake

PUBLIC = "https://calls.example.com"
CALLER = "+14155550142"
STREAM = "wss://bot.example.com/stream"


class ApiServer:
    """The real /v1 app on loopback: where the fake sends the callbacks meant for PUBLIC."""

    def __init__(self) -> None:
        from batch_dashboard.api.app import create_api

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(create_api(), log_level="critical", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=asyncio.run, args=(self.server.serve(sockets=[self.sock]),), daemon=True
        )

    def __enter__(self) -> ApiServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "API did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@dataclass
class Setup:
    tenant: Tenant
    fake: TwilioFake
    api: ApiServer
    connection: dict
    number_id: str
    agent_id: str

    def post(self, path: str, **kwargs: object) -> httpx.Response:
        return httpx.post(
            f"{self.api.url}{path}", headers=self.tenant.headers, timeout=10, **kwargs
        )

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"{self.api.url}{path}", headers=self.tenant.headers, timeout=10)


def connect(
    tenant: Tenant, fake: TwilioFake, api: ApiServer, *, calls_per_second: float = 50
) -> Setup:
    """A Twilio connection to `fake`, its numbers imported, and an agent with a media stream."""
    answer = httpx.post(
        f"{api.url}/v1/connections",
        headers=tenant.headers,
        json={
            "provider": "twilio",
            "name": "Twilio",
            "base_url": fake.base_url,
            "calls_per_second": calls_per_second,
            "credentials": {"account_sid": fake.account_sid, "auth_token": fake.auth_token},
        },
    )
    assert answer.status_code == 201, answer.text
    connection = answer.json()
    imported = httpx.post(
        f"{api.url}/v1/connections/{connection['id']}/import-numbers", headers=tenant.headers
    )
    assert imported.status_code == 200, imported.text
    [number] = [n for n in imported.json()["added"] if n["phone_number"] == CALLER]
    assert number["external_id"].startswith("PN") and number["label"] == "Main line"
    with session_scope(write=True) as session:
        agent, _ = agents.create_agent(
            session,
            workspace_id=tenant.workspace_id,
            name="Bot",
            prompt="Remind {{first_name}} of {{appointment_time}}.",
            first_message="Hi {{first_name}}!",
            phone_number_id=number["id"],
            stream_url=STREAM,
        )
        assert agent.connection_id == connection["id"]
        agent_id = agent.id
    return Setup(tenant, fake, api, connection, number["id"], agent_id)


def fake_account(api: ApiServer, **options: object) -> TwilioFake:
    """The fake, with its callbacks for PUBLIC delivered to the API on loopback (signed for
    PUBLIC, as Twilio signs the URL it was given)."""
    return TwilioFake(
        numbers=[{"phone_number": CALLER, "friendly_name": "Main line"}, "+14155550143"],
        callback_target=lambda url: url.replace(PUBLIC, api.url),
        **options,  # type: ignore[arg-type]
    )


def create_batch(setup: Setup, phones: list[str], **fields: object) -> dict:
    body = {
        "name": "Twilio run",
        "agent_id": setup.agent_id,
        "recipients": [
            {"phone": phone, "first_name": f"P{i}", "appointment_time": "3pm"}
            for i, phone in enumerate(phones)
        ],
        **fields,
    }
    answer = setup.post("/v1/batch-calls", json=body)
    assert answer.status_code == 202, answer.text
    return answer.json()


def batch_status(setup: Setup, batch_id: str) -> dict:
    return setup.get(f"/v1/batch-calls/{batch_id}").json()
