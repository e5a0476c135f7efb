"""Cursors of the list routes (batches, do-not-call entries, webhook deliveries): opaque to
clients, made and checked here for every list, so that a cursor this API did not return is a
422 at `["cursor"]` everywhere rather than an empty page somewhere."""

from __future__ import annotations

import base64
import binascii
import re

from batch_dashboard.services.errors import NUL, ValidationFailed

_SEPARATOR = "|"
_SHAPE = re.compile(r"[A-Za-z0-9_-]{1,512}")


def refused() -> ValidationFailed:
    return ValidationFailed.at(["cursor"], "is not a cursor this API returned")


def encode(*parts: str) -> str:
    raw = _SEPARATOR.join(parts).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor: str | None, *, parts: int) -> list[str] | None:
    """The `parts` strings a cursor was made of, None when none was given; a list checks what
    the parts mean and raises `refused()` when they mean nothing to it."""
    if not cursor:
        return None
    if not _SHAPE.fullmatch(cursor):
        raise refused()
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise refused() from None
    found = raw.split(_SEPARATOR)
    if len(found) != parts or NUL in raw or not all(found):
        raise refused()
    return found
