"""/metrics: off without a token, the token required, call and HTTP figures in Prometheus format."""

from __future__ import annotations

from batch_dashboard.settings import reload_settings
from tests.api.helpers import batch_body


def test_metrics(client, tenant, monkeypatch):
    assert client.get("/metrics").status_code == 404
    monkeypatch.setenv("BATCH_METRICS_TOKEN", "s3cret-metrics")
    reload_settings()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
    client.post("/v1/batch-calls", json=batch_body(tenant), headers=tenant.headers)
    client.get("/v1/batch-calls", headers=tenant.headers)
    response = client.get("/metrics", headers={"Authorization": "Bearer s3cret-metrics"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'batch_recipients{status="pending"} 2.0' in text
    assert 'batch_calls_total{result="placed"}' in text
    assert (
        'batch_http_request_seconds_count{method="GET",route="/v1/batch-calls",status="200"}'
        in text
    )
    assert "batch_webhook_deliveries" in text or "batch_recipients_failed" in text
    assert tenant.api_key not in text
