"""Settings → Telephony in a real Chromium against the app started as `make run` starts it."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.conftest import sign_in

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.xdist_group("processes")]

AUTH_TOKEN = "5f3c9e0d7a1b4c2e8f6a0b9d1c3e5f00d"
ACCOUNT_SID = "AC5f3c9e0d7a1b4c2e8f6a0b9d1c3e5f77"


@pytest.fixture
def page(browser, server, request, tmp_path):
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    page = context.new_page()
    page.set_default_timeout(45_000)
    messages: list[str] = []
    page.on("console", lambda message: messages.append(f"{message.type}: {message.text}"))
    yield page
    if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
        page.screenshot(path=tmp_path / "failure.png")
        print(f"\nfailure screenshot: {tmp_path / 'failure.png'} at {page.url}")
        print("\n".join(messages[-30:]))
        print(server.log.read_text()[-3000:])
    context.close()


def _api(server) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers=server.headers, timeout=30)


def _connections(server) -> dict[str, dict]:
    with _api(server) as api:
        return {c["name"]: c for c in api.get("/v1/connections").json()["connections"]}


def test_add_a_simulator_connection_copy_its_events_url_and_delete_it(page, server):
    # A Twilio account added through the API: its credentials must never reach the page.
    with _api(server) as api:
        answer = api.post(
            "/v1/connections",
            json={
                "provider": "twilio",
                "name": "Twilio production",
                "credentials": {"account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN},
            },
        )
        assert answer.status_code == 201, answer.text
    sign_in(page, server.url)
    page.goto(f"{server.url}/settings")
    page.get_by_role("heading", name="Telephony").wait_for()
    # The list as a wide screen shows it (phones get cards, hidden here).
    listed = page.get_by_role("table").filter(has_text="Events URL")
    listed.get_by_text("Twilio production").wait_for()
    listed.get_by_text("Auth token …f00d").wait_for()

    page.get_by_role("button", name="Add connection").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Auth token").wait_for()
    assert dialog.get_by_label("Auth token").get_attribute("type") == "password"
    dialog.get_by_label("Platform").click()
    page.get_by_role("option", name="Simulator").click()
    dialog.get_by_label("Auth token").wait_for(state="detached")
    dialog.get_by_label("Name").fill("Lab simulator")
    dialog.get_by_role("button", name="Add connection").click()
    dialog.wait_for(state="detached")

    added = _connections(server)["Lab simulator"]
    assert added["provider"] == "simulator" and added["events_url"] is None
    # The simulator has no events to receive: no URL to copy, the line says so.
    listed.get_by_text("Nothing to set up").first.wait_for()
    assert page.get_by_role("button", name="Copy the events URL of Lab simulator").count() == 0

    twilio = _connections(server)["Twilio production"]
    url = twilio["events_url"]
    assert url.endswith(f"/v1/provider-events/twilio/{twilio['id']}")
    listed.get_by_text(url, exact=True).wait_for()
    page.get_by_role("button", name="Copy the events URL of Twilio production").click()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == url
    html = page.content()
    for secret in (AUTH_TOKEN, ACCOUNT_SID, AUTH_TOKEN[:-4]):
        assert secret not in html and secret not in copied

    page.get_by_role("button", name="Test Lab simulator").click()
    page.get_by_role("status").get_by_text("Connected").wait_for()

    page.get_by_role("button", name="Delete Lab simulator").click()
    page.get_by_role("alertdialog").get_by_role("button", name="Delete connection").click()
    listed.get_by_text("Lab simulator", exact=True).wait_for(state="detached")
    assert "Lab simulator" not in _connections(server)
