"""Idempotency-Key: same body replays, other body is refused, concurrent requests make one batch."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from tests.api.helpers import batch_body


def _post(client, tenant, body, key: str, headers=None):
    return client.post(
        "/v1/batch-calls",
        json=body,
        headers={**(headers or tenant.headers), "Idempotency-Key": key},
    )


def _count(client, tenant) -> int:
    return len(client.get("/v1/batch-calls", headers=tenant.headers).json()["batch_calls"])


def test_same_key_same_body_answers_the_first_batch(client, tenant):
    body = batch_body(tenant)
    first = _post(client, tenant, body, "k-1")
    # Key order and spacing are not part of the meaning.
    second = client.post(
        "/v1/batch-calls",
        content='{{"recipients": {}, "agent_id": "{}", "name": "Appointment reminders"}}'.format(
            str(body["recipients"]).replace("'", '"'), tenant.agent_id
        ),
        headers={**tenant.headers, "Idempotency-Key": "k-1", "Content-Type": "application/json"},
    )
    assert first.status_code == second.status_code == 202
    assert first.json()["id"] == second.json()["id"]
    assert second.headers["location"] == first.headers["location"]
    assert _count(client, tenant) == 1


def test_same_key_other_body_is_refused(client, tenant):
    assert _post(client, tenant, batch_body(tenant), "k-2").status_code == 202
    response = _post(client, tenant, batch_body(tenant, name="Other"), "k-2")
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "idempotency_key_reused"
    assert _count(client, tenant) == 1


def test_keys_are_scoped_to_the_workspace(client, tenant, other_tenant):
    assert _post(client, tenant, batch_body(tenant), "shared").status_code == 202
    theirs = _post(client, other_tenant, batch_body(other_tenant), "shared", other_tenant.headers)
    assert theirs.status_code == 202
    assert _count(client, tenant) == 1 and _count(client, other_tenant) == 1


def test_a_failed_request_does_not_burn_the_key(client, tenant):
    bad = _post(client, tenant, batch_body(tenant, recipients=[{"phone": "nope"}]), "k-3")
    assert bad.status_code == 422
    good = _post(client, tenant, batch_body(tenant), "k-3")
    assert good.status_code == 202


def test_keys_expire_after_24_hours(client, tenant):
    from sqlalchemy import update

    from batch_dashboard.db import session_scope
    from batch_dashboard.models import IdempotencyRecord

    first = _post(client, tenant, batch_body(tenant), "k-4").json()
    with session_scope(write=True) as session:
        session.execute(
            update(IdempotencyRecord).values(created_at=datetime.now(UTC) - timedelta(hours=25))
        )
    again = _post(client, tenant, batch_body(tenant, name="Next day"), "k-4")
    assert again.status_code == 202 and again.json()["id"] != first["id"]


def test_a_key_over_255_characters_is_refused(client, tenant):
    response = _post(client, tenant, batch_body(tenant), "k" * 256)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_failed"


def test_concurrent_requests_with_one_key_create_one_batch(client, tenant):
    recipients = [{"phone": f"+1415555{i:04d}", "first_name": "x"} for i in range(2000, 5000)]
    body = batch_body(tenant, recipients=recipients)
    results: list = [None] * 4
    start = threading.Barrier(len(results))

    def send(slot: int) -> None:
        start.wait()
        results[slot] = _post(client, tenant, body, "race")

    threads = [threading.Thread(target=send, args=(slot,)) for slot in range(len(results))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    statuses = sorted(r.status_code for r in results)
    assert set(statuses) <= {202, 409}, [r.text for r in results]
    assert 202 in statuses
    assert len({r.json()["id"] for r in results if r.status_code == 202}) == 1
    for conflict in (r for r in results if r.status_code == 409):
        assert conflict.json()["error"]["code"] == "conflict"
    assert _count(client, tenant) == 1
    replay = _post(client, tenant, body, "race")
    assert replay.status_code == 202
