"""The console in a real Chromium against the app started as `make run` starts it."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.e2e.conftest import PROJECT_ROOT, server_env, sign_in

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.xdist_group("processes")]


@pytest.fixture
def page(browser, server, request, tmp_path):
    context = browser.new_context(viewport={"width": 1440, "height": 900}, accept_downloads=True)
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


def _agent_id(server) -> str:
    with _api(server) as api:
        return next(a["id"] for a in api.get("/v1/agents").json()["agents"] if a["placeholders"])


def test_signed_out_visitors_are_sent_to_sign_in(page, server):
    for path in (
        "/batches",
        "/batches/new",
        "/batches/batch_x",
        "/agents",
        "/phone-numbers",
        "/do-not-call",
        "/settings",
    ):
        page.goto(f"{server.url}{path}")
        page.wait_for_url("**/login**")
    page.get_by_label("Email").fill("demo@example.com")
    page.get_by_label("Password").fill("wrong password")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("alert").get_by_text("Wrong email or password").wait_for()


def test_create_a_batch_from_a_csv_with_a_bad_row_and_watch_it_complete(page, server, tmp_path):
    sign_in(page, server.url)
    page.get_by_role("link", name="New batch").first.click()
    page.wait_for_url("**/batches/new")
    # Opening the form resets it (the file too): wait for it, as the other upload tests do.
    # Without this the file was lost once on a loaded machine.
    page.get_by_text("Appointment reminders").first.wait_for()
    page.get_by_label("Name").fill("Browser batch")
    people = tmp_path / "people.csv"
    people.write_text(
        "phone,first_name,appointment_time\n+14155552671,Ada,3pm\n4155552672,Bob,4pm\n+14155552673,Cy,5pm\n"
    )
    page.set_input_files("input[type=file]", str(people))
    page.get_by_text("1 invalid").wait_for()
    problems = page.locator("#problems")
    assert "Row 3" in problems.inner_text() and "country code" in problems.inner_text()
    page.get_by_role("button", name="Drop invalid rows").click()
    page.get_by_text("2 valid").wait_for()
    page.get_by_role("button", name="Start batch").click()
    page.wait_for_url("**/batches/batch_*")
    batch_id = page.url.rstrip("/").rsplit("/", 1)[-1]
    # The counts move to completed without a reload.
    page.locator("#count-tiles").get_by_text("Completed").wait_for()
    page.wait_for_function(
        "() => document.querySelector('#count-completed')?.innerText === '2'", timeout=60_000
    )
    page.get_by_text("Completed", exact=True).first.wait_for()
    with _api(server) as api:
        detail = api.get(f"/v1/batch-calls/{batch_id}").json()
    assert detail["batch_call"]["status"] == "completed"
    assert [r["phone"] for r in detail["recipients"]] == ["+14155552671", "+14155552673"]

    # A recipient's conversation opens in the side panel.
    page.get_by_role("button", name="Open recipient +1 415-555-2671").click()
    page.get_by_text("Transcript").wait_for()
    page.get_by_text("Hi Ada, this is Acme Dental").first.wait_for()
    page.keyboard.press("Escape")

    # Export results: input columns + outcome + collected data, formulas neutralised.
    with page.expect_download() as download:
        page.get_by_role("button", name="Export results").click()
    rows = list(csv.reader(io.StringIO(download.value.path().read_text())))
    assert rows[0][:3] == ["phone", "first_name", "appointment_time"]
    assert "status" in rows[0] and any(h.startswith("collected_") for h in rows[0])
    assert rows[1][0] == "'+14155552671" and rows[1][rows[0].index("status")] == "completed"


def test_cancel_a_scheduled_batch(page, server):
    when = (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    with _api(server) as api:
        batch = api.post(
            "/v1/batch-calls",
            json={
                "name": "Later",
                "agent_id": _agent_id(server),
                "scheduled_at": when,
                "recipients": [
                    {"phone": "+14155552671", "first_name": "Ada", "appointment_time": "3pm"}
                ],
            },
        ).json()
    sign_in(page, server.url)
    page.goto(f"{server.url}/batches/{batch['id']}")
    page.get_by_text("Scheduled", exact=True).first.wait_for()
    page.get_by_role("button", name="Cancel batch").click()
    page.get_by_role("alertdialog").get_by_role("button", name="Cancel batch").click()
    page.get_by_text("Cancelled", exact=True).first.wait_for()
    assert page.get_by_role("button", name="Cancel batch").count() == 0
    with _api(server) as api:
        assert (
            api.get(f"/v1/batch-calls/{batch['id']}").json()["batch_call"]["status"] == "cancelled"
        )


def test_download_the_sample(page, server):
    sign_in(page, server.url)
    page.goto(f"{server.url}/batches/new")
    page.get_by_label("Name").wait_for()
    with page.expect_download() as download:
        page.get_by_role("button", name="Download sample").click()
    rows = list(csv.reader(io.StringIO(download.value.path().read_text())))
    assert rows[0] == ["phone", "first_name", "appointment_time"] and len(rows) == 3


def test_sign_out(page, server):
    sign_in(page, server.url)
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/login**")
    page.goto(f"{server.url}/batches")
    page.wait_for_url("**/login**")


def test_another_workspace_cannot_open_the_batch(page, server):
    env = server_env(server.database_url)
    run = lambda *args: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "batch_dashboard", *args],
        env=env,
        cwd=PROJECT_ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    other = json.loads(run("create-workspace", "Other").stdout)
    run(
        "create-user",
        "--workspace",
        other["workspace_id"],
        "--email",
        "other@example.com",
        "--password",
        "other-password",
    )
    with _api(server) as api:
        batch_id = api.post(
            "/v1/batch-calls",
            json={
                "name": "Not yours",
                "agent_id": _agent_id(server),
                "recipients": [
                    {"phone": "+14155552671", "first_name": "Ada", "appointment_time": "3pm"}
                ],
            },
        ).json()["id"]
    sign_in(page, server.url, "other@example.com", "other-password")
    page.get_by_text("No batches yet").wait_for()
    page.goto(f"{server.url}/batches/{batch_id}")
    page.get_by_text("Batch not found").wait_for()
    assert page.get_by_text("Not yours").count() == 0
