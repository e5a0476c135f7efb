"""With REFLEX_REDIS_URL set, the per-key request limit belongs to the deployment, not to each
process: two real backends on one Redis, one API key, and together they let through one
bucket's worth of requests (a burst plus the rate), not two. Both databases."""

from __future__ import annotations

import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import redis

from batch_dashboard.services import ratelimit
from batch_dashboard.services.errors import RateLimited
from tests.e2e.conftest import Server, seed_demo, server_env, start_server, stop_server

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
RATE, BURST = 2, 10


def test_processes_share_one_bucket_per_key_through_redis() -> None:
    """Two RedisBuckets, as two processes hold them, spend from the same bucket."""
    first, second = ratelimit.RedisBuckets(REDIS_URL), ratelimit.RedisBuckets(REDIS_URL)
    key = f"test-{uuid.uuid4().hex}"
    try:
        for n in range(3):
            (first if n % 2 else second).take(key, rate=0.5, burst=3)
        with pytest.raises(RateLimited) as refused:
            first.take(key, rate=0.5, burst=3)
        assert refused.value.retry_after == 2
        with pytest.raises(RateLimited):
            second.take(key, rate=0.5, burst=3)
    finally:
        redis.Redis.from_url(REDIS_URL).delete(ratelimit.REDIS_KEY_PREFIX + key)


def test_an_unreachable_redis_lets_requests_through() -> None:
    gone = ratelimit.RedisBuckets("redis://127.0.0.1:1/0")
    for _ in range(5):
        gone.take("any", rate=1, burst=1)


@pytest.mark.slow
@pytest.mark.xdist_group("processes")
def test_two_backends_on_one_redis_share_the_per_key_limit(database: str, tmp_path: Path) -> None:
    demo = seed_demo(server_env(database), cwd=tmp_path)
    env = {
        "REFLEX_REDIS_URL": REDIS_URL,
        "GRANIAN_WORKERS": "1",  # one process per backend: the two backends are the point
        "BATCH_DIALER": "off",
        "BATCH_RATE_LIMIT_PER_SECOND": str(RATE),
        "BATCH_RATE_LIMIT_BURST": str(BURST),
    }
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    with ThreadPoolExecutor(2) as pool:
        futures = [
            pool.submit(
                start_server,
                tmp_path / name,
                backend_only=True,
                database_url=database,
                demo=demo,
                extra_env=env,
            )
            for name in ("a", "b")
        ]
    servers: list[Server] = [f.result() for f in futures if f.exception() is None]
    try:
        assert len(servers) == 2, [f.exception() for f in futures]
        assert servers[0].process.pid != servers[1].process.pid
        headers = {"Authorization": f"Bearer {demo['api_key']}"}
        answers: dict[str, list[int]] = {"a": [], "b": []}
        with httpx.Client(timeout=10) as client:
            started = time.monotonic()
            for n in range(40):
                name = "ab"[n % 2]
                server = servers[n % 2]
                response = client.get(f"{server.url}/v1/agents", headers=headers)
                answers[name].append(response.status_code)
                if response.status_code == 429:
                    assert response.json()["error"]["code"] == "rate_limited"
                    assert int(response.headers["retry-after"]) >= 1
            elapsed = time.monotonic() - started
        allowed = answers["a"].count(200) + answers["b"].count(200)
        # One bucket: the burst plus what refilled meanwhile. Two buckets would allow twice.
        assert BURST <= allowed <= BURST + RATE * elapsed + 1, (allowed, elapsed, answers)
        assert 429 in answers["a"] and 429 in answers["b"], answers
        assert set(answers["a"] + answers["b"]) == {200, 429}
    finally:
        for server in servers:
            stop_server(server.process)
