"""Small builders shared by the API tests."""

from __future__ import annotations

from typing import Any

from tests.conftest import Tenant


def batch_body(tenant: Tenant, **overrides: Any) -> dict[str, Any]:
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


def error_locs(response: Any) -> list[list[Any]]:
    return [item["loc"] for item in response.json()["error"]["details"] or []]
