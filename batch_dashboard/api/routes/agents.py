"""/v1/agents and /v1/phone-numbers (read-only; the console and CLI create them)."""

from __future__ import annotations

from fastapi import APIRouter

from batch_dashboard.api.deps import SessionDep, WorkspaceId
from batch_dashboard.api.openapi import ERRORS
from batch_dashboard.models import AgentList, AgentPublic, PhoneNumberList
from batch_dashboard.services import agents

router = APIRouter(prefix="/v1", responses=ERRORS)


@router.get("/agents", tags=["Agents"], summary="The workspace's agents", response_model=AgentList)
def list_agents(session: SessionDep, workspace_id: WorkspaceId) -> dict:
    return {
        "agents": [
            agents.agent_public(agent)
            for agent in agents.list_agents(session, workspace_id=workspace_id)
        ]
    }


@router.get("/agents/{agent_id}", tags=["Agents"], summary="One agent", response_model=AgentPublic)
def get_agent(agent_id: str, session: SessionDep, workspace_id: WorkspaceId) -> dict:
    return agents.agent_public(
        agents.get_agent(session, workspace_id=workspace_id, agent_id=agent_id)
    )


@router.get(
    "/phone-numbers",
    tags=["Phone numbers"],
    summary="The workspace's caller numbers",
    response_model=PhoneNumberList,
)
def list_phone_numbers(session: SessionDep, workspace_id: WorkspaceId) -> dict:
    numbers = agents.list_phone_numbers(session, workspace_id=workspace_id)
    return {"phone_numbers": [agents.phone_number_public(number) for number in numbers]}
