"""Logging set-up shared by the backend, the CLI and the worker."""

from __future__ import annotations

import logging

from batch_dashboard.settings import get_settings


def configure_logging() -> None:
    level = get_settings().log_level.upper()
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("batch_dashboard").setLevel(level)
    # APScheduler logs every run of every job at INFO; the promote job runs twice a second.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
