"""GET /v1/webhook-deliveries: the workspace's deliveries with their attempts, filtered."""

from __future__ import annotations

from batch_dashboard.db import session_scope
from batch_dashboard.providers.base import CallResult, CallStatus
from batch_dashboard.services import agents, dialing, webhooks
from batch_dashboard.services.webhooks import AttemptResult, DeliveryJob
from tests.worker.helpers import START, claim, make_batch


def _hooked_calls(tenant, count: int) -> str:
    with session_scope(write=True) as session:
        agent = agents.get_agent(
            session, workspace_id=tenant.workspace_id, agent_id=tenant.agent_id
        )
        agent.webhook_url = "https://hooks.example.com/in"  # set directly: no DNS in tests
        session.add(agent)
    batch = make_batch(tenant, count)
    claims = claim(limit=count)
    busy = CallResult(status=CallStatus.busy, failure_reason="busy", ended_at=START)
    with session_scope(write=True) as session:
        dialing.record_outcomes(session, outcomes=[(c.attempt_id, busy) for c in claims], now=START)
    return batch["id"]


def test_deliveries_are_listed_with_their_attempts(client, tenant, other_tenant):
    batch_id = _hooked_calls(tenant, 3)
    with session_scope(write=True) as session:
        [job] = webhooks.claim_due(session, now=START, limit=1)
    with session_scope(write=True) as session:
        webhooks.record_attempt(
            session,
            job=DeliveryJob(
                job.id, job.agent_id, job.url, job.payload, job.attempt_count, job.secrets
            ),
            result=AttemptResult(status_code=500),
            now=START,
            schedule=[5, 300],
        )
    response = client.get("/v1/webhook-deliveries", headers=tenant.headers)
    assert response.status_code == 200
    listed = response.json()["webhook_deliveries"]
    assert len(listed) == 3
    tried = next(d for d in listed if d["id"] == job.id)
    assert tried["attempts"] == [{"at": "2026-12-01T12:00:00Z", "status_code": 500, "error": None}]
    assert tried["status"] == "pending" and tried["attempt_count"] == 1
    assert tried["event_type"] == "call.failed" and tried["batch_id"] == batch_id
    assert set(tried) == {
        "id",
        "agent_id",
        "batch_id",
        "recipient_id",
        "event_type",
        "url",
        "status",
        "attempt_count",
        "attempts",
        "next_attempt_at",
        "created_at",
        "delivered_at",
    }

    def ids(**params):
        return [
            d["id"]
            for d in client.get(
                "/v1/webhook-deliveries", params=params, headers=tenant.headers
            ).json()["webhook_deliveries"]
        ]

    assert len(ids(agent_id=tenant.agent_id)) == 3
    assert ids(agent_id=tenant.unbound_agent_id) == []
    assert len(ids(batch_id=batch_id)) == 3
    assert len(ids(status="pending")) == 3 and ids(status="delivered") == []
    first = client.get("/v1/webhook-deliveries?limit=2", headers=tenant.headers).json()
    rest = client.get(
        f"/v1/webhook-deliveries?cursor={first['next_cursor']}", headers=tenant.headers
    ).json()
    assert len(first["webhook_deliveries"]) == 2 and len(rest["webhook_deliveries"]) == 1
    bad = client.get("/v1/webhook-deliveries?status=nope", headers=tenant.headers)
    assert bad.status_code == 422 and bad.json()["error"]["details"][0]["loc"] == ["status"]
    assert (
        client.get("/v1/webhook-deliveries", headers=other_tenant.headers).json()[
            "webhook_deliveries"
        ]
        == []
    )
    assert client.get("/v1/webhook-deliveries").status_code == 401
    assert "whsec" not in response.text


def test_deliveries_are_documented(client):
    schema = client.get("/v1/openapi.json").json()
    operation = schema["paths"]["/v1/webhook-deliveries"]["get"]
    assert {p["name"] for p in operation["parameters"]} >= {"agent_id", "status", "batch_id"}
    assert "200" in operation["responses"]
