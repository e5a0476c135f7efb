"""A bounded schemathesis pass over /v1/openapi.json with a valid key, on SQLite and on
PostgreSQL: no 5xx, and schemathesis' conformance checks (status codes, content types, headers
and bodies as documented, schema-valid input accepted) hold for every operation. Strings are
also sent with a NUL or another control character in them, which random generation rarely
tries and which PostgreSQL cannot store (`bench/fuzz.py` runs a longer pass). Each operation
is driven with hypothesis directly (schemathesis' pytest plugin does not load on pytest 9)."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from batch_dashboard.settings import reload_settings
from tests.conftest import make_tenant

EXAMPLES_PER_OPERATION = 8
CONFORMANCE = (
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
)
# A NUL (PostgreSQL refuses it in text), C0 and C1 controls, DEL, a line separator.
CONTROL_CHARACTERS = ("\x00", "\x01", "\n", "\x1b", "\x7f", "\x85", "\u2028")
# Where schema-valid input is still refused, because what makes it valid is not a shape: the
# agent and caller number must be this workspace's, the numbers real for their country, the
# time within the next 30 days; provider events must be signed by the provider.
SEMANTIC_RULES = {
    ("POST", "/v1/batch-calls"),
    ("POST", "/v1/do-not-call"),
    ("DELETE", "/v1/do-not-call/{phone}"),
    ("POST", "/v1/connections"),
    ("PATCH", "/v1/connections/{connection_id}"),
    ("POST", "/v1/provider-events/http"),
    ("POST", "/v1/provider-events/twilio/{connection_id}"),
    ("POST", "/v1/provider-events/{provider}/{connection_id}"),
}


def with_character(value: Any, character: str, *, in_names: bool = True) -> Any:
    """`value` with `character` inside each of its strings (and its field names)."""
    if isinstance(value, str):
        middle = len(value) // 2
        return value[:middle] + character + value[middle:]
    if isinstance(value, dict):
        return {
            (with_character(key, character) if in_names else key): with_character(inner, character)
            for key, inner in value.items()
        }
    if isinstance(value, list):
        return [with_character(inner, character) for inner in value]
    return value


def exercise(
    operation: Any, headers: dict[str, str], *, examples: int = EXAMPLES_PER_OPERATION
) -> None:
    """Every check on `operation`'s generated cases; schema-valid input must also be accepted
    where a shape is all that makes input valid and no control character was slipped in."""
    semantic = (operation.method.upper(), operation.path) in SEMANTIC_RULES

    @given(
        case=operation.as_strategy(),
        character=st.sampled_from((None, *CONTROL_CHARACTERS)),
    )
    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: Any, character: str | None) -> None:
        checks = CONFORMANCE
        if case.query:
            # A client never makes up a cursor; one it did not get is refused (422).
            case.query.pop("cursor", None)
        if character is not None:
            for part in ("query", "path_parameters"):
                if getattr(case, part):
                    value = with_character(getattr(case, part), character, in_names=False)
                    setattr(case, part, value)
            if isinstance(case.body, dict | list | str):
                case.body = with_character(case.body, character)
        elif not semantic:
            checks = (*CONFORMANCE, positive_data_acceptance)
        response = case.call(headers=headers)
        case.validate_response(response, checks=checks, headers=headers)

    check()


def test_responses_conform_to_the_schema(database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from batch_dashboard.api.app import create_api

    monkeypatch.setenv("BATCH_RATE_LIMIT_PER_SECOND", "0")
    reload_settings()
    tenant = make_tenant()
    schema = schemathesis.openapi.from_asgi("/v1/openapi.json", create_api())
    headers = {"Authorization": f"Bearer {tenant.api_key}"}
    checked = 0
    for result in schema.get_all_operations():
        exercise(result.ok(), headers)
        checked += 1
    assert checked >= 17
