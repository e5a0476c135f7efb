"""The /v1 contract of docs/api.md, route by route (each test runs on SQLite and on PostgreSQL)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

from tests.api.helpers import batch_body, error_locs
from tests.conftest import Tenant


def _create(client, tenant: Tenant, **overrides):
    response = client.post(
        "/v1/batch-calls", json=batch_body(tenant, **overrides), headers=tenant.headers
    )
    assert response.status_code == 202, response.text
    return response.json()


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- auth ---------------------------------------------------------------------------------


def test_every_route_but_health_needs_a_key(client, tenant):
    routes = [
        ("get", "/v1/batch-calls"),
        ("post", "/v1/batch-calls"),
        ("get", "/v1/batch-calls/batch_x"),
        ("post", "/v1/batch-calls/batch_x/cancel"),
        ("get", "/v1/batch-calls/sample.csv"),
        ("get", "/v1/agents"),
        ("get", f"/v1/agents/{tenant.agent_id}"),
        ("get", "/v1/phone-numbers"),
    ]
    for method, path in routes:
        for headers in ({}, {"Authorization": "Bearer bc_unknown"}, {"X-API-Key": "nope"}):
            response = getattr(client, method)(path, headers=headers)
            assert response.status_code == 401, (method, path, headers)
            assert response.json()["error"]["code"] == "unauthorized"
    assert client.get("/v1/health").status_code == 200


def test_both_key_headers_are_accepted(client, tenant):
    assert client.get("/v1/agents", headers={"X-API-Key": tenant.api_key}).status_code == 200
    assert client.get("/v1/agents", headers=tenant.headers).status_code == 200


def test_revoked_key_is_refused(client, tenant):
    from batch_dashboard.db import session_scope
    from batch_dashboard.services import auth

    with session_scope(write=True) as session:
        key = auth.create_api_key(session, workspace_id=tenant.workspace_id)
    headers = {"Authorization": f"Bearer {key.api_key}"}
    assert client.get("/v1/batch-calls", headers=headers).status_code == 200
    with session_scope(write=True) as session:
        auth.revoke_api_key(session, workspace_id=tenant.workspace_id, key_id=key.id)
    assert client.get("/v1/batch-calls", headers=headers).status_code == 401


# --- create (JSON) ------------------------------------------------------------------------


def test_create_answers_202_with_the_batch_and_location(client, tenant):
    response = client.post("/v1/batch-calls", json=batch_body(tenant), headers=tenant.headers)
    assert response.status_code == 202
    batch = response.json()
    assert response.headers["location"] == f"/v1/batch-calls/{batch['id']}"
    assert batch["id"].startswith("batch_")
    assert batch["status"] == "pending"
    assert batch["name"] == "Appointment reminders"
    assert batch["agent_id"] == tenant.agent_id
    assert batch["phone_number_id"] is None
    assert batch["scheduled_at"] is None
    assert batch["ringing_timeout_ms"] == 30000
    assert batch["created_at"].endswith("Z")
    assert batch["started_at"] is None and batch["finished_at"] is None
    assert batch["total_recipients"] == 2
    assert batch["counts"] == {
        "pending": 2,
        "dialing": 0,
        "completed": 0,
        "failed": 0,
        "cancelled": 0,
    }


def test_recipients_are_stored_in_e164_with_their_variables(client, tenant):
    body = batch_body(
        tenant,
        recipients=[
            {"phone": "+1 (415) 555-2671", "dynamic_vars": {"first_name": "Ada", "n": 3}},
            {"phone_number": "+1.415.555.2672", "first_name": "Bob", "vip": True, "score": 1.5},
            {"phone": "+442079460958", "dynamic_vars": {"first_name": "Old"}, "first_name": "New"},
        ],
    )
    batch = client.post("/v1/batch-calls", json=body, headers=tenant.headers).json()
    detail = client.get(f"/v1/batch-calls/{batch['id']}", headers=tenant.headers).json()
    assert detail["batch_call"]["id"] == batch["id"]
    recipients = detail["recipients"]
    assert [r["phone"] for r in recipients] == ["+14155552671", "+14155552672", "+442079460958"]
    assert recipients[0]["dynamic_vars"] == {"first_name": "Ada", "n": 3}
    assert recipients[1]["dynamic_vars"] == {"first_name": "Bob", "vip": True, "score": 1.5}
    assert recipients[2]["dynamic_vars"] == {"first_name": "New"}
    first = recipients[0]
    assert first["id"].startswith("rcpt_")
    assert first["status"] == "pending"
    assert first["attempts"] == 0
    for field in (
        "conversation_id",
        "failure_reason",
        "started_at",
        "ended_at",
        "duration_seconds",
    ):
        assert first[field] is None


def test_scheduled_batch(client, tenant):
    when = datetime.now(UTC) + timedelta(days=2)
    batch = _create(client, tenant, scheduled_at=_rfc3339(when))
    assert batch["status"] == "scheduled"
    assert batch["scheduled_at"] == _rfc3339(when)


def test_scheduled_at_with_an_offset_is_converted_to_utc(client, tenant):
    when = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    local = when.astimezone(datetime.now().astimezone().tzinfo).isoformat()
    offset = when.strftime("%Y-%m-%dT%H:%M:%S") + "+00:00"
    assert _create(client, tenant, scheduled_at=offset)["scheduled_at"] == _rfc3339(when)
    assert _create(client, tenant, scheduled_at=local)["scheduled_at"] == _rfc3339(when)


def test_scheduled_at_rules(client, tenant):
    now = datetime.now(UTC)
    for value in (
        _rfc3339(now - timedelta(minutes=1)),
        _rfc3339(now + timedelta(days=30, minutes=5)),
        "2026-12-01T15:00:00",
        "tomorrow",
    ):
        response = client.post(
            "/v1/batch-calls", json=batch_body(tenant, scheduled_at=value), headers=tenant.headers
        )
        assert response.status_code == 422, value
        assert error_locs(response) == [["scheduled_at"]]
    assert _create(client, tenant, scheduled_at=_rfc3339(now + timedelta(days=29, hours=23)))


def test_caller_id_override_and_ringing_timeout(client, tenant):
    from batch_dashboard.db import session_scope
    from batch_dashboard.services import agents

    with session_scope(write=True) as session:
        other = agents.create_phone_number(
            session, workspace_id=tenant.workspace_id, number="+14155550102"
        )
    batch = _create(client, tenant, phone_number_id=other.id, ringing_timeout_ms=1000)
    assert batch["phone_number_id"] == other.id
    assert batch["ringing_timeout_ms"] == 1000
    assert _create(client, tenant, ringing_timeout_ms=80000)["ringing_timeout_ms"] == 80000


def test_caller_number_must_exist_here_and_call_out(client, tenant, other_tenant):
    cases = [
        ({"agent_id": tenant.unbound_agent_id}, ["agent_id"], "no caller number"),
        ({"phone_number_id": tenant.inbound_only_number_id}, ["phone_number_id"], "outbound"),
        ({"phone_number_id": other_tenant.number_id}, ["phone_number_id"], "no phone number"),
        ({"phone_number_id": "pn_nope"}, ["phone_number_id"], "no phone number"),
        ({"agent_id": other_tenant.agent_id}, ["agent_id"], "no agent"),
        ({"agent_id": "agent_nope"}, ["agent_id"], "no agent"),
    ]
    for overrides, loc, words in cases:
        response = client.post(
            "/v1/batch-calls", json=batch_body(tenant, **overrides), headers=tenant.headers
        )
        assert response.status_code == 422, overrides
        error = response.json()["error"]
        assert error["code"] == "validation_failed"
        assert [d["loc"] for d in error["details"]] == [loc]
        assert words in error["details"][0]["message"]


def test_an_unbound_agent_works_with_an_override(client, tenant):
    batch = _create(
        client, tenant, agent_id=tenant.unbound_agent_id, phone_number_id=tenant.number_id
    )
    assert batch["phone_number_id"] == tenant.number_id


def test_every_problem_is_reported_and_nothing_is_created(client, tenant):
    body = batch_body(
        tenant,
        name="",
        ringing_timeout_ms=10,
        recipients=[
            {"phone": "4155552671"},
            {"phone": "+1 415 555 2671", "bad-name": "x"},
            {"phone": "+14155552671", "dynamic_vars": {"nested": {"a": 1}}},
            {"phone": "+1415555267"},
            {"phone": "+14155552671"},
        ],
    )
    response = client.post("/v1/batch-calls", json=body, headers=tenant.headers)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_failed"
    assert error["message"]
    locs = error_locs(response)
    assert ["name"] in locs
    assert ["ringing_timeout_ms"] in locs
    assert ["recipients", 0, "phone"] in locs
    assert ["recipients", 1, "bad-name"] in locs
    assert ["recipients", 2, "dynamic_vars", "nested"] in locs
    assert ["recipients", 3, "phone"] in locs
    duplicate = next(d for d in error["details"] if d["loc"] == ["recipients", 4, "phone"])
    assert "recipients[1]" in duplicate["message"] and "recipients[4]" in duplicate["message"]
    missing_code = next(d for d in error["details"] if d["loc"] == ["recipients", 0, "phone"])
    assert "country code" in missing_code["message"]
    assert client.get("/v1/batch-calls", headers=tenant.headers).json()["batch_calls"] == []


def test_problems_are_capped_at_1000(client, tenant):
    body = batch_body(tenant, recipients=[{"phone": "123"} for _ in range(1500)])
    response = client.post("/v1/batch-calls", json=body, headers=tenant.headers)
    assert response.status_code == 422
    assert len(response.json()["error"]["details"]) == 1000


def test_recipient_count_limit(client, tenant, monkeypatch):
    from batch_dashboard.settings import reload_settings

    monkeypatch.setenv("BATCH_MAX_RECIPIENTS_PER_BATCH", "3")
    reload_settings()
    many = [{"phone": f"+1415555{2670 + i}"} for i in range(4)]
    response = client.post(
        "/v1/batch-calls", json=batch_body(tenant, recipients=many), headers=tenant.headers
    )
    assert response.status_code == 422
    assert error_locs(response) == [["recipients"]]
    assert _create(client, tenant, recipients=many[:3])["total_recipients"] == 3
    empty = client.post(
        "/v1/batch-calls", json=batch_body(tenant, recipients=[]), headers=tenant.headers
    )
    assert error_locs(empty) == [["recipients"]]


def test_name_rules(client, tenant):
    for name in ("", "   ", "x" * 201, 5, None):
        response = client.post(
            "/v1/batch-calls", json=batch_body(tenant, name=name), headers=tenant.headers
        )
        assert response.status_code == 422, name
        assert error_locs(response) == [["name"]]
    assert _create(client, tenant, name="x" * 200)["name"] == "x" * 200


# --- create (CSV) -------------------------------------------------------------------------


def _post_csv(client, tenant: Tenant, text: str | bytes, **fields):
    data = {"name": "From CSV", "agent_id": tenant.agent_id, **fields}
    content = text.encode() if isinstance(text, str) else text
    return client.post(
        "/v1/batch-calls",
        data=data,
        files={"csv_file": ("people.csv", content, "text/csv")},
        headers=tenant.headers,
    )


def test_a_form_number_in_other_digits_is_a_validation_error(client, tenant):
    # "²" is a digit to str.isdigit() but not a number int() reads: it was a 500.
    for value in ("²", "1²"):
        response = _post_csv(client, tenant, "phone\n+14155552671\n", ringing_timeout_ms=value)
        assert response.status_code == 422, response.text
        assert error_locs(response) == [["ringing_timeout_ms"]]


def test_create_from_csv(client, tenant):
    text = '\ufeffPhone ; first_name;appointment_time\r\n+1 415 555 2671;Ada; 3pm \r\n\r\n+14155552672;"Bo;b";\r\n'
    response = _post_csv(client, tenant, text, ringing_timeout_ms="45000")
    assert response.status_code == 202, response.text
    batch = response.json()
    assert batch["ringing_timeout_ms"] == 45000
    assert batch["total_recipients"] == 2
    assert response.headers["location"] == f"/v1/batch-calls/{batch['id']}"
    recipients = client.get(f"/v1/batch-calls/{batch['id']}", headers=tenant.headers).json()[
        "recipients"
    ]
    assert recipients[0]["phone"] == "+14155552671"
    assert recipients[0]["dynamic_vars"] == {"first_name": "Ada", "appointment_time": "3pm"}
    assert recipients[1]["dynamic_vars"] == {"first_name": "Bo;b", "appointment_time": ""}


def test_csv_errors_name_row_and_column(client, tenant):
    text = "phone,first_name\n+14155552671,Ada\n415 555 2672,Bob\n\n+14155552671,Again\n"
    response = _post_csv(client, tenant, text)
    assert response.status_code == 422
    details = response.json()["error"]["details"]
    assert [d["loc"] for d in details] == [
        ["csv_file", "row", 3, "phone"],
        ["csv_file", "row", 5, "phone"],
    ]
    assert "row 2" in details[1]["message"] and "row 5" in details[1]["message"]


def test_csv_without_phone_column(client, tenant):
    response = _post_csv(client, tenant, "number,first_name\n+14155552671,Ada\n")
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_failed"
    assert error_locs(response)[0][:3] == ["csv_file", "row", 1]


def test_csv_form_fields_are_validated(client, tenant):
    response = _post_csv(
        client, tenant, "phone\n+14155552671\n", agent_id="", ringing_timeout_ms="abc"
    )
    assert response.status_code == 422
    assert sorted(error_locs(response)) == [["agent_id"], ["ringing_timeout_ms"]]


def test_csv_scheduled(client, tenant):
    when = _rfc3339(datetime.now(UTC) + timedelta(hours=3))
    response = _post_csv(client, tenant, "phone\n+14155552671\n", scheduled_at=when)
    assert response.status_code == 202
    assert response.json()["status"] == "scheduled"


# --- list ---------------------------------------------------------------------------------


def test_list_is_newest_first_with_a_cursor(client, tenant):
    ids = [_create(client, tenant, name=f"b{i}")["id"] for i in range(5)]
    page = client.get("/v1/batch-calls?limit=2", headers=tenant.headers).json()
    assert [b["id"] for b in page["batch_calls"]] == ids[::-1][:2]
    assert "recipients" not in page["batch_calls"][0]
    seen = [b["id"] for b in page["batch_calls"]]
    while page["next_cursor"]:
        page = client.get(
            "/v1/batch-calls",
            params={"limit": 2, "cursor": page["next_cursor"]},
            headers=tenant.headers,
        ).json()
        seen += [b["id"] for b in page["batch_calls"]]
    assert seen == ids[::-1]
    everything = client.get("/v1/batch-calls", headers=tenant.headers).json()
    assert everything["next_cursor"] is None and len(everything["batch_calls"]) == 5


def test_list_filters(client, tenant):
    pending = _create(client, tenant)["id"]
    scheduled = _create(
        client, tenant, scheduled_at=_rfc3339(datetime.now(UTC) + timedelta(days=1))
    )["id"]
    other_agent = _create(
        client, tenant, agent_id=tenant.unbound_agent_id, phone_number_id=tenant.number_id
    )["id"]

    def ids(**params):
        response = client.get("/v1/batch-calls", params=params, headers=tenant.headers)
        return [b["id"] for b in response.json()["batch_calls"]]

    assert ids(status="scheduled") == [scheduled]
    assert ids(status="pending") == [other_agent, pending]
    assert ids(agent_id=tenant.unbound_agent_id) == [other_agent]
    assert ids(status="completed") == []


def test_list_limit_bounds(client, tenant):
    for limit in ("0", "201", "-1", "x"):
        response = client.get(f"/v1/batch-calls?limit={limit}", headers=tenant.headers)
        assert response.status_code == 422, limit
        assert error_locs(response) == [["limit"]]
    assert client.get("/v1/batch-calls?limit=200", headers=tenant.headers).status_code == 200


# --- detail -------------------------------------------------------------------------------


def test_detail_filters_recipients_by_status(client, tenant):
    batch = _create(client, tenant)
    url = f"/v1/batch-calls/{batch['id']}"
    assert (
        len(
            client.get(url, params={"recipient_status": "pending"}, headers=tenant.headers).json()[
                "recipients"
            ]
        )
        == 2
    )
    assert (
        client.get(url, params={"recipient_status": "completed"}, headers=tenant.headers).json()[
            "recipients"
        ]
        == []
    )
    bad = client.get(url, params={"recipient_status": "nope"}, headers=tenant.headers)
    assert bad.status_code == 422 and error_locs(bad) == [["recipient_status"]]


def test_unknown_batch_is_404(client, tenant):
    for path in ("/v1/batch-calls/batch_nope", "/v1/batch-calls/" + "x" * 500):
        response = client.get(path, headers=tenant.headers)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
    assert (
        client.post("/v1/batch-calls/batch_nope/cancel", headers=tenant.headers).status_code == 404
    )


# --- cancel -------------------------------------------------------------------------------


def test_cancel_pending_and_scheduled(client, tenant):
    for overrides in ({}, {"scheduled_at": _rfc3339(datetime.now(UTC) + timedelta(days=1))}):
        batch = _create(client, tenant, **overrides)
        response = client.post(f"/v1/batch-calls/{batch['id']}/cancel", headers=tenant.headers)
        assert response.status_code == 200
        cancelled = response.json()
        assert cancelled["status"] == "cancelled"
        assert cancelled["counts"] == {
            "pending": 0,
            "dialing": 0,
            "completed": 0,
            "failed": 0,
            "cancelled": 2,
        }
        assert cancelled["finished_at"] is not None
        detail = client.get(f"/v1/batch-calls/{batch['id']}", headers=tenant.headers).json()
        assert {r["status"] for r in detail["recipients"]} == {"cancelled"}
        again = client.post(f"/v1/batch-calls/{batch['id']}/cancel", headers=tenant.headers)
        assert again.status_code == 200 and again.json() == cancelled


def test_cancel_refused_once_running(client, tenant):
    from sqlalchemy import update

    from batch_dashboard.db import session_scope
    from batch_dashboard.models import Batch

    for status in ("running", "completed", "failed"):
        batch = _create(client, tenant)
        with session_scope(write=True) as session:
            session.execute(update(Batch).where(Batch.id == batch["id"]).values(status=status))
        response = client.post(f"/v1/batch-calls/{batch['id']}/cancel", headers=tenant.headers)
        assert response.status_code == 409
        assert response.json()["error"]["code"] == "batch_not_cancellable"
        detail = client.get(f"/v1/batch-calls/{batch['id']}", headers=tenant.headers).json()
        assert detail["batch_call"]["status"] == status
        assert {r["status"] for r in detail["recipients"]} == {"pending"}


def test_stop_cancels_what_is_not_dialed_and_refuses_a_finished_batch(client, tenant):
    from tests.worker.helpers import claim

    url = "/v1/batch-calls/{}/stop"
    waiting = _create(client, tenant)
    response = client.post(url.format(waiting["id"]), headers=tenant.headers)
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    again = client.post(url.format(waiting["id"]), headers=tenant.headers)
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "batch_not_stoppable"

    running = _create(client, tenant)
    claim(cap=1)
    for bad in ({"hang_up": "yes"}, {"hangup": True}, [1]):
        refused = client.post(url.format(running["id"]), json=bad, headers=tenant.headers)
        assert refused.status_code == 422, bad
    response = client.post(
        url.format(running["id"]), json={"hang_up": True}, headers=tenant.headers
    )
    assert response.status_code == 200
    stopped = response.json()
    assert (stopped["status"], stopped["stopping"]) == ("running", True)
    assert stopped["counts"]["dialing"] == 1
    assert stopped["counts"]["cancelled"] == running["total_recipients"] - 1
    missing = client.post(url.format("batch_nope"), headers=tenant.headers)
    assert missing.status_code == 404


def test_export_is_the_consoles_csv_and_uploads_again_as_a_new_batch(client, tenant, other_tenant):
    from batch_dashboard.db import session_scope
    from batch_dashboard.services import batches

    batch = _create(client, tenant)
    response = client.get(f"/v1/batch-calls/{batch['id']}/export", headers=tenant.headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert f'filename="{batch["id"]}-results.csv"' in response.headers["content-disposition"]
    with session_scope() as session:
        assert response.text == batches.export_results_csv(
            session, workspace_id=tenant.workspace_id, batch_id=batch["id"]
        )
    assert _rows(response.text)[1][0].startswith("'+")  # neutralised, and accepted again
    again = _post_csv(client, tenant, response.text)
    assert again.status_code == 202, again.text
    assert again.json()["total_recipients"] == batch["total_recipients"]
    hidden = client.get(f"/v1/batch-calls/{batch['id']}/export", headers=other_tenant.headers)
    assert hidden.status_code == 404


def test_retry_takes_the_failure_reasons_to_redial(client, tenant):
    from tests.worker.helpers import claim
    from tests.worker.test_stop import BUSY, end

    batch = _create(client, tenant)
    end(claim(cap=10), BUSY)
    url = f"/v1/batch-calls/{batch['id']}/retry"
    for bad in ({"failure_reasons": "busy"}, {"failure_reasons": ["do_not_call"]}, {"x": 1}):
        refused = client.post(url, json=bad, headers=tenant.headers)
        assert refused.status_code == 422, bad
        assert refused.json()["error"]["details"]
    nothing = client.post(url, json={"failure_reasons": ["no_answer"]}, headers=tenant.headers)
    assert nothing.status_code == 200 and nothing.json()["status"] == "completed"
    retried = client.post(url, json={"failure_reasons": ["busy"]}, headers=tenant.headers)
    assert retried.status_code == 200
    assert retried.json()["counts"]["pending"] == batch["total_recipients"]


# --- sample, agents, numbers, health -------------------------------------------------------


def _rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_sample_csv(client, tenant):
    response = client.get("/v1/batch-calls/sample.csv", headers=tenant.headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = _rows(response.text)
    assert rows[0][0] == "phone" and len(rows[0]) > 1 and len(rows) == 3
    assert _post_csv(client, tenant, response.text).status_code == 202


def test_sample_csv_for_an_agent(client, tenant, other_tenant):
    response = client.get(
        f"/v1/batch-calls/sample.csv?agent_id={tenant.agent_id}", headers=tenant.headers
    )
    assert _rows(response.text)[0] == ["phone", "first_name", "appointment_time"]
    assert _post_csv(client, tenant, response.text).status_code == 202
    unbound = client.get(
        f"/v1/batch-calls/sample.csv?agent_id={tenant.unbound_agent_id}", headers=tenant.headers
    )
    assert _rows(unbound.text)[0] == ["phone"]
    foreign = client.get(
        f"/v1/batch-calls/sample.csv?agent_id={other_tenant.agent_id}", headers=tenant.headers
    )
    assert foreign.status_code == 404


def test_agents_and_phone_numbers(client, tenant):
    agents = client.get("/v1/agents", headers=tenant.headers).json()["agents"]
    assert {a["id"] for a in agents} == {tenant.agent_id, tenant.unbound_agent_id}
    agent = client.get(f"/v1/agents/{tenant.agent_id}", headers=tenant.headers).json()
    assert set(agent) == {
        "id",
        "name",
        "prompt",
        "first_message",
        "phone_number_id",
        "webhook_url",
        "placeholders",
        "connection_id",
        "external_agent_id",
        "stream_url",
    }
    assert agent["placeholders"] == ["first_name", "appointment_time"]
    assert agent["phone_number_id"] == tenant.number_id
    assert "secret" not in str(agents)
    numbers = client.get("/v1/phone-numbers", headers=tenant.headers).json()["phone_numbers"]
    assert {n["id"]: n["outbound_enabled"] for n in numbers} == {
        tenant.number_id: True,
        tenant.inbound_only_number_id: False,
    }
    assert set(numbers[0]) == {
        "id",
        "phone_number",
        "label",
        "provider",
        "outbound_enabled",
        "connection_id",
        "external_id",
    }
    assert client.get("/v1/agents/agent_nope", headers=tenant.headers).status_code == 404


def test_health(client):
    response = client.get("/v1/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "dialer": "off"}


def test_health_reports_an_unreachable_database(client, monkeypatch):
    from batch_dashboard import db
    from batch_dashboard.settings import reload_settings

    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:1/nothing")
    db.dispose_engines()
    reload_settings()
    response = client.get("/v1/health")
    assert response.status_code == 503
    assert response.json()["database"] == "unreachable"


def test_openapi_and_docs(client):
    schema = client.get("/v1/openapi.json").json()
    assert {
        "/v1/batch-calls",
        "/v1/batch-calls/{batch_id}",
        "/v1/batch-calls/{batch_id}/cancel",
        "/v1/batch-calls/sample.csv",
        "/v1/agents",
        "/v1/agents/{agent_id}",
        "/v1/phone-numbers",
        "/v1/health",
    } <= set(schema["paths"])
    create = schema["paths"]["/v1/batch-calls"]["post"]
    assert {"application/json", "multipart/form-data"} <= set(create["requestBody"]["content"])
    assert create["requestBody"]["content"]["application/json"]["examples"]
    assert "202" in create["responses"] and "422" in create["responses"]
    docs = client.get("/v1/docs")
    assert docs.status_code == 200 and "/v1/docs-assets/swagger-ui-bundle.js" in docs.text
    assert client.get("/v1/docs-assets/swagger-ui-bundle.js").status_code == 200


def test_unknown_v1_route_is_a_json_404(client):
    response = client.get("/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_pause_and_resume(client, tenant):
    from tests.worker.helpers import claim

    batch = _create(client, tenant, max_concurrency=1)
    assert batch["max_concurrency"] == 1 and batch["paused"] is False
    refused = client.post(f"/v1/batch-calls/{batch['id']}/pause", headers=tenant.headers)
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "conflict"
    assert len(claim(now=datetime.now(UTC))) == 1  # the batch is running now, one call at a time
    paused = client.post(f"/v1/batch-calls/{batch['id']}/pause", headers=tenant.headers)
    assert paused.status_code == 200 and paused.json()["paused"] is True
    assert client.get(f"/v1/batch-calls/{batch['id']}", headers=tenant.headers).json()[
        "batch_call"
    ]["paused"]
    resumed = client.post(f"/v1/batch-calls/{batch['id']}/resume", headers=tenant.headers)
    assert resumed.status_code == 200 and resumed.json()["paused"] is False
    assert (
        client.post("/v1/batch-calls/batch_nope/pause", headers=tenant.headers).status_code == 404
    )


def test_max_concurrency_is_validated(client, tenant):
    for value in (0, 11, "x", True, 2.5):
        response = client.post(
            "/v1/batch-calls",
            json=batch_body(tenant, max_concurrency=value),
            headers=tenant.headers,
        )
        assert response.status_code == 422, value
        assert error_locs(response) == [["max_concurrency"]]
    response = _post_csv(client, tenant, "phone\n+14155552671\n", max_concurrency="3")
    assert response.status_code == 202 and response.json()["max_concurrency"] == 3


def test_detail_follows_every_change_although_it_is_served_from_memory(
    client, tenant, other_tenant
):
    """The encoded detail is kept while the batch's version stands: each kind of write must
    show up in the next GET (claim, outcome, pause, resume)."""
    from batch_dashboard.providers.base import CallResult, CallStatus
    from batch_dashboard.services import dialing
    from tests.worker.helpers import claim

    batch = _create(client, tenant)
    url = f"/v1/batch-calls/{batch['id']}"

    def get() -> dict:
        response = client.get(url, headers=tenant.headers)
        assert response.status_code == 200
        return response.json()

    assert get() == get() and get()["batch_call"]["counts"]["pending"] == 2
    claims = claim(limit=1, now=datetime.now(UTC))
    seen = get()
    assert seen["batch_call"]["status"] == "running"
    assert [r["status"] for r in seen["recipients"]].count("dialing") == 1
    from batch_dashboard.db import session_scope

    with session_scope(write=True) as session:
        dialing.record_outcomes(
            session,
            outcomes=[(claims[0].attempt_id, CallResult(status=CallStatus.completed))],
            now=datetime.now(UTC),
        )
    seen = get()
    assert seen["batch_call"]["counts"]["completed"] == 1
    assert [r["status"] for r in seen["recipients"]].count("completed") == 1
    assert client.post(f"{url}/pause", headers=tenant.headers).status_code == 200
    assert get()["batch_call"]["paused"] is True
    assert client.post(f"{url}/resume", headers=tenant.headers).status_code == 200
    assert get()["batch_call"]["paused"] is False
    # Another workspace never gets the remembered body.
    assert client.get(url, headers=other_tenant.headers).status_code == 404
