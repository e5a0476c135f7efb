"""What an operations person does to batches in a real Chromium: stop one that is dialing,
retry failed calls by outcome, read what happened and export it.

The server runs without a dialer; the test moves recipients itself through the services, so
the numbers each page must say are known exactly.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect

from batch_dashboard.db import session_scope
from batch_dashboard.providers.base import CallResult, CallStatus
from batch_dashboard.services import dialing
from tests.e2e.conftest import sign_in

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.xdist_group("processes")]

SHOTS = Path("/tmp/h18ops_shots")


@pytest.fixture
def page(browser, quiet_server, request, tmp_path) -> Iterator:
    context = browser.new_context(viewport={"width": 1440, "height": 900}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(30_000)
    yield page
    if getattr(request.node, "rep_call", None) and request.node.rep_call.failed:
        shot = SHOTS / f"failure-{request.node.name[:40]}.png"
        page.screenshot(path=shot, full_page=True)
        print(f"\nfailure screenshot: {shot} at {page.url}")
        print(quiet_server.log.read_text()[-3000:])
    context.close()


def _create(server, count: int, name: str) -> str:
    """A fresh batch, after ending every call of earlier ones (claims take the oldest first)."""
    while claims := _claim(5000):
        _end(claims, _busy())
    agent = httpx.get(f"{server.url}/v1/agents", headers=server.headers).json()["agents"][0]["id"]
    lines = ["phone,first_name"] + [f"+1415{3000000 + i:07d},P{i}" for i in range(count)]
    response = httpx.post(
        f"{server.url}/v1/batch-calls",
        headers=server.headers,
        data={"name": name, "agent_id": agent},
        files={"csv_file": ("people.csv", "\n".join(lines).encode(), "text/csv")},
        timeout=60,
    )
    assert response.status_code == 202, response.text[:500]
    return response.json()["id"]


def _claim(limit: int) -> list[dialing.Claim]:
    with session_scope(write=True) as session:
        return dialing.claim_calls(
            session,
            limit=limit,
            now=datetime.now(UTC),
            lease=timedelta(seconds=600),
            max_concurrent_calls=100_000,
            calls_per_second=0,
            default_provider="simulator",
        )


def _end(claims: list[dialing.Claim], result: CallResult) -> None:
    with session_scope(write=True) as session:
        dialing.record_outcomes(
            session, outcomes=[(c.attempt_id, result) for c in claims], now=datetime.now(UTC)
        )


def _busy(reason: str = "busy") -> CallResult:
    return CallResult(status=CallStatus.failed, failure_reason=reason, ended_at=datetime.now(UTC))


def _connected(**conversation) -> CallResult:
    now = datetime.now(UTC)
    return CallResult(
        status=CallStatus.completed,
        started_at=now - timedelta(seconds=30),
        ended_at=now,
        duration_seconds=30,
        transcript=[{"role": "agent", "message": "Hello Ada", "time_in_call_secs": 0}],
        **conversation,
    )


def _batch(server, batch_id: str) -> dict:
    return httpx.get(f"{server.url}/v1/batch-calls/{batch_id}", headers=server.headers).json()[
        "batch_call"
    ]


def test_stop_says_what_is_live_and_what_will_not_be_made(page, quiet_server):
    server = quiet_server
    batch_id = _create(server, 6, "Renewals to stop")
    live = _claim(2)
    sign_in(page, server.url)
    page.goto(f"{server.url}/batches/{batch_id}")
    page.get_by_role("button", name="Pause").click()
    page.get_by_text("Paused", exact=True).first.wait_for()
    page.goto(f"{server.url}/batches")
    row = page.get_by_role("row").filter(has_text="Renewals to stop")
    row.get_by_text("Paused", exact=True).wait_for()  # paused batches say so in the list
    row.get_by_role("link", name="Renewals to stop").click()
    page.get_by_role("button", name="Resume").click()
    page.get_by_role("button", name="Pause").wait_for()

    page.get_by_role("button", name="Stop batch").click()
    dialog = page.get_by_role("alertdialog")
    dialog.get_by_text("2 calls are live; 4 calls will not be made.").wait_for()
    page.screenshot(path=SHOTS / "stop-batch-1440.png")
    dialog.get_by_label("Hang up the live calls now").click()
    expect(dialog.get_by_label("Hang up the live calls now")).to_be_checked()
    dialog.get_by_role("button", name="Stop batch").click()
    page.get_by_text("Stopping", exact=True).first.wait_for()
    stopped = _batch(server, batch_id)
    assert stopped["stopping"] is True and stopped["counts"]["cancelled"] == 4
    assert page.get_by_role("button", name="Stop batch").count() == 0
    _end(live, CallResult(status=CallStatus.failed, failure_reason="hung_up"))
    page.locator("#count-tiles").get_by_text("Cancelled").wait_for()
    assert _batch(server, batch_id)["status"] == "cancelled"

    page.goto(f"{server.url}/batches")
    row = page.get_by_role("row").filter(has_text="Renewals to stop")
    row.get_by_text("4 cancelled").wait_for()  # its counts, not 0 · 0 · 0
    assert re.search(r"0\s*·\s*2\s*·\s*4 cancelled", row.inner_text())
    page.screenshot(path=SHOTS / "batches-1440.png")
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=SHOTS / "batches-390.png", full_page=True)


def test_retry_by_outcome_and_results_people_can_use(page, quiet_server, tmp_path):
    server = quiet_server
    batch_id = _create(server, 5, "Reminders to retry")
    calls = _claim(5)
    _end(
        calls[:1],
        _connected(
            evaluations={
                "Appointment confirmed": {"result": "success", "rationale": "Said yes"},
            },
            data_collection={"wants_callback": {"value": False, "rationale": ""}},
        ),
    )
    _end(calls[1:3], _busy())
    _end(calls[3:4], _busy("no_answer"))
    _end(calls[4:], _busy("do_not_call"))
    sign_in(page, server.url)
    page.goto(f"{server.url}/batches/{batch_id}")
    table = page.locator("table")
    table.get_by_text("Appointment confirmed: success").wait_for()
    assert table.get_by_text("Busy").count() == 2
    page.locator("#calling-rules").get_by_text("One attempt per number").wait_for()

    with page.expect_download() as download:
        page.get_by_role("button", name="Export results").click()
    exported = Path(download.value.path()).read_bytes().decode()
    from_api = httpx.get(
        f"{server.url}/v1/batch-calls/{batch_id}/export", headers=server.headers
    ).text
    assert exported == from_api
    header = exported.splitlines()[0]
    assert "evaluation_appointment_confirmed" in header and "collected_wants_callback" in header
    assert ",No" in exported.splitlines()[1]  # written as the panel shows it

    page.get_by_role("button", name="Retry failed calls").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("Will call 3 recipients.").wait_for()
    page.screenshot(path=SHOTS / "retry-failed-1440.png")
    dialog.get_by_label(re.compile("No answer")).click()  # controlled: the state answers
    dialog.get_by_text("Will call 2 recipients.").wait_for()
    dialog.get_by_role("button", name="Call them again").click()
    page.locator("#count-tiles").get_by_text("Pending").wait_for()
    after = _batch(server, batch_id)
    assert after["status"] == "running" and after["counts"]["pending"] == 2
    again = _claim(2)
    _end(again[:1], _connected())
    table.get_by_text("Attempt 2").first.wait_for()  # each row's attempt during retries
    page.locator("#time-left").get_by_text(
        re.compile(r"^(Under a minute|About \d+ min)$")
    ).wait_for()
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=SHOTS / "batch-retrying-390.png", full_page=True)
    _end(again[1:], _busy())


def test_the_export_uploads_again_as_a_new_batch(page, quiet_server, tmp_path):
    server = quiet_server
    batch_id = _create(server, 2, "Exported")
    _end(_claim(2), _busy())
    exported = httpx.get(
        f"{server.url}/v1/batch-calls/{batch_id}/export", headers=server.headers
    ).text
    path = tmp_path / "results.csv"
    path.write_text(exported)
    sign_in(page, server.url)
    page.goto(f"{server.url}/batches/new")
    page.get_by_text("Appointment reminders").first.wait_for()  # loaded: typing now stays
    page.get_by_label("Name").fill("Exported again")
    page.set_input_files("input[type=file]", str(path))
    page.get_by_text("2 valid").wait_for()
    assert page.get_by_text("invalid", exact=False).count() == 0 or "0 invalid" in page.content()
    page.get_by_role("button", name="Start batch").click()
    page.wait_for_url("**/batches/batch_*")


def test_form_errors_point_at_the_row_and_cell_people_see(page, quiet_server):
    server = quiet_server
    sign_in(page, server.url)
    page.goto(f"{server.url}/batches/new")
    page.get_by_text("Appointment reminders").first.wait_for()  # loaded: typing now stays
    page.get_by_label("Name").fill("Typed by hand")
    page.get_by_role("radio", name=re.compile("by hand", re.I)).click()
    page.get_by_label("phone of row 1").fill("+14155552671")
    page.get_by_label("first_name of row 1").fill("Ada")
    page.get_by_role("button", name="Add row").click()
    page.get_by_label("phone of row 2").fill("4155552672")
    page.get_by_label("first_name of row 2").fill("Bob")
    page.get_by_label("appointment_time of row 2").fill("4pm")
    page.get_by_role("button", name="Start batch").click()
    alert = page.get_by_role("alert").filter(has_text="Fix the marked rows")
    alert.wait_for()
    said = alert.inner_text()
    assert "Row 1: appointment_time is empty" in said and "Row 2: phone" in said
    assert "recipients." not in said
    assert page.get_by_label("phone of row 2").input_value() == "4155552672"
    assert page.get_by_label("phone of row 2").get_attribute("aria-invalid") == "true"
    assert page.get_by_label("phone of row 1").get_attribute("aria-invalid") == "false"
    page.locator("table").get_by_text(
        'Row 2: phone "4155552672" is missing the country code'
    ).wait_for()
    page.screenshot(path=SHOTS / "manual-rows-error-1440.png", full_page=True)

    page.goto(f"{server.url}/do-not-call")
    page.get_by_label("Number").fill("4155550000")
    page.get_by_label("Reason").fill("Asked on the phone")
    page.get_by_role("button", name="Add to list").click()
    page.get_by_text("This number is missing the country code", exact=False).wait_for()
    assert page.get_by_label("Number").input_value() == "4155550000"
    assert page.get_by_label("Reason").input_value() == "Asked on the phone"
    page.get_by_label("Number").fill("+14155550000")
    page.get_by_role("button", name="Add to list").click()
    page.get_by_text("+1 415-555-0000").first.wait_for()
    assert page.get_by_label("Number").input_value() == ""


def _new_workspace(name: str, email: str, password: str) -> str:
    """A workspace nobody has signed in to yet (its time zone unset), with an API key."""
    from batch_dashboard.services import auth

    with session_scope(write=True) as session:
        workspace = auth.create_workspace(session, name=name)
        auth.create_user(session, workspace_id=workspace.id, email=email, password=password)
        return auth.create_api_key(session, workspace_id=workspace.id).api_key


def test_the_workspace_time_zone_comes_from_the_first_browser_and_is_named(browser, quiet_server):
    server = quiet_server
    key = _new_workspace("Tokyo office", "tokyo@example.com", "tokyo-password")
    context = browser.new_context(viewport={"width": 1440, "height": 900}, timezone_id="Asia/Tokyo")
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        sign_in(page, server.url, "tokyo@example.com", "tokyo-password")
        page.get_by_text("Times in Asia/Tokyo").wait_for()
        assert httpx.get(f"{server.url}/v1/agents", headers={"X-API-Key": key}).status_code == 200
        page.goto(f"{server.url}/settings")
        expect(page.get_by_label("Time zone")).to_have_value("Asia/Tokyo")
        # The API key's last use, in the workspace's zone and named.
        keys = page.get_by_role("row").filter(has_text=key[:10])
        keys.get_by_text("JST").first.wait_for()
        page.get_by_label("Time zone").select_option("Europe/Berlin")
        page.get_by_role("button", name="Save time zone").click()
        page.get_by_text("Times are shown in Europe/Berlin").wait_for()
        keys.get_by_text("CET").first.wait_for()
        page.goto(f"{server.url}/batches")
        page.get_by_text("Times in Europe/Berlin").wait_for()
    finally:
        context.close()


def test_members_are_added_removed_and_change_their_password(page, browser, quiet_server):
    server = quiet_server
    assert httpx.get(f"{server.url}/v1/agents", headers=server.headers).status_code == 200
    sign_in(page, server.url)
    page.goto(f"{server.url}/settings")
    members = page.locator("table").filter(has_text="demo@example.com")
    members.get_by_text("You", exact=True).wait_for()
    assert members.get_by_role("button", name="Remove demo@example.com").count() == 0
    demo_key = page.get_by_role("row").filter(has_text=server.demo["api_key"][:10])
    assert "Never" not in demo_key.inner_text()  # used just now

    page.get_by_role("button", name="Add member").click()
    page.get_by_label("Email").fill("grace@example.com")
    page.get_by_role("button", name="Add member").last.click()
    initial = page.get_by_label("Initial password")
    initial.wait_for()
    password = initial.input_value()
    assert len(password) >= 16
    page.screenshot(path=SHOTS / "member-added-1440.png")
    page.get_by_role("button", name="Done").click()
    # The member row was there before Done: wait for the dialog to go, or the check below
    # reads the page before Done's event has come back.
    initial.wait_for(state="detached")
    page.locator("table").get_by_text("grace@example.com").wait_for()
    assert password not in page.content()  # shown once

    other = browser.new_context(viewport={"width": 390, "height": 844})
    phone = other.new_page()
    phone.set_default_timeout(30_000)
    try:
        sign_in(phone, server.url, "grace@example.com", password)
        phone.goto(f"{server.url}/settings")
        phone.get_by_text("You", exact=True).wait_for()  # loaded: typing now stays
        phone.get_by_label("Current password").fill("not it at all")
        phone.get_by_label("New password", exact=True).fill("grace-new-password")
        phone.get_by_label("Repeat new password").fill("grace-new-password")
        phone.get_by_role("button", name="Change password").click()
        phone.get_by_text("Is not your current password.").wait_for()
        phone.get_by_label("Current password").fill(password)
        phone.get_by_role("button", name="Change password").click()
        phone.get_by_text("Password changed").wait_for()
        phone.screenshot(path=SHOTS / "settings-members-390.png", full_page=True)

        page.get_by_role("button", name="Remove grace@example.com").click()
        page.get_by_role("alertdialog").get_by_role("button", name="Remove member").click()
        page.get_by_text("grace@example.com can no longer sign in").wait_for()
        phone.goto(f"{server.url}/batches")
        phone.wait_for_url("**/login**")  # signed out at once
        phone.get_by_label("Email").fill("grace@example.com")
        phone.get_by_label("Password").fill("grace-new-password")
        phone.get_by_role("button", name="Sign in").click()
        phone.get_by_text("Wrong email or password").wait_for()
    except Exception:
        phone.screenshot(path=SHOTS / "failure-phone.png", full_page=True)
        raise
    finally:
        other.close()
    page.screenshot(path=SHOTS / "settings-1440.png", full_page=True)
