"""Settings → Telephony driven through its Reflex state against a migrated SQLite file (a
loopback fake stands in for Twilio)."""

from __future__ import annotations

import socket
from typing import Any

import pytest
import reflex as rx

from batch_dashboard.db import session_scope
from batch_dashboard.services import agents, connections
from batch_dashboard.ui.states.connections import ConnectionsState
from tests.conftest import Tenant, make_tenant
from tests.fakes.twilio import TwilioFake
from tests.ui.test_admin_states import run, signed_in

SID = "AC0123456789abcdef0123456789abcdef"
TOKEN = "0123456789abcdef0123456789abf00d"


@pytest.fixture
def tenant(sqlite_url: str) -> Tenant:
    return make_tenant()


def root_of(state: rx.State) -> rx.State:
    while state.parent_state is not None:
        state = state.parent_state
    return state


def every_state_var(state: rx.State) -> str:
    """Everything the tab's states hold (what Reflex could send to the browser), as text."""
    return repr(root_of(state).dict())


def make_connection(tenant: Tenant, **fields: Any) -> dict[str, Any]:
    with session_scope(write=True) as session:
        return connections.create_connection(
            session, workspace_id=tenant.workspace_id, fields=fields
        )


def twilio_form(**overrides: str) -> dict[str, str]:
    return {
        "name": "Twilio – production",
        "account_sid": SID,
        "auth_token": TOKEN,
        "base_url": "",
        "calls_per_second": "1",
        **overrides,
    }


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- Settings → Telephony -----------------------------------------------------------------


def test_no_connection_yet(tenant: Tenant) -> None:
    state = signed_in(ConnectionsState, tenant.workspace_id)
    run(state.open())
    assert state.loaded and state.rows == []


def test_adding_a_twilio_connection_lists_hints_and_no_secret_anywhere(tenant: Tenant) -> None:
    state = signed_in(ConnectionsState, tenant.workspace_id)
    run(state.open())
    state.start_add()
    assert state.add_open and state.form_provider == "twilio"
    events = run(state.add(twilio_form(calls_per_second="2.5")))
    assert state.form_errors == {} and state.form_error == ""
    assert not state.add_open and not state.adding
    assert any(event is not None for event in events)  # the "… added" toast
    [row] = state.rows
    assert (row.name, row.provider, row.provider_name) == (
        "Twilio – production",
        "twilio",
        "Twilio",
    )
    assert row.credentials == ["Account SID …cdef", "Auth token …f00d"]
    assert row.calls_per_second == "2.5" and row.can_import
    assert row.events_url == f"http://localhost:3000/v1/provider-events/twilio/{row.id}"
    assert row.setup.startswith("Nothing to paste")
    # The credentials went to the service, sealed, and are nowhere in the tab's state.
    with session_scope() as session:
        stored = connections.get_connection(
            session, workspace_id=tenant.workspace_id, connection_id=row.id
        )
        assert connections.credentials(stored) == {"account_sid": SID, "auth_token": TOKEN}
    held = every_state_var(state)
    assert SID not in held and TOKEN not in held and TOKEN[:-4] not in held
    run(state.open())
    held = every_state_var(state)
    assert SID not in held and TOKEN not in held


def test_a_simulator_connection_needs_only_a_name(tenant: Tenant) -> None:
    state = signed_in(ConnectionsState, tenant.workspace_id)
    state.start_add()
    state.set_form_provider("simulator")
    run(state.add({"name": "Practice", "calls_per_second": ""}))
    assert state.form_errors == {} and not state.add_open
    [row] = state.rows
    assert (row.provider_name, row.credentials, row.calls_per_second) == (
        "Simulator",
        [],
        "No limit",
    )
    assert not row.can_import and row.events_url == ""  # nothing to receive


def test_problems_are_shown_next_to_their_field_in_words(tenant: Tenant) -> None:
    state = signed_in(ConnectionsState, tenant.workspace_id)
    state.start_add()
    form = twilio_form(
        name=" ", auth_token="", base_url="ftp://edge.example.com", calls_per_second="fast"
    )
    run(state.add(form))
    assert state.form_errors == {
        "name": "Name is required.",
        "auth_token": "Auth token is required.",
        "base_url": "Base URL must be an http(s) URL without a query, e.g. https://api.twilio.com.",
        "calls_per_second": "Calls per second must be a number above 0 and at most 1000.",
    }
    assert state.form_error == "" and state.add_open and not state.adding
    assert not any("credentials" in words for words in state.form_errors.values())
    assert SID not in every_state_var(state)
    with session_scope() as session:
        listed = connections.list_connections(session, workspace_id=tenant.workspace_id)
    assert listed["connections"] == []
    # Another platform starts over, without the other's problems.
    state.set_form_provider("simulator")
    assert state.form_errors == {}
    state.set_add_open(False)
    assert not state.add_open


def test_testing_a_simulator_connection(tenant: Tenant) -> None:
    made = make_connection(tenant, provider="simulator", name="Simulator")
    state = signed_in(ConnectionsState, tenant.workspace_id)
    run(state.open())
    run(state.test(made["id"]))
    [row] = state.rows
    assert (row.note, row.note_ok) == ("Connected", True) and state.busy_id == ""
    run(state.open())  # a reload keeps what the row said
    assert state.rows[0].note == "Connected"


def test_testing_a_twilio_account_that_does_not_answer_says_why(tenant: Tenant) -> None:
    made = make_connection(
        tenant,
        provider="twilio",
        name="Twilio",
        base_url=f"http://127.0.0.1:{closed_port()}",
        credentials={"account_sid": SID, "auth_token": TOKEN},
    )
    state = signed_in(ConnectionsState, tenant.workspace_id)
    run(state.open())
    run(state.test(made["id"]))
    [row] = state.rows
    assert not row.note_ok and row.note.startswith("Twilio did not answer while reading the")
    assert "credentials" not in row.note and state.busy_id == ""


def test_test_and_import_numbers_at_a_twilio_account(tenant: Tenant) -> None:
    with TwilioFake(numbers=["+14155550142", "+14155550143"]) as fake:
        made = make_connection(
            tenant,
            provider="twilio",
            name="Twilio",
            base_url=fake.base_url,
            credentials={"account_sid": fake.account_sid, "auth_token": fake.auth_token},
        )
        wrong = make_connection(
            tenant,
            provider="twilio",
            name="Wrong token",
            base_url=fake.base_url,
            credentials={"account_sid": fake.account_sid, "auth_token": "not-the-token"},
        )
        state = signed_in(ConnectionsState, tenant.workspace_id)
        run(state.open())
        run(state.test(made["id"]))
        run(state.test(wrong["id"]))
        by_name = {row.name: row for row in state.rows}
        assert (by_name["Twilio"].note, by_name["Twilio"].note_ok) == ("Connected", True)
        assert not by_name["Wrong token"].note_ok
        assert by_name["Wrong token"].note.startswith("Twilio refused reading the account: 401")

        run(state.import_numbers(made["id"]))
        row = next(r for r in state.rows if r.id == made["id"])
        assert (row.note, row.note_ok) == ("Added 2 numbers (0 already here)", True)
        run(state.import_numbers(made["id"]))
        row = next(r for r in state.rows if r.id == made["id"])
        assert row.note == "Added 0 numbers (2 already here)"
    with session_scope() as session:
        listed = agents.list_phone_numbers(session, workspace_id=tenant.workspace_id)
        imported = {n.phone_number for n in listed if n.connection_id == made["id"]}
    assert imported == {"+14155550142", "+14155550143"}


def test_a_connection_in_use_is_not_deleted_and_the_row_says_why(tenant: Tenant) -> None:
    used = make_connection(tenant, provider="simulator", name="Lab")
    unused = make_connection(tenant, provider="simulator", name="Spare")
    with session_scope(write=True) as session:
        agents.create_phone_number(
            session,
            workspace_id=tenant.workspace_id,
            number="+14155550177",
            connection_id=used["id"],
        )
    state = signed_in(ConnectionsState, tenant.workspace_id)
    run(state.open())
    state.ask_delete(used["id"], "Lab")
    assert state.confirm_delete and state.delete_name == "Lab"
    run(state.delete())
    assert not state.confirm_delete and not state.deleting
    row = next(r for r in state.rows if r.id == used["id"])
    assert not row.note_ok
    assert row.note == (
        "Lab is used by 1 phone number(s) and 0 agent(s): move or delete them first."
    )

    state.ask_delete(unused["id"], "Spare")
    state.cancel_delete(False)
    assert not state.confirm_delete
    run(state.delete())
    assert {r.name for r in state.rows} == {"Lab", "Spare"}
    state.ask_delete(unused["id"], "Spare")
    events = run(state.delete())
    assert [r.name for r in state.rows] == ["Lab"] and any(e is not None for e in events)


def test_another_workspaces_connection_cannot_be_tested_or_deleted(tenant: Tenant) -> None:
    other = make_tenant("Other")
    theirs = make_connection(other, provider="simulator", name="Theirs")
    state = signed_in(ConnectionsState, tenant.workspace_id)
    run(state.open())
    run(state.test(theirs["id"]))
    state.ask_delete(theirs["id"], "Theirs")
    run(state.delete())
    assert state.rows == []
    with session_scope() as session:
        listed = connections.list_connections(session, workspace_id=other.workspace_id)
    assert [c["name"] for c in listed["connections"]] == ["Theirs"]
