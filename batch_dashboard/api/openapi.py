"""OpenAPI documentation that the handlers cannot express by their signatures."""

from __future__ import annotations

from typing import Any

from fastapi import Query

from batch_dashboard.models import CircuitBreakerSettings, ErrorResponse
from batch_dashboard.services.outcomes import RETRY_ON

_ERROR_EXAMPLES = {
    401: ("unauthorized", "unknown API key"),
    404: ("not_found", "no batch call batch_01JD7Q9ZJ5T1F7M8V3ZCX0A4BN"),
    409: (
        "batch_not_cancellable",
        "batch batch_… is running; only scheduled or pending batches can be cancelled",
    ),
    413: ("payload_too_large", "csv_file is larger than the limit of 20,971,520 bytes"),
    415: (
        "unsupported_media_type",
        "send the batch as application/json, or as multipart/form-data with a csv_file",
    ),
    422: ("validation_failed", "recipients.1.phone: is missing the country code"),
}

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {
        "model": ErrorResponse,
        "description": code.replace("_", " "),
        "content": {
            "application/json": {
                "example": {
                    "error": {
                        "code": code,
                        "message": message,
                        "details": [
                            {
                                "loc": ["recipients", 1, "phone"],
                                "message": "is missing the country code",
                            }
                        ]
                        if status == 422
                        else None,
                    }
                }
            }
        },
    }
    for status, (code, message) in _ERROR_EXAMPLES.items()
}

_SCALAR = {"oneOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}]}
_CIRCUIT_BREAKER = {
    "oneOf": [CircuitBreakerSettings.model_json_schema(), {"const": False}],
    "description": "Pause the batch when its calls fail wholesale (defaults: 50 % of at least "
    "10 attempts in 120 s); any field left out keeps its default; false turns it off. Out of "
    "range: 422 naming the field.",
}

CREATE_BATCH_OPENAPI: dict[str, Any] = {
    "description": (
        "Create a batch from JSON, or from a CSV upload (`multipart/form-data` with `csv_file`). "
        "Every problem is reported at once in `details` and nothing is created. "
        "Unknown top-level fields are ignored; every extra field of a recipient is a variable. "
        "Answers `202` with the Batch and `Location: /v1/batch-calls/<id>`."
    ),
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["name", "agent_id", "recipients"],
                    "properties": {
                        "name": {"type": "string", "minLength": 1, "maxLength": 200},
                        "agent_id": {"type": "string"},
                        "phone_number_id": {
                            "type": ["string", "null"],
                            "description": "Caller-ID override for the whole batch",
                        },
                        "scheduled_at": {
                            "type": ["string", "null"],
                            "format": "date-time",
                            "description": "RFC 3339 with an offset; in the future, at most 30 days ahead",
                        },
                        "ringing_timeout_ms": {
                            "type": "integer",
                            "minimum": 1000,
                            "maximum": 80000,
                            "default": 30000,
                        },
                        "max_concurrency": {
                            "type": ["integer", "null"],
                            "minimum": 1,
                            "description": "At most this many of the batch's calls at once "
                            "(up to BATCH_MAX_CONCURRENT_CALLS), so one big batch cannot "
                            "starve the workspace's others",
                        },
                        "retry_policy": {
                            "type": ["object", "null"],
                            "description": "Try failed calls again: after `delay_seconds`, up to "
                            "`max_attempts` attempts in all, for the reasons in `retry_on`",
                            "properties": {
                                "max_attempts": {"type": "integer", "minimum": 1, "maximum": 10},
                                "retry_on": {
                                    "type": "array",
                                    "items": {"enum": [reason.value for reason in RETRY_ON]},
                                },
                                "delay_seconds": {
                                    "type": "integer",
                                    "minimum": 60,
                                    "maximum": 86400,
                                },
                            },
                        },
                        "calling_window": {
                            "type": ["object", "null"],
                            "description": "Dial only inside these hours, checked at the moment of "
                            "dialing: in each recipient's own zones (its `timezone` variable, else "
                            "its number's zones, all of which must be inside) or in a fixed zone",
                            "properties": {
                                "start": {"type": "string", "example": "09:00"},
                                "end": {"type": "string", "example": "20:00"},
                                "days": {
                                    "type": "array",
                                    "items": {
                                        "enum": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
                                    },
                                },
                                "timezone": {
                                    "type": "string",
                                    "description": "`recipient` or an IANA zone",
                                },
                                "unknown_timezone": {
                                    "enum": ["fail", "call"],
                                    "description": "A number without a zone (e.g. toll-free) ends failed with timezone_unknown, or is called anyway",
                                },
                            },
                        },
                        "voicemail": {
                            "type": ["object", "null"],
                            "description": "When a machine answers (where the caller number's "
                            "connection supports it: `supports.voicemail`)",
                            "properties": {
                                "action": {"enum": ["hang_up", "leave_message"]},
                                "message": {
                                    "type": "string",
                                    "description": "To leave; {{placeholders}} allowed",
                                },
                            },
                        },
                        "circuit_breaker": _CIRCUIT_BREAKER,
                        "recipients": {
                            "type": "array",
                            "minItems": 1,
                            "maxItems": 50000,
                            "items": {
                                "type": "object",
                                "properties": {
                                    "phone": {
                                        "type": "string",
                                        "description": "International format, e.g. +14155552671",
                                    },
                                    "phone_number": {
                                        "type": "string",
                                        "description": "Same as phone",
                                    },
                                    "dynamic_vars": {
                                        "type": "object",
                                        "additionalProperties": _SCALAR,
                                    },
                                },
                                "additionalProperties": _SCALAR,
                            },
                        },
                    },
                },
                "examples": {
                    "json": {
                        "summary": "Two recipients (agent_id: one of your agents, GET /v1/agents)",
                        "value": {
                            "name": "Appointment reminders",
                            "agent_id": "agent_01JD7Q8R3P2M6C1T0S9W4YQ2HE",
                            "recipients": [
                                {
                                    "phone": "+14155552671",
                                    "dynamic_vars": {
                                        "first_name": "Ada",
                                        "appointment_time": "3pm",
                                    },
                                },
                                {
                                    "phone": "+1 (415) 555-2672",
                                    "first_name": "Grace",
                                    "appointment_time": "10:30am",
                                },
                            ],
                        },
                    }
                },
            },
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["csv_file", "name", "agent_id"],
                    "properties": {
                        "csv_file": {
                            "type": "string",
                            "format": "binary",
                            "description": "UTF-8 CSV (comma, semicolon or tab) with a phone column; "
                            "every other column is a variable. At most BATCH_MAX_UPLOAD_BYTES.",
                        },
                        "name": {"type": "string"},
                        "agent_id": {"type": "string"},
                        "phone_number_id": {"type": "string"},
                        "scheduled_at": {"type": "string", "format": "date-time"},
                        "ringing_timeout_ms": {"type": "integer"},
                        "max_concurrency": {"type": "integer"},
                        "retry_policy": {
                            "type": "string",
                            "description": "The retry policy as JSON",
                        },
                        "circuit_breaker": {
                            "type": "string",
                            "description": "The circuit breaker as JSON, or false",
                        },
                    },
                }
            },
        },
    },
}


# Query parameters whose rules the services enforce (the console calls the same functions): the
# schema states those rules without FastAPI checking them a second time with other words.


def limit_query(maximum: int) -> Any:
    return Query(
        description=f"Page size, 1–{maximum}",
        json_schema_extra={"minimum": 1, "maximum": maximum},
    )


def cursor_query() -> Any:
    return Query(
        description="`next_cursor` of the previous page (opaque)",
        json_schema_extra={"pattern": "^[A-Za-z0-9_-]{1,512}$"},
    )


def enum_query(description: str, values: tuple[str, ...]) -> Any:
    return Query(description=description, json_schema_extra={"enum": list(values)})
