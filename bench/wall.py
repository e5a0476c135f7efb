"""Wall screen benchmark: the backend's CPU with 0, 1 and 10 wall screens open on a
50,000-recipient batch that is running.

The backend is `reflex run --env prod` (console + API on one port) with its dialer off; this
script plays the dialer itself, ending about 50 calls a second through the service layer, so
the batch really runs while the CPU of the backend's process tree is sampled with psutil, and
the websocket bytes each wall screen receives are counted.

    python bench/wall.py [--recipients 50000] [--seconds 30]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from ingest import backend_env, listening_process, provision, serving  # noqa: E402

BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@contextlib.contextmanager
def console_backend(workdir: Path) -> Iterator[tuple[str, dict[str, str], str, str]]:
    env = backend_env(f"sqlite:///{workdir / 'wall.db'}", dialer="off")
    env["REFLEX_WEB_WORKDIR"] = str(workdir / ".web")
    env["REFLEX_STATES_WORKDIR"] = str(workdir / ".states")
    api_key, agent_id = provision(env)
    with serving(env, workdir, 300, console=True) as (url, _process):
        yield url, env, api_key, agent_id


def tree_cpu_seconds(root: psutil.Process) -> float:
    total = 0.0
    for process in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            times = process.cpu_times()
            total += times.user + times.system
    return total


def play_dialer(stop: threading.Event, per_second: int) -> None:
    from batch_dashboard.db import session_scope
    from batch_dashboard.providers.base import CallResult, CallStatus
    from batch_dashboard.services import dialing

    while not stop.is_set():
        now = datetime.now(UTC)
        with session_scope(write=True) as session:
            claims = dialing.claim_calls(
                session,
                limit=per_second,
                now=now,
                lease=timedelta(seconds=60),
                max_concurrent_calls=100_000,
                calls_per_second=0,
                default_provider="simulator",
            )
        ok = CallResult(
            status=CallStatus.completed,
            started_at=now,
            ended_at=now,
            duration_seconds=5.0,
            transcript=[],
            evaluations={},
            data_collection={},
        )
        with session_scope(write=True) as session:
            dialing.record_outcomes(session, outcomes=[(c.attempt_id, ok) for c in claims], now=now)
        stop.wait(1.0)


def measure(
    root: psutil.Process, seconds: float, wait: Callable[[float], None] = time.sleep
) -> tuple[float, float]:
    """Percent of one core the backend used over `seconds`, and how long that was. `wait` is
    a page's `wait_for_timeout` once pages are open: Playwright's sync API delivers their
    websocket frames only while it is called."""
    before, started = tree_cpu_seconds(root), time.monotonic()
    wait(seconds)
    elapsed = time.monotonic() - started
    return 100 * (tree_cpu_seconds(root) - before) / elapsed, elapsed


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--recipients", type=int, default=50_000)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--calls-per-second", type=int, default=50)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with (
        tempfile.TemporaryDirectory(prefix="bench-wall-") as tmp,
        console_backend(Path(tmp)) as (url, env, key, agent),
    ):
        os.environ["DATABASE_URL"] = env["DATABASE_URL"]
        lines = ["phone,first_name"] + [
            f"+1415{2000000 + i:07d},P{i}" for i in range(args.recipients)
        ]
        created = httpx.post(
            f"{url}/v1/batch-calls",
            headers={"X-API-Key": key},
            data={"name": "Wall bench", "agent_id": agent},
            files={"csv_file": ("b.csv", "\n".join(lines).encode(), "text/csv")},
            timeout=300,
        )
        created.raise_for_status()
        wall_token = json.loads(
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "batch_dashboard",
                    "create-wall-token",
                    "--workspace",
                    _workspace_of_key(env, key),
                ],
                env=env,
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )["url_path"]
        root = listening_process(url)
        assert root is not None, "the backend listening on its port"
        stop = threading.Event()
        dialer = threading.Thread(
            target=play_dialer, args=(stop, args.calls_per_second), daemon=True
        )
        dialer.start()
        results: dict[int, float] = {}
        traffic: dict[int, float] = {}  # websocket bytes each wall received per second
        received = [0]  # every frame of every wall screen, in bytes

        def count(payload: str | bytes) -> None:
            received[0] += len(payload)

        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path="/usr/bin/chromium", args=BROWSER_ARGS
                )
                pages = []
                for walls in (0, 1, 10):
                    while len(pages) < walls:
                        page = browser.new_page(viewport={"width": 1920, "height": 1080})
                        page.on("websocket", lambda ws: ws.on("framereceived", count))
                        page.goto(f"{url}{wall_token}")
                        page.get_by_text("Calls today").wait_for(timeout=60_000)
                        pages.append(page)
                    wait = (lambda s: pages[0].wait_for_timeout(s * 1000)) if pages else time.sleep
                    wait(3)
                    before = received[0]
                    results[walls], elapsed = measure(root, args.seconds, wait)
                    traffic[walls] = (received[0] - before) / max(1, walls) / elapsed
                    print(
                        f"{walls:>2} wall screens: backend CPU {results[walls]:5.1f} % of one core"
                        + (f", {traffic[walls]:,.0f} websocket B per wall per s" if walls else "")
                    )
                browser.close()
        finally:
            stop.set()
            dialer.join(timeout=10)
    per_wall = (results[10] - results[0]) / 10
    print()
    print(
        f"recipients {args.recipients:,}, ~{args.calls_per_second} calls/s ending, {args.seconds:.0f} s per sample"
    )
    print(
        f"backend CPU: 0 walls {results[0]:.1f} %, 1 wall {results[1]:.1f} %, 10 walls {results[10]:.1f} %"
    )
    print(
        f"cost of one wall screen: {per_wall:.2f} % of one core (10 walls share one poll per second)"
    )
    print(
        f"websocket traffic per wall screen: {traffic[1]:,.0f} B/s with 1 wall, "
        f"{traffic[10]:,.0f} B/s with 10"
    )
    return 0


def _workspace_of_key(env: dict[str, str], key: str) -> str:
    from batch_dashboard.services import auth

    return auth.authenticate_api_key(key, database_url=env["DATABASE_URL"])


if __name__ == "__main__":
    raise SystemExit(main())
