"""Who is calling, and the one trip to a worker thread that serves each request.

Every route is `async def` and hands its work to `Caller.read` or `Caller.write`, which run
the service function in one worker thread. FastAPI would otherwise run each sync dependency
and the route in a thread of their own (four trips per request), and under load each trip
waits for the event loop to hand over the GIL: that hand-over, not the work, was most of a
request's latency. On SQLite the key check, and answers served from memory, make no trip at
all; on PostgreSQL the key check is a trip of its own (bench/README.md, "Load").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import anyio.to_thread
import orjson
from fastapi import Depends, Security
from fastapi.responses import Response
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from batch_dashboard import db
from batch_dashboard.services import auth, ratelimit
from batch_dashboard.settings import get_settings

_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer bc_…`")
_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="`X-API-Key: bc_…`")

T = TypeVar("T")
# A service call awaiting its session and keyword `workspace_id`, e.g.
# `partial(batches.cancel_batch, batch_id=...)`; `from_memory` takes `workspace_id` alone.
Work = Callable[..., T]


def _authenticate(api_key: str | None) -> str:
    workspace_id = auth.authenticate_api_key(api_key)
    settings = get_settings()
    ratelimit.buckets().take(
        auth.hash_key(api_key or ""),
        rate=settings.rate_limit_per_second,
        burst=settings.rate_limit_burst,
    )
    return workspace_id


async def _on_the_loop_if_local(lookup: Callable[[], T]) -> T:
    """`lookup` (indexed point lookups only) right here when the database is SQLite, where it
    is a function call of some 30 µs, cheaper than the trip to a thread; in a worker thread
    when it is PostgreSQL, where each lookup is a network round trip — or when the key's
    request count is kept in Redis, another round trip (bench/README.md, "Rate limit")."""
    if db.lookups_are_local() and not ratelimit.in_redis():
        return lookup()
    return await anyio.to_thread.run_sync(lookup)


@dataclass(frozen=True)
class Caller:
    """An authenticated request: its workspace, and the unit of work that serves it."""

    workspace_id: str

    async def read(self, work: Work[T], *, from_memory: Callable[..., T | None] | None = None) -> T:
        """`work` in a read-only unit of work in a worker thread, unless `from_memory` (indexed
        lookups and an in-memory cache, no session) answers: on SQLite it is asked right here on
        the event loop (see `_on_the_loop_if_local`), elsewhere in the same thread as `work`."""

        def remembered() -> T | None:
            return None if from_memory is None else from_memory(workspace_id=self.workspace_id)

        if from_memory is not None and db.lookups_are_local():
            if (found := remembered()) is not None:
                return found
            return await anyio.to_thread.run_sync(self._run, work, False)

        def in_thread() -> T:
            found = remembered()
            return found if found is not None else self._run(work, False)

        return await anyio.to_thread.run_sync(in_thread)

    async def write(self, work: Work[T]) -> T:
        """`work` in a unit of work that holds SQLite's write lock from its start."""
        return await anyio.to_thread.run_sync(self._run, work, True)

    def _run(self, work: Work[T], write: bool) -> T:
        with db.session_scope(write=write) as session:
            return work(session, workspace_id=self.workspace_id)


async def get_caller(
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    api_key: Annotated[str | None, Security(_api_key_header)],
) -> Caller:
    """A dependency, so that a request without a valid key is refused before its parameters
    and body are even validated."""
    key = bearer.credentials if bearer is not None else api_key
    return Caller(await _on_the_loop_if_local(lambda: _authenticate(key)))


CallerDep = Annotated[Caller, Depends(get_caller)]


class FastJSONResponse(Response):
    """orjson: 50,000 recipients serialise in tens of milliseconds, raw JSON fragments pass through."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)
