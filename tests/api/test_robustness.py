"""Whatever a client sends, the API answers with a contract error, never a 500, and a rejected
create stores nothing. Each test runs on SQLite and on PostgreSQL (the `client` fixture)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from batch_dashboard.settings import reload_settings
from tests.conftest import Tenant

URL = "/v1/batch-calls"
SMALL_LIMIT = 4096
DEFAULT_LIMIT = 20 * 1024 * 1024
JSON_CT = "application/json"


# --- helpers ------------------------------------------------------------------------------


def good_body(tenant: Tenant, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Appointment reminders",
        "agent_id": tenant.agent_id,
        "recipients": [
            {
                "phone": "+14155552671",
                "dynamic_vars": {"first_name": "Ada", "appointment_time": "3pm"},
            },
            {"phone": "+1 (415) 555-2672", "first_name": "Bob"},
        ],
    }
    body.update(overrides)
    return body


def post_raw(
    client: TestClient, tenant: Tenant, content: bytes, content_type: str | None = JSON_CT
) -> Response:
    headers = dict(tenant.headers)
    if content_type is not None:
        headers["Content-Type"] = content_type
    return client.post(URL, content=content, headers=headers)


def post_json(client: TestClient, tenant: Tenant, body: object) -> Response:
    # json.dumps escapes lone surrogates and control characters, as a JSON client would send them.
    return post_raw(client, tenant, json.dumps(body).encode())


def post_csv(client: TestClient, tenant: Tenant, csv: bytes | None, **fields: str) -> Response:
    data = {"name": "CSV batch", "agent_id": tenant.agent_id, **fields}
    files = {"csv_file": ("recipients.csv", csv, "text/csv")} if csv is not None else None
    if files is None:  # still multipart: send another file so the form is not url-encoded
        files = {"other": ("notes.txt", b"hello", "text/plain")}
    return client.post(URL, data=data, files=files, headers=tenant.headers)


def error_of(response: Response, status: int, code: str) -> dict[str, Any]:
    """The error body, checked to be exactly {"error": {"code", "message", "details"}}."""
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert list(body) == ["error"], body
    error = body["error"]
    assert set(error) == {"code", "message", "details"}, error
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"].strip(), error
    details = error["details"]
    assert details is None or isinstance(details, list), error
    for item in details or []:
        assert set(item) == {"loc", "message"}, item
        assert isinstance(item["loc"], list) and item["loc"], item
        assert all(isinstance(part, str | int) for part in item["loc"]), item
        assert isinstance(item["message"], str) and item["message"], item
    return error


def locs_of(error: dict[str, Any]) -> list[list[Any]]:
    return [item["loc"] for item in error["details"] or []]


def assert_validation(response: Response, *locs: list[Any]) -> dict[str, Any]:
    error = error_of(response, 422, "validation_failed")
    if locs:
        assert locs_of(error) == list(locs), error
    return error


def assert_nothing_created(client: TestClient, tenant: Tenant) -> None:
    listed = client.get(URL, headers=tenant.headers)
    assert listed.status_code == 200, listed.text
    assert listed.json() == {"batch_calls": [], "next_cursor": None}


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def is_postgres(database: str) -> bool:
    return database.startswith("postgresql")


def csv_of_size(size: int) -> bytes:
    """A valid-looking CSV of exactly `size` bytes (one long note cell)."""
    head = b"phone,note\n+14155552671,"
    assert size > len(head) + 1
    return head + b"x" * (size - len(head) - 1) + b"\n"


@pytest.fixture
def small_upload_limit(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    monkeypatch.setenv("BATCH_MAX_UPLOAD_BYTES", str(SMALL_LIMIT))
    assert reload_settings().max_upload_bytes == SMALL_LIMIT
    yield SMALL_LIMIT
    monkeypatch.delenv("BATCH_MAX_UPLOAD_BYTES")
    reload_settings()


@pytest.fixture
def default_upload_limit(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.delenv("BATCH_MAX_UPLOAD_BYTES", raising=False)
    limit = reload_settings().max_upload_bytes
    assert limit == DEFAULT_LIMIT
    return limit


# --- the body is not a JSON object ----------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"{",
        b"{'name': 'x'}",
        b'{"name": "x",}',
        b'{"name": "x"} trailing',
        b"nul",
        b'{"ringing_timeout_ms": NaN}',
        b'{"ringing_timeout_ms": Infinity}',
        b'{"ringing_timeout_ms": -Infinity}',
        b'{"name": "Andr\xe9"}',  # Latin-1, not UTF-8
        b"\x00",
    ],
)
def test_malformed_json_is_422_on_body(client: TestClient, tenant: Tenant, content: bytes) -> None:
    assert_validation(post_raw(client, tenant, content), ["body"])
    assert_nothing_created(client, tenant)


def test_json_that_is_not_an_object_is_422_on_body(client: TestClient, tenant: Tenant) -> None:
    for content in (b"[]", b'[{"name": "x"}]', b'"batch"', b"42", b"null", b"true", b"1e400"):
        assert_validation(post_raw(client, tenant, content), ["body"])
    assert_nothing_created(client, tenant)


# --- wrong values for each top-level field ---------------------------------------------------

WRONG_FIELDS: dict[str, list[object]] = {
    "name": [None, 42, 4.2, True, ["x"], {"a": 1}, "", "   ", "x" * 201],
    "agent_id": [None, "", ["agent_x"], 5, {"id": "x"}, True, "agent_" + "x" * 100, "agent_nope"],
    "phone_number_id": [["pn_x"], 5, True, "pn_" + "x" * 100, "pn_nope"],
    "ringing_timeout_ms": [
        "30000",
        "abc",
        True,
        False,
        1500.5,
        10**30,
        -(10**30),
        999,
        80001,
        0,
        -1,
        [30000],
        {"ms": 30000},
    ],
    "recipients": [None, {}, "+14155552671", 5, []],
}


@pytest.mark.parametrize("field", list(WRONG_FIELDS))
def test_wrong_values_of_a_top_level_field_are_422_on_that_field(
    client: TestClient, tenant: Tenant, field: str
) -> None:
    for value in WRONG_FIELDS[field]:
        response = post_json(client, tenant, good_body(tenant, **{field: value}))
        assert_validation(response, [field])
    assert_nothing_created(client, tenant)


def test_a_missing_required_field_is_422_on_that_field(client: TestClient, tenant: Tenant) -> None:
    for field in ("name", "agent_id", "recipients"):
        body = good_body(tenant)
        del body[field]
        assert_validation(post_json(client, tenant, body), [field])
    assert_validation(post_json(client, tenant, {}), ["name"], ["agent_id"], ["recipients"])
    assert_nothing_created(client, tenant)


def test_caller_number_problems_are_422(client: TestClient, tenant: Tenant) -> None:
    assert_validation(
        post_json(client, tenant, good_body(tenant, phone_number_id=tenant.inbound_only_number_id)),
        ["phone_number_id"],
    )
    assert_validation(
        post_json(client, tenant, good_body(tenant, agent_id=tenant.unbound_agent_id)),
        ["agent_id"],
    )
    assert_nothing_created(client, tenant)


def test_wrong_scheduled_at_values_are_422(client: TestClient, tenant: Tenant) -> None:
    now = datetime.now(UTC)
    wrong: list[object] = [
        "2026-12-01T15:00:00",  # naive
        (now + timedelta(days=1)).replace(tzinfo=None).isoformat(),  # naive, otherwise fine
        rfc3339(now - timedelta(minutes=5)),  # past
        "2000-01-01T00:00:00Z",
        rfc3339(now + timedelta(days=31)),  # more than 30 days ahead
        rfc3339(now + timedelta(days=3650)),
        "garbage",
        "tomorrow",
        "2026-13-45T25:61:00Z",
        "2026-12-01 15:00:00 UTC",
        42,
        1767225600,
        True,
        ["2026-12-01T15:00:00Z"],
        {"at": "2026-12-01T15:00:00Z"},
    ]
    for value in wrong:
        response = post_json(client, tenant, good_body(tenant, scheduled_at=value))
        assert_validation(response, ["scheduled_at"])
    assert_nothing_created(client, tenant)


def test_scheduled_at_out_of_datetime_range_is_422(client: TestClient, tenant: Tenant) -> None:
    failures = []
    for value in ("9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+14:00"):
        response = post_json(client, tenant, good_body(tenant, scheduled_at=value))
        if response.status_code != 422:
            failures.append((value, response.status_code))
    assert failures == []
    assert_nothing_created(client, tenant)


def test_every_problem_is_listed_at_once(client: TestClient, tenant: Tenant) -> None:
    body = {
        "name": 5,
        "agent_id": ["x"],
        "ringing_timeout_ms": "slow",
        "scheduled_at": "garbage",
        "recipients": [{"phone": "4155552671"}, {"phone": "+14155552671", "bad name": {}}],
    }
    error = assert_validation(post_json(client, tenant, body))
    assert locs_of(error) == [
        ["name"],
        ["agent_id"],
        ["scheduled_at"],
        ["ringing_timeout_ms"],
        ["recipients", 0, "phone"],
        ["recipients", 1, "bad name"],
    ]
    assert_nothing_created(client, tenant)


def test_valid_edge_values_are_accepted(client: TestClient, tenant: Tenant) -> None:
    """The other side of the ranges above, so the refusals are not refusing everything."""
    later = datetime.now(UTC) + timedelta(days=29)
    offset = later.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    cases: list[tuple[dict[str, Any], dict[str, Any]]] = [
        ({"ringing_timeout_ms": 1000}, {"ringing_timeout_ms": 1000}),
        ({"ringing_timeout_ms": 80000}, {"ringing_timeout_ms": 80000}),
        ({"ringing_timeout_ms": None}, {"ringing_timeout_ms": 30000}),
        ({"scheduled_at": rfc3339(later)}, {"status": "scheduled"}),
        ({"scheduled_at": offset}, {"status": "scheduled"}),
        ({"name": "x" * 200}, {"name": "x" * 200}),
        ({"phone_number_id": tenant.number_id}, {"phone_number_id": tenant.number_id}),
    ]
    for overrides, expected in cases:
        response = post_json(client, tenant, good_body(tenant, **overrides))
        assert response.status_code == 202, (overrides, response.text)
        batch = response.json()
        for key, value in expected.items():
            assert batch[key] == value, (overrides, batch)
    listed = client.get(URL, headers=tenant.headers).json()["batch_calls"]
    assert len(listed) == len(cases)


# --- huge numbers and deep nesting ------------------------------------------------------------


def test_huge_numbers_are_422(client: TestClient, tenant: Tenant) -> None:
    base = json.dumps(good_body(tenant))
    big = "9" * 5000
    bodies = {
        "5000-digit timeout": base[:-1] + f', "ringing_timeout_ms": {big}}}',
        "5000-digit negative timeout": base[:-1] + f', "ringing_timeout_ms": -{big}}}',
        "5000-digit name": base[:-1] + f', "name": {big}}}',
        "5000-digit variable": base.replace('"3pm"', big),
        "1e400 timeout": base[:-1] + ', "ringing_timeout_ms": 1e400}',
        "-1e400 timeout": base[:-1] + ', "ringing_timeout_ms": -1e400}',
        "1e400 variable": base.replace('"3pm"', "1e400"),
        "-1e400 variable": base.replace('"Bob"', "-1e400"),
    }
    expected_locs = {
        "1e400 timeout": [["ringing_timeout_ms"]],
        "-1e400 timeout": [["ringing_timeout_ms"]],
        "1e400 variable": [["recipients", 0, "dynamic_vars", "appointment_time"]],
        "-1e400 variable": [["recipients", 1, "first_name"]],
    }
    for label, content in bodies.items():
        error = assert_validation(post_raw(client, tenant, content.encode()))
        assert locs_of(error) == expected_locs.get(label, [["body"]]), (label, error)
    assert_nothing_created(client, tenant)


def test_big_but_parseable_numbers_are_kept_as_given(client: TestClient, tenant: Tenant) -> None:
    recipient = {"phone": "+14155552671", "count": 10**30, "ratio": 1e300, "tiny": 5e-324}
    response = post_json(client, tenant, good_body(tenant, recipients=[recipient]))
    assert response.status_code == 202, response.text
    detail = client.get(f"{URL}/{response.json()['id']}", headers=tenant.headers).json()
    assert detail["recipients"][0]["dynamic_vars"] == {
        "count": 10**30,
        "ratio": 1e300,
        "tiny": 5e-324,
    }


def test_deeply_nested_json_is_422(client: TestClient, tenant: Tenant) -> None:
    depth = 100_000
    bodies = [
        b"[" * depth + b"]" * depth,
        b'{"name": ' + b"[" * depth + b"]" * depth + b"}",
        b'{"a": ' * depth + b"1" + b"}" * depth,
        b"[" * depth,  # unterminated as well
    ]
    for content in bodies:
        assert_validation(post_raw(client, tenant, content), ["body"])
    # Nesting inside a recipient that the parser can read is a variable error, not a crash.
    nested: object = "x"
    for _ in range(500):
        nested = [nested]
    body = good_body(tenant, recipients=[{"phone": "+14155552671", "deep": nested}])
    assert_validation(post_json(client, tenant, body), ["recipients", 0, "deep"])
    assert_nothing_created(client, tenant)


# --- unknown fields ---------------------------------------------------------------------------


def test_unknown_top_level_fields_are_ignored(client: TestClient, tenant: Tenant) -> None:
    body = good_body(
        tenant, color="blue", priority=[1, 2], meta={"a": {"b": None}}, status="completed", id="x"
    )
    response = post_json(client, tenant, body)
    assert response.status_code == 202, response.text
    batch = response.json()
    assert batch["status"] == "pending" and batch["id"].startswith("batch_")
    assert "color" not in batch and "meta" not in batch


def test_unknown_recipient_fields_become_variables(client: TestClient, tenant: Tenant) -> None:
    recipients = [
        {"phone": "+14155552671", "first_name": "Ada", "vip": True, "visits": 3, "score": 0.5},
        {
            "phone_number": "+14155552672",
            "dynamic_vars": {"first_name": "Bob", "appointment_time": "4pm"},
            "first_name": "Robert",
        },
    ]
    response = post_json(client, tenant, good_body(tenant, recipients=recipients))
    assert response.status_code == 202, response.text
    detail = client.get(f"{URL}/{response.json()['id']}", headers=tenant.headers).json()
    assert [r["dynamic_vars"] for r in detail["recipients"]] == [
        {"first_name": "Ada", "vip": True, "visits": 3, "score": 0.5},
        {"first_name": "Robert", "appointment_time": "4pm"},
    ]
    assert [r["phone"] for r in detail["recipients"]] == ["+14155552671", "+14155552672"]


def test_recipient_problems_are_located(client: TestClient, tenant: Tenant) -> None:
    recipients: list[object] = [
        {"phone": "+14155552671"},
        "not an object",
        {"phone": "+14155552671"},
        {"phone": "+14155552673", "dynamic_vars": {"nested": {"a": 1}, "bad-name": "x"}},
        {"phone": "+14155552674", "list": [1], "none": None},
        {"phone": "+1415555"},
    ]
    error = assert_validation(post_json(client, tenant, good_body(tenant, recipients=recipients)))
    assert locs_of(error) == [
        ["recipients", 1],
        ["recipients", 3, "dynamic_vars", "nested"],
        ["recipients", 3, "dynamic_vars", "bad-name"],
        ["recipients", 4, "list"],
        ["recipients", 4, "none"],
        ["recipients", 2, "phone"],  # the duplicate, found by the number check
        ["recipients", 5, "phone"],
    ]
    duplicate = error["details"][5]["message"]
    assert "recipients[0]" in duplicate and "recipients[2]" in duplicate
    assert_nothing_created(client, tenant)


def test_missing_recipient_phone_is_located_on_phone(client: TestClient, tenant: Tenant) -> None:
    body = good_body(tenant, recipients=[{"first_name": "Ada"}])
    assert_validation(post_json(client, tenant, body), ["recipients", 0, "phone"])


def test_a_zero_before_the_country_code_is_refused(client: TestClient, tenant: Tenant) -> None:
    body = good_body(tenant, recipients=[{"phone": "+01 415 555 2671"}])
    assert_validation(post_json(client, tenant, body), ["recipients", 0, "phone"])
    assert_nothing_created(client, tenant)


# --- characters a database cannot store ------------------------------------------------------


def test_lone_surrogates_are_422(client: TestClient, tenant: Tenant) -> None:
    cases = {
        "name": good_body(tenant, name="Reminders \ud800"),
        "agent_id": good_body(tenant, agent_id="agent_\udc00"),
        "variable value": good_body(tenant, recipients=[{"phone": "+14155552671", "x": "\udc00"}]),
        "variable name": good_body(tenant, recipients=[{"phone": "+14155552671", "\udc00": "x"}]),
    }
    failures = []
    for label, body in cases.items():
        response = post_json(client, tenant, body)
        if response.status_code != 422:
            failures.append((label, response.status_code))
    assert failures == []
    assert_nothing_created(client, tenant)


def test_a_surrogate_encoded_as_raw_bytes_is_422(client: TestClient, tenant: Tenant) -> None:
    # Not an escape: the three UTF-8-shaped bytes of U+D800, which strict UTF-8 refuses.
    body = json.dumps(good_body(tenant, name="Reminders X")).encode().replace(b"X", b"\xed\xa0\x80")
    response = client.post(
        URL, content=body, headers={**tenant.headers, "Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert_nothing_created(client, tenant)


def test_nul_characters_never_give_a_500(
    client: TestClient, tenant: Tenant, database: str, request: pytest.FixtureRequest
) -> None:
    nul_cursor = base64.urlsafe_b64encode(b"2020-01-01T00:00:00+00:00|batch_\x00").decode()
    checks: list[tuple[str, Response, tuple[int, ...]]] = [
        ("agent_id", post_json(client, tenant, good_body(tenant, agent_id="agent_\x00")), (422,)),
        (
            "phone_number_id",
            post_json(client, tenant, good_body(tenant, phone_number_id="pn_\x00")),
            (422,),
        ),
        (
            "list agent_id",
            client.get(URL, params={"agent_id": "\x00"}, headers=tenant.headers),
            (422,),
        ),
        (
            "list cursor",
            client.get(URL, params={"cursor": nul_cursor}, headers=tenant.headers),
            (200, 422),
        ),
        ("detail", client.get(f"{URL}/batch_%00", headers=tenant.headers), (404,)),
        ("cancel", client.post(f"{URL}/batch_%00/cancel", headers=tenant.headers), (404,)),
        (
            "sample.csv",
            client.get(f"{URL}/sample.csv", params={"agent_id": "\x00"}, headers=tenant.headers),
            (422,),
        ),
        ("agent", client.get("/v1/agents/agent_%00", headers=tenant.headers), (404,)),
        ("name", post_json(client, tenant, good_body(tenant, name="a\x00b")), (202, 422)),
    ]
    failures = [(label, r.status_code) for label, r, ok in checks if r.status_code not in ok]
    assert failures == []
    for _label, response, _ok in checks:
        if response.status_code >= 400:
            error_of(response, response.status_code, response.json()["error"]["code"])


# --- content types ---------------------------------------------------------------------------


def test_odd_content_types_are_415(client: TestClient, tenant: Tenant) -> None:
    content = json.dumps(good_body(tenant)).encode()
    for content_type in (
        "text/plain",
        "text/csv",
        "application/x-www-form-urlencoded",
        "application/xml",
        "application/octet-stream",
        "application/jsonp",
        "",
        None,
    ):
        response = post_raw(client, tenant, content, content_type)
        error = error_of(response, 415, "unsupported_media_type")
        assert locs_of(error) == [["Content-Type"]], (content_type, error)
    assert_nothing_created(client, tenant)


def test_json_content_type_variants_are_accepted(client: TestClient, tenant: Tenant) -> None:
    content = json.dumps(good_body(tenant)).encode()
    for content_type in (
        "application/json; charset=utf-8",
        "Application/JSON",
        "application/vnd.api+json",
    ):
        response = post_raw(client, tenant, content, content_type)
        assert response.status_code == 202, (content_type, response.text)


# --- multipart / CSV -------------------------------------------------------------------------


def test_multipart_without_csv_file_is_422(client: TestClient, tenant: Tenant) -> None:
    assert_validation(post_csv(client, tenant, None), ["csv_file"])
    assert_nothing_created(client, tenant)


def test_multipart_with_bad_fields_lists_every_problem(client: TestClient, tenant: Tenant) -> None:
    response = client.post(
        URL,
        data={"ringing_timeout_ms": "soon", "scheduled_at": "garbage"},
        files={"csv_file": ("r.csv", b"phone\n4155552671\n", "text/csv")},
        headers=tenant.headers,
    )
    error = assert_validation(response)
    assert locs_of(error) == [
        ["name"],
        ["agent_id"],
        ["scheduled_at"],
        ["ringing_timeout_ms"],
        ["csv_file", "row", 2, "phone"],
    ]
    assert_nothing_created(client, tenant)


def test_multipart_ringing_timeout_out_of_range(client: TestClient, tenant: Tenant) -> None:
    for value in ("999", "80001", "1e4", "30000.5", "9" * 40, "-5", "true"):
        response = post_csv(client, tenant, b"phone\n+14155552671\n", ringing_timeout_ms=value)
        assert_validation(response, ["ringing_timeout_ms"])
    assert_nothing_created(client, tenant)


def test_multipart_with_non_utf8_csv_is_422(client: TestClient, tenant: Tenant) -> None:
    for csv, row in (
        (b"phone,first_name\n+14155552671,Andr\xe9\n", 2),
        ("phone,first_name\n+14155552671,Zoë\n".encode("cp1252"), 2),
        (b"\xff\xfephone\n", 1),
    ):
        assert_validation(post_csv(client, tenant, csv), ["csv_file", "row", row])
    assert_nothing_created(client, tenant)


def test_multipart_with_binary_csv_is_415(client: TestClient, tenant: Tenant) -> None:
    for csv in (
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
        b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00",
        "phone\n+14155552671\n".encode("utf-16"),
    ):
        error = error_of(post_csv(client, tenant, csv), 415, "unsupported_media_type")
        assert locs_of(error) == [["csv_file"]]
    assert_nothing_created(client, tenant)


def test_multipart_csv_problems_use_csv_locs(client: TestClient, tenant: Tenant) -> None:
    checks: list[tuple[bytes, list[list[Any]]]] = [
        (b"", [["csv_file"]]),
        (b"name,first_name\nAda,x\n", [["csv_file", "row", 1, "phone"]]),
        (b"phone\n", [["csv_file"]]),
        (b"phone,bad name\n+14155552671,x\n", [["csv_file", "row", 1, "bad name"]]),
        (b"phone\n+14155552671\n\n+1 415 555 2671\n", [["csv_file", "row", 4, "phone"]]),
        (b"phone,first_name\n+14155552671,a,b\n", [["csv_file", "row", 2]]),
        (b'phone\n"+14155552671"x\n', [["csv_file", "row", 2]]),
    ]
    for csv, expected in checks:
        assert_validation(post_csv(client, tenant, csv), *expected)
    assert_nothing_created(client, tenant)


def test_malformed_multipart_is_4xx(client: TestClient, tenant: Tenant) -> None:
    for content_type, content in (
        ("multipart/form-data; boundary=xyz", b"garbage"),
        ("multipart/form-data", b"--xyz\r\n\r\n"),
        ("multipart/form-data; boundary=xyz", b"--xyz\r\nContent-Disposition: form-data\r\n\r\n"),
    ):
        response = post_raw(client, tenant, content, content_type)
        assert_validation(response)
    two_files = client.post(
        URL,
        data={"name": "x", "agent_id": tenant.agent_id},
        files=[
            ("csv_file", ("a.csv", b"phone\n+14155552671\n", "text/csv")),
            ("csv_file", ("b.csv", b"phone\n+14155552672\n", "text/csv")),
        ],
        headers=tenant.headers,
    )
    assert_validation(two_files)
    assert_nothing_created(client, tenant)


# --- size limits -----------------------------------------------------------------------------


def test_csv_one_byte_over_a_small_limit_is_413(
    client: TestClient, tenant: Tenant, small_upload_limit: int
) -> None:
    error = error_of(
        post_csv(client, tenant, csv_of_size(small_upload_limit + 1)), 413, "payload_too_large"
    )
    assert locs_of(error) == [["csv_file"]]
    assert_nothing_created(client, tenant)
    at_limit = post_csv(client, tenant, csv_of_size(small_upload_limit))
    assert at_limit.status_code == 202, at_limit.text


def test_csv_far_over_a_small_limit_is_413(
    client: TestClient, tenant: Tenant, small_upload_limit: int
) -> None:
    response = post_csv(client, tenant, csv_of_size(small_upload_limit * 100))
    error = error_of(response, 413, "payload_too_large")
    assert locs_of(error) in ([["body"]], [["csv_file"]])
    assert_nothing_created(client, tenant)


def test_csv_one_byte_over_the_default_20_mib_is_413(
    client: TestClient, tenant: Tenant, default_upload_limit: int
) -> None:
    error = error_of(
        post_csv(client, tenant, csv_of_size(default_upload_limit + 1)), 413, "payload_too_large"
    )
    assert locs_of(error) == [["csv_file"]]
    assert "20,971,520" in error["message"]
    assert_nothing_created(client, tenant)


def test_json_body_over_the_limit_is_413(
    client: TestClient, tenant: Tenant, small_upload_limit: int
) -> None:
    recipients = [{"phone": f"+1415555{2000 + i}", "first_name": "x" * 40} for i in range(100)]
    content = json.dumps(good_body(tenant, recipients=recipients)).encode()
    assert len(content) > small_upload_limit
    error = error_of(post_raw(client, tenant, content), 413, "payload_too_large")
    assert locs_of(error) == [["body"]]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while streaming
        for start in range(0, len(content), 1000):
            yield content[start : start + 1000]

    streamed = client.post(
        URL, content=chunks(), headers={**tenant.headers, "Content-Type": JSON_CT}
    )
    error_of(streamed, 413, "payload_too_large")
    assert_nothing_created(client, tenant)
    small = json.dumps(good_body(tenant)).encode()
    assert len(small) <= small_upload_limit
    assert post_raw(client, tenant, small).status_code == 202


# --- query parameters --------------------------------------------------------------------------


def test_invalid_list_query_params_are_422(client: TestClient, tenant: Tenant) -> None:
    naive_cursor = base64.urlsafe_b64encode(b"not-a-date|batch_x").decode()
    checks: list[tuple[dict[str, str], str]] = [
        ({"limit": "0"}, "limit"),
        ({"limit": "201"}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"limit": "abc"}, "limit"),
        ({"limit": "1.5"}, "limit"),
        ({"limit": ""}, "limit"),
        ({"limit": "9" * 40}, "limit"),
        ({"status": "bogus"}, "status"),
        ({"status": "PENDING"}, "status"),
        ({"status": ""}, "status"),
        ({"cursor": "garbage"}, "cursor"),
        ({"cursor": "%%%"}, "cursor"),
        ({"cursor": "a"}, "cursor"),
        ({"cursor": naive_cursor}, "cursor"),
        ({"cursor": base64.urlsafe_b64encode(b"\xff\xfe|x").decode()}, "cursor"),
    ]
    for params, field in checks:
        response = client.get(URL, params=params, headers=tenant.headers)
        assert_validation(response, [field])


def test_a_forged_naive_cursor_is_422(client: TestClient, tenant: Tenant) -> None:
    cursor = base64.urlsafe_b64encode(b"2020-01-01T00:00:00|batch_x").decode().rstrip("=")
    assert_validation(
        client.get(URL, params={"cursor": cursor}, headers=tenant.headers), ["cursor"]
    )


def test_valid_list_query_params(client: TestClient, tenant: Tenant) -> None:
    for params in ({"limit": "1"}, {"limit": "200"}, {"status": "pending"}, {"agent_id": "nope"}):
        response = client.get(URL, params=params, headers=tenant.headers)
        assert response.status_code == 200, (params, response.text)


def test_invalid_recipient_status_is_422(client: TestClient, tenant: Tenant) -> None:
    created = post_json(client, tenant, good_body(tenant))
    assert created.status_code == 202
    path = f"{URL}/{created.json()['id']}"
    for value in ("bogus", "", "PENDING"):
        response = client.get(path, params={"recipient_status": value}, headers=tenant.headers)
        assert_validation(response, ["recipient_status"])
    ok = client.get(path, params={"recipient_status": "pending"}, headers=tenant.headers)
    assert ok.status_code == 200 and len(ok.json()["recipients"]) == 2


# --- other routes answer errors in the same shape ----------------------------------------------


def test_other_errors_have_the_same_shape(client: TestClient, tenant: Tenant) -> None:
    error_of(client.get(URL), 401, "unauthorized")
    error_of(client.post(URL, json=good_body(tenant)), 401, "unauthorized")
    error_of(client.get(URL, headers={"X-API-Key": "x" * 10_000}), 401, "unauthorized")
    error_of(client.get(f"{URL}/batch_nope", headers=tenant.headers), 404, "not_found")
    error_of(client.get(f"{URL}/{'x' * 5000}", headers=tenant.headers), 404, "not_found")
    error_of(client.post(f"{URL}/batch_nope/cancel", headers=tenant.headers), 404, "not_found")
    error_of(client.get("/v1/no-such-route", headers=tenant.headers), 404, "not_found")
    long_key = client.post(
        URL, json=good_body(tenant), headers={**tenant.headers, "Idempotency-Key": "k" * 256}
    )
    assert_validation(long_key, ["Idempotency-Key"])
    assert_nothing_created(client, tenant)
