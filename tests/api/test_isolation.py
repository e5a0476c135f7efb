"""Workspaces never see each other: another workspace's ids answer 404, exactly like unknown ids."""

from __future__ import annotations

from tests.api.helpers import batch_body


def test_another_workspaces_batch_is_invisible(client, tenant, other_tenant):
    mine = client.post("/v1/batch-calls", json=batch_body(tenant), headers=tenant.headers).json()
    theirs = other_tenant.headers
    for method, path in (
        ("get", f"/v1/batch-calls/{mine['id']}"),
        ("post", f"/v1/batch-calls/{mine['id']}/cancel"),
        ("get", f"/v1/agents/{tenant.agent_id}"),
        ("get", f"/v1/batch-calls/sample.csv?agent_id={tenant.agent_id}"),
    ):
        response = getattr(client, method)(path, headers=theirs)
        unknown = getattr(client, method)(
            path.replace(mine["id"], "batch_nope").replace(tenant.agent_id, "agent_nope"),
            headers=theirs,
        )
        assert response.status_code == unknown.status_code == 404, path
        assert response.json()["error"]["code"] == "not_found"
    assert client.get("/v1/batch-calls", headers=theirs).json()["batch_calls"] == []
    agent_ids = {a["id"] for a in client.get("/v1/agents", headers=theirs).json()["agents"]}
    assert tenant.agent_id not in agent_ids
    numbers = client.get("/v1/phone-numbers", headers=theirs).json()["phone_numbers"]
    assert tenant.number_id not in {n["id"] for n in numbers}
    # Listing filtered by a foreign agent shows nothing either.
    filtered = client.get(f"/v1/batch-calls?agent_id={tenant.agent_id}", headers=theirs).json()
    assert filtered["batch_calls"] == []
    # And the batch is untouched.
    detail = client.get(f"/v1/batch-calls/{mine['id']}", headers=tenant.headers).json()
    assert detail["batch_call"]["status"] == "pending"


def test_a_foreign_agent_or_number_cannot_be_used(client, tenant, other_tenant):
    response = client.post(
        "/v1/batch-calls",
        json=batch_body(tenant, agent_id=other_tenant.agent_id),
        headers=tenant.headers,
    )
    assert response.status_code == 422
    response = client.post(
        "/v1/batch-calls",
        json=batch_body(tenant, phone_number_id=other_tenant.number_id),
        headers=tenant.headers,
    )
    assert response.status_code == 422
