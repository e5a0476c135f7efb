"""How fast and how cheaply the batch page follows the database, measured in a real browser.

The server runs without a dialer; this test moves recipients itself, so it knows the moment
of each change. Figures are printed (run with -s to see them), not asserted: performance
belongs to benchmarks. What is asserted is that the page follows at all, without a reload,
and that what the websocket carries does not grow with the batch.
"""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from batch_dashboard.db import session_scope
from batch_dashboard.providers.base import CallResult, CallStatus
from batch_dashboard.services import dialing
from tests.e2e.conftest import sign_in

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.xdist_group("processes")]


def _create_batch(server, count: int) -> str:
    agent = httpx.get(f"{server.url}/v1/agents", headers=server.headers).json()["agents"][0]["id"]
    lines = ["phone,first_name"] + [f"+1415{2000000 + i:07d},P{i}" for i in range(count)]
    response = httpx.post(
        f"{server.url}/v1/batch-calls",
        headers=server.headers,
        data={"name": f"Live {count}", "agent_id": agent},
        files={"csv_file": ("people.csv", "\n".join(lines).encode(), "text/csv")},
        timeout=120,
    )
    assert response.status_code == 202, response.text[:500]
    return response.json()["id"]


def _end_calls(count: int) -> int:
    """End the next `count` calls of the oldest live batch; returns how many."""
    now = datetime.now(UTC)
    with session_scope(write=True) as session:
        claims = dialing.claim_calls(
            session,
            limit=count,
            now=now,
            lease=timedelta(seconds=60),
            max_concurrent_calls=100_000,
            calls_per_second=0,
            default_provider="simulator",
        )
    done = CallResult(status=CallStatus.busy, failure_reason="busy", ended_at=now)
    with session_scope(write=True) as session:
        dialing.record_outcomes(session, outcomes=[(c.attempt_id, done) for c in claims], now=now)
    return len(claims)


def _create(server, count: int) -> str:
    """A fresh batch, after ending every call of earlier ones (claims take the oldest first)."""
    while _end_calls(5000):
        pass
    return _create_batch(server, count)


def _watch(browser, server, batch_id: str):
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    frames: list[int] = []
    page.on(
        "websocket", lambda ws: ws.on("framereceived", lambda payload: frames.append(len(payload)))
    )
    sign_in(page, server.url)
    page.goto(f"{server.url}/batches/{batch_id}")
    page.locator("#count-failed").wait_for(timeout=30_000)
    return context, page, frames


def _failed_shown(page, expected: int) -> None:
    try:
        page.wait_for_function(
            f"() => document.querySelector('#count-failed')?.innerText === '{expected}'",
            timeout=20_000,
        )
    except Exception:
        shown = page.locator("#count-failed").inner_text()
        raise AssertionError(f"the page shows {shown} failed, expected {expected}") from None


def test_the_batch_page_follows_the_database_within_about_a_second(browser, quiet_server):
    batch_id = _create(quiet_server, 200)
    context, page, _frames = _watch(browser, quiet_server, batch_id)
    delays = []
    try:
        for step in range(1, 11):
            _end_calls(1)
            changed = time.monotonic()
            _failed_shown(page, step)
            delays.append(time.monotonic() - changed)
            time.sleep(0.3)
    finally:
        context.close()
    print(
        f"\nchange → page: median {statistics.median(delays):.2f} s, "
        f"max {max(delays):.2f} s over {len(delays)} changes (target: median ≤ 1.0 s)"
    )


def test_websocket_messages_do_not_grow_with_the_batch(browser, quiet_server):
    sizes = {}
    for count in (1_000, 50_000):
        batch_id = _create(quiet_server, count)
        context, page, frames = _watch(browser, quiet_server, batch_id)
        try:
            frames.clear()
            ended = 0
            for _ in range(4):
                _end_calls(250)
                ended += 250
                _failed_shown(page, ended)
            sizes[count] = list(frames)
        finally:
            context.close()
    for count, frames in sizes.items():
        print(
            f"\n{count:>6,}-recipient batch running: {len(frames)} websocket messages, "
            f"median {statistics.median(frames):,.0f} B, max {max(frames):,} B"
        )
    # The page gets counts and one page of recipients, never the batch: the same whatever its size.
    assert max(sizes[50_000]) < 2 * max(sizes[1_000]) + 4096


def test_a_searched_page_follows_the_database(browser, quiet_server):
    """A tab showing its own rows (a search) reloads them when the batch moves."""
    batch_id = _create(quiet_server, 20)
    context, page, _frames = _watch(browser, quiet_server, batch_id)
    try:
        page.locator("#recipient-search").fill("2000003")  # the fourth recipient only
        row = page.locator("table tbody tr")
        page.wait_for_function(
            "() => document.querySelectorAll('table tbody tr').length === 1", timeout=20_000
        )
        assert "pending" in row.inner_text().lower()
        _end_calls(5)
        page.wait_for_function(
            "() => document.querySelector('table tbody tr')?.innerText.toLowerCase().includes('failed')",
            timeout=20_000,
        )
    finally:
        context.close()


def test_other_tabs_on_the_batch_do_not_multiply_what_a_tab_receives(browser, quiet_server):
    """Every event of a tab makes Reflex re-send the batch's shared state to the other tabs on
    it; a follow loop that entered its state every half second made each tab receive the first
    page once per other tab per tick. Counted over a quiet spell: a handful at most, not one
    per other tab per tick (3 × 2 × 4 = 24 before)."""
    batch_id = _create(quiet_server, 200)
    opened = [_watch(browser, quiet_server, batch_id) for _ in range(4)]
    try:
        _end_calls(3)
        _failed_shown(opened[0][1], 3)
        opened[0][1].wait_for_timeout(1000)  # the change has reached every tab
        watched = opened[0][2]
        first_page = len([f for f in watched if f > 4096])
        opened[0][1].wait_for_timeout(4000)
        received = len([f for f in watched if f > 4096]) - first_page
    finally:
        for context, _page, _frames in opened:
            context.close()
    print(f"\nlarge frames to one of 4 tabs over 4 quiet seconds: {received}")
    assert received <= 6
