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

    def __init__(
        self, problems: list[dict[str, Any]], message: str | None = None, *, total: int = 0
    ) -> None:
        """`total`: how many problems were found, when more than the `problems` kept."""
        total = max(total, len(problems))
        problems = problems[:MAX_REPORTED_PROBLEMS]
        if message is None:
            first = problems[0]
            where = ".".join(str(part) for part in first["loc"])
            more = f" (and {total - 1:,} more)" if total > 1 else ""
            message = f"{where}: {first['message']}{more}"
        super().__init__(message, problems)
        self.total = total

    @classmethod
    def at(cls, loc: Loc, message: str) -> ValidationFailed:
        return cls([problem(loc, message)])


def is_clean_id(value: str) -> bool:
    """Could this be one of our ids? (Keeps NULs and megabyte strings away from the database.)"""
    return len(value) <= 64 and "\x00" not in value


def problem(loc: Loc, message: str) -> dict[str, Any]:
    return {"loc": list(loc), "message": message}


class Problems:
    """Collects problems up to the reporting cap, counting those past it; `raise_if_any` turns
    them into one error."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self.total = 0

    def add(self, loc: Loc, message: str) -> None:
        self.total += 1
        if len(self.items) < MAX_REPORTED_PROBLEMS:
            self.items.append(problem(loc, message))

    def merge(self, other: Problems) -> None:
        for item in other.items:
            self.add(item["loc"], item["message"])
        self.total += other.total - len(other.items)

    @property
    def full(self) -> bool:
        return len(self.items) >= MAX_REPORTED_PROBLEMS

    def __bool__(self) -> bool:
        return bool(self.items)

    def raise_if_any(self) -> None:
        if self.items:
            raise ValidationFailed(self.items, total=self.total)


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
        # Escaped in the form's JSON text, a NUL appears only now.
        before = problems.total
        nul_problems(value, [field], problems)
        if problems.total > before:
            return None
    if not isinstance(value, dict):
        problems.add([field], f"must be an object {shape}")
        return None
    for name in sorted(set(value) - allowed):
        problems.add([field, name], f"is not a {field.replace('_', ' ')} field")
    return value


# --- the one rule for text ---------------------------------------------------------------------

NUL = "\x00"
NUL_MESSAGE = "must not contain the NUL character (U+0000)"


def nul_problem(text: str) -> str | None:
    return NUL_MESSAGE if NUL in text else None


def nul_problems(value: object, loc: Loc, problems: Problems) -> None:
    """The rule for every text a user sends us (a JSON body's strings and names, form fields,
    query parameters, headers we keep): no NUL. PostgreSQL cannot store it in a text column
    and no field of ours needs it, so it is refused where it enters, naming the field, rather
    than failing in the database. Walks nested JSON without recursion (bodies may nest deep)."""
    pending: list[tuple[object, Loc]] = [(value, loc)]  # a stack: problems in document order
    while pending:
        item, where = pending.pop()
        if isinstance(item, str):
            if NUL in item:
                problems.add(where, NUL_MESSAGE)
        elif isinstance(item, dict):
            for key, inner in reversed(item.items()):
                if isinstance(key, str) and NUL in key:
                    pending.append((key, [*where, key]))
                else:
                    pending.append((inner, [*where, key]))
        elif isinstance(item, list):
            pending.extend(
                (inner, [*where, index]) for index, inner in reversed(list(enumerate(item)))
            )


def refuse_nul(value: object, loc: Loc) -> None:
    """`nul_problems`, raised at once as a 422."""
    problems = Problems()
    nul_problems(value, loc, problems)
    problems.raise_if_any()
