"""Real `python -m batch_dashboard worker` processes, stopped by their own pid."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def start_worker(database_url: str, log: Path, **env: str) -> subprocess.Popen:
    environment = {
        **os.environ,
        "DATABASE_URL": database_url,
        "PYTHONPATH": str(PROJECT_ROOT),
        "BATCH_LEASE_SECONDS": "2",
        "BATCH_RECOVERY_INTERVAL_SECONDS": "0.5",
        "BATCH_SHUTDOWN_GRACE_SECONDS": "5",
        "BATCH_LOG_LEVEL": "INFO",
        **env,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "batch_dashboard", "worker"],
        env=environment,
        cwd=PROJECT_ROOT,
        stdout=log.open("a"),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )


def stop(process: subprocess.Popen, *, timeout: float = 20) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    return process.returncode


def kill(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.kill()  # SIGKILL: no cleanup at all, like a crash
        process.wait(timeout=10)


def wait_for(
    condition: Callable[[], bool], *, timeout: float, what: str, log: Path | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    tail = log.read_text()[-4000:] if log and log.exists() else ""
    raise AssertionError(f"timed out waiting for {what}\n{tail}")
