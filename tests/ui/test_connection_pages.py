"""The connection each number and agent calls through, an agent's media stream, and what a batch
does when a machine answers, driven through the Reflex states of their pages."""

from __future__ import annotations

import pytest

from batch_dashboard.db import session_scope
from batch_dashboard.services import agents, connections
from batch_dashboard.services.errors import NotFound, ValidationFailed
from tests.conftest import Tenant, make_tenant

STREAM = "wss://bot.example.com/stream"


@pytest.fixture
def tenant(sqlite_url: str) -> Tenant:
    return make_tenant()


def test_update_agent_keeps_what_it_is_not_given(tenant: Tenant) -> None:
    """The agent editor's `update_agent`: None keeps the connection, the platform's agent id
    and the media stream; "" clears them; anything else is checked as at creation."""
    other = make_tenant("Other")
    with session_scope(write=True) as session:
        lab = connections.create_connection(
            session,
            workspace_id=tenant.workspace_id,
            fields={"provider": "simulator", "name": "Lab"},
        )["id"]
        theirs = connections.create_connection(
            session, workspace_id=other.workspace_id, fields={"provider": "simulator", "name": "X"}
        )["id"]
        agent, _ = agents.create_agent(
            session,
            workspace_id=tenant.workspace_id,
            name="Runtime",
            prompt="Hi",
            connection_id=lab,
            external_agent_id="agent-42",
            stream_url=STREAM,
        )
        same = {
            "workspace_id": tenant.workspace_id,
            "agent_id": agent.id,
            "name": "Runtime 2",
            "prompt": "Hi",
            "first_message": "",
            "phone_number_id": None,
            "webhook_url": None,
        }
        agents.update_agent(session, **same)
        assert (agent.name, agent.connection_id, agent.external_agent_id, agent.stream_url) == (
            "Runtime 2",
            lab,
            "agent-42",
            STREAM,
        )
        with pytest.raises(ValidationFailed) as refused:
            agents.update_agent(session, **same, stream_url="https://bot.example.com/stream")
        assert refused.value.details[0]["loc"] == ["stream_url"]
        with pytest.raises(NotFound):
            agents.update_agent(session, **same, connection_id=theirs)
        assert (agent.connection_id, agent.stream_url) == (lab, STREAM)
        agents.update_agent(session, **same, connection_id="", external_agent_id="", stream_url="")
        assert (agent.connection_id, agent.external_agent_id, agent.stream_url) == (
            None,
            None,
            None,
        )
