"""Every route of the OpenAPI schema refuses a request without credentials (but health, and
the providers' event routes, which a signature authenticates instead of a key)."""

from __future__ import annotations

import re

UNAUTHENTICATED = {("get", "/v1/health")}
SIGNED = {
    ("post", "/v1/provider-events/http"),
    ("post", "/v1/provider-events/twilio/{connection_id}"),
    ("post", "/v1/provider-events/{provider}/{connection_id}"),
}


def test_every_route_refuses_anonymous_callers(client):
    schema = client.get("/v1/openapi.json").json()
    checked = 0
    for path, operations in schema["paths"].items():
        concrete = re.sub(r"\{[^}]+\}", "x_1", path)
        for method in operations:
            if (method, path) in UNAUTHENTICATED:
                continue
            response = client.request(method.upper(), concrete)
            if (method, path) in SIGNED:
                assert response.status_code in (401, 404), (method, path)
                continue
            assert response.status_code == 401, (method, path, response.status_code)
            assert response.json()["error"]["code"] == "unauthorized"
            checked += 1
    assert checked >= 14


def test_no_route_accepts_a_body_over_the_limit(client, tenant, monkeypatch):
    from batch_dashboard.settings import reload_settings

    monkeypatch.setenv("BATCH_MAX_UPLOAD_BYTES", "1000")
    reload_settings()
    big = b"x" * (1000 + 64 * 1024 + 1)
    for path in ("/v1/do-not-call", "/v1/batch-calls", "/v1/provider-events/http", "/v1/nothing"):
        response = client.post(
            path, content=big, headers={**tenant.headers, "content-type": "application/json"}
        )
        assert response.status_code == 413, path
        assert response.json()["error"]["code"] == "payload_too_large"


def test_requests_are_rate_limited_per_key(client, tenant, other_tenant, monkeypatch):
    from batch_dashboard.settings import reload_settings

    monkeypatch.setenv("BATCH_RATE_LIMIT_PER_SECOND", "1")
    monkeypatch.setenv("BATCH_RATE_LIMIT_BURST", "3")
    reload_settings()
    answers = [client.get("/v1/agents", headers=tenant.headers) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    limited = answers[-1]
    assert limited.json()["error"]["code"] == "rate_limited"
    assert int(limited.headers["retry-after"]) >= 1
    assert client.get("/v1/agents", headers=other_tenant.headers).status_code == 200
