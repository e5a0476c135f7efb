"""Logging set-up shared by the backend, the CLI and the worker.

`BATCH_LOG_FORMAT=json` writes one JSON object a line (time, level, logger, message and the
ids a record carries in `extra`, such as batch_id or attempt_id). Nothing logged at INFO
contains a secret or a full phone number.
"""

from __future__ import annotations

import json
import logging

from batch_dashboard.settings import get_settings

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


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
        return json.dumps(entry, default=str)


def configure_logging() -> None:
    settings = get_settings()
    level = settings.log_level.upper()
    handler = logging.StreamHandler()
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    # Like basicConfig, leave a host's own handlers alone, unless JSON lines were asked for.
    if settings.log_format == "json" or not root.handlers:
        root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("batch_dashboard").setLevel(level)
    # APScheduler logs every run of every job at INFO; the promote job runs twice a second.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
