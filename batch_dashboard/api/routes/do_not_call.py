"""/v1/do-not-call: numbers the workspace must never call (checked at the moment of dialing)."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from batch_dashboard.api.deps import CallerDep
from batch_dashboard.api.openapi import ERRORS
from batch_dashboard.services import dnc

router = APIRouter(prefix="/v1/do-not-call", tags=["Do not call"], responses=ERRORS)


class DoNotCallEntry(BaseModel):
    phone: str
    reason: str
    source: str = Field(description="api, console, import or opt_out")
    created_at: str


class DoNotCallList(BaseModel):
    do_not_call: list[DoNotCallEntry]
    next_cursor: str | None


class DoNotCallCreate(BaseModel):
    phone: str = Field(examples=["+14155552671"])
    reason: str = Field("", max_length=500, examples=["Asked not to be called"])


@router.get("", summary="The workspace's do-not-call list", response_model=DoNotCallList)
async def list_do_not_call(
    caller: CallerDep,
    limit: Annotated[int, Query(description="1–1000")] = 100,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page")] = None,
) -> dict[str, Any]:
    return await caller.read(partial(dnc.list_entries, limit=limit, after=cursor))


@router.post(
    "",
    status_code=201,
    summary="Add a number; a batch already running never dials it from now on",
    response_model=DoNotCallEntry,
)
async def add_do_not_call(
    body: Annotated[DoNotCallCreate, Body()], caller: CallerDep
) -> dict[str, Any]:
    return await caller.write(partial(dnc.add, phone=body.phone, reason=body.reason))


@router.delete("/{phone}", status_code=204, summary="Remove a number", response_class=Response)
async def remove_do_not_call(phone: str, caller: CallerDep) -> Response:
    await caller.write(partial(dnc.remove, phone=phone))
    return Response(status_code=204)
