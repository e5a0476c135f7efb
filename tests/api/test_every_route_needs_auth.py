"""Every route of the OpenAPI schema refuses a request without credentials (but health, and
the provider's event route, which a signature authenticates instead of a key)."""

from __future__ import annotations

import re

UNAUTHENTICATED = {("get", "/v1/health")}
SIGNED = {("post", "/v1/provider-events/http")}


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
