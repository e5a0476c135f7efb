"""/v1/agents and /v1/phone-numbers (read-only; the console and CLI create them)."""

from __future__ import annotations

from fastapi import APIRouter
from sqlmodel import Session

from batch_dashboard.api.deps import CallerDep
from batch_dashboard.api.openapi import ERRORS
from batch_dashboard.models import AgentList, AgentPublic, PhoneNumberList
from batch_dashboard.services import agents

router = APIRouter(prefix="/v1", responses=ERRORS)


@router.get("/agents", tags=["Agents"], summary="The workspace's agents", response_model=AgentList)
async def list_agents(caller: CallerDep) -> dict:
    def public(session: Session, *, workspace_id: str) -> dict:
        found = agents.list_agents(session, workspace_id=workspace_id)
        return {"agents": [agents.agent_public(agent) for agent in found]}

    return await caller.read(public)


@router.get("/agents/{agent_id}", tags=["Agents"], summary="One agent", response_model=AgentPublic)
async def get_agent(agent_id: str, caller: CallerDep) -> dict:
    def public(session: Session, *, workspace_id: str) -> dict:
        return agents.agent_public(
            agents.get_agent(session, workspace_id=workspace_id, agent_id=agent_id)
        )

    return await caller.read(public)


@router.get(
    "/phone-numbers",
    tags=["Phone numbers"],
    summary="The workspace's caller numbers",
    response_model=PhoneNumberList,
)
async def list_phone_numbers(caller: CallerDep) -> dict:
    def public(session: Session, *, workspace_id: str) -> dict:
        numbers = agents.list_phone_numbers(session, workspace_id=workspace_id)
        return {"phone_numbers": [agents.phone_number_public(number) for number in numbers]}

    return await caller.read(public)
