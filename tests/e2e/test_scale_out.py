"""The scale-out deployment of docs/deploy.md, for real: one PostgreSQL database, Redis for the
console's state, two backends (`BATCH_DIALER=off`) on different ports and three worker processes.

Batches are created through backend A's API and watched in browsers on both backends; the
worker holding the calls is SIGKILLed mid-batch. Then: every recipient ended exactly once (one
call per number in the provider's ledger), the counters add up, the workspace's concurrency cap
was never exceeded, and the pages on both backends moved through intermediate counts to the
final ones without a reload.

Each backend builds its own console: the prod build bakes `http://localhost:<port>` into
`env.json`, and the browser only swaps the host name, so a console built for one port opens
its websocket to that port, whoever served it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import redis
from sqlalchemy import func, select

from batch_dashboard.db import session_scope
from batch_dashboard.models import Recipient
from batch_dashboard.providers.simulator import ledger_rows
from tests.e2e.conftest import (
    Server,
    seed_demo,
    server_env,
    sign_in,
    start_server,
    stop_server,
)
from tests.worker.helpers import assert_counts_consistent, batch_row
from tests.worker.processes import kill, start_worker, stop, wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.browser,
    pytest.mark.xdist_group("processes"),
]

# A database of its own on the shared Redis; the test deletes only the keys of its own tabs and
# batches from it, never the database.
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/13")

CAP = 6  # BATCH_MAX_CONCURRENT_CALLS of the workspace, across all workers
PER_BATCH = 40
WORKER_ENV = {
    "BATCH_SIM_CALL_SECONDS": "1.2",  # ~1.4 s a connected call, ~0.2 s a busy one
    "BATCH_SIM_OUTCOMES": "completed=0.8,busy=0.2",
    "BATCH_MAX_CONCURRENT_CALLS": str(CAP),
    "BATCH_CALLS_PER_SECOND": "0",  # no pacing: the cap is the limit that binds
    "BATCH_LEASE_SECONDS": "2",  # renewed every 2/3 s (see _orphans_of_the_killed_worker)
    "BATCH_RECOVERY_INTERVAL_SECONDS": "0.5",
}

# Installed in each watching page: remembers every distinct thing the count tiles and the status
# badge showed, polled every 50 ms. A reload would wipe it (that is how a reload is noticed).
RECORDER = """
(name) => {
  const read = () => {
    const count = (id) => document.querySelector('#count-' + id)?.innerText ?? '';
    const heading = [...document.querySelectorAll('.rt-Heading')].find(
      (h) => h.innerText.trim() === name
    );
    const badge = heading?.nextElementSibling?.innerText?.trim() ?? '';
    return [count('pending'), count('dialing'), count('completed'), count('failed'), badge];
  };
  window.__scaleOut = {seen: [read()]};
  setInterval(() => {
    const seen = window.__scaleOut.seen;
    const now = read();
    if (now.join('|') !== seen[seen.length - 1].join('|')) seen.push(now);
  }, 50);
}
"""


@dataclass
class Watcher:
    """One tab on one backend, following one batch."""

    label: str
    server: Server
    batch: dict
    page: object
    navigations: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    client_token: str = ""
    seen_rows: list[tuple[int, int, int, int, str]] | None = None

    def seen(self) -> list[tuple[int, int, int, int, str]] | None:
        """(pending, dialing, completed, failed, status) as shown; None after a reload."""
        rows = self.page.evaluate("() => window.__scaleOut?.seen ?? null")
        if rows is None:
            return None
        return [(*(int(v) if v.isdigit() else -1 for v in row[:4]), row[4]) for row in rows]


def _start_backends(tmp: Path, database_url: str, demo: dict, env: dict) -> list[Server]:
    """Backends A and B, built and started side by side; both stopped again if either fails."""
    for name in ("a", "b"):
        (tmp / name).mkdir()
    with ThreadPoolExecutor(2) as pool:
        futures = [
            pool.submit(
                start_server,
                tmp / name,
                database_url=database_url,
                demo=demo,
                extra_env=env,
            )
            for name in ("a", "b")
        ]
    errors = [f.exception() for f in futures if f.exception() is not None]
    if errors:
        for future in futures:
            if future.exception() is None:
                stop_server(future.result().process)
        raise errors[0]
    return [f.result() for f in futures]


def _create_batch(server: Server, agent: dict, name: str, start: int) -> dict:
    response = httpx.post(
        f"{server.url}/v1/batch-calls",
        headers=server.headers,
        json={
            "name": name,
            "agent_id": agent["id"],
            "recipients": [
                {"phone": f"+1415555{i:04d}", "first_name": f"P{i}", "appointment_time": "3pm"}
                for i in range(start, start + PER_BATCH)
            ],
        },
        timeout=60,
    )
    assert response.status_code == 202, response.text[:500]
    return response.json()


def _watch(page, label: str, server: Server, batch: dict) -> Watcher:
    page.set_default_timeout(45_000)
    watcher = Watcher(label, server, batch, page)
    page.on("console", lambda m: watcher.console.append(f"{m.type}: {m.text}"))
    page.goto(f"{server.url}/batches/{batch['id']}")
    page.locator("#count-pending").wait_for()
    page.wait_for_function(
        f"() => document.querySelector('#count-pending')?.innerText === '{PER_BATCH}'"
    )
    page.evaluate(RECORDER, batch["name"])
    watcher.client_token = page.evaluate("() => window.sessionStorage.getItem('token') ?? ''")
    page.on(
        "framenavigated",
        lambda frame: watcher.navigations.append(frame.url) if frame == page.main_frame else None,
    )
    return watcher


def _sample_dialing(samples: list[int], expired: set[str], done: threading.Event) -> None:
    """The workspace's calls in progress, and the attempts whose lease ran out while dialing
    (only a dead worker stops renewing its leases)."""
    while not done.is_set():
        with session_scope() as session:
            samples.append(
                session.execute(
                    select(func.count()).select_from(Recipient).where(Recipient.status == "dialing")
                ).scalar_one()
            )
            expired.update(
                session.execute(
                    select(Recipient.attempt_id).where(
                        Recipient.status == "dialing",
                        Recipient.lease_expires_at < datetime.now(UTC),
                    )
                ).scalars()
            )
        done.wait(0.02)


def _dialing_leases() -> dict[str, datetime]:
    with session_scope() as session:
        return dict(
            session.execute(
                select(Recipient.attempt_id, Recipient.lease_expires_at).where(
                    Recipient.status == "dialing"
                )
            ).all()
        )


def _orphans_of_the_killed_worker(killed: float) -> set[str]:
    """The attempts the killed worker held: still dialing, their lease not renewed, 0.8 to
    1.25 s after the kill. A live worker renews its leases every 2/3 s (lease 2 s); a dead one's
    expire 1.33 to 2 s after its death, and only then can a survivor settle them."""
    at_kill = _dialing_leases()
    orphans: set[str] = set()
    while (elapsed := time.monotonic() - killed) < 1.25:
        now = _dialing_leases()
        if elapsed >= 0.8:
            orphans |= {a for a, lease in now.items() if at_kill.get(a) == lease}
        time.sleep(0.05)
    return orphans


def _done(batch_id: str) -> int:
    row = batch_row(batch_id)
    return row.completed_count + row.failed_count


def _forget_redis_keys(tokens: list[str]) -> None:
    """Delete this test's keys (its tabs' and its shared states'), nobody else's."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        for token in filter(None, tokens):
            keys = list(client.scan_iter(match=f"*{token}*", count=1000))
            if keys:
                client.delete(*keys)
    finally:
        client.close()


def _keep_what_the_pages_showed(watchers: list[Watcher], tmp_path: Path) -> None:
    """Read each tab's recording (and keep it with a screenshot beside the logs)."""
    for watcher in watchers:
        with contextlib.suppress(Exception):
            watcher.seen_rows = watcher.seen()
            (tmp_path / f"{watcher.label}.json").write_text(json.dumps(watcher.seen_rows))
            watcher.page.screenshot(path=tmp_path / f"{watcher.label}.png")


def test_two_backends_three_workers_and_a_killed_worker(
    postgres_url: str, browser, tmp_path: Path
) -> None:
    started = time.monotonic()
    with contextlib.closing(redis.Redis.from_url(REDIS_URL)) as client:
        client.ping()  # fail here, clearly, without Redis
    # Every process gets the fixture's BATCH_SECRET_KEY through os.environ. The demo key file
    # lands in tmp_path/data, not in the project.
    demo = seed_demo(server_env(postgres_url), cwd=tmp_path)
    backend_env = {
        "BATCH_DIALER": "off",
        "REFLEX_REDIS_URL": REDIS_URL,
        # Two web workers per backend (Reflex would start 5 on 2 cores): a tab's events and the
        # live-update writes still cross processes through Redis.
        "GRANIAN_WORKERS": "2",
    }
    worker_env = WORKER_ENV
    logs = [tmp_path / f"worker-{n}.log" for n in (1, 2, 3)]
    workers: list = []
    watchers: list[Watcher] = []
    samples: list[int] = []
    expired: set[str] = set()
    sampling = threading.Event()
    sampler = threading.Thread(target=_sample_dialing, args=(samples, expired, sampling))
    redis_tokens = [
        "ws-" + demo["workspace_id"].replace("_", "-"),
        "wall-" + demo["workspace_id"].replace("_", "-"),
    ]
    # Everything started is stopped by its own pid or process group, last started first.
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(_forget_redis_keys, redis_tokens)
        servers = _start_backends(tmp_path, postgres_url, demo, backend_env)
        for server in servers:
            cleanup.callback(stop_server, server.process)
        a, b = servers
        ready = time.monotonic()
        for server in servers:  # the backends serve; only the workers dial
            assert httpx.get(f"{server.url}/v1/health", timeout=10).json()["dialer"] == "off"
        agent = next(x for x in demo["agents"] if x["placeholders"])
        first = _create_batch(a, agent, "Scale-out one", 2000)
        second = _create_batch(a, agent, "Scale-out two", 3000)
        batches = (first, second)
        redis_tokens += ["batch-" + x["id"].replace("_", "-") for x in batches]

        # Nobody dials yet: the tabs open on untouched batches. One browser, signed in once on
        # B: the session lives in PostgreSQL, and its cookie (per host, not per port) opens A's
        # console too.
        context = browser.new_context(viewport={"width": 1440, "height": 900})
        cleanup.callback(context.close)
        cleanup.callback(_keep_what_the_pages_showed, watchers, tmp_path)
        signed_in = context.new_page()
        sign_in(signed_in, b.url)
        watchers += [
            _watch(signed_in, "B, first batch", b, first),
            _watch(context.new_page(), "B, second batch", b, second),
            _watch(context.new_page(), "A, first batch", a, first),
        ]
        redis_tokens += [watcher.client_token for watcher in watchers]
        watching = time.monotonic()

        sampler.start()

        @cleanup.callback
        def _stop_sampling() -> None:
            sampling.set()
            sampler.join()

        # The worker to be killed starts alone, so it holds the calls when it dies: with the
        # cap reached, a worker that ends a call claims the freed slot again at once.
        workers.append(start_worker(postgres_url, logs[0], **worker_env))
        cleanup.callback(stop, workers[0])
        wait_for(
            lambda: sum(batch_row(x["id"]).dialing_count for x in batches) > 0,
            timeout=60,
            what="the first calls",
            log=logs[0],
        )
        for log in logs[1:]:
            workers.append(start_worker(postgres_url, log, **worker_env))
            cleanup.callback(stop, workers[-1])
        wait_for(
            lambda: all("started" in log.read_text() for log in logs[1:]),
            timeout=60,
            what="workers 2 and 3 to start",
            log=logs[1],
        )
        # Killed as soon as the other two run: the less they took over, the more calls it holds.
        kill(workers[0])
        killed = time.monotonic()
        orphans = _orphans_of_the_killed_worker(killed)
        total = 2 * PER_BATCH
        killed_at_done = sum(_done(x["id"]) for x in batches)
        wait_for(
            lambda: all(batch_row(x["id"]).status == "completed" for x in batches),
            timeout=120,
            what="both batches to complete",
            log=logs[1],
        )
        completed_at = time.monotonic()
        for watcher in watchers:
            final = batch_row(watcher.batch["id"])
            expected = f"0|0|{final.completed_count}|{final.failed_count}|Completed"
            try:
                watcher.page.wait_for_function(
                    """(expected) => {
                      const seen = window.__scaleOut?.seen;
                      return !!seen && seen[seen.length - 1].join('|') === expected;
                    }""",
                    arg=expected,
                    timeout=20_000,
                )
            except Exception:
                shown = watcher.seen()
                raise AssertionError(
                    f"{watcher.label} shows {shown and shown[-1]}, expected {expected}\n"
                    + "\n".join(watcher.console[-20:])
                    + f"\n{watcher.server.log.read_text()[-3000:]}"
                ) from None
        followed_in = time.monotonic() - completed_at
        codes = [stop(worker) for worker in workers]

    # The killed worker died of SIGKILL; the two others stopped cleanly on SIGTERM.
    assert codes == [-9, 0, 0], [log.read_text()[-3000:] for log in logs]

    # Every recipient ended exactly once, and the counters add up.
    recipients = []
    for batch in batches:
        assert batch_row(batch["id"]).status == "completed"
        assert_counts_consistent(batch["id"])
        with session_scope() as session:
            recipients += session.execute(
                select(Recipient.phone, Recipient.status, Recipient.attempt_id).where(
                    Recipient.batch_id == batch["id"]
                )
            ).all()
    assert len(recipients) == total
    assert {r.status for r in recipients} <= {"completed", "failed"}
    calls = ledger_rows()
    per_number = Counter(call["to_number"] for call in calls)
    assert per_number.keys() == {r.phone for r in recipients}
    assert max(per_number.values()) == 1, "a number was dialed twice"
    # Each recipient ended with the call the provider placed for it, the killed worker's too:
    # its calls went on at the provider, and a survivor read their outcome once the lease ran out.
    assert {r.attempt_id for r in recipients} <= {call["attempt_id"] for call in calls}
    orphans |= expired
    assert orphans, "the killed worker held no call: its death tested nothing"
    placed_orphans = orphans & {call["attempt_id"] for call in calls}
    assert placed_orphans <= {r.attempt_id for r in recipients}, "a live call was dialed again"

    # The workspace's cap held across the three workers, and was actually reached.
    assert len(samples) > 50 and max(samples) <= CAP, max(samples)
    assert max(samples) == CAP

    # The survivors did the rest.
    placed = [int(n) for log in logs[1:] for n in re.findall(r"'placed': (\d+)", log.read_text())]
    assert sum(placed) > 0, [log.read_text()[-1000:] for log in logs[1:]]

    # Both backends' pages moved through intermediate counts to the final ones, never back,
    # without a reload.
    for watcher in watchers:
        seen = watcher.seen_rows
        assert seen is not None, f"{watcher.label}: the page was reloaded (its recorder is gone)"
        done = [completed + failed for _p, _d, completed, failed, _s in seen]
        intermediate = {d for d in done if 0 < d < PER_BATCH}
        assert len(intermediate) >= 3, (watcher.label, seen)
        assert done == sorted(done), (watcher.label, seen)
        assert any(status == "Running" for *_c, status in seen), (watcher.label, seen)
        assert not watcher.navigations, (watcher.label, watcher.navigations)

    print(
        f"\nbackends up in {ready - started:.0f} s, tabs watching after {watching - ready:.0f} s, "
        f"worker killed after {killed - watching:.0f} s, batches completed after "
        f"{completed_at - killed:.0f} s, pages showing it after {followed_in:.1f} s more; "
        f"calls ended before the kill: {killed_at_done}/{total}; orphaned attempts: "
        f"{len(orphans)} ({len(placed_orphans)} placed, {len(expired)} seen expired); "
        f"max calls in progress: {max(samples)} (cap {CAP}); states each tab showed: "
        + ", ".join(f"{w.label}: {len(w.seen_rows or [])}" for w in watchers)
        + f"; total {time.monotonic() - started:.0f} s"
    )
