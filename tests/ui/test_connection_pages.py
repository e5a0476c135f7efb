"""The connection each number and agent calls through, an agent's media stream, and what a batch
does when a machine answers, driven through the Reflex states of their pages."""

from __future__ import annotations

import dataclasses

import pytest

from batch_dashboard.db import session_scope
from batch_dashboard.services import agents, batches, connections
from batch_dashboard.services.errors import NotFound, ValidationFailed
from batch_dashboard.ui.states.admin import AgentsState, NumbersState
from batch_dashboard.ui.states.new_batch import NewBatchState
from tests.conftest import Tenant, make_tenant
from tests.ui.test_admin_states import run, signed_in
from tests.ui.test_batch_states import upload
from tests.ui.test_connection_states import SID, TOKEN, make_connection

STREAM = "wss://bot.example.com/stream"


@pytest.fixture
def tenant(sqlite_url: str) -> Tenant:
    return make_tenant()


def test_numbers_show_their_connection_or_the_simulator(tenant: Tenant) -> None:
    made = make_connection(
        tenant,
        provider="twilio",
        name="Production",
        credentials={"account_sid": SID, "auth_token": TOKEN},
    )
    with session_scope(write=True) as session:
        agents.create_phone_number(
            session,
            workspace_id=tenant.workspace_id,
            number="+14155550188",
            connection_id=made["id"],
        )
    state = signed_in(NumbersState, tenant.workspace_id)
    run(state.open())
    by_phone = {row.phone_e164: row for row in state.rows}
    assert (by_phone["+14155550188"].connection, by_phone["+14155550188"].platform) == (
        "Production",
        "Twilio",
    )
    assert (by_phone["+14155550100"].connection, by_phone["+14155550100"].platform) == (
        "Simulator",
        "",
    )


def test_agents_show_where_they_run_and_keep_a_media_stream_url(tenant: Tenant) -> None:
    made = make_connection(
        tenant,
        provider="twilio",
        name="Production",
        credentials={"account_sid": SID, "auth_token": TOKEN},
    )
    with session_scope(write=True) as session:
        twilio_number = agents.create_phone_number(
            session,
            workspace_id=tenant.workspace_id,
            number="+14155550188",
            connection_id=made["id"],
        ).id
    state = signed_in(AgentsState, tenant.workspace_id)
    run(state.open())
    row = next(r for r in state.rows if r.id == tenant.agent_id)
    assert (row.connection, row.on_twilio, row.stream_url) == ("Simulator", False, "")

    # Moved to the Twilio number, the agent follows its connection and takes a media stream.
    state.edit_agent(dataclasses.asdict(row))
    state.set_form_number(twilio_number)
    form = {"name": row.name, "prompt": row.prompt, "first_message": "", "webhook_url": ""}
    run(state.save({**form, "stream_url": "https://bot.example.com/stream"}))
    assert state.form_error.startswith("stream_url: must be the bot's media-stream websocket")
    assert state.editor_open
    run(state.save({**form, "stream_url": f" {STREAM} "}))
    assert state.form_error == "" and not state.editor_open
    row = next(r for r in state.rows if r.id == tenant.agent_id)
    assert (row.connection, row.platform, row.on_twilio) == ("Production", "Twilio", True)
    assert row.stream_url == STREAM
    with session_scope() as session:
        agent = agents.get_agent(session, workspace_id=tenant.workspace_id, agent_id=row.id)
        assert (agent.connection_id, agent.stream_url) == (made["id"], STREAM)

    # Editing again shows it; emptying the field clears it.
    state.edit_agent(dataclasses.asdict(row))
    assert state.form_stream_url == STREAM
    run(state.save({**form, "stream_url": ""}))
    row = next(r for r in state.rows if r.id == tenant.agent_id)
    assert row.stream_url == "" and row.on_twilio

    # A new agent on the Twilio number is created with its media stream.
    state.new_agent()
    state.set_form_number(twilio_number)
    run(state.save({**form, "name": "Bot", "stream_url": STREAM}))
    bot = next(r for r in state.rows if r.name == "Bot")
    assert (bot.connection, bot.stream_url) == ("Production", STREAM)


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


def test_a_batch_says_what_to_do_when_a_machine_answers(tenant: Tenant) -> None:
    state = signed_in(NewBatchState, tenant.workspace_id)
    run(state.open())
    assert state.voicemail_action == "none"
    run(state.handle_upload(upload("phone,first_name,appointment_time\n+14155552671,Ada,3pm\n")))
    state.name = "Machines"
    state.set_voicemail_action("leave_message")
    run(state.submit())
    assert state.field_errors == {"voicemail": "Message: is required to leave a message"}
    state.set_voicemail_message("Hi {{first_name}}, please call us back.")
    run(state.submit())
    assert state.field_errors == {} and state.form_error == ""
    state.set_voicemail_action("hang_up")
    state.name = "Hang up"
    run(state.handle_upload(upload("phone\n+14155552672\n")))
    run(state.submit())
    assert state.field_errors == {} and state.form_error == ""
    state.set_voicemail_action("none")
    state.name = "Plain"
    run(state.handle_upload(upload("phone\n+14155552673\n")))
    run(state.submit())
    with session_scope() as session:
        listed = batches.list_batches(session, workspace_id=tenant.workspace_id)["batch_calls"]
    by_name = {batch["name"]: batch for batch in listed}
    assert by_name["Machines"]["voicemail"] == {
        "action": "leave_message",
        "message": "Hi {{first_name}}, please call us back.",
    }
    assert by_name["Hang up"]["voicemail"] == {"action": "hang_up"}
    assert by_name["Plain"]["voicemail"] is None
