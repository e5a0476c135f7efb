"""The migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

from sqlalchemy import Index, text
from sqlmodel import SQLModel

from batch_dashboard.db import get_engine


def test_the_migrated_schema_is_the_models_schema(database: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with get_engine().connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, SQLModel.metadata) == []


def test_partial_indexes_have_the_models_predicates(database: str) -> None:
    # Autogenerate does not compare an index's WHERE clause; a full index where the model says
    # partial (or the other way round) would pass the test above.
    engine = get_engine()
    dialect = engine.dialect.name
    with engine.connect() as connection:
        if dialect == "sqlite":
            found = dict(
                connection.execute(
                    text("SELECT name, coalesce(sql, '') FROM sqlite_master WHERE type = 'index'")
                ).all()
            )
        else:
            found = dict(
                connection.execute(text("SELECT indexname, indexdef FROM pg_indexes")).all()
            )
    for table in SQLModel.metadata.tables.values():
        for index in table.indexes:
            assert isinstance(index, Index)
            where = index.dialect_options[dialect].get("where")
            _, _, built = found[index.name].partition(" WHERE ")
            expected = "" if where is None else str(where)
            assert _predicate(built) == _predicate(expected), index.name


def _predicate(sql: str) -> str:
    """A WHERE clause as both databases' catalogs and the models write it, compared loosely:
    PostgreSQL adds brackets and casts (`((status)::text = 'dialing'::text)`)."""
    for noise in ("::text", "(", ")", "'", '"'):
        sql = sql.replace(noise, "")
    return " ".join(sql.lower().split())
