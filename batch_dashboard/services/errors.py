"""Domain errors. Each carries the API's error code; the doors decide how to show it."""

from __future__ import annotations

import json
from typing import Any

MAX_REPORTED_PROBLEMS = 1000

Loc = list[str | int]


class DomainError(Exception):
    code = "error"
    status = 400

    def __init__(self, message: str, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class Unauthorized(DomainError):
    code, status = "unauthorized", 401


class NotFound(DomainError):
    code, status = "not_found", 404


class BatchNotCancellable(DomainError):
    code, status = "batch_not_cancellable", 409


class BatchNotStoppable(DomainError):
    code, status = "batch_not_stoppable", 409


class Conflict(DomainError):
    code, status = "conflict", 409


class IdempotencyKeyReused(DomainError):
    code, status = "idempotency_key_reused", 422


class PayloadTooLarge(DomainError):
    code, status = "payload_too_large", 413


class UnsupportedMediaType(DomainError):
    code, status = "unsupported_media_type", 415


class RateLimited(DomainError):
    code, status = "rate_limited", 429

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ValidationFailed(DomainError):
    code, status = "validation_failed", 422

    def __init__(self, problems: list[dict[str, Any]], message: str | None = None) -> None:
        problems = problems[:MAX_REPORTED_PROBLEMS]
        if message is None:
            first = problems[0]
            where = ".".join(str(part) for part in first["loc"])
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            message = f"{where}: {first['message']}{more}"
        super().__init__(message, problems)

    @classmethod
    def at(cls, loc: Loc, message: str) -> ValidationFailed:
        return cls([problem(loc, message)])


def is_clean_id(value: str) -> bool:
    """Could this be one of our ids? (Keeps NULs and megabyte strings away from the database.)"""
    return len(value) <= 64 and "\x00" not in value


def problem(loc: Loc, message: str) -> dict[str, Any]:
    return {"loc": list(loc), "message": message}


class Problems:
    """Collects problems up to the reporting cap; `raise_if_any` turns them into one error."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def add(self, loc: Loc, message: str) -> None:
        if len(self.items) < MAX_REPORTED_PROBLEMS:
            self.items.append(problem(loc, message))

    @property
    def full(self) -> bool:
        return len(self.items) >= MAX_REPORTED_PROBLEMS

    def __bool__(self) -> bool:
        return bool(self.items)

    def raise_if_any(self) -> None:
        if self.items:
            raise ValidationFailed(self.items)


LABEL_MAX = 200


def checked_label(value: str, problems: Problems | None = None, *, field: str = "label") -> str:
    """A label people give to a key, a number or a wall screen: trimmed, at most 200 characters
    (the column's size on every database), no control characters. Problems go to `problems`,
    or are raised at once without it."""
    label = value.strip()
    found = problems if problems is not None else Problems()
    if len(label) > LABEL_MAX:
        found.add([field], f"must be at most {LABEL_MAX} characters (got {len(label)})")
    elif any(ord(char) < 32 or ord(char) == 127 for char in label):
        found.add([field], "must not contain control characters")
    if problems is None:
        found.raise_if_any()
    return label


def json_object_field(
    value: object,
    problems: Problems,
    *,
    field: str,
    allowed: set[str],
    shape: str,
    from_form: bool,
) -> dict[str, Any] | None:
    """An optional object field of a batch (JSON, or a JSON string in a CSV upload's form):
    the object, or None when absent or refused; unknown keys are reported, not dropped."""
    if value is None or (from_form and value == ""):
        return None
    if from_form and isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            problems.add([field], "must be a JSON object")
            return None
    if not isinstance(value, dict):
        problems.add([field], f"must be an object {shape}")
        return None
    for name in sorted(set(value) - allowed):
        problems.add([field, name], f"is not a {field.replace('_', ' ')} field")
    return value
