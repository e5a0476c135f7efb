"""One port serves console and API, as `make run` starts them; the README's curl session works."""

from __future__ import annotations

import httpx
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("reflex-server")]


def test_landing_page_and_api_share_the_port(server):
    page = httpx.get(f"{server.url}/", timeout=10, follow_redirects=True)
    assert page.status_code == 200 and "<html" in page.text.lower()
    health = httpx.get(f"{server.url}/v1/health", timeout=10).json()
    assert health["status"] == "ok" and health["database"] == "ok"
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
        from_csv = api.post(
            "/v1/batch-calls",
            data={"name": "From CSV", "agent_id": agent["id"]},
            files={"csv_file": ("people.csv", sample.encode(), "text/csv")},
        )
        assert from_csv.status_code == 202, from_csv.text
        detail = api.get(f"/v1/batch-calls/{created.json()['id']}").json()
        assert detail["batch_call"]["total_recipients"] == 2
        listing = api.get("/v1/batch-calls").json()["batch_calls"]
        assert [b["id"] for b in listing[:2]] == [from_csv.json()["id"], created.json()["id"]]
