"""/v1/connections: a workspace's telephony accounts (thin handlers over services.connections)."""

from __future__ import annotations

from functools import partial

from fastapi import APIRouter, Request
from fastapi.responses import Response

from batch_dashboard.api import bodies
from batch_dashboard.api.deps import CallerDep, FastJSONResponse
from batch_dashboard.api.openapi import ERRORS
from batch_dashboard.services import connections

router = APIRouter(prefix="/v1/connections", tags=["Telephony connections"])

_CONNECTION_EXAMPLE = {
    "id": "conn_01JD7Q8R3P2M6C1T0S9W4YQ2HE",
    "provider": "twilio",
    "name": "Twilio – production",
    "base_url": None,
    "calls_per_second": 1.0,
    "credentials": {"account_sid": "…89ab", "auth_token": "…f00d"},
    "events_url": "https://calls.example.com/v1/provider-events/twilio/conn_01JD7Q8R3P2M6C1T0S9W4YQ2HE",
    "supports": {
        "voicemail": ["hang_up", "leave_message"],
        "import_numbers": True,
        "import_agents": False,
    },
    "created_at": "2026-12-01T15:00:00Z",
}
_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "provider": {"type": "string", "enum": list(connections.PROVIDERS)},
                        "name": {"type": "string", "minLength": 1, "maxLength": 200},
                        "credentials": {
                            "type": "object",
                            "additionalProperties": {"type": "string"},
                            "description": "Write-only: twilio `account_sid`, `auth_token`",
                        },
                        "base_url": {"type": ["string", "null"]},
                        "calls_per_second": {"type": "number", "exclusiveMinimum": 0},
                    },
                },
                "example": {
                    "provider": "twilio",
                    "name": "Twilio – production",
                    "credentials": {"account_sid": "AC…", "auth_token": "…"},
                    "calls_per_second": 1,
                },
            }
        },
    }
}
_ANSWER = {200: {"content": {"application/json": {"example": _CONNECTION_EXAMPLE}}}}


async def _json_object(request: Request) -> dict:
    return await bodies.read_json_object(request, bodies.SMALL_BODY)


@router.get("", summary="The workspace's telephony connections")
async def list_connections(caller: CallerDep) -> Response:
    return FastJSONResponse(await caller.read(connections.list_connections))


@router.post(
    "",
    summary="Add a telephony connection (credentials are write-only)",
    status_code=201,
    responses={**ERRORS, 201: _ANSWER[200]},
    openapi_extra=_BODY,
)
async def create_connection(request: Request, caller: CallerDep) -> Response:
    fields = await _json_object(request)
    created = await caller.write(partial(connections.create_connection, fields=fields))
    return FastJSONResponse(created, status_code=201)


@router.get("/{connection_id}", summary="One connection", responses={**ERRORS, **_ANSWER})
async def get_connection(connection_id: str, caller: CallerDep) -> Response:
    return FastJSONResponse(
        await caller.read(partial(connections.get_connection_public, connection_id=connection_id))
    )


@router.patch(
    "/{connection_id}",
    summary="Rename, change the rate or base URL, or replace credentials",
    responses={**ERRORS, **_ANSWER},
    openapi_extra=_BODY,
)
async def update_connection(connection_id: str, request: Request, caller: CallerDep) -> Response:
    fields = await _json_object(request)
    return FastJSONResponse(
        await caller.write(
            partial(connections.update_connection, connection_id=connection_id, fields=fields)
        )
    )


@router.delete(
    "/{connection_id}",
    summary="Delete a connection no number or agent uses",
    status_code=204,
    responses=ERRORS,
)
async def delete_connection(connection_id: str, caller: CallerDep) -> Response:
    await caller.write(partial(connections.delete_connection, connection_id=connection_id))
    return Response(status_code=204)


@router.post(
    "/{connection_id}/test",
    summary="One harmless authenticated read at the platform",
    responses={**ERRORS, 200: {"content": {"application/json": {"example": {"ok": True}}}}},
)
async def test_connection(connection_id: str, caller: CallerDep) -> Response:
    return FastJSONResponse(
        await caller.read(partial(connections.test_connection, connection_id=connection_id))
    )


@router.post(
    "/{connection_id}/import-numbers",
    summary="Add the account's phone numbers that are missing here",
    responses={
        **ERRORS,
        200: {
            "content": {
                "application/json": {
                    "example": {
                        "added": [
                            {"id": "pn_…", "phone_number": "+14155550100", "outbound_enabled": True}
                        ],
                        "already_here": 1,
                    }
                }
            }
        },
    },
)
async def import_numbers(connection_id: str, caller: CallerDep) -> Response:
    return FastJSONResponse(
        await caller.write(partial(connections.import_numbers, connection_id=connection_id))
    )


@router.post(
    "/{connection_id}/import-agents",
    summary="Create or refresh local agents from the platform's agents",
    responses={
        **ERRORS,
        200: {
            "content": {
                "application/json": {
                    "example": {
                        "added": [
                            {
                                "id": "agent_…",
                                "name": "Reminders",
                                "external_agent_id": "agent_8401k…",
                                "placeholders": ["first_name"],
                            }
                        ],
                        "refreshed": [],
                    }
                }
            }
        },
    },
)
async def import_agents(connection_id: str, caller: CallerDep) -> Response:
    return FastJSONResponse(
        await caller.write(partial(connections.import_agents, connection_id=connection_id))
    )
