"""The circuit breaker through /v1: its settings on create (checked field by field), the trip on
the batch, resume, and the trips in /metrics (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from batch_dashboard.providers.base import CallResult, CallStatus
from batch_dashboard.settings import reload_settings
from tests.api.helpers import batch_body, error_locs
from tests.worker.helpers import claim, numbers
from tests.worker.test_breaker import record


def _create(client, tenant, **fields):
    return client.post("/v1/batch-calls", json=batch_body(tenant, **fields), headers=tenant.headers)


def test_the_defaults_and_a_batchs_own_settings_are_shown(client, tenant):
    default = _create(client, tenant).json()
    assert default["circuit_breaker"] == {
        "failure_rate": 0.5,
        "min_attempts": 10,
        "window_seconds": 120,
    }
    assert default["paused_reason"] is None and default["circuit_breaker_trip"] is None
    own = _create(client, tenant, circuit_breaker={"failure_rate": 0.25}).json()
    assert own["circuit_breaker"] == {
        "failure_rate": 0.25,
        "min_attempts": 10,
        "window_seconds": 120,
    }
    assert _create(client, tenant, circuit_breaker=False).json()["circuit_breaker"] is False
    assert (
        _create(client, tenant, circuit_breaker=None).json()["circuit_breaker"]
        == (default["circuit_breaker"])
    )


@pytest.mark.parametrize(
    ("value", "loc"),
    [
        ({"failure_rate": 0}, ["circuit_breaker", "failure_rate"]),
        ({"failure_rate": 1.5}, ["circuit_breaker", "failure_rate"]),
        ({"failure_rate": "half"}, ["circuit_breaker", "failure_rate"]),
        ({"failure_rate": True}, ["circuit_breaker", "failure_rate"]),
        ({"min_attempts": 0}, ["circuit_breaker", "min_attempts"]),
        ({"min_attempts": 2.5}, ["circuit_breaker", "min_attempts"]),
        ({"min_attempts": 10_001}, ["circuit_breaker", "min_attempts"]),
        ({"window_seconds": 5}, ["circuit_breaker", "window_seconds"]),
        ({"window_seconds": "120"}, ["circuit_breaker", "window_seconds"]),
        ({"window": 120}, ["circuit_breaker", "window"]),
        ("on", ["circuit_breaker"]),
        (0.5, ["circuit_breaker"]),
        ([], ["circuit_breaker"]),
    ],
)
def test_bad_settings_are_refused_naming_the_field(client, tenant, value, loc):
    response = _create(client, tenant, circuit_breaker=value)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "validation_failed"
    assert loc in error_locs(response)
    listed = client.get("/v1/batch-calls", headers=tenant.headers).json()["batch_calls"]
    assert listed == []  # nothing was created


def test_a_csv_upload_takes_the_settings_as_json(client, tenant):
    form = {"name": "CSV", "agent_id": tenant.agent_id, "circuit_breaker": "false"}
    files = {"csv_file": ("r.csv", "phone\n+14155552671\n", "text/csv")}
    answer = client.post("/v1/batch-calls", data=form, files=files, headers=tenant.headers)
    assert answer.status_code == 202 and answer.json()["circuit_breaker"] is False
    form["circuit_breaker"] = '{"min_attempts": -1}'
    files = {"csv_file": ("r.csv", "phone\n+14155552671\n", "text/csv")}
    refused = client.post("/v1/batch-calls", data=form, files=files, headers=tenant.headers)
    assert refused.status_code == 422
    assert ["circuit_breaker", "min_attempts"] in error_locs(refused)


def test_a_tripped_batch_says_why_and_resumes(client, tenant, monkeypatch):
    recipients = [{"phone": phone} for phone in numbers(12)]
    batch = _create(client, tenant, recipients=recipients).json()
    now = datetime.now(UTC)
    claims = claim(now=now, cap=10)
    failure = CallResult(
        status=CallStatus.failed, failure_reason="provider_error", message="Carrier down"
    )
    record(claims, failure, now=now)
    url = f"/v1/batch-calls/{batch['id']}"
    shown = client.get(url, headers=tenant.headers).json()["batch_call"]
    assert shown["status"] == "running" and shown["paused"] is True
    assert shown["paused_reason"] == "failure_rate"
    trip = shown["circuit_breaker_trip"]
    assert (trip["attempts"], trip["failures"], trip["given_back"]) == (10, 10, 10)
    assert trip["last_error"] == "Carrier down" and trip["connection_id"] is None
    assert shown["counts"]["pending"] == 12

    monkeypatch.setenv("BATCH_METRICS_TOKEN", "s3cret-metrics")
    reload_settings()
    text = client.get("/metrics", headers={"Authorization": "Bearer s3cret-metrics"}).text
    assert 'batch_breaker_trips_total{reason="failure_rate"} 1.0' in text
    assert 'batch_breaker_trips_total{reason="account_suspended"} 0.0' in text

    resumed = client.post(f"{url}/resume", headers=tenant.headers)
    assert resumed.status_code == 200
    body = resumed.json()
    assert body["paused"] is False and body["paused_reason"] is None
    assert body["circuit_breaker_trip"] is None
    assert len(claim(now=now, cap=10)) == 10  # dialing again, from where it stopped


def test_a_manual_pause_says_so(client, tenant):
    batch = _create(client, tenant).json()
    claim(now=datetime.now(UTC), cap=1)
    paused = client.post(f"/v1/batch-calls/{batch['id']}/pause", headers=tenant.headers).json()
    assert paused["paused_reason"] == "manual" and paused["circuit_breaker_trip"] is None


def test_the_openapi_schema_documents_the_fields(client, tenant):
    schema = client.get("/v1/openapi.json").json()
    create = schema["paths"]["/v1/batch-calls"]["post"]["requestBody"]["content"]
    breaker = create["application/json"]["schema"]["properties"]["circuit_breaker"]
    settings, off = breaker["oneOf"]
    assert off == {"const": False}
    assert settings["properties"]["failure_rate"]["exclusiveMinimum"] == 0
    assert "circuit_breaker" in create["multipart/form-data"]["schema"]["properties"]
    batch = schema["components"]["schemas"]["BatchPublic"]["properties"]
    assert {"circuit_breaker", "paused_reason", "circuit_breaker_trip"} <= set(batch)
