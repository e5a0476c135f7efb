"""The app started the way `make run` starts it: migrate, demo, `reflex run --env prod`."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@contextlib.contextmanager
def one_start_at_a_time() -> Iterator[None]:
    """Held from launching a server until it answers. Every server of this checkout, whatever
    its own .web, reads and rewrites the project's `reflex.lock/` as it builds; two builds at
    once (the two xdist workers) once left its package.json without dependencies, and every
    later start in that run refused it as out of sync with bun.lock."""
    key = hashlib.sha256(str(PROJECT_ROOT).encode()).hexdigest()[:12]
    with (Path(tempfile.gettempdir()) / f"batch-calls-build-{key}.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    url: str
    database_url: str
    demo: dict
    process: subprocess.Popen
    log: Path

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.demo['api_key']}"}


def server_env(database_url: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "REFLEX_TELEMETRY_ENABLED": "false",
        "PYTHONPATH": str(PROJECT_ROOT),
        **extra,
    }


def seed_demo(env: dict[str, str], *, cwd: Path) -> dict:
    """`python -m batch_dashboard demo`: the demo workspace, its API key and its login."""
    return json.loads(
        subprocess.run(
            [sys.executable, "-m", "batch_dashboard", "demo"],
            env=env,
            cwd=cwd,
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout
    )


def start_server(
    tmp: Path,
    *,
    extra_env: dict[str, str] | None = None,
    backend_only: bool = False,
    port: int | None = None,
    database_url: str | None = None,
    demo: dict | None = None,
) -> Server:
    """Migrate a fresh SQLite file, seed the demo and start a server on it; or, given a
    `database_url`, start a server on that database as it is (the caller migrated and seeded
    it, and passes the `demo` it got)."""
    prepare = database_url is None
    database_url = database_url or f"sqlite:///{tmp / 'e2e.db'}"
    # Each server builds its console in its own directory: two servers (or a developer's
    # `make run`) sharing the project's .web would rebuild it under each other's feet.
    env = server_env(
        database_url,
        REFLEX_WEB_WORKDIR=str(tmp / ".web"),
        REFLEX_STATES_WORKDIR=str(tmp / ".states"),
        **(extra_env or {}),
    )
    if prepare:
        subprocess.run(
            [sys.executable, "-m", "batch_dashboard", "migrate"],
            env=env,
            cwd=PROJECT_ROOT,
            check=True,
            capture_output=True,
            timeout=120,
        )
        demo = seed_demo(env, cwd=tmp)  # its key file goes to tmp/data, not the project's
    port = port or free_port()
    mode = (
        ["--backend-only", "--backend-port", str(port)]
        if backend_only
        else ["--frontend-port", str(port)]
    )
    log = tmp / "server.log"
    url = f"http://127.0.0.1:{port}"
    with one_start_at_a_time():
        process = subprocess.Popen(
            [str(BIN / "reflex"), "run", "--env", "prod", *mode],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=log.open("a"),
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/v1/health", timeout=2).status_code == 200:
                    return Server(url, database_url, demo or {}, process, log)
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
    stop_server(process)
    raise RuntimeError(f"server did not answer in time:\n{log.read_text()[-3000:]}")


def stop_server(process: subprocess.Popen) -> None:
    """Stop the server's own process group (never anything found by name)."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(
        tmp_path_factory.mktemp("server"),
        extra_env={"BATCH_SIM_CALL_SECONDS": "0.5", "BATCH_SIM_OUTCOMES": "completed=1"},
    )
    try:
        yield running
    finally:
        stop_server(running.process)


BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture(scope="module")
def browser() -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=BROWSER_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def quiet_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server without a dialer: the test itself moves recipients, to time what the page shows."""
    running = start_server(tmp_path_factory.mktemp("quiet"), extra_env={"BATCH_DIALER": "off"})
    previous = os.environ.get("DATABASE_URL")
    os.environ["DATABASE_URL"] = running.database_url
    from batch_dashboard import db
    from batch_dashboard.settings import reload_settings

    db.dispose_engines()
    reload_settings()
    try:
        yield running
    finally:
        stop_server(running.process)
        if previous is None:
            os.environ.pop("DATABASE_URL", None)
        else:
            os.environ["DATABASE_URL"] = previous
        db.dispose_engines()
        reload_settings()


def sign_in(
    page, base_url: str, email: str = "demo@example.com", password: str = "demo-password"
) -> None:
    page.goto(f"{base_url}/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/batches**", timeout=45_000)
