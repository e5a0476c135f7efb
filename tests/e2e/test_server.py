"""One port serves console and API, as `make run` starts them; the README's curl session works."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("processes")]


def test_landing_page_and_api_share_the_port(server):
    page = httpx.get(f"{server.url}/", timeout=10, follow_redirects=True)
    assert page.status_code == 200 and "<html" in page.text.lower()
    health = httpx.get(f"{server.url}/v1/health", timeout=10).json()
    assert health == {"status": "ok", "database": "ok", "dialer": "running"}
    assert httpx.get(f"{server.url}/v1/docs", timeout=10).status_code == 200
    assert (
        httpx.get(f"{server.url}/v1/docs-assets/swagger-ui-bundle.js", timeout=10).status_code
        == 200
    )
    assert httpx.get(f"{server.url}/v1/openapi.json", timeout=10).json()["paths"]
    assert httpx.get(f"{server.url}/v1/batch-calls", timeout=10).status_code == 401


def test_readme_session(server):
    with httpx.Client(base_url=server.url, headers=server.headers, timeout=30) as api:
        agent = next(a for a in api.get("/v1/agents").json()["agents"] if a["placeholders"])
        created = api.post(
            "/v1/batch-calls",
            json={
                "name": "Appointment reminders",
                "agent_id": agent["id"],
                "recipients": [
                    {
                        "phone": "+14155552671",
                        "dynamic_vars": {"first_name": "Ada", "appointment_time": "3pm"},
                    },
                    {"phone": "+1 415 555 2672", "first_name": "Bob", "appointment_time": "4pm"},
                ],
            },
        )
        assert created.status_code == 202, created.text
        sample = api.get("/v1/batch-calls/sample.csv", params={"agent_id": agent["id"]}).text
        tomorrow = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT09:00:00Z")
        from_csv = api.post(
            "/v1/batch-calls",
            data={"name": "Tomorrow", "agent_id": agent["id"], "scheduled_at": tomorrow},
            files={"csv_file": ("people.csv", sample.encode(), "text/csv")},
        )
        assert from_csv.status_code == 202, from_csv.text
        assert from_csv.json()["status"] == "scheduled"
        listing = api.get("/v1/batch-calls").json()["batch_calls"]
        assert [b["id"] for b in listing[:2]] == [from_csv.json()["id"], created.json()["id"]]

        # The embedded dialer takes the first batch pending → running → completed.
        seen = set()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            detail = api.get(f"/v1/batch-calls/{created.json()['id']}").json()
            seen.add(detail["batch_call"]["status"])
            if detail["batch_call"]["status"] == "completed":
                break
            time.sleep(0.1)
        assert detail["batch_call"]["status"] == "completed", detail
        assert "running" in seen
        assert detail["batch_call"]["counts"]["completed"] == 2
        assert all(r["conversation_id"] for r in detail["recipients"])
        assert api.post(f"/v1/batch-calls/{created.json()['id']}/cancel").status_code == 409

        cancelled = api.post(f"/v1/batch-calls/{from_csv.json()['id']}/cancel")
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"


def test_every_v1_answer_is_the_json_envelope_even_past_the_console(server):
    """Reflex mounts the console after the API: no /v1 request, whatever its method or path,
    reaches the console's plain-text 404 (issue 15, item 6)."""
    with httpx.Client(base_url=server.url, headers=server.headers, timeout=30) as api:
        for method, path, status in [
            ("TRACE", "/v1/nothing", 404),
            ("OPTIONS", "/v1/nothing", 404),
            ("GET", "/v1/nothing%0Ahere", 404),
            ("POST", "/v1/batch-calls/abc%0A/pause", 404),
            ("OPTIONS", "/v1/batch-calls", 405),
            ("DELETE", "/v1/batch-calls", 405),
            ("GET", "/v1/do-not-call?cursor=%00", 422),
        ]:
            response = api.request(method, path)
            assert response.status_code == status, (method, path, response.text[:200])
            assert response.headers["content-type"].startswith("application/json"), (method, path)
            assert set(response.json()["error"]) == {"code", "message", "details"}
            if status == 405:
                assert response.headers["allow"] == "GET, POST"
