"""A whole batch on Twilio through the console and the API, in a real Chromium against the app
started as `make run` starts it (embedded dialer), Twilio being the local fake of its API: the
connection added and its numbers imported in Settings → Telephony, a batch created through the
API, then watched on its page until every call has ended with the outcome Twilio reported."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.conftest import (
    PROJECT_ROOT,
    free_port,
    server_env,
    sign_in,
    start_server,
    stop_server,
)
from tests.fakes.twilio import Script, TwilioFake

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.xdist_group("processes")]

PUBLIC = "https://calls.example.com"
CALLER = "+14155550142"


@pytest.fixture(scope="module")
def twilio_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[object, TwilioFake]]:
    port = free_port()
    fake = TwilioFake(
        numbers=[{"phone_number": CALLER, "friendly_name": "Main line"}],
        time_scale=0.02,
        callback_target=lambda url: url.replace(PUBLIC, f"http://127.0.0.1:{port}"),
    )
    with fake:
        running = start_server(
            tmp_path_factory.mktemp("twilio"), port=port, extra_env={"BATCH_PUBLIC_URL": PUBLIC}
        )
        try:
            yield running, fake
        finally:
            stop_server(running.process)


@pytest.fixture
def page(browser, twilio_app, request, tmp_path):
    server, _fake = twilio_app
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    page.set_default_timeout(45_000)
    yield page
    if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
        page.screenshot(path=tmp_path / "failure.png")
        print(f"\nfailure screenshot: {tmp_path / 'failure.png'} at {page.url}")
        print(server.log.read_text()[-3000:])
    context.close()


def test_a_twilio_batch_set_up_in_the_console_ends_with_twilios_outcomes(page, twilio_app):
    server, fake = twilio_app
    api = httpx.Client(base_url=server.url, headers=server.headers, timeout=30)
    sign_in(page, server.url)

    # Settings → Telephony: the account, then its numbers.
    page.goto(f"{server.url}/settings")
    page.get_by_role("heading", name="Telephony").wait_for()
    page.get_by_role("button", name="Add connection").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Name").fill("Twilio")
    dialog.get_by_label("Account SID").fill(fake.account_sid)
    dialog.get_by_label("Auth token").fill(fake.auth_token)
    dialog.get_by_label("Base URL").fill(fake.base_url)
    dialog.get_by_label("Calls per second").fill("20")
    dialog.get_by_role("button", name="Add connection").click()
    dialog.wait_for(state="detached")
    page.get_by_role("button", name="Import the numbers of Twilio").first.click()
    page.get_by_text("Added 1 number (0 already here)").first.wait_for()
    [connection] = [
        c for c in api.get("/v1/connections").json()["connections"] if c["provider"] == "twilio"
    ]
    assert connection["events_url"] == f"{PUBLIC}/v1/provider-events/twilio/{connection['id']}"
    [number] = [
        n
        for n in api.get("/v1/phone-numbers").json()["phone_numbers"]
        if n["phone_number"] == CALLER
    ]
    assert number["connection_id"] == connection["id"] and number["outbound_enabled"]

    # The bot's agent, from the command line.
    made = subprocess.run(
        [
            sys.executable,
            *("-m", "batch_dashboard", "create-agent"),
            *("--workspace", server.demo["workspace_id"], "--name", "Twilio bot"),
            *("--prompt", "Remind {{first_name}}.", "--first-message", "Hi {{first_name}}!"),
            *("--phone-number-id", number["id"], "--stream-url", "wss://bot.example.com/s"),
        ],
        env=server_env(server.database_url),
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    agent = json.loads(made.stdout)
    assert agent["connection_id"] == connection["id"]

    outcomes = {
        "+14155552101": ("completed", None),
        "+14155552102": ("busy", "Busy"),
        "+14155552103": ("no-answer", "No answer"),
    }
    for phone, (outcome, _words) in outcomes.items():
        fake.script(phone, **Script(outcome=outcome, duration=30).__dict__)
    created = api.post(
        "/v1/batch-calls",
        json={
            "name": "Twilio reminders",
            "agent_id": agent["id"],
            "recipients": [{"phone": phone, "first_name": "Ada"} for phone in outcomes],
        },
    )
    assert created.status_code == 202, created.text
    batch_id = created.json()["id"]

    # Its page moves by itself to the end, and says what Twilio reported for each call.
    page.goto(f"{server.url}/batches/{batch_id}")
    page.get_by_text("Twilio reminders").first.wait_for()
    page.get_by_text("Completed", exact=True).first.wait_for(timeout=90_000)
    for _outcome, words in outcomes.values():
        if words:
            page.get_by_text(words, exact=True).first.wait_for()
    shown = api.get(f"/v1/batch-calls/{batch_id}").json()
    assert {r["phone"]: r["failure_reason"] for r in shown["recipients"]} == {
        "+14155552101": None,
        "+14155552102": "busy",
        "+14155552103": "no_answer",
    }
    assert all(len(fake.calls_to(phone)) == 1 for phone in outcomes)
