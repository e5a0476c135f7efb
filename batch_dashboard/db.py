"""The one engine per database URL, the session scope, and SQLite's pragmas."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session, create_engine

from batch_dashboard.settings import get_settings

_engines: dict[str, Engine] = {}
_lock = threading.Lock()


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the console read while the dialer writes; the busy timeout turns writer
    # contention into a short wait instead of "database is locked".
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=15000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin(connection) -> None:
    # A deferred transaction that reads and then writes fails with SQLITE_BUSY without waiting
    # when another writer got in between; writers take the lock up front so busy_timeout applies.
    immediate = connection.get_execution_options().get("sqlite_immediate", False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _json(value: object) -> str:
    return orjson.dumps(value).decode()


def make_engine(url: str) -> Engine:
    if is_sqlite(url):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 15, "isolation_level": None},
            json_serializer=_json,
            json_deserializer=orjson.loads,
            hide_parameters=True,  # a failed statement's error never carries numbers or names
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(
        url,
        pool_size=10,
        max_overflow=20,
        pool_pre_ping=True,
        json_serializer=_json,
        json_deserializer=orjson.loads,
        hide_parameters=True,
    )


def get_engine(url: str | None = None) -> Engine:
    url = url or get_settings().database_url
    engine = _engines.get(url)
    if engine is None:
        with _lock:
            engine = _engines.get(url)
            if engine is None:
                engine = _engines[url] = make_engine(url)
    return engine


def dispose_engines() -> None:
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


@contextmanager
def session_scope(url: str | None = None, *, write: bool = False) -> Iterator[Session]:
    """One unit of work: committed when the block ends, rolled back when it raises.

    `write=True` takes SQLite's write lock at BEGIN (PostgreSQL ignores it).
    """
    engine = get_engine(url)
    bind = engine.execution_options(sqlite_immediate=True) if write else engine
    with Session(bind, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
