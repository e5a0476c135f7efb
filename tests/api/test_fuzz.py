"""A bounded schemathesis pass over /v1/openapi.json with a valid key: no 5xx, and every
response conforms to the schema it is documented with (`bench/fuzz.py` runs a longer one).
Each operation is driven with hypothesis directly (schemathesis' pytest plugin does not load
on pytest 9)."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.conftest import make_tenant

EXAMPLES_PER_OPERATION = 8


def test_no_server_errors_and_responses_match_the_schema(sqlite_url: str) -> None:
    from batch_dashboard.api.app import create_api

    tenant = make_tenant()
    schema = schemathesis.openapi.from_asgi("/v1/openapi.json", create_api())
    headers = {"Authorization": f"Bearer {tenant.api_key}"}
    checked = 0
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def exercise(case) -> None:
            response = case.call(headers=headers)
            case.validate_response(
                response, checks=(not_a_server_error, response_schema_conformance)
            )

        exercise()
        checked += 1
    assert checked >= 17
