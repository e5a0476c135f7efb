"""Alembic environment: the target is SQLModel.metadata, the URL our Settings' DATABASE_URL."""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlmodel import SQLModel

import batch_dashboard.models  # noqa: F401 - registers the tables on SQLModel.metadata
from batch_dashboard.db import get_engine, is_sqlite

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logging", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = SQLModel.metadata


def _url() -> str:
    from batch_dashboard.settings import get_settings

    return config.attributes.get("database_url") or get_settings().database_url


def run_migrations_offline() -> None:
    url = _url()
    context.configure(
        url=url, target_metadata=target_metadata, literal_binds=True, render_as_batch=is_sqlite(url)
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    url = _url()
    with get_engine(url).connect() as connection:
        # SQLite alters tables by copying them ("batch mode").
        context.configure(
            connection=connection, target_metadata=target_metadata, render_as_batch=is_sqlite(url)
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
