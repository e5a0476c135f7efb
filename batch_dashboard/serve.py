"""`make run`'s server: `reflex run --env prod` on one port, announced only once it answers.

The first start builds the console (a minute or more), so a URL printed up front would open
on nothing: this says it is starting, then prints the console URL, the demo login and the API
key when `/v1/health` answers. It listens on 127.0.0.1 unless HOST asks for another interface:
the banner carries a demo password.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

PROJECT_ROOT = Path(__file__).resolve().parent.parent  # where rxconfig.py is
DEFAULT_HOST = "127.0.0.1"
_ANY = {"0.0.0.0", "::", ""}
_POLL_SECONDS = 0.5


def shown_host(host: str) -> str:
    """The host a person opens: listening everywhere still opens at localhost."""
    if host in _ANY or host == DEFAULT_HOST:
        return "localhost"
    return f"[{host}]" if ":" in host else host


def _probe_host(host: str) -> str:
    if host in _ANY:
        return DEFAULT_HOST
    return f"[{host}]" if ":" in host else host


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def serve(*, port: int, host: str, banner: Callable[[str], str]) -> int:
    """Run the server until it exits (or this process is told to stop); `banner(console_url)`
    is printed once the server answers. Returns the server's exit code."""
    console = f"http://{shown_host(host)}:{port}/"
    print(f"Starting Batch calls on {console} (the first start builds the console)…", flush=True)
    reflex = Path(sys.executable).with_name("reflex")
    command = ["run", "--env", "prod", "--frontend-port", str(port), "--backend-host", host]
    # The server gets its own session, and each stop signal through this process once, as
    # SIGTERM: the shutdown that hands the dialer's live calls over and is tested as such (an
    # interrupt also stops it, but cancels the scheduler's jobs mid-run, tracebacks and all).
    process = subprocess.Popen(
        [str(reflex), *command],
        cwd=PROJECT_ROOT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )

    def stop(_signum: int, _frame: object) -> None:
        if process.poll() is None:
            process.terminate()

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, stop)
    health = f"http://{_probe_host(host)}:{port}/v1/health"
    try:
        while process.poll() is None:
            if _answers(health):
                print(banner(console), flush=True)
                break
            time.sleep(_POLL_SECONDS)
        return process.wait()
    finally:
        # This process failing must not leave a server behind in its own session.
        if process.poll() is None:
            process.terminate()
            process.wait()


def host_from_env() -> str:
    return os.environ.get("HOST") or DEFAULT_HOST
