"""/v1/do-not-call: numbers the workspace must never call (checked at the moment of dialing)."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from batch_dashboard.api import bodies
from batch_dashboard.api.deps import CallerDep
from batch_dashboard.api.openapi import ERRORS, cursor_query, limit_query
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
    limit: Annotated[int, limit_query(dnc.LIST_LIMIT_MAX)] = 100,
    cursor: Annotated[str | None, cursor_query()] = None,
) -> dict[str, Any]:
    return await caller.read(partial(dnc.list_entries, limit=limit, after=cursor))


@router.post(
    "",
    status_code=201,
    summary="Add a number; a batch already running never dials it from now on",
    response_model=DoNotCallEntry,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": DoNotCallCreate.model_json_schema()}},
        }
    },
)
async def add_do_not_call(request: Request, caller: CallerDep) -> dict[str, Any]:
    # Read like every other body (bodies.py), so bad JSON, bad UTF-8 and NULs answer alike.
    body = await bodies.read_json_object(request, bodies.SMALL_BODY)
    return await caller.write(
        partial(dnc.add, phone=body.get("phone"), reason=body.get("reason", ""))
    )


@router.delete("/{phone}", status_code=204, summary="Remove a number", response_class=Response)
async def remove_do_not_call(phone: str, caller: CallerDep) -> Response:
    await caller.write(partial(dnc.remove, phone=phone))
    return Response(status_code=204)
