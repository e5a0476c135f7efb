"""A real backend (`reflex run --env prod --backend-only`, dialer embedded) whose PostgreSQL goes
away behind a TCP proxy the test owns: /v1/health answers 503 with `database: unreachable` and
`dialer: waiting for database`, API requests answer 503 with the error envelope, the log says
it once instead of a traceback per request and per dialer turn; when the database is back,
health is green again and a batch is dialed."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.e2e.conftest import seed_demo, server_env, start_server, stop_server
from tests.tcp_proxy import TcpProxy
from tests.worker.processes import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.xdist_group("processes")]


def test_a_backend_says_the_database_is_unreachable_and_recovers(
    postgres_url: str, tmp_path: Path
) -> None:
    target = make_url(postgres_url)
    with TcpProxy(target.port or 5432) as proxy:
        url = target.set(port=proxy.port).render_as_string(hide_password=False)
        demo = seed_demo(server_env(url), cwd=tmp_path)
        server = start_server(
            tmp_path,
            backend_only=True,
            database_url=url,
            demo=demo,
            extra_env={"BATCH_SIM_CALL_SECONDS": "0", "BATCH_SIM_OUTCOMES": "completed=1"},
        )
        try:
            assert httpx.get(f"{server.url}/v1/health").json()["dialer"] == "running"
            proxy.go_down()
            health = httpx.get(f"{server.url}/v1/health", timeout=15)
            assert health.status_code == 503
            assert health.json() == {
                "status": "unavailable",
                "database": "unreachable",
                "dialer": "waiting for database",
            }
            for _ in range(20):
                listed = httpx.get(f"{server.url}/v1/batch-calls", headers=server.headers)
                assert listed.status_code == 503, listed.text
                assert listed.json()["error"]["code"] == "database_unreachable"
                assert listed.headers["retry-after"] == "5"
            time.sleep(4)  # the embedded dialer's backoff turns a few times
            assert proxy.turned_away < 40, proxy.turned_away  # 20 requests, a few health checks

            proxy.come_back()
            wait_for(
                lambda: httpx.get(f"{server.url}/v1/health").json()["dialer"] == "running",
                timeout=40,
                what="health to recover",
                log=server.log,
            )
            created = httpx.post(
                f"{server.url}/v1/batch-calls",
                headers=server.headers,
                json={
                    "name": "After the outage",
                    "agent_id": demo["agents"][0]["id"],
                    "recipients": [
                        {"phone": "+14155552671", "first_name": "Ada", "appointment_time": "3pm"}
                    ],
                },
            )
            assert created.status_code == 202, created.text

            def dialed() -> bool:
                batch = httpx.get(
                    f"{server.url}/v1/batch-calls/{created.json()['id']}", headers=server.headers
                )
                assert batch.status_code == 200, batch.text
                return batch.json()["batch_call"]["status"] == "completed"

            wait_for(dialed, timeout=60, what="the batch dialed", log=server.log)
        finally:
            stop_server(server.process)
    text = server.log.read_text()
    assert text.count("database unreachable (") == 1, text[-3000:]
    assert text.count("database back after") == 1, text[-3000:]
    assert "Traceback" not in text, text[-4000:]
