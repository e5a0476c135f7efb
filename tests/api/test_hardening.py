"""Issue 15's attack run, case by case: each test failed before its fix, and runs on SQLite and
on PostgreSQL (the `client` and `tenant` fixtures), where a NUL in a text column is a driver
error rather than a stored string."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse

from batch_dashboard.db import session_scope
from batch_dashboard.services import agents, batches
from batch_dashboard.services.errors import ValidationFailed
from batch_dashboard.services.recipients import VALUE_MAX_CHARS
from batch_dashboard.settings import reload_settings
from tests.api.helpers import batch_body, error_locs
from tests.conftest import Tenant

BATCHES = "/v1/batch-calls"
DNC = "/v1/do-not-call"
DELIVERIES = "/v1/webhook-deliveries"
NUL_MESSAGE = "must not contain the NUL character (U+0000)"


def envelope(response: Response, status: int, code: str) -> dict[str, Any]:
    """The error, checked to be the contract's JSON envelope and nothing else."""
    assert response.status_code == status, (response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("application/json"), response.headers
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details"} and error["code"] == code, error
    return error


def refused_at(response: Response, *locs: list[Any]) -> dict[str, Any]:
    error = envelope(response, 422, "validation_failed")
    assert error_locs(response) == list(locs), error
    return error


def create(client: TestClient, tenant: Tenant, body: dict[str, Any], **headers: str) -> Response:
    return client.post(BATCHES, json=body, headers={**tenant.headers, **headers})


def post_csv(client: TestClient, tenant: Tenant, data: bytes, **fields: str) -> Response:
    form = {"name": "CSV batch", "agent_id": tenant.agent_id, **fields}
    files = {"csv_file": ("recipients.csv", data, "text/csv")}
    return client.post(BATCHES, data=form, files=files, headers=tenant.headers)


def no_batches(client: TestClient, tenant: Tenant) -> bool:
    return client.get(BATCHES, headers=tenant.headers).json()["batch_calls"] == []


def future(days: float = 1) -> datetime:
    return (datetime.now(UTC) + timedelta(days=days)).replace(microsecond=0)


# --- 1. NUL: one rule for every text, a 422 naming the field ----------------------------------


def test_a_nul_in_a_do_not_call_reason_is_422_and_stores_nothing(
    client: TestClient, tenant: Tenant
) -> None:
    response = client.post(
        DNC, json={"phone": "+14155552679", "reason": "a\u0000b"}, headers=tenant.headers
    )
    error = refused_at(response, ["reason"])
    assert NUL_MESSAGE in error["message"]
    assert client.get(DNC, headers=tenant.headers).json()["do_not_call"] == []


@pytest.mark.parametrize(
    ("path", "query", "name"),
    [
        (DNC, "cursor=%00", "cursor"),
        (BATCHES, "status=a%00b", "status"),
        (BATCHES, "agent_id=%00", "agent_id"),
        (f"{BATCHES}/sample.csv", "agent_id=agent_%00", "agent_id"),
        (DELIVERIES, "batch_id=%00&limit=5", "batch_id"),
    ],
)
def test_a_nul_in_a_query_parameter_is_422_naming_it(
    client: TestClient, tenant: Tenant, path: str, query: str, name: str
) -> None:
    error = refused_at(client.get(f"{path}?{query}", headers=tenant.headers), [name])
    assert error["details"][0]["message"] == NUL_MESSAGE


def test_a_nul_anywhere_in_a_json_body_is_422_naming_each_field(
    client: TestClient, tenant: Tenant
) -> None:
    body = batch_body(
        tenant,
        voicemail={"action": "leave_message", "message": "Call us\u0000back"},
        recipients=[
            {"phone": "+14155552671", "dynamic_vars": {"first_name": "A\u0000da"}},
            {"phone": "+14155552672", "note\u0000": "x", "tags": "ok"},
        ],
    )
    response = create(client, tenant, body)
    refused_at(
        response,
        ["recipients", 0, "dynamic_vars", "first_name"],
        ["recipients", 1, "note\u0000"],
        ["voicemail", "message"],
    )
    assert no_batches(client, tenant)


def test_a_nul_in_a_form_field_is_422_naming_it(client: TestClient, tenant: Tenant) -> None:
    voicemail = json.dumps({"action": "leave_message", "message": "Call us\u0000back"})
    response = post_csv(client, tenant, b"phone\n+14155552671\n", voicemail=voicemail)
    refused_at(response, ["voicemail", "message"])
    assert no_batches(client, tenant)


def test_a_nul_in_a_header_we_keep_is_422_naming_it(client: TestClient, tenant: Tenant) -> None:
    response = create(client, tenant, batch_body(tenant), **{"Idempotency-Key": "key\x00one"})
    refused_at(response, ["idempotency-key"])
    assert no_batches(client, tenant)


def test_the_console_path_refuses_a_nul_too(tenant: Tenant) -> None:
    """The console calls the services directly: the same rule meets it there."""
    from batch_dashboard.services import dnc

    with session_scope(write=True) as session, pytest.raises(ValidationFailed) as refused:
        dnc.add(session, workspace_id=tenant.workspace_id, phone="+14155552679", reason="\x00")
    assert refused.value.details == [{"loc": ["reason"], "message": NUL_MESSAGE}]
    with session_scope(write=True) as session, pytest.raises(ValidationFailed) as refused:
        agents.create_agent(
            session,
            workspace_id=tenant.workspace_id,
            name="Re\x00minders",
            prompt="Say\x00 hello.",
            first_message="Hi\x00",
        )
    assert error_locs_of(refused.value) == [["name"], ["prompt"], ["first_message"]]


def error_locs_of(error: ValidationFailed) -> list[list[Any]]:
    return [item["loc"] for item in error.details or []]


def string_paths(value: Any, at: list[Any]) -> list[list[Any]]:
    """Where `value` holds a string, as error locations."""
    if isinstance(value, str):
        return [at]
    if isinstance(value, dict):
        return [path for key, inner in value.items() for path in string_paths(inner, [*at, key])]
    if isinstance(value, list):
        return [
            path for index, inner in enumerate(value) for path in string_paths(inner, [*at, index])
        ]
    return []


def with_nul_at(value: Any, path: list[Any]) -> Any:
    if not path:
        return value[: len(value) // 2] + "\x00" + value[len(value) // 2 :]
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = with_nul_at(value[path[0]], path[1:])
    return copy


def test_a_nul_in_each_field_of_each_documented_body_is_422_naming_that_field(
    client: TestClient, tenant: Tenant
) -> None:
    """Every JSON body the schema documents (its example, else its fields' examples), with a
    NUL in one string at a time: the answer names that string, whatever field it is."""
    schema = client.get("/v1/openapi.json").json()
    bodies: dict[str, dict[str, Any]] = {}
    for path, operations in schema["paths"].items():
        post = operations.get("post", {})
        content = post.get("requestBody", {}).get("content", {}).get("application/json")
        if content is None or "{" in path:
            continue
        if "examples" in content:
            body = next(iter(content["examples"].values()))["value"]
        else:
            fields = content["schema"].get("properties", {})
            body = {
                name: field["examples"][0] for name, field in fields.items() if "examples" in field
            }
        if body:
            bodies[path] = {**body, **({"agent_id": tenant.agent_id} if "agent_id" in body else {})}
    assert {BATCHES, DNC} <= set(bodies)
    for path, body in bodies.items():
        for where in string_paths(body, []):
            response = client.post(path, json=with_nul_at(body, where), headers=tenant.headers)
            error = envelope(response, 422, "validation_failed")
            assert where in error_locs(response), (path, where, error)
    assert no_batches(client, tenant)
    assert client.get(DNC, headers=tenant.headers).json()["do_not_call"] == []


# --- 6. every error has the JSON envelope; a wrong method is 405 with Allow -------------------


@pytest.mark.parametrize("method", ["TRACE", "OPTIONS", "HEAD", "DELETE", "PUT"])
def test_a_wrong_method_on_a_known_path_is_405_with_allow(
    client: TestClient, tenant: Tenant, method: str
) -> None:
    response = client.request(method, BATCHES, headers=tenant.headers)
    assert response.status_code == 405, response.text
    assert response.headers["allow"] == "GET, POST"
    if method != "HEAD":  # a HEAD answer has no body
        envelope(response, 405, "method_not_allowed")
    detail = client.request(method, f"{BATCHES}/batch_x/cancel", headers=tenant.headers)
    assert (detail.status_code, detail.headers["allow"]) == (405, "POST")


def test_nothing_under_v1_falls_through_to_the_console(
    client: TestClient, tenant: Tenant, database: str
) -> None:
    """Built as Reflex builds the served app: the console mounted after our routes, the API
    mounted at "" in an outer Starlette app, and the whole wrapped as `batch_dashboard.App`
    does. No /v1 request, whatever its path or method, gets a plain-text answer
    (tests/e2e/test_server.py checks the real server)."""
    from batch_dashboard.api.app import NewlinePaths, create_api

    api = create_api()
    api.mount("/", PlainTextResponse("console 404", status_code=404))
    outer = Starlette()
    outer.mount("", api)
    with TestClient(NewlinePaths(outer), raise_server_exceptions=False) as served:
        for method, path in [
            ("POST", f"{BATCHES}/abc%0A/pause"),
            ("GET", "/v1/nothing%0Ahere"),
            ("GET", "/v1/nothing%0D"),
            ("TRACE", "/v1/nothing"),
            ("OPTIONS", "/v1/nothing"),
            ("PATCH", "/v1"),
        ]:
            response = served.request(method, path, headers=tenant.headers)
            envelope(response, 404, "not_found")
        assert served.get("/elsewhere").text == "console 404"


# --- 7. one body reader and one cursor check for every route --------------------------------


@pytest.mark.parametrize(
    ("content", "content_type", "status", "code"),
    [
        (b"{bad", "application/json", 422, "validation_failed"),
        (b'{"phone": "\xff"}', "application/json", 422, "validation_failed"),
        (b"[1]", "application/json", 422, "validation_failed"),
        (b'{"phone": "+14155552679", "reason": NaN}', "application/json", 422, "validation_failed"),
        (b'{"phone": "+14155552679"}', "text/plain", 415, "unsupported_media_type"),
    ],
)
def test_do_not_call_reads_its_body_like_the_batch_routes(
    client: TestClient,
    tenant: Tenant,
    content: bytes,
    content_type: str,
    status: int,
    code: str,
) -> None:
    headers = {**tenant.headers, "Content-Type": content_type}
    added = client.post(DNC, content=content, headers=headers)
    created = client.post(BATCHES, content=content, headers=headers)
    assert envelope(added, status, code)["details"] == envelope(created, status, code)["details"]
    if status == 422:
        assert error_locs(added) == [["body"]]
    # The batch actions that take a body read it the same way.
    batch_id = create(client, tenant, batch_body(tenant)).json()["id"]
    for action in ("stop", "retry"):
        acted = client.post(f"{BATCHES}/{batch_id}/{action}", content=content, headers=headers)
        assert (
            envelope(acted, status, code)["details"] == envelope(created, status, code)["details"]
        )


def test_every_list_refuses_a_cursor_it_did_not_return(client: TestClient, tenant: Tenant) -> None:
    for number in ("+14155552671", "+14155552672", "+14155552673"):
        client.post(DNC, json={"phone": number}, headers=tenant.headers)
    create(client, tenant, batch_body(tenant))
    create(client, tenant, batch_body(tenant))
    dnc_cursor = client.get(DNC, params={"limit": 1}, headers=tenant.headers).json()["next_cursor"]
    batch_cursor = client.get(BATCHES, params={"limit": 1}, headers=tenant.headers).json()[
        "next_cursor"
    ]
    for path in (DNC, BATCHES, DELIVERIES):
        for cursor in ("zzz", "+14155552671", "msg_01", "%", "a" * 600, "YQ"):
            response = client.get(path, params={"cursor": cursor}, headers=tenant.headers)
            refused_at(response, ["cursor"])
    # A cursor of one list means nothing to another.
    refused_at(client.get(DNC, params={"cursor": batch_cursor}, headers=tenant.headers), ["cursor"])
    refused_at(
        client.get(BATCHES, params={"cursor": dnc_cursor}, headers=tenant.headers), ["cursor"]
    )
    refused_at(
        client.get(DELIVERIES, params={"cursor": dnc_cursor}, headers=tenant.headers), ["cursor"]
    )


def test_do_not_call_pages_through_its_cursor(client: TestClient, tenant: Tenant) -> None:
    numbers = ["+14155552671", "+14155552672", "+14155552673"]
    for number in numbers:
        client.post(DNC, json={"phone": number}, headers=tenant.headers)
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get(DNC, params=params, headers=tenant.headers).json()
        seen += [entry["phone"] for entry in page["do_not_call"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == numbers


# --- 8. scheduled_at is RFC 3339, exactly -----------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "2026-W50-1T10:00:00Z",  # ISO 8601 week date
        "20261210T100000Z",  # ISO 8601 basic format
        "2026-12-10T10:00Z",  # no seconds
        "{day}T10:00:00Z\n",  # a trailing newline
        " {day}T10:00:00Z",
        "{day} 10:00:00Z",
        "{day}T10:00:00+0200",
        "{day}T10:00:00+24:00",
        "{day}T10:00:00.Z",
        "{day}T10:00:60Z",
    ],
)
def test_scheduled_at_refuses_what_rfc_3339_does_not_allow(
    client: TestClient, tenant: Tenant, value: str
) -> None:
    value = value.format(day=future().date().isoformat())
    error = refused_at(
        create(client, tenant, batch_body(tenant, scheduled_at=value)), ["scheduled_at"]
    )
    assert "30 days" not in error["message"] and "future" not in error["message"]
    assert no_batches(client, tenant)


@pytest.mark.parametrize(
    "template",
    ["%Y-%m-%dt%H:%M:%Sz", "%Y-%m-%dT%H:%M:%S.123456789Z", "%Y-%m-%dT%H:%M:%S-00:00"],
)
def test_scheduled_at_accepts_what_rfc_3339_allows(
    client: TestClient, tenant: Tenant, template: str
) -> None:
    moment = future()
    response = create(client, tenant, batch_body(tenant, scheduled_at=moment.strftime(template)))
    assert response.status_code == 202, response.text
    assert response.json()["scheduled_at"].startswith(moment.strftime("%Y-%m-%dT%H:%M:%S"))


# --- 9. the OpenAPI schema states what the routes enforce -------------------------------------


def test_the_schema_states_limits_and_enums(client: TestClient, tenant: Tenant) -> None:
    schema = client.get("/v1/openapi.json").json()

    def parameter(path: str, name: str, method: str = "get") -> dict[str, Any]:
        found = [p for p in schema["paths"][path][method]["parameters"] if p["name"] == name]
        return found[0]["schema"]

    for path, maximum in ((BATCHES, 200), (DNC, 1000), (DELIVERIES, 200)):
        assert (parameter(path, "limit")["minimum"], parameter(path, "limit")["maximum"]) == (
            1,
            maximum,
        )
        for too_far in (0, maximum + 1):
            response = client.get(path, params={"limit": too_far}, headers=tenant.headers)
            refused_at(response, ["limit"])
    assert set(parameter(BATCHES, "status")["enum"]) == set(batches.BATCH_STATUSES)
    assert "dialing" in parameter(f"{BATCHES}/{{batch_id}}", "recipient_status")["enum"]
    assert parameter(DELIVERIES, "status")["enum"] == ["pending", "delivered", "failed"]
    dnc_body = schema["paths"][DNC]["post"]["requestBody"]["content"]["application/json"]
    assert dnc_body["schema"]["required"] == ["phone"]


def test_the_documented_example_body_is_accepted_with_your_own_agent(
    client: TestClient, tenant: Tenant
) -> None:
    schema = client.get("/v1/openapi.json").json()
    content = schema["paths"][BATCHES]["post"]["requestBody"]["content"]["application/json"]
    example = content["examples"]["json"]["value"]
    assert example["agent_id"].startswith("agent_")
    response = create(client, tenant, {**example, "agent_id": tenant.agent_id})
    assert response.status_code == 202, response.text


# --- 10. the count of problems past the reporting cap is exact --------------------------------


def test_five_thousand_bad_phones_say_four_thousand_nine_hundred_ninety_nine_more(
    client: TestClient, tenant: Tenant
) -> None:
    recipients = [{"phone": "not a phone"} for _ in range(2500)]
    recipients += [{"phone": f"+1415555{i:04d}"[:9]} for i in range(2500)]  # too short: invalid
    error = refused_at_count(create(client, tenant, batch_body(tenant, recipients=recipients)))
    assert error["message"].endswith("(and 4,999 more)"), error["message"]
    rows = "phone\n" + "not a phone\n" * 5000
    error = refused_at_count(post_csv(client, tenant, rows.encode()))
    assert error["message"].endswith("(and 4,999 more)"), error["message"]
    assert no_batches(client, tenant)


def refused_at_count(response: Response) -> dict[str, Any]:
    error = envelope(response, 422, "validation_failed")
    assert len(error["details"]) == 1000
    return error


# --- 11. IPv6 forms of blocked IPv4 ranges are blocked at registration ------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://[2002:7f00:1::]/h",  # 6to4 of 127.0.0.1
        "https://[2002:a9fe:a9fe::]/h",  # 6to4 of 169.254.169.254
        "https://[64:ff9b::a00:1]/h",  # NAT64 of 10.0.0.1
        "https://[2001:0:4136:e378:8000:63bf:80ff:fffe]/h",  # Teredo of 127.0.0.1
        "https://[::ffff:100.64.0.1]/h",  # IPv4-mapped carrier-grade NAT
        "https://[::127.0.0.1]/h",  # IPv4-compatible loopback
    ],
)
def test_webhook_registration_refuses_ipv6_forms_of_blocked_ranges(
    tenant: Tenant, url: str
) -> None:
    with session_scope(write=True) as session, pytest.raises(ValidationFailed) as refused:
        agents.set_webhook_url(
            session, workspace_id=tenant.workspace_id, agent_id=tenant.agent_id, webhook_url=url
        )
    [detail] = refused.value.details
    assert detail["loc"] == ["webhook_url"] and " form of " in detail["message"]


# --- 12. one value limit; both phone fields; the export's formula rule ------------------------


def test_a_variable_longer_than_the_limit_is_422_in_json_and_csv(
    client: TestClient, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATCH_MAX_UPLOAD_BYTES", str(4 * VALUE_MAX_CHARS))
    reload_settings()
    long, too_long = "x" * VALUE_MAX_CHARS, "x" * (VALUE_MAX_CHARS + 1)
    json_recipients = [
        {"phone": "+14155552671", "dynamic_vars": {"note": too_long}},
        {"phone": "+14155552672", "note": too_long},
    ]
    error = refused_at(
        create(client, tenant, batch_body(tenant, recipients=json_recipients)),
        ["recipients", 0, "dynamic_vars", "note"],
        ["recipients", 1, "note"],
    )
    assert f"at most {VALUE_MAX_CHARS:,} characters" in error["message"]
    rows = f"phone,note\n+14155552671,{too_long}\n+14155552672,short\n".encode()
    refused_at(post_csv(client, tenant, rows), ["csv_file", "row", 2, "note"])
    assert no_batches(client, tenant)
    accepted = batch_body(tenant, recipients=[{"phone": "+14155552671", "note": long}])
    assert create(client, tenant, accepted).status_code == 202
    rows = f"phone,note\n+14155552671,{long}\n".encode()
    assert post_csv(client, tenant, rows).status_code == 202


def test_a_recipient_with_both_phone_and_phone_number_is_422(
    client: TestClient, tenant: Tenant
) -> None:
    body = batch_body(
        tenant,
        recipients=[
            {"phone": "+14155552671"},
            {"phone": "+14155552672", "phone_number": "+14155552673"},
        ],
    )
    refused_at(create(client, tenant, body), ["recipients", 1, "phone_number"])
    assert no_batches(client, tenant)


def test_the_export_neutralises_every_cell_a_spreadsheet_would_run(
    client: TestClient, tenant: Tenant
) -> None:
    risky = {
        "a": "=1+1",
        "b": " =1+1",
        "c": "\n=1+1",
        "d": "\t@SUM(A1)",
        "e": "＝1+1",
        "f": "＋1",
        "g": "－1",
        "h": "＠A1",
        "i": "\u00a0=1",
    }
    safe = {"j": "plain", "k": "1+1", "l": ""}
    body = batch_body(
        tenant, recipients=[{"phone": "+14155552671", "dynamic_vars": {**risky, **safe}}]
    )
    response = create(client, tenant, body)
    assert response.status_code == 202, response.text
    with session_scope() as session:
        exported = batches.export_results_csv(
            session, workspace_id=tenant.workspace_id, batch_id=response.json()["id"]
        )
    [row] = list(csv.DictReader(io.StringIO(exported)))
    assert row["phone"] == "'+14155552671"
    for name in risky:
        assert row[name].startswith("'"), (name, row[name])
    assert [row[name] for name in safe] == ["plain", "1+1", ""]
