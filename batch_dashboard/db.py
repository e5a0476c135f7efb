"""The one engine per database URL, the session scope, and SQLite's pragmas."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Select, any_, bindparam, event
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, create_engine

from batch_dashboard.settings import get_settings

SQLITE_BUSY_MS = 15_000
# A server that does not answer (a dropped route, a firewall) fails a connection attempt in
# this long instead of the operating system's minutes, so health checks and backoff stay prompt.
CONNECT_TIMEOUT_SECONDS = 5
_engines: dict[str, Engine] = {}
_lookup_engines: dict[URL, Engine] = {}
_lock = threading.Lock()


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the console read while the dialer writes; the busy timeout turns writer
    # contention into a short wait instead of "database is locked".
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
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
            # A directory that cannot be made is reported by SQLite at the first connection,
            # as "unable to open database file", like any other unreachable database.
            with contextlib.suppress(OSError):
                Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={
                "check_same_thread": False,
                "timeout": SQLITE_BUSY_MS / 1000,
                "isolation_level": None,
            },
            json_serializer=_json,
            json_deserializer=orjson.loads,
            hide_parameters=True,  # a failed statement's error never carries numbers or names
            # Room for every thread that can hold a connection at once (anyio's 40 workers,
            # the scheduler's, the event loop's lookups in api/deps.py) so that none waits for
            # the pool, the event loop least of all. Kept, not reopened: a new connection
            # costs four PRAGMAs, and an idle one only its file handle.
            pool_size=60,
            max_overflow=20,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(
        url,
        pool_size=10,
        max_overflow=20,
        pool_pre_ping=True,
        connect_args={"connect_timeout": CONNECT_TIMEOUT_SECONDS},
        json_serializer=_json,
        json_deserializer=orjson.loads,
        hide_parameters=True,
    )


def one_of(session: Session, column: Any, values: Sequence[Any]) -> ColumnElement[bool]:
    """`column IN (values)`; on PostgreSQL `column = ANY(:values)`, one array parameter.

    An IN list is one parameter per value, so its SQL differs with every count: psycopg parses
    a statement of over 50 parameters again at each execution (~3 ms for 200 values, inside
    the dialer's claim, which holds the workspace's lock meanwhile) and the server plans it
    again. The array form is one statement for any count. SQLite has no arrays."""
    if session.get_bind().dialect.name != "postgresql":
        return column.in_(list(values))
    return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))


def get_engine(url: str | None = None) -> Engine:
    url = url or get_settings().database_url
    engine = _engines.get(url)
    if engine is None:
        with _lock:
            engine = _engines.get(url)
            if engine is None:
                engine = _engines[url] = make_engine(url)
    return engine


def _lookup_engine(engine: Engine) -> Engine:
    """Where `fetch_all` runs: SQLite's own engine; for a server database a second pool of
    autocommit connections without pre-ping, so that a lookup is one round trip (not a ping,
    the query and a ROLLBACK); a connection found dead is replaced and the lookup retried."""
    if engine.dialect.name == "sqlite":
        return engine
    lookup = _lookup_engines.get(engine.url)
    if lookup is None:
        with _lock:
            lookup = _lookup_engines.get(engine.url)
            if lookup is None:
                lookup = _lookup_engines[engine.url] = create_engine(
                    engine.url,
                    isolation_level="AUTOCOMMIT",
                    pool_size=5,  # a lookup holds its connection for one round trip
                    max_overflow=15,
                    hide_parameters=True,
                    connect_args={"connect_timeout": CONNECT_TIMEOUT_SECONDS},
                )
    return lookup


# SQLSTATE classes that mean "the server is gone or will not take us": connection exceptions
# (08…) and operator intervention (57P01 admin shutdown, 57P02 crash shutdown, 57P03 cannot
# connect now). Psycopg gives no SQLSTATE at all when it could not connect in the first place.
_GONE_SQLSTATES = ("08", "57P01", "57P02", "57P03")
# SQLite's way of saying the file (or its disk) cannot be reached.
_SQLITE_GONE = ("unable to open database file", "disk i/o error")


def driver_errors() -> tuple[type[Exception], ...]:
    """What a failed database call can raise: SQLAlchemy's wrapped errors, and the drivers'
    own (`fetch_all` runs on the driver's connection)."""
    kinds: list[type[Exception]] = [DBAPIError, sqlite3.Error]
    try:
        import psycopg

        kinds.append(psycopg.Error)
    except ImportError:  # a SQLite-only installation
        pass
    return tuple(kinds)


def is_unreachable(error: BaseException) -> bool:
    """Whether `error` says the database cannot be reached at all (refused, gone away, no file),
    as opposed to a statement that failed on a live database (a deadlock, a lock timeout, a
    constraint): the one test the API, the health check, the worker and the CLI share.
    Takes SQLAlchemy's wrapped errors and the drivers' own (`fetch_all` raises those)."""
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    original = error.orig if isinstance(error, DBAPIError) else error
    if isinstance(original, sqlite3.OperationalError):
        return str(original).lower().startswith(_SQLITE_GONE)
    try:
        import psycopg
    except ImportError:  # a SQLite-only installation
        return False
    if isinstance(original, psycopg.OperationalError | psycopg.InterfaceError):
        sqlstate = getattr(original, "sqlstate", None)
        return sqlstate is None or sqlstate.startswith(_GONE_SQLSTATES)
    return False


def dispose_engines() -> None:
    with _lock:
        for engine in [*_engines.values(), *_lookup_engines.values()]:
            engine.dispose()
        _engines.clear()
        _lookup_engines.clear()


def lookups_are_local() -> bool:
    """SQLite answers an indexed lookup in the calling thread in microseconds, and in WAL mode
    a reader never waits for a writer (only for a crash recovery at start-up, milliseconds);
    any other database is a network round trip away."""
    return get_engine().dialect.name == "sqlite"


@dataclass(frozen=True)
class _Prepared:
    sql: str
    names: tuple[str, ...] | None  # positional (SQLite's qmark) order, or None for named
    binds: dict[str, Callable[[Any], Any]]
    defaults: dict[str, Any]  # parameters the compiler added itself (SQLite's OFFSET 0)
    results: tuple[Callable[[Any], Any] | None, ...]


_prepared: dict[tuple[int, str], _Prepared] = {}


def fetch_one(statement: Select, params: Mapping[str, Any], engine: Engine | None = None) -> Any:
    """The first row of a small indexed SELECT (see `fetch_all`), or None."""
    rows = fetch_all(statement, params, engine, first_only=True)
    return rows[0] if rows else None


def fetch_all(
    statement: Select,
    params: Mapping[str, Any],
    engine: Engine | None = None,
    *,
    first_only: bool = False,
) -> list[tuple[Any, ...]]:
    """Rows of a small SELECT run on the driver's connection, outside any transaction, with
    the statement compiled once per database (it must be a module-level constant with
    `bindparam`s) and values converted both ways by the columns' types.

    Every API request authenticates its key and most look up a version this way: through a
    SQLAlchemy Connection the same lookup costs ~7× the CPU (events, BEGIN and COMMIT, the
    result machinery), ~250 µs against ~35 µs (bench/README.md, "Load"). `engine` defaults
    to the configured database; pass a session's `get_bind()` to read the same one."""
    engine = engine or get_engine()
    key = (id(statement), engine.dialect.name)
    prepared = _prepared.get(key)
    if prepared is None:
        prepared = _prepared[key] = _prepare(statement, engine)
    values = {
        name: prepared.binds[name](value) if name in prepared.binds else value
        for name, value in (prepared.defaults | dict(params)).items()
    }
    arguments = values if prepared.names is None else tuple(values[n] for n in prepared.names)
    lookups = _lookup_engine(engine)
    for attempt in (1, 2):
        connection = lookups.raw_connection()  # back to the pool when closed
        try:
            cursor = connection.cursor()
            try:
                cursor.execute(prepared.sql, arguments)
                rows = [cursor.fetchone()] if first_only else cursor.fetchall()
                break
            finally:
                cursor.close()
        except lookups.dialect.loaded_dbapi.Error as error:
            dead = lookups.dialect.is_disconnect(error, connection.dbapi_connection, None)
            if attempt == 2 or not dead:
                raise
            connection.invalidate()  # the server went away since this connection was pooled
        finally:
            connection.close()
    if any(prepared.results):
        return [_convert(row, prepared.results) for row in rows if row is not None]
    return [tuple(row) for row in rows if row is not None]


def _convert(row: Any, results: tuple[Callable[[Any], Any] | None, ...]) -> tuple[Any, ...]:
    return tuple(value if f is None else f(value) for value, f in zip(row, results, strict=True))


def _prepare(statement: Select, engine: Engine) -> _Prepared:
    dialect = engine.dialect
    compiled = statement.compile(dialect=dialect)
    binds, defaults = {}, {}
    for name, bind in compiled.binds.items():
        if (process := bind.type.dialect_impl(dialect).bind_processor(dialect)) is not None:
            binds[name] = process
        if not bind.required:
            defaults[name] = bind.effective_value
    results = tuple(
        column.type.dialect_impl(dialect).result_processor(dialect, None)
        for column in statement.selected_columns
    )
    names = tuple(compiled.positiontup) if compiled.positiontup is not None else None
    return _Prepared(
        sql=str(compiled), names=names, binds=binds, defaults=defaults, results=results
    )


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
