"""/agents, /phone-numbers and /settings driven through their Reflex states, without a browser:
the root state is built in memory, the viewer is signed in by setting AuthState's workspace,
and the handlers run against a migrated SQLite file."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import uuid
from typing import Any

import pytest
import reflex as rx

from batch_dashboard.db import session_scope
from batch_dashboard.providers.base import CallResult, CallStatus
from batch_dashboard.sealing import unseal
from batch_dashboard.services import agents, auth, dialing, webhooks
from batch_dashboard.services.errors import Unauthorized
from batch_dashboard.ui.states.admin import NO_NUMBER, AgentsState, NumbersState, SettingsState
from batch_dashboard.ui.states.base import AuthState
from tests.conftest import Tenant, make_tenant
from tests.worker.helpers import START, claim, make_batch


def signed_in(state_class: type[rx.State], workspace_id: str) -> Any:
    """A state of a tab signed in to `workspace_id` through a real console session."""
    email = f"{uuid.uuid4().hex[:10]}@example.com"
    with session_scope(write=True) as session:
        auth.create_user(session, workspace_id=workspace_id, email=email, password="password1")
        token = auth.sign_in(session, email=email, password="password1")
    root = rx.State(_reflex_internal_init=True)
    root.get_substate(AuthState.get_full_name().split(".")).session_token = token
    return root.get_substate(state_class.get_full_name().split("."))


def run(result: Any) -> list[Any]:
    """Run one handler call to its end; what it yielded or returned (events, toasts)."""

    async def drive() -> list[Any]:
        if inspect.isasyncgen(result):
            return [item async for item in result]
        if inspect.iscoroutine(result):
            return [await result]
        return [result]

    return asyncio.run(drive())


@pytest.fixture
def tenant(sqlite_url: str) -> Tenant:
    return make_tenant()


def stored_agent(tenant: Tenant, agent_id: str) -> agents.Agent:
    with session_scope() as session:
        agent = agents.get_agent(session, workspace_id=tenant.workspace_id, agent_id=agent_id)
        session.expunge(agent)
        return agent


def agent_count(tenant: Tenant) -> int:
    with session_scope() as session:
        return len(agents.list_agents(session, workspace_id=tenant.workspace_id))


# --- agents -------------------------------------------------------------------------------


def test_agents_page_lists_the_workspace_agents(tenant: Tenant) -> None:
    state = signed_in(AgentsState, tenant.workspace_id)
    run(state.open())
    assert state.loaded
    by_name = {row.name: row for row in state.rows}
    assert set(by_name) == {"Reminders", "Unbound"}
    assert by_name["Reminders"].caller_number == "+1 415-555-0100"
    assert by_name["Reminders"].placeholders == ["first_name", "appointment_time"]
    assert by_name["Unbound"].caller_number == "" and by_name["Unbound"].webhook_url == ""
    assert {n.phone for n in state.numbers} == {"+1 415-555-0100", "+1 415-555-0101"}
    assert "webhook_secret" not in {f.name for f in dataclasses.fields(by_name["Reminders"])}


def test_signed_out_viewer_sees_nothing(tenant: Tenant) -> None:
    root = rx.State(_reflex_internal_init=True)
    state = root.get_substate(AgentsState.get_full_name().split("."))
    run(state.open())
    assert not state.loaded and state.rows == []


def test_a_tab_whose_session_ended_elsewhere_sees_nothing(tenant: Tenant) -> None:
    state = signed_in(AgentsState, tenant.workspace_id)
    run(state.open())
    assert state.loaded and state.rows
    root = state
    while root.parent_state is not None:
        root = root.parent_state
    token = root.get_substate(AuthState.get_full_name().split(".")).session_token
    with session_scope(write=True) as session:
        auth.sign_out(session, token=token)  # e.g. "Sign out" in another tab
    state.loaded, state.rows = False, []
    run(state.open())
    assert not state.loaded and state.rows == []


def test_creating_an_agent_shows_its_secret_once_and_lists_it(tenant: Tenant) -> None:
    state = signed_in(AgentsState, tenant.workspace_id)
    run(state.open())
    state.new_agent()
    assert state.editor_open and state.editing_id == "" and state.form_number == NO_NUMBER
    state.set_form_number(tenant.number_id)
    run(
        state.save(
            {
                "name": "  Renewals ",
                "prompt": "Tell {{first_name}} that policy {{policy}} renews soon.",
                "first_message": "Hello {{first_name}}",
                "webhook_url": "",
            }
        )
    )
    assert state.form_error == "" and not state.editor_open and not state.saving
    assert state.secret.startswith("whsec_") and state.secret_open
    row = next(r for r in state.rows if r.name == "Renewals")
    assert row.caller_number == "+1 415-555-0100" and row.webhook_url == ""
    assert row.placeholders == ["first_name", "policy"]
    stored = stored_agent(tenant, row.id)
    assert unseal(stored.webhook_secret) == state.secret and stored.webhook_url is None
    # The secret lives only in the one-time dialog, never in the list.
    secret = state.secret
    assert all(secret not in repr(r) for r in state.rows)
    state.close_secret(False)
    assert state.secret == "" and not state.secret_open
    run(state.open())
    assert all(secret not in repr(r) for r in state.rows) and state.secret == ""


def test_invalid_agent_shows_the_error_and_creates_nothing(tenant: Tenant) -> None:
    state = signed_in(AgentsState, tenant.workspace_id)
    run(state.open())
    state.new_agent()
    before = agent_count(tenant)
    run(state.save({"name": "   ", "prompt": "", "first_message": "", "webhook_url": ""}))
    assert "name: must be 1 to 200 characters" in state.form_error
    assert "prompt: is required" in state.form_error
    assert state.editor_open and not state.saving and state.secret == ""
    assert agent_count(tenant) == before and len(state.rows) == before

    run(state.save({"name": "Hook", "prompt": "Hi", "webhook_url": "http://127.0.0.1/hook"}))
    assert state.form_error.startswith("webhook_url:")
    assert agent_count(tenant) == before


def test_editing_an_agent_prefills_and_saves_without_a_new_secret(tenant: Tenant) -> None:
    state = signed_in(AgentsState, tenant.workspace_id)
    run(state.open())
    old_secret = stored_agent(tenant, tenant.agent_id).webhook_secret
    row = next(r for r in state.rows if r.id == tenant.agent_id)
    state.edit_agent(dataclasses.asdict(row))
    assert state.editing_id == tenant.agent_id and state.form_name == "Reminders"
    assert state.form_number == tenant.number_id and state.form_prompt == row.prompt
    state.set_form_number(NO_NUMBER)
    events = run(
        state.save(
            {"name": "Reminders v2", "prompt": row.prompt, "first_message": "", "webhook_url": ""}
        )
    )
    assert state.form_error == "" and not state.editor_open and state.secret == ""
    assert any(event is not None for event in events)  # the "Agent saved" toast
    stored = stored_agent(tenant, tenant.agent_id)
    assert stored.name == "Reminders v2" and stored.phone_number_id is None
    assert stored.webhook_secret == old_secret
    edited = next(r for r in state.rows if r.id == tenant.agent_id)
    assert edited.name == "Reminders v2" and edited.caller_number == ""


def test_rotating_shows_a_new_secret_once(tenant: Tenant) -> None:
    state = signed_in(AgentsState, tenant.workspace_id)
    run(state.open())
    old_secret = stored_agent(tenant, tenant.agent_id).webhook_secret
    state.ask_rotate(tenant.agent_id, "Reminders")
    assert state.confirm_rotate and state.rotate_name == "Reminders"
    run(state.rotate())
    assert not state.confirm_rotate and not state.rotating
    assert state.secret.startswith("whsec_") and state.secret != old_secret
    assert "Reminders" in state.secret_title
    stored = stored_agent(tenant, tenant.agent_id)
    assert unseal(stored.webhook_secret) == state.secret
    assert stored.webhook_secret_previous == old_secret  # both sign for 24 hours
    state.close_secret(False)
    assert state.secret == ""


def test_cancelling_a_rotation_keeps_the_secret(tenant: Tenant) -> None:
    state = signed_in(AgentsState, tenant.workspace_id)
    old_secret = stored_agent(tenant, tenant.agent_id).webhook_secret
    state.ask_rotate(tenant.agent_id, "Reminders")
    state.cancel_rotate(False)
    assert not state.confirm_rotate
    run(state.rotate())
    assert state.secret == "" and stored_agent(tenant, tenant.agent_id).webhook_secret == old_secret


def test_another_workspaces_agent_cannot_be_rotated_or_edited(tenant: Tenant) -> None:
    other = make_tenant("Other")
    state = signed_in(AgentsState, tenant.workspace_id)
    other_secret = stored_agent(other, other.agent_id).webhook_secret
    state.ask_rotate(other.agent_id, "Reminders")
    events = run(state.rotate())
    assert state.secret == "" and not state.confirm_rotate
    assert any(event is not None for event in events)  # an error toast
    assert stored_agent(other, other.agent_id).webhook_secret == other_secret

    state.edit_agent({"id": other.agent_id, "name": "Stolen", "prompt": "x"})
    run(state.save({"name": "Stolen", "prompt": "x"}))
    assert "no agent" in state.form_error
    assert stored_agent(other, other.agent_id).name == "Reminders"


def test_deliveries_list_each_attempt_and_a_gone_endpoint_disables_the_webhook(
    tenant: Tenant,
) -> None:
    with session_scope(write=True) as session:
        agent = agents.get_agent(
            session, workspace_id=tenant.workspace_id, agent_id=tenant.agent_id
        )
        agent.webhook_url = "https://hooks.example.com/in"  # set directly: no DNS in tests
        session.add(agent)
    make_batch(tenant, 2)
    claims = claim(limit=2)
    busy = CallResult(status=CallStatus.busy, failure_reason="busy", ended_at=START)
    with session_scope(write=True) as session:
        dialing.record_outcomes(session, outcomes=[(c.attempt_id, busy) for c in claims], now=START)
    with session_scope(write=True) as session:
        [job] = webhooks.claim_due(session, now=START, limit=1)
    with session_scope(write=True) as session:
        webhooks.record_attempt(
            session,
            job=job,
            result=webhooks.AttemptResult(status_code=410, error="gone"),
            now=START,
            schedule=[5],
        )

    state = signed_in(AgentsState, tenant.workspace_id)
    run(state.open())
    row = next(r for r in state.rows if r.id == tenant.agent_id)
    assert row.webhook_url == "https://hooks.example.com/in"
    assert "410" in row.webhook_disabled_reason

    run(state.show_deliveries(tenant.agent_id, "Reminders"))
    assert state.deliveries_open and not state.deliveries_loading
    assert state.deliveries_agent == "Reminders"
    assert len(state.deliveries) == 2
    assert {d.status for d in state.deliveries} == {"failed"}
    tried = next(d for d in state.deliveries if d.id == job.id)
    assert tried.event_type == "call.failed" and tried.attempt_count == 1
    assert tried.created_at == "2026-12-01T12:00:00Z"
    [attempt] = tried.attempts
    assert (attempt.at, attempt.status_code, attempt.error) == (
        "2026-12-01T12:00:00Z",
        "410",
        "gone",
    )

    run(state.show_deliveries(tenant.unbound_agent_id, "Unbound"))
    assert state.deliveries == [] and state.deliveries_open
    state.set_deliveries_open(False)
    assert not state.deliveries_open


# --- phone numbers ------------------------------------------------------------------------


def test_adding_a_number(tenant: Tenant) -> None:
    state = signed_in(NumbersState, tenant.workspace_id)
    run(state.open())
    assert state.loaded and len(state.rows) == 2
    state.new_number()
    assert state.editor_open and state.editing_id == "" and state.form_outbound
    state.set_form_outbound(False)
    run(state.save({"phone_number": "+1 (415) 555-0199", "label": " Support "}))
    assert state.form_error == "" and not state.editor_open
    added = next(r for r in state.rows if r.phone_e164 == "+14155550199")
    assert added.phone == "+1 415-555-0199" and added.label == "Support"
    assert added.provider == "simulator" and added.outbound_enabled is False


def test_an_invalid_number_shows_the_error_and_adds_nothing(tenant: Tenant) -> None:
    state = signed_in(NumbersState, tenant.workspace_id)
    run(state.open())
    state.new_number()
    run(state.save({"phone_number": "not a number", "label": ""}))
    assert state.form_error.startswith("phone_number:")
    assert state.editor_open and not state.saving
    run(state.open())
    assert len(state.rows) == 2


def test_editing_a_number(tenant: Tenant) -> None:
    state = signed_in(NumbersState, tenant.workspace_id)
    run(state.open())
    row = next(r for r in state.rows if r.id == tenant.inbound_only_number_id)
    state.edit_number(dataclasses.asdict(row))
    assert state.editing_id == row.id and state.editing_phone == "+1 415-555-0101"
    assert state.form_label == "Inbound" and state.form_outbound is False
    state.set_form_outbound(True)
    run(state.save({"label": "Second line"}))
    assert state.form_error == "" and not state.editor_open
    edited = next(r for r in state.rows if r.id == row.id)
    assert edited.label == "Second line" and edited.outbound_enabled is True
    assert edited.phone_e164 == "+14155550101"  # the number itself is not editable


# --- API keys -----------------------------------------------------------------------------


def test_creating_an_api_key_shows_it_once_and_lists_only_its_prefix(tenant: Tenant) -> None:
    state = signed_in(SettingsState, tenant.workspace_id)
    run(state.open())
    assert state.loaded and len(state.keys) == 1  # make_tenant's key
    state.start_create()
    run(state.create({"label": "CRM"}))
    assert state.create_error == "" and not state.creating
    key = state.new_key
    assert key.startswith("bc_")
    assert auth.authenticate_api_key(key) == tenant.workspace_id
    assert len(state.keys) == 2
    listed = next(r for r in state.keys if r.label == "CRM")
    assert listed.prefix == key[: auth.DISPLAY_PREFIX_LENGTH] and listed.revoked_at == ""
    assert listed.created_at.endswith("Z")
    for row in state.keys:
        assert key not in repr(row) and auth.hash_key(key) not in repr(row)
    state.set_create_open(False)
    assert state.new_key == "" and not state.create_open


def test_revoking_an_api_key(tenant: Tenant) -> None:
    state = signed_in(SettingsState, tenant.workspace_id)
    run(state.open())
    [row] = state.keys
    state.ask_revoke(row.id, row.prefix)
    assert state.confirm_revoke and state.revoke_prefix == row.prefix
    events = run(state.revoke())
    assert not state.confirm_revoke and not state.revoking
    assert any(event is not None for event in events)
    [revoked] = state.keys
    assert revoked.revoked_at.endswith("Z")
    with pytest.raises(Unauthorized):
        auth.authenticate_api_key(tenant.api_key)


def test_another_workspaces_key_cannot_be_revoked(tenant: Tenant) -> None:
    other = make_tenant("Other")
    with session_scope() as session:
        [other_key] = auth.list_api_keys(session, workspace_id=other.workspace_id)
    state = signed_in(SettingsState, tenant.workspace_id)
    state.ask_revoke(other_key.id, other_key.prefix)
    run(state.revoke())
    assert auth.authenticate_api_key(other.api_key) == other.workspace_id


def test_an_agents_opt_out_field_is_saved(tenant: Tenant) -> None:
    from batch_dashboard.ui.states.admin import save_agent

    with session_scope(write=True) as session:
        save_agent(
            session,
            workspace_id=tenant.workspace_id,
            agent_id=tenant.agent_id,
            form={
                "name": "Reminders",
                "prompt": "Remind {{first_name}}",
                "phone_number_id": tenant.number_id,
                "opt_out_field": " opted_out ",
            },
        )
    assert stored_agent(tenant, tenant.agent_id).opt_out_field == "opted_out"
    state = signed_in(AgentsState, tenant.workspace_id)
    run(state.open())
    assert next(r for r in state.rows if r.id == tenant.agent_id).opt_out_field == "opted_out"
