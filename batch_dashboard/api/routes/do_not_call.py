"""/v1/do-not-call: numbers the workspace must never call (checked at the moment of dialing)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from batch_dashboard.api.deps import SessionDep, WorkspaceId, WriteSessionDep
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
def list_do_not_call(
    session: SessionDep,
    workspace_id: WorkspaceId,
    limit: Annotated[int, Query(description="1–1000")] = 100,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page")] = None,
) -> dict[str, Any]:
    return dnc.list_entries(session, workspace_id=workspace_id, limit=limit, after=cursor)


@router.post(
    "",
    status_code=201,
    summary="Add a number; a batch already running never dials it from now on",
    response_model=DoNotCallEntry,
)
def add_do_not_call(
    body: Annotated[DoNotCallCreate, Body()], session: WriteSessionDep, workspace_id: WorkspaceId
) -> dict[str, Any]:
    return dnc.add(session, workspace_id=workspace_id, phone=body.phone, reason=body.reason)


@router.delete("/{phone}", status_code=204, summary="Remove a number", response_class=Response)
def remove_do_not_call(phone: str, session: WriteSessionDep, workspace_id: WorkspaceId) -> Response:
    dnc.remove(session, workspace_id=workspace_id, phone=phone)
    return Response(status_code=204)
