"""/v1/connections: credentials are write-only, connections are per workspace, a batch calls
through one connection (SQLite and PostgreSQL)."""

from __future__ import annotations

import json

from sqlalchemy import text

from batch_dashboard.db import session_scope
from batch_dashboard.services import agents
from tests.api.helpers import batch_body, error_locs

TOKEN = "f00dfacecafebeef0123456789abcdef"
SID = "AC" + "0123456789abcdef" * 2


def _twilio(client, tenant, **extra):
    body = {
        "provider": "twilio",
        "name": "Twilio – production",
        "credentials": {"account_sid": SID, "auth_token": TOKEN},
        **extra,
    }
    response = client.post("/v1/connections", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    return response.json()


def test_credentials_are_write_only_and_hinted(client, tenant):
    made = _twilio(client, tenant)
    assert made["id"].startswith("conn_")
    assert made["credentials"] == {"account_sid": "…cdef", "auth_token": "…cdef"}
    assert made["events_url"] == f"http://localhost:3000/v1/provider-events/twilio/{made['id']}"
    assert made["calls_per_second"] == 1.0
    assert made["supports"]["import_numbers"] is True
    listed = client.get("/v1/connections", headers=tenant.headers)
    one = client.get(f"/v1/connections/{made['id']}", headers=tenant.headers)
    for answer in (listed.text, one.text, json.dumps(made)):
        assert TOKEN not in answer and SID not in answer
    with session_scope() as session:
        dump = "\n".join(str(row) for row in session.execute(text("SELECT * FROM connection")))
    assert TOKEN not in dump and SID not in dump


def test_rotating_a_credential_keeps_the_others(client, tenant):
    made = _twilio(client, tenant)
    new_token = "0" * 28 + "beef"
    response = client.patch(
        f"/v1/connections/{made['id']}",
        json={"credentials": {"auth_token": new_token}, "calls_per_second": 5},
        headers=tenant.headers,
    )
    assert response.status_code == 200, response.text
    changed = response.json()
    assert changed["credentials"] == {"account_sid": "…cdef", "auth_token": "…beef"}
    assert changed["calls_per_second"] == 5.0


def test_bad_connections_are_refused_with_the_field(client, tenant):
    cases = [
        ({"provider": "skype", "name": "x"}, [["provider"]]),
        ({"provider": "twilio", "name": "x"}, [["credentials"]]),
        (
            {"provider": "twilio", "name": "", "credentials": {"account_sid": SID}},
            [["name"], ["credentials", "auth_token"]],
        ),
        (
            {
                "provider": "twilio",
                "name": "x",
                "credentials": {"api_key": "k", "account_sid": SID, "auth_token": TOKEN},
            },
            [["credentials", "api_key"]],
        ),
        (
            {
                "provider": "twilio",
                "name": "x",
                "calls_per_second": 0,
                "credentials": {"account_sid": SID, "auth_token": TOKEN},
            },
            [["calls_per_second"]],
        ),
        (
            {
                "provider": "twilio",
                "name": "x",
                "base_url": "ftp://x",
                "credentials": {"account_sid": SID, "auth_token": TOKEN},
            },
            [["base_url"]],
        ),
    ]
    for body, locs in cases:
        response = client.post("/v1/connections", json=body, headers=tenant.headers)
        assert response.status_code == 422, (body, response.text)
        assert error_locs(response) == locs, body
    assert client.get("/v1/connections", headers=tenant.headers).json()["connections"] == []


def test_workspaces_never_see_each_others_connections(client, tenant, other_tenant):
    made = _twilio(client, tenant)
    for method in ("get", "patch", "delete"):
        kwargs = {"json": {"name": "mine"}} if method == "patch" else {}
        response = client.request(
            method.upper(), f"/v1/connections/{made['id']}", headers=other_tenant.headers, **kwargs
        )
        assert response.status_code == 404, method
    assert client.get("/v1/connections", headers=other_tenant.headers).json()["connections"] == []


def test_a_connection_in_use_cannot_be_deleted(client, tenant):
    made = _twilio(client, tenant)
    with session_scope(write=True) as session:
        number = agents.create_phone_number(
            session,
            workspace_id=tenant.workspace_id,
            number="+14155550199",
            connection_id=made["id"],
        )
        assert number.provider == "twilio"
    response = client.delete(f"/v1/connections/{made['id']}", headers=tenant.headers)
    assert response.status_code == 409 and response.json()["error"]["code"] == "conflict"
    with session_scope(write=True) as session:
        agents.delete_phone_number(
            session, workspace_id=tenant.workspace_id, phone_number_id=number.id
        )
    assert client.delete(f"/v1/connections/{made['id']}", headers=tenant.headers).status_code == 204
    assert client.get(f"/v1/connections/{made['id']}", headers=tenant.headers).status_code == 404


def test_a_batch_calls_through_one_connection(client, tenant):
    made = _twilio(client, tenant)
    other = client.post(
        "/v1/connections", json={"provider": "simulator", "name": "Sim"}, headers=tenant.headers
    ).json()
    with session_scope(write=True) as session:
        number = agents.create_phone_number(
            session,
            workspace_id=tenant.workspace_id,
            number="+14155550199",
            connection_id=made["id"],
        )
        agent, _ = agents.create_agent(
            session,
            workspace_id=tenant.workspace_id,
            name="On the simulator",
            prompt="Hello",
            connection_id=other["id"],
        )
        agent_id = agent.id
    response = client.post(
        "/v1/batch-calls",
        json=batch_body(tenant, agent_id=agent_id, phone_number_id=number.id),
        headers=tenant.headers,
    )
    assert response.status_code == 422
    [problem] = response.json()["error"]["details"]
    assert problem["loc"] == ["phone_number_id"]
    assert agent_id in problem["message"] and number.id in problem["message"]
    assert made["id"] in problem["message"] and other["id"] in problem["message"]


def test_the_simulator_connection_tests_ok(client, tenant):
    made = client.post(
        "/v1/connections", json={"provider": "simulator", "name": "Sim"}, headers=tenant.headers
    ).json()
    response = client.post(f"/v1/connections/{made['id']}/test", headers=tenant.headers)
    assert response.status_code == 200 and response.json() == {"ok": True}
    refused = client.post(f"/v1/connections/{made['id']}/import-numbers", headers=tenant.headers)
    assert refused.status_code == 422
