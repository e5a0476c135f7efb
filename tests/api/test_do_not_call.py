"""/v1/do-not-call, /retry, and the retry policy on the batch resource."""

from __future__ import annotations

from tests.api.helpers import batch_body, error_locs


def test_do_not_call_list(client, tenant, other_tenant):
    added = client.post(
        "/v1/do-not-call",
        json={"phone": "+1 (415) 555-2671", "reason": "asked"},
        headers=tenant.headers,
    )
    assert added.status_code == 201
    assert added.json()["phone"] == "+14155552671" and added.json()["source"] == "api"
    assert (
        client.post(
            "/v1/do-not-call", json={"phone": "+14155552671"}, headers=tenant.headers
        ).status_code
        == 201
    )
    listed = client.get("/v1/do-not-call", headers=tenant.headers).json()
    assert [e["phone"] for e in listed["do_not_call"]] == ["+14155552671"]
    assert client.get("/v1/do-not-call", headers=other_tenant.headers).json()["do_not_call"] == []
    bad = client.post("/v1/do-not-call", json={"phone": "4155552671"}, headers=tenant.headers)
    assert bad.status_code == 422 and error_locs(bad) == [["phone"]]
    assert (
        client.delete("/v1/do-not-call/%2B14155552671", headers=other_tenant.headers).status_code
        == 404
    )
    assert (
        client.delete("/v1/do-not-call/%2B14155552671", headers=tenant.headers).status_code == 204
    )
    assert client.get("/v1/do-not-call", headers=tenant.headers).json()["do_not_call"] == []
    assert client.get("/v1/do-not-call").status_code == 401


def test_retry_policy_is_validated_and_shown(client, tenant):
    policy = {"max_attempts": 3, "retry_on": ["no_answer", "busy"], "delay_seconds": 120}
    created = client.post(
        "/v1/batch-calls", json=batch_body(tenant, retry_policy=policy), headers=tenant.headers
    )
    assert created.status_code == 202 and created.json()["retry_policy"] == policy
    for bad, loc in (
        ({"max_attempts": 11}, ["retry_policy", "max_attempts"]),
        ({"retry_on": ["ringing"]}, ["retry_policy", "retry_on"]),
        ({"delay_seconds": 5}, ["retry_policy", "delay_seconds"]),
        ({"oops": 1}, ["retry_policy", "oops"]),
        ("often", ["retry_policy"]),
    ):
        response = client.post(
            "/v1/batch-calls", json=batch_body(tenant, retry_policy=bad), headers=tenant.headers
        )
        assert response.status_code == 422 and loc in error_locs(response), bad
    conflict = client.post(f"/v1/batch-calls/{created.json()['id']}/retry", headers=tenant.headers)
    assert conflict.status_code == 409 and conflict.json()["error"]["code"] == "conflict"
