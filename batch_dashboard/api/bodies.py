"""Request bodies, read and parsed the same way by every route that takes one."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request

from batch_dashboard.services.errors import (
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
    refuse_nul,
)

# Room for a multipart envelope and a form's other fields around a maximal upload.
ENVELOPE = 64 * 1024
# Routes whose body is a few options, e.g. `{"hang_up": true}`.
SMALL_BODY = 16 * 1024
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
# Strict JSON has no raw control characters in strings: a NUL can only arrive escaped.
_NUL_ESCAPE = b"\\u0000"


def too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"the request body is larger than the limit of {limit:,} bytes",
        [{"loc": ["body"], "message": f"must be at most {limit:,} bytes"}],
    )


def declared_too_large(content_length: str | bytes, limit: int) -> bool:
    return content_length.isdigit() and int(content_length) > limit


async def limited_stream(request: Request, limit: int) -> AsyncIterator[bytes]:
    """The body, refused as soon as it passes `limit` (never read whole first)."""
    if declared_too_large(request.headers.get("content-length", ""), limit):
        raise too_large(limit)
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise too_large(limit)
        yield chunk


async def read_limited(request: Request, limit: int) -> bytes:
    return b"".join([chunk async for chunk in limited_stream(request, limit)])


def parse_json_object(body: bytes, *, what: str = "a JSON object") -> dict[str, Any]:
    """Strict JSON (no NaN/Infinity) whose top level is an object, refused with a 422 that
    says why; lone surrogate escapes are refused too, since no database can store them."""

    def refuse_constant(name: str) -> None:
        raise ValueError(f"{name} is not valid JSON")

    try:
        # Decoded strictly first: json.loads of bytes lets encoded surrogates (ED A0 80) through.
        payload = json.loads(body.decode("utf-8"), parse_constant=refuse_constant)
    except (ValueError, RecursionError) as error:
        raise ValidationFailed.at(["body"], f"is not valid JSON: {error}") from None
    if not isinstance(payload, dict):
        raise ValidationFailed.at(["body"], f"must be {what}")
    if _SURROGATE_ESCAPE.search(body):
        try:
            json.dumps(payload, ensure_ascii=False).encode()
        except UnicodeEncodeError:
            raise ValidationFailed.at(
                ["body"], "contains invalid Unicode (an unpaired surrogate escape)"
            ) from None
    if _NUL_ESCAPE in body:
        refuse_nul(payload, [])
    return payload


def is_json(content_type: str) -> bool:
    media_type = content_type.split(";")[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


async def read_json_object(
    request: Request, limit: int, *, optional: bool = False
) -> dict[str, Any]:
    """The one way a route reads a JSON body: at most `limit` bytes, sent as JSON (or without
    a Content-Type), parsed by `parse_json_object`; an `optional` body may be empty."""
    content_type = request.headers.get("content-type", "")
    if content_type and not is_json(content_type):
        raise UnsupportedMediaType(
            "send the body as application/json",
            [{"loc": ["Content-Type"], "message": f"{content_type} is not supported"}],
        )
    body = await read_limited(request, limit)
    if optional and not body.strip():
        return {}
    return parse_json_object(body)
