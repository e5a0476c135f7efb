"""What every platform fake (Twilio, ElevenLabs, Vapi, Retell) does the same way: answer JSON,
reset a connection without an answer (a lost answer), and never send anything beyond
loopback."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import socket
import struct
import urllib.parse
from http.server import BaseHTTPRequestHandler
from typing import Any

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


def is_loopback(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def send_json(
    handler: BaseHTTPRequestHandler,
    status: int,
    payload: Any,
    headers: dict[str, str] | None = None,
    *,
    content_type: str = "application/json",
) -> None:
    """`payload` as the JSON answer (None: an empty body); a client gone meanwhile is not an
    error of the fake's."""
    data = b"" if payload is None else json.dumps(payload).encode()
    try:
        handler.send_response(status)
        if payload is not None:
            handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)
    except OSError:
        handler.close_connection = True


def reset(handler: BaseHTTPRequestHandler) -> None:
    """Close with no answer at all: an RST, so the client sees the lost answer at once."""
    handler.close_connection = True
    with contextlib.suppress(OSError):
        handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
