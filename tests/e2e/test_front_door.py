"""What a first user meets, in Chromium, on the server started exactly as `make run` starts it
(`python -m batch_dashboard serve`): the URL it prints, signing in and deep links, the API
docs, the 404 page, one h1 a page and no hydration error, every link a page offers, phones
at 390 px, and a log without noise."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psutil
import pytest

from tests.e2e.conftest import (
    BIN,
    PROJECT_ROOT,
    free_port,
    one_start_at_a_time,
    server_env,
    sign_in,
    stop_server,
)

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.xdist_group("processes")]

CONSOLE_PAGES = (
    "/batches",
    "/batches/new",
    "/agents",
    "/phone-numbers",
    "/do-not-call",
    "/settings",
)
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1440, "height": 900}


@dataclass
class MadeRun:
    url: str
    env: dict[str, str]
    process: subprocess.Popen
    output: Path
    # (seconds since start, line) for each line `serve` printed, as it printed them.
    lines: list[tuple[float, str]]
    # When /v1/health first answered, polled by the test on its own.
    first_answer: float
    api_key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def cli(self, *args: str) -> dict:
        done = subprocess.run(
            [sys.executable, "-m", "batch_dashboard", *args],
            env=self.env,
            cwd=self.output.parent,  # the demo key file beside the test's database
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        )
        return json.loads(done.stdout)


def _printed(run_output: Path, started: float, seen: list[tuple[float, str]]) -> None:
    """Append the lines `serve` printed since the last look, stamped with when they were seen."""
    text = run_output.read_text(errors="replace")
    known = len(seen)
    for line in text.splitlines()[known:]:
        seen.append((time.monotonic() - started, line))


@pytest.fixture(scope="module")
def made_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MadeRun]:
    tmp = tmp_path_factory.mktemp("made-run")
    port = free_port()
    env = server_env(
        f"sqlite:///{tmp / 'run.db'}",
        PORT=str(port),
        REFLEX_WEB_WORKDIR=str(tmp / ".web"),
        REFLEX_STATES_WORKDIR=str(tmp / ".states"),
        BATCH_SIM_CALL_SECONDS="30",
        BATCH_SHUTDOWN_GRACE_SECONDS="5",
        BATCH_SIM_OUTCOMES="completed=1",
    )
    env.pop("HOST", None)
    subprocess.run(
        [sys.executable, "-m", "batch_dashboard", "migrate"],
        env=env,
        cwd=PROJECT_ROOT,
        check=True,
        capture_output=True,
        timeout=120,
    )
    output = tmp / "serve.out"
    started = time.monotonic()
    # What `make run` runs after migrating (its demo key file goes to tmp/data).
    starting = contextlib.ExitStack()
    starting.enter_context(one_start_at_a_time())
    process = subprocess.Popen(
        [str(BIN / "python"), "-m", "batch_dashboard", "serve"],
        cwd=tmp,
        env=env,
        stdout=output.open("w"),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    lines: list[tuple[float, str]] = []
    first_answer = None
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline and process.poll() is None:
            _printed(output, started, lines)
            if first_answer is None:
                try:
                    if httpx.get(f"{url}/v1/health", timeout=2).status_code == 200:
                        first_answer = time.monotonic() - started
                except httpx.HTTPError:
                    pass
            if first_answer is not None and any("API key:" in line for _, line in lines):
                break
            time.sleep(0.2)
        starting.close()
        _printed(output, started, lines)
        assert first_answer is not None, output.read_text()[-3000:]
        api_key = next(line.split()[-1] for _, line in lines if line.startswith("API key:"))
        yield MadeRun(url, env, process, output, lines, first_answer, api_key)
    finally:
        starting.close()
        # The server runs in a session of its own, stopped through `serve`; should `serve` be
        # killed first, its processes are stopped here by their own ids.
        try:
            server = psutil.Process(process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            server = []
        stop_server(process)
        for child in server:
            if child.is_running():
                child.terminate()
        psutil.wait_procs(server, timeout=30)


def _page(browser, viewport: dict[str, int] = DESKTOP):
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    page.set_default_timeout(45_000)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    return context, page, errors


def _settled(page) -> None:
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(300)


def test_make_run_prints_the_url_once_it_answers_on_localhost_only(made_run):
    printed = [line for _, line in made_run.lines]
    starting = next(i for i, line in enumerate(printed) if line.startswith("Starting Batch calls"))
    console = next(i for i, line in enumerate(printed) if "Console:" in line)
    assert starting < console
    # The console line came after the server first answered (the test polls every 0.2 s).
    console_seen = made_run.lines[console][0]
    assert console_seen >= made_run.first_answer - 0.5
    console_url = printed[console].split("Console:")[1].strip()
    assert console_url.startswith("http://localhost:")
    assert httpx.get(console_url, timeout=10, follow_redirects=True).status_code == 200
    assert any(line.startswith("API key: bc_") for line in printed)
    # It listens on 127.0.0.1 only: the banner carries the demo password.
    port = int(made_run.url.rsplit(":", 1)[1])
    listening = {
        c.laddr.ip
        for c in psutil.net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN and c.laddr.port == port
    }
    assert listening == {"127.0.0.1"}, listening


def test_the_front_door_and_deep_links(browser, made_run):
    context, page, errors = _page(browser)
    page.goto(made_run.url + "/")
    page.wait_for_url("**/login**")
    # A deep link asks for sign-in, then opens the page that was asked for.
    page.goto(made_run.url + "/do-not-call")
    page.wait_for_url(re.compile(r".*/login\?next=%2Fdo-not-call.*"))
    page.get_by_label("Email").fill("demo@example.com")
    page.get_by_label("Password").fill("demo-password")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r".*/do-not-call/?$"))
    # Signed in, the front door opens the batch list; so does /login.
    page.goto(made_run.url + "/")
    page.wait_for_url("**/batches**")
    page.goto(made_run.url + "/login")
    page.wait_for_url("**/batches**")
    # A next= that points off the site is not followed.
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/login**")
    page.goto(made_run.url + "/login?next=//evil.example/x")
    page.get_by_label("Email").fill("demo@example.com")
    page.get_by_label("Password").fill("demo-password")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"http://127\.0\.0\.1:\d+/batches/?$"))
    assert errors == []
    context.close()


def test_the_api_docs_render_the_schema_with_the_batch_operations(browser, made_run):
    context, page, errors = _page(browser)
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(made_run.url + "/v1/docs")
    page.locator(".opblock-summary-path").first.wait_for()
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert any(p.strip() == "/v1/batch-calls" for p in paths), paths
    assert any("/v1/batch-calls/{batch_id}" in p for p in paths), paths
    assert page.get_by_text("Unable to render this definition").count() == 0
    page.get_by_text("OAS 3.1").first.wait_for()
    # Nothing was fetched from another host (no CDN).
    assert all(url.startswith(made_run.url) for url in requested), requested
    assert errors == []
    context.close()


def test_404_favicon_one_h1_per_page_no_hydration_error_and_every_link_opens(browser, made_run):
    icon = httpx.get(made_run.url + "/favicon.ico", timeout=10)
    assert icon.status_code == 200 and icon.content[:4] == b"\x00\x00\x01\x00"
    context, page, errors = _page(browser)
    page.goto(made_run.url + "/no-such-page")
    page.get_by_role("heading", name="Page not found", level=1).wait_for()
    page.get_by_role("link", name="Batch calls").click()
    page.wait_for_url("**/login**")  # signed out: the batch list asks for sign-in first
    sign_in(page, made_run.url)
    batch = _a_batch(made_run)
    seen: set[str] = set()
    queue = [*CONSOLE_PAGES, f"/batches/{batch}", "/no-such-page"]
    while queue:
        path = queue.pop(0)
        if path in seen:
            continue
        seen.add(path)
        errors.clear()
        page.goto(made_run.url + path)
        _settled(page)
        headings = page.locator("h1").all_inner_texts()
        assert len(headings) == 1, (path, headings)
        assert errors == [], (path, errors)  # React's #418 (hydration) included
        if path != "/no-such-page":
            assert headings != ["Page not found"], path
        for href in page.locator("a[href^='/']").evaluate_all(
            "els => els.map(e => e.getAttribute('href'))"
        ):
            if href.startswith("/v1/"):
                assert httpx.get(made_run.url + href, timeout=10).status_code == 200, href
            elif href.split("?")[0].rstrip("/") not in seen and not href.startswith("/wall"):
                queue.append(href.split("?")[0].rstrip("/") or "/")
    assert {"/batches", "/agents", "/phone-numbers", "/settings", "/do-not-call"} <= seen
    # "New batch" is one link: one tab stop, no button inside it.
    page.goto(made_run.url + "/batches")
    new_batch = page.get_by_role("link", name="New batch").first
    new_batch.wait_for()
    assert new_batch.locator("button, a, [tabindex]").count() == 0
    new_batch.focus()
    page.keyboard.press("Enter")
    page.wait_for_url("**/batches/new")
    context.close()


def test_a_name_typed_while_new_batch_loads_is_kept_and_starts_the_batch(
    browser, made_run, tmp_path
):
    context, page, errors = _page(browser)
    sign_in(page, made_run.url)
    page.goto(made_run.url + "/batches/new", wait_until="commit")
    name = page.locator("#batch-name")
    name.wait_for()
    name.press_sequentially("Typed at once", delay=20)
    page.get_by_role("combobox", name="Agent").get_by_text("Appointment reminders").wait_for()
    _settled(page)
    assert name.input_value() == "Typed at once"
    people = tmp_path / "people.csv"
    people.write_text("phone,first_name,appointment_time\n+14155552671,Ada,3pm\n")
    page.set_input_files("input[type=file]", str(people))
    page.get_by_text("1 valid").wait_for()
    page.get_by_role("button", name="Start batch").click()
    page.wait_for_url("**/batches/batch_*")
    batch_id = page.url.rstrip("/").rsplit("/", 1)[-1]
    detail = httpx.get(
        f"{made_run.url}/v1/batch-calls/{batch_id}", headers=made_run.headers, timeout=10
    ).json()
    assert detail["batch_call"]["name"] == "Typed at once"
    assert errors == []
    context.close()


def _a_batch(made_run: MadeRun) -> str:
    with httpx.Client(base_url=made_run.url, headers=made_run.headers, timeout=30) as api:
        agent = next(a for a in api.get("/v1/agents").json()["agents"] if a["placeholders"])
        return api.post(
            "/v1/batch-calls",
            json={
                "name": "Phone check",
                "agent_id": agent["id"],
                "recipients": [
                    {"phone": f"+1415555{2600 + i}", "first_name": "Ada", "appointment_time": "3pm"}
                    for i in range(3)
                ],
            },
        ).json()["id"]


def _no_sideways_scroll(page) -> None:
    """Neither the page scrolls sideways nor does any element reach past the screen's edge
    (the page column scrolls inside itself, which would hide that from the page's width)."""
    width = page.evaluate("() => document.scrollingElement.scrollWidth")
    assert width <= PHONE["width"], width
    past = page.evaluate(
        """limit => [...document.querySelectorAll('body *')]
            .filter(e => {
                const box = e.getBoundingClientRect();
                return box.width > 0 && box.height > 0 && box.right > limit + 0.5;
            })
            .map(e => e.tagName + ' ' + (e.innerText || '').slice(0, 40))""",
        PHONE["width"],
    )
    assert past == [], past


def _really_shown(locator) -> None:
    """What a person sees there is this element (not clipped away by a box of no height)."""
    locator.scroll_into_view_if_needed()
    assert locator.evaluate(
        """el => {
            const box = el.getBoundingClientRect();
            const hit = document.elementFromPoint(box.x + box.width / 2, box.y + box.height / 2);
            return box.height > 0 && (el === hit || el.contains(hit));
        }"""
    )


def _on_screen(locator) -> None:
    box = locator.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], box


def test_phones_get_a_menu_stacked_rows_and_no_sideways_scroll(browser, made_run):
    batch = _a_batch(made_run)
    context, page, errors = _page(browser, PHONE)
    sign_in(page, made_run.url)
    _settled(page)
    # The sidebar is a menu button; "New batch" is on screen; nothing scrolls sideways.
    assert not page.get_by_role("navigation", name="Sections").is_visible()
    _on_screen(page.get_by_role("link", name="New batch").first)
    _no_sideways_scroll(page)
    # The batch list's rows are stacked: no header row, each cell named by its column.
    row_link = page.get_by_role("link", name="Phone check").first
    row_link.wait_for()
    _really_shown(row_link)
    assert not page.locator("thead").first.is_visible()
    label = (
        page.locator("tbody td").nth(1).evaluate("td => getComputedStyle(td, '::before').content")
    )
    assert label == '"Status"', label
    page.get_by_role("button", name="Menu").click()
    page.get_by_role("menuitem", name="Agents").click()
    page.wait_for_url("**/agents")
    page.goto(f"{made_run.url}/batches/{batch}")
    page.get_by_role("heading", name="Phone check", level=1).wait_for()
    _settled(page)
    _no_sideways_scroll(page)
    _on_screen(page.get_by_role("button", name="Export results"))
    assert errors == []
    context.close()
    # At 1440 px the sidebar is back and the menu button gone.
    context, page, errors = _page(browser, DESKTOP)
    sign_in(page, made_run.url)
    page.get_by_role("navigation", name="Sections").wait_for()
    assert not page.get_by_role("button", name="Menu").is_visible()
    assert page.locator("thead").first.is_visible()
    context.close()


def test_the_wall_says_calling_only_while_calls_are_live_and_today_for_today(browser, made_run):
    workspace = made_run.cli("demo")["workspace_id"]
    token = made_run.cli("create-wall-token", "--workspace", workspace)["token"]
    # Due later today (in the browser's zone, UTC here), unless that crosses midnight.
    due = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=20)
    with httpx.Client(base_url=made_run.url, headers=made_run.headers, timeout=30) as api:
        agent = next(a for a in api.get("/v1/agents").json()["agents"] if a["placeholders"])
        api.post(
            "/v1/batch-calls",
            json={
                "name": "Later today",
                "agent_id": agent["id"],
                "scheduled_at": due.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "recipients": [
                    {"phone": "+14155552671", "first_name": "Ada", "appointment_time": "3pm"}
                ],
            },
        ).raise_for_status()
    context, page, errors = _page(browser)
    page.goto(f"{made_run.url}/wall?token={token}")
    word = "today" if due.date() == datetime.now(UTC).date() else "tomorrow"
    page.get_by_text(f"{word} {due:%H:%M}").wait_for()
    assert page.get_by_text(f"{due:%a} {due:%H:%M}").count() == 0
    activity = page.locator("#wall-activity")
    # Calls last 30 s here: the batches the other tests started are on the phone, or not.
    live = sum(
        b["counts"]["dialing"]
        for b in httpx.get(
            f"{made_run.url}/v1/batch-calls", headers=made_run.headers, timeout=10
        ).json()["batch_calls"]
    )
    if live == 0:
        page.get_by_text("· no calls right now").wait_for()
        _a_batch(made_run)
    page.wait_for_function(
        "() => document.querySelector('#wall-activity')?.innerText === '· calling now'",
        timeout=30_000,
    )
    assert activity.inner_text() == "· calling now"
    assert errors == []
    context.close()


def test_the_log_has_no_noise(made_run):
    # The wall screen of the test before is closed: its shared state is still written to.
    time.sleep(3)
    log = made_run.output.read_text(errors="replace")
    for noise in (
        "Attempting to send delta to disconnected client",
        "Failed to connect to https://",
        "of Node.js is out of date",
    ):
        assert noise not in log
